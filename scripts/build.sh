#!/usr/bin/env bash
# Configures and builds lowbit. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# Default: build/ in Release. Targets can be limited with LOWBIT_TARGETS="lowbit ...".
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
# 2 jobs: the CI machine has 2 cores and 24 GiB; more jobs only add memory pressure.
ninja -C "$dir" -j "${LOWBIT_JOBS:-2}" ${LOWBIT_TARGETS:-}
