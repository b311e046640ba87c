#!/usr/bin/env bash
# Installs, builds and runs every test: the Release build's unit, oracle and CLI tests (CTest),
# the sanitizer build's unit tests, and a bounded fuzz run of each parser of untrusted bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/prepare_default_model.sh
bash scripts/build.sh build
# The real Qwen3 tokenizer for the tests, from the repo's compressed copy (no ../shared needed).
.venv/bin/python tools/prepare/qwen3_tokenizer.py --unpack build/qwen3-tokenizer > /dev/null
export LOWBIT_QWEN3_TOKENIZER_DIR=$PWD/build/qwen3-tokenizer

# Sanitizers: AddressSanitizer + UBSan over the C++ unit tests (the Python oracle tests need
# the Release build's speed, and the fuzz targets have their own sanitizers). The engine's
# batching-invariance runs (hundreds of model steps) are Release-only; its cancel, refusal and
# prefix-cache tests, and the page allocator and radix cache's randomised tests, run here.
bash scripts/build.sh build-asan -DLOWBIT_SANITIZE=ON
(cd build-asan && ctest --output-on-failure -j 2 -E "oracle|interop|python_|Engine\.(Greedy|Quantized|Preempts)" \
  --timeout 600)

bash fuzz/run_fuzz.sh "${LOWBIT_FUZZ_SECONDS:-40}"  # per target

# Last, so its summary line is the run's closing line.
(cd build && ctest --output-on-failure -j 2 --timeout 1200)
