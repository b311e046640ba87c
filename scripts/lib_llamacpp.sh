# shellcheck shell=bash disable=SC2154
# llama.cpp for the side-by-side benchmarks (sourced by bench_vs_llamacpp.sh and bench_serving.sh):
# its sources from the llama-cpp-python sdist on PyPI, its tools built with clang, the random
# Qwen3 checkpoints and the GGUF conversions. Everything is cached under $llamacpp_cache, so only a
# first run downloads, builds or converts. The caller sets `repo` and `py` (the project's venv
# python; SC2154 above) and `set -euo pipefail`.
#
# Why clang: Debian's GCC 12 miscompiles _tile_loadconfig, which would crash llama.cpp's AMX path
# (its PR #26954).

llamacpp_version=0.3.36  # vendors llama.cpp 0c1e57098
llamacpp_cache=${LOWBIT_LLAMACPP_CACHE:-$HOME/.cache/lowbit/llamacpp}
llamacpp_src=$llamacpp_cache/src/llama_cpp_python-$llamacpp_version/vendor/llama.cpp
llamacpp_build=$llamacpp_cache/build-$llamacpp_version
llamacpp_bin=$llamacpp_build/bin

llamacpp_log() { echo "[llamacpp] $*" >&2; }

llamacpp_fetch_source() {
  [ -f "$llamacpp_src/CMakeLists.txt" ] && return 0
  llamacpp_log "downloading the llama-cpp-python $llamacpp_version sdist (vendored llama.cpp)"
  mkdir -p "$llamacpp_cache/src"
  "$py" -m pip download "llama-cpp-python==$llamacpp_version" --no-deps --no-binary :all: -d "$llamacpp_cache/sdist" -q
  tar -xzf "$llamacpp_cache/sdist/llama_cpp_python-$llamacpp_version.tar.gz" -C "$llamacpp_cache/src"
}

# llamacpp_build_tools TARGET... builds the missing ones (llama-bench, llama-quantize, llama-server).
llamacpp_build_tools() {
  local missing=() t
  for t in "$@"; do [ -x "$llamacpp_bin/$t" ] || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  llamacpp_fetch_source
  llamacpp_log "building ${missing[*]} with clang (Release, native): takes a while on 2 cores"
  # Tools and the server are configured, only the asked targets are built; no web UI (it would
  # download), tests or examples.
  CC=clang CXX=clang++ cmake -S "$llamacpp_src" -B "$llamacpp_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF > "$llamacpp_build.configure.log" 2>&1 ||
    { cat "$llamacpp_build.configure.log" >&2; return 1; }
  nice -n 10 ninja -C "$llamacpp_build" -j "${LLAMACPP_JOBS:-1}" "${missing[@]}"
}

# llamacpp_require_tools TARGET... fails with a hint when one is not built.
llamacpp_require_tools() {
  local t
  for t in "$@"; do
    [ -x "$llamacpp_bin/$t" ] || { echo "$llamacpp_bin/$t missing (run without --no-build)" >&2; return 1; }
  done
}

# llamacpp_random_qwen3 "MODEL ARGS" [GENERATOR] prints the folder of the random checkpoint made
# with tools/prepare/GENERATOR (default make_random_qwen3.py, e.g. "--preset qwen3-0.6b";
# make_random_qwen3_moe.py for Qwen3-MoE), keyed by the generator and its arguments.
llamacpp_random_qwen3() {
  local args=$1 gen=${2:-make_random_qwen3.py} dir key
  key=$args
  [ "$gen" = make_random_qwen3.py ] || key="$gen $args"  # keeps the dense checkpoints' old folders
  dir=$llamacpp_cache/models/qwen3-random-$(echo "$key" | sha1sum | cut -c1-10)
  if [ ! -f "$dir/model.safetensors" ] && [ ! -f "$dir/model.safetensors.index.json" ]; then
    llamacpp_log "making the random checkpoint ($gen $args) in $dir"
    # shellcheck disable=SC2086
    "$py" "$repo/tools/prepare/$gen" --out "$dir" $args $([ "$gen" = make_random_qwen3.py ] && echo --no-check) >&2 ||
      return 1
  fi
  echo "$dir"
}

# llamacpp_convert_gguf HF_DIR OUT.gguf OUTTYPE (bf16, f16, ...) with llama.cpp's
# convert_hf_to_gguf.py. It runs in the project's venv (torch, transformers, numpy; gguf-py comes
# from llama.cpp's tree) and imports sentencepiece, which goes into a side folder so the venv stays
# as requirements.txt makes it.
llamacpp_convert_gguf() {
  local hf=$1 out=$2 outtype=$3
  [ -f "$out" ] && return 0
  llamacpp_fetch_source
  if [ ! -d "$llamacpp_cache/pydeps/sentencepiece" ]; then
    llamacpp_log "installing sentencepiece for convert_hf_to_gguf.py into $llamacpp_cache/pydeps"
    "$py" -m pip install -q --target "$llamacpp_cache/pydeps" sentencepiece
  fi
  llamacpp_log "converting $hf to GGUF $outtype"
  mkdir -p "$(dirname "$out")"
  PYTHONPATH=$llamacpp_cache/pydeps "$py" "$llamacpp_src/convert_hf_to_gguf.py" "$hf" --outtype "$outtype" \
    --outfile "$out.tmp" >&2
  mv "$out.tmp" "$out"
}

# llamacpp_quantize IN.gguf OUT.gguf QTYPE THREADS with llama-quantize (log beside OUT).
llamacpp_quantize() {
  local in=$1 out=$2 qtype=$3 threads=$4
  [ -f "$out" ] && return 0
  llamacpp_log "llama-quantize $qtype"
  "$llamacpp_bin/llama-quantize" "$in" "$out.tmp" "$qtype" "$threads" > "${out%.gguf}.log" 2>&1 ||
    { tail -20 "${out%.gguf}.log" >&2; return 1; }
  mv "$out.tmp" "$out"
}
