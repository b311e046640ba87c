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

NS_A=lowbit_tp_a NS_B=lowbit_tp_b
IF_A=lbtp_a IF_B=lbtp_b
IP_A=10.201.0.1 IP_B=10.201.0.2 NET=10.201.0.0/24
TMP=$(mktemp -d)
cleanup() {
  ip netns del "$NS_A" 2>/dev/null || true  # deleting a namespace removes its veth end and qdisc
  ip netns del "$NS_B" 2>/dev/null || true
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

# --- TCP between two namespaces -------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then echo "# TCP runs skipped: ip netns and tc need root"; exit 0; fi
if ! ip netns add "$NS_A" 2>"$TMP/err"; then
  echo "# TCP runs skipped: this kernel or container has no network namespaces ($(cat "$TMP/err"))"; exit 0
fi
ip netns add "$NS_B"
ip link add "$IF_A" netns "$NS_A" type veth peer name "$IF_B" netns "$NS_B"
ip -n "$NS_A" addr add "$IP_A/24" dev "$IF_A"
ip -n "$NS_B" addr add "$IP_B/24" dev "$IF_B"
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set "$IF_A" up
ip -n "$NS_B" link set "$IF_B" up

# mpirun's "ssh" into a namespace: the host address names it.
cat >"$TMP/ns_agent.sh" <<AGENT
#!/bin/sh
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1; shift
case \$host in $IP_A) ns=$NS_A ;; $IP_B) ns=$NS_B ;; *) echo "ns_agent: unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$TMP/ns_agent.sh"
printf '%s slots=1\n%s slots=1\n' "$IP_A" "$IP_B" >"$TMP/hosts"

# mpi_yield_when_idle 1: both "hosts" share this machine's cores, but each has one slot, so
# OpenMPI would busy-poll without yielding and starve the kernel's TCP processing on the same
# cores: blocking collectives then advance only at scheduler ticks (measured: 24 ms for a
# 0.5 MB all-reduce instead of 1 ms). On real separate hosts this is not needed.
run_tcp() {  # label
  ip netns exec "$NS_A" "${MPIRUN[@]}" --hostfile "$TMP/hosts" -n 2 --map-by node \
    --mca plm_rsh_agent "$TMP/ns_agent.sh" --mca btl tcp,self --mca mpi_yield_when_idle 1 \
    --mca btl_tcp_if_include "$NET" --mca oob_tcp_if_include "$NET" \
    "$BENCH" --label "$1" --rows "$ROWS" --reps "$REPS" --no-header
}

run_tcp tcp-veth  # no rate limit: what veth + TCP on these cores gives
for rate in $RATES; do
  # tbf: burst of ~1 ms at the rate (at least 64 KiB, one GSO segment), so the limit holds
  # over a message and a 16 MB exchange cannot ride on the bucket.
  burst=$((rate * 1000000000 / 8 / 1000)); [ "$burst" -lt 65536 ] && burst=65536
  if ! tc -n "$NS_A" qdisc replace dev "$IF_A" root tbf rate "${rate}gbit" burst "$burst" latency 50ms 2>"$TMP/err"; then
    echo "# rate limits skipped: tc tbf unavailable ($(cat "$TMP/err"))"; break
  fi
  tc -n "$NS_B" qdisc replace dev "$IF_B" root tbf rate "${rate}gbit" burst "$burst" latency 50ms
  run_tcp "tcp-${rate}g"
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
