#!/usr/bin/env bash
# Builds the safetensors header fuzzer with clang (ASan + UBSan + libFuzzer) in build-fuzz/
# and runs it for SECONDS. Exits non-zero if the fuzzer finds a crash; the input that
# caused it is left in build-fuzz/fuzz-artifacts/.
#   fuzz/run_fuzz.sh 60
set -euo pipefail

seconds=${1:?usage: fuzz/run_fuzz.sh SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOWBIT_FUZZ_BUILD_DIR:-$root/build-fuzz}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DLOWBIT_FUZZ=ON -DLOWBIT_SANITIZE=ON -DLOWBIT_TESTS=OFF >/dev/null
ninja -C "$build" -j2 safetensors_header_fuzz

# New inputs go to a working corpus in the build folder; the checked-in seeds stay as they are.
work=$build/fuzz-corpus/safetensors_header
mkdir -p "$work" "$build/fuzz-artifacts"
"$build/fuzz/safetensors_header_fuzz" \
  -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
  -dict="$root/fuzz/safetensors_header.dict" \
  -artifact_prefix="$build/fuzz-artifacts/" \
  "$work" "$root/fuzz/corpus/safetensors_header"
