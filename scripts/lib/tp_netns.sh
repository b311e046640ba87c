# shellcheck shell=bash
# Two "hosts" on one machine for the tensor-parallel benchmarks (issue 19), sourced by
# scripts/bench_tp_comm.sh and scripts/bench_tp_prefill.sh: two network namespaces joined by a
# veth pair (10.201.0.1 / 10.201.0.2), optionally rate-limited with tc tbf, and mpirun across
# them with one rank per namespace and MPI over btl tcp. Each namespace is a "host" of the
# hostfile, reached through an rsh agent that runs the ORTE daemon inside it (PMIx talks to its
# local daemon over loopback TCP, so a rank cannot sit in a namespace apart from its daemon).
# Needs root (ip netns, tc).
#
#   . scripts/lib/tp_netns.sh
#   tp_netns_up "$TMP" || echo "skipped: $TP_NETNS_WHY"   # scratch dir for the agent and hostfile
#   tp_netns_rate 10 || echo "skipped: $TP_NETNS_WHY"     # Gbit/s on both ends (tbf)
#   tp_netns_mpirun mpirun --allow-run-as-root -- prog args   # 2 ranks, one per namespace
#   tp_netns_tx_bytes                                     # "A B": bytes each end has sent
#   tp_netns_down                                         # also safe from an EXIT trap
# Only namespaces this shell created are removed: a second benchmark started alongside fails
# tp_netns_up ("File exists") instead of tearing down the first one's network.

TP_NS_A=lowbit_tp_a TP_NS_B=lowbit_tp_b
TP_IF_A=lbtp_a TP_IF_B=lbtp_b
TP_IP_A=10.201.0.1 TP_IP_B=10.201.0.2 TP_NET=10.201.0.0/24
TP_NETNS_OWNED=0 TP_NETNS_DIR="" TP_NETNS_WHY=""

tp_netns_up() {  # scratch_dir
  TP_NETNS_DIR=$1
  if [ "$(id -u)" -ne 0 ]; then TP_NETNS_WHY="ip netns and tc need root"; return 1; fi
  if ! ip netns add "$TP_NS_A" 2>"$TP_NETNS_DIR/netns_err"; then
    TP_NETNS_WHY="cannot create network namespace $TP_NS_A ($(cat "$TP_NETNS_DIR/netns_err")); if it exists and"
    TP_NETNS_WHY+=" no benchmark is running, a killed one left it: ip netns del $TP_NS_A $TP_NS_B"; return 1
  fi
  TP_NETNS_OWNED=1
  # Chained: set -e does not apply inside a function called as a condition.
  if ! { ip netns add "$TP_NS_B" &&
         ip link add "$TP_IF_A" netns "$TP_NS_A" type veth peer name "$TP_IF_B" netns "$TP_NS_B" &&
         ip -n "$TP_NS_A" addr add "$TP_IP_A/24" dev "$TP_IF_A" &&
         ip -n "$TP_NS_B" addr add "$TP_IP_B/24" dev "$TP_IF_B" &&
         ip -n "$TP_NS_A" link set lo up && ip -n "$TP_NS_B" link set lo up &&
         ip -n "$TP_NS_A" link set "$TP_IF_A" up && ip -n "$TP_NS_B" link set "$TP_IF_B" up; } \
       2>"$TP_NETNS_DIR/netns_err"; then
    TP_NETNS_WHY="veth set-up failed ($(cat "$TP_NETNS_DIR/netns_err"))"; tp_netns_down; return 1
  fi

  # mpirun's "ssh" into a namespace: the host address names it.
  cat >"$TP_NETNS_DIR/ns_agent.sh" <<AGENT
#!/bin/sh
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1; shift
case \$host in $TP_IP_A) ns=$TP_NS_A ;; $TP_IP_B) ns=$TP_NS_B ;; *) echo "ns_agent: unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
  chmod +x "$TP_NETNS_DIR/ns_agent.sh"
  printf '%s slots=1\n%s slots=1\n' "$TP_IP_A" "$TP_IP_B" >"$TP_NETNS_DIR/hosts"
}

tp_netns_down() {
  [ "$TP_NETNS_OWNED" = 1 ] || return 0
  ip netns del "$TP_NS_A" 2>/dev/null || true  # deleting a namespace removes its veth end and qdisc
  ip netns del "$TP_NS_B" 2>/dev/null || true
  TP_NETNS_OWNED=0
}

tp_netns_rate() {  # Gbit/s
  local rate=$1 burst
  # tbf: burst of ~1 ms at the rate (at least 64 KiB, one GSO segment), so the limit holds
  # over a message and a 16 MB exchange cannot ride on the bucket.
  burst=$((rate * 1000000000 / 8 / 1000)); [ "$burst" -lt 65536 ] && burst=65536
  if ! tc -n "$TP_NS_A" qdisc replace dev "$TP_IF_A" root tbf rate "${rate}gbit" burst "$burst" latency 50ms \
      2>"$TP_NETNS_DIR/netns_err"; then
    TP_NETNS_WHY="tc tbf unavailable ($(cat "$TP_NETNS_DIR/netns_err"))"; return 1
  fi
  tc -n "$TP_NS_B" qdisc replace dev "$TP_IF_B" root tbf rate "${rate}gbit" burst "$burst" latency 50ms \
    2>"$TP_NETNS_DIR/netns_err" || { TP_NETNS_WHY="tc tbf on $TP_IF_B failed ($(cat "$TP_NETNS_DIR/netns_err"))"; return 1; }
}

# --bind-to none: each "host" sees the same cores and OpenMPI's default binds each host's first
# rank to its first core, so both ranks would share core 0 (measured: prefill half as fast as
# over shared memory).
# mpi_yield_when_idle 1: both "hosts" share this machine's cores, but each has one slot, so
# OpenMPI would busy-poll without yielding and starve the kernel's TCP processing on the same
# cores: blocking collectives then advance only at scheduler ticks (measured: 24 ms for a
# 0.5 MB all-reduce instead of 1 ms, with both ranks bound to core 0). On real separate hosts
# neither is needed.
tp_netns_mpirun() {  # mpirun words... -- program args...
  local launcher=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do launcher+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  ip netns exec "$TP_NS_A" "${launcher[@]}" --hostfile "$TP_NETNS_DIR/hosts" -n 2 --map-by node --bind-to none \
    --mca plm_rsh_agent "$TP_NETNS_DIR/ns_agent.sh" --mca btl tcp,self --mca mpi_yield_when_idle 1 \
    --mca btl_tcp_if_include "$TP_NET" --mca oob_tcp_if_include "$TP_NET" "$@"
}

tp_netns_tx_bytes() {
  echo "$(ip netns exec "$TP_NS_A" cat "/sys/class/net/$TP_IF_A/statistics/tx_bytes")" \
    "$(ip netns exec "$TP_NS_B" cat "/sys/class/net/$TP_IF_B/statistics/tx_bytes")"
}
