#!/usr/bin/env bash
# Builds the fuzzers with clang (ASan + UBSan + libFuzzer) in build-fuzz/
# and runs each for SECONDS. Exits non-zero if the fuzzer finds a crash; the input that
# caused it is left in build-fuzz/fuzz-artifacts/.
#   fuzz/run_fuzz.sh 60
set -euo pipefail

seconds=${1:?usage: fuzz/run_fuzz.sh SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOWBIT_FUZZ_BUILD_DIR:-$root/build-fuzz}
# Every parser of untrusted bytes: a checkpoint's safetensors header, a request body of
# `lowbit serve`, the SSE stream `lowbit bench-serving` reads. Each runs for SECONDS.
targets="safetensors_header openai_request sse_stream"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DLOWBIT_FUZZ=ON -DLOWBIT_SANITIZE=ON -DLOWBIT_TESTS=OFF >/dev/null
ninja -C "$build" -j2 $(for t in $targets; do echo "${t}_fuzz"; done)

mkdir -p "$build/fuzz-artifacts"
for t in $targets; do
  # New inputs go to a working corpus in the build folder; the checked-in seeds stay as they are.
  work=$build/fuzz-corpus/$t
  mkdir -p "$work"
  dict=()
  [ -f "$root/fuzz/$t.dict" ] && dict=(-dict="$root/fuzz/$t.dict")
  echo "[fuzz] $t for $seconds s"
  "$build/fuzz/${t}_fuzz" \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$build/fuzz-artifacts/${t}-" \
    "$work" "$root/fuzz/corpus/$t"
done
