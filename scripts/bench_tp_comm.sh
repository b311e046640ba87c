#!/usr/bin/env bash
# Benchmark (not a test) of the tensor-parallel all-reduce, issue 19: fp32 vs INT8 all-gather vs
# INT8 reduce-scatter + all-gather, for M ∈ {512, 2048, 8192} tokens × H = 2048 (Qwen3-1.7B),
# two ranks, and what --quantize-tp-communications auto picks from its start-up link model.
#   - shared memory: mpirun -n 2, btl self,vader;
#   - TCP: two network namespaces joined by a veth pair (10.201.0.1 / 10.201.0.2), rate-limited
#     with tc tbf at each rate, MPI over btl tcp. Each namespace is a "host" of the hostfile,
#     reached through an rsh agent that runs the ORTE daemon inside it (PMIx talks to its local
#     daemon over loopback TCP, so a rank cannot sit in a namespace apart from its daemon).
# The namespaces, the veth pair and the qdiscs are created here and removed on exit.
# Collectives are the engine's default (blocking, under the watchdog thread).
# Needs root (ip netns, tc). Timing is comm_bench (src/dist/comm_bench.cc): per sample the
# slowest rank's time for one all-reduce; bytes are per rank as ../shared/spec/tp-compression.md
# counts them.
#
# usage: scripts/bench_tp_comm.sh [--quick] [--rates "1 10 25"] [--rows 512,2048,8192] [--reps N]
#   --quick: shared memory only, small sizes, a few seconds (CI).
#   LOWBIT_BUILD_DIR (default build) holds src/dist/comm_bench.
#   MPI_EXTRA: more mpirun arguments for every run, e.g. to pin OpenMPI's all-reduce algorithm:
#     MPI_EXTRA="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4" (ring)
set -euo pipefail
cd "$(dirname "$0")/.."

RATES="1 10 25"
ROWS=512,2048,8192
REPS=7
QUICK=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --rates) RATES=$2; shift ;;
    --rows) ROWS=$2; shift ;;
    --reps) REPS=$2; shift ;;
    *) echo "bench_tp_comm.sh: unknown argument $1 (see the header for usage)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${LOWBIT_BUILD_DIR:-build}
BENCH=$(realpath "$BUILD/src/dist/comm_bench")
[ -x "$BENCH" ] || { echo "bench_tp_comm.sh: $BENCH missing; build it: ninja -C $BUILD comm_bench" >&2; exit 1; }
# shellcheck disable=SC2206  # MPI_EXTRA is split into words on purpose
MPIRUN=(mpirun --allow-run-as-root ${MPI_EXTRA:-})

# shellcheck source=scripts/lib/tp_netns.sh
. scripts/lib/tp_netns.sh
TMP=$(mktemp -d)
cleanup() {
  tp_netns_down
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# bench_tp_comm: $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# bytes/rank per spec (p=2): fp32 ring 2(p-1)/p*4MH; int8 all-gather (p-1)(MH+4M); int8 rs-ag 2(p-1)/p(MH+4M)"

if [ "$QUICK" = 1 ]; then
  "${MPIRUN[@]}" --oversubscribe -n 2 --mca btl self,vader "$BENCH" --label shm --rows 64,256 --hidden 2048 --reps 3
  exit 0
fi

"${MPIRUN[@]}" --oversubscribe -n 2 --mca btl self,vader "$BENCH" --label shm --rows "$ROWS" --reps "$REPS"
# The same with the polled non-blocking collectives (the other deadline mode): shows what
# OpenMPI's non-blocking all-reduce costs the fp32 baseline.
"${MPIRUN[@]}" --oversubscribe -n 2 --mca btl self,vader "$BENCH" --label shm-polled --collectives polled \
  --rows "$ROWS" --reps "$REPS" --no-header

# --- TCP between two namespaces (scripts/lib/tp_netns.sh) ----------------------------------
if ! tp_netns_up "$TMP"; then echo "# TCP runs skipped: $TP_NETNS_WHY"; exit 0; fi

run_tcp() {  # label
  tp_netns_mpirun "${MPIRUN[@]}" -- "$BENCH" --label "$1" --rows "$ROWS" --reps "$REPS" --no-header
}

run_tcp tcp-veth  # no rate limit: what veth + TCP on these cores gives
for rate in $RATES; do
  if ! tp_netns_rate "$rate"; then echo "# rate limits skipped: $TP_NETNS_WHY"; break; fi
  run_tcp "tcp-${rate}g"
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
