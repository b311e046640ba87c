#!/usr/bin/env bash
# Benchmark (not a test) of tensor-parallel prefill end to end, issue 19: two ranks of
# `lowbit bench --tp-size 2` on a random Qwen3-1.7B-shaped checkpoint, prefills of 512, 2,048
# and 8,192 tokens, with --quantize-tp-communications off (fp32 all-reduce), on (INT8
# all-gather), int8-rs-ag (INT8 reduce-scatter + all-gather) and auto, over
#   - shared memory (lowbit starts its own ranks: mpirun, btl self,vader);
#   - TCP between two network namespaces joined by a veth pair rate-limited with tc tbf at
#     1, 10 and 25 Gbit/s (scripts/lib/tp_netns.sh, shared with scripts/bench_tp_comm.sh);
# plus the single-process baseline (--tp-size 1, the same two cores as threads). Per run:
# prefill time, the all-reduces of one prefill by method (what auto chose), seconds in them
# and bytes per rank as ../shared/spec/tp-compression.md counts them (lowbit bench reads the
# model's TpCounters), and on TCP the bytes each veth end really sent.
#
# The checkpoint has few layers (--layers, default 2): prefill compute and all-reduce traffic
# both grow linearly with the layer count, so their ratio, which decides whether compression
# pays, is the 28-layer model's; 28 layers x 8,192 tokens x 4 modes x 4 links would take hours
# on two cores. It is made once (tools/prepare/make_random_qwen3.py) and cached.
#
# Modes alternate within each link and prompt size, their order rotating each round, so the
# noise of a shared machine hits them alike; min / median / max pool every round's samples.
# Needs root for the TCP part (skipped with a note otherwise).
#
# usage: scripts/bench_tp_prefill.sh [--quick] [--rates "1 10 25"] [--sizes 512,2048,8192]
#                                    [--reps R] [--rounds K] [--layers L] [--keep DIR]
#   --quick: shared memory only, a tiny model, 64- and 256-token prefills, under a minute; checks
#     the counters (methods match the mode, bytes match the spec) and exits non-zero if not (CI).
#   --reps: timed prefills per run (lowbit bench -r, after its untimed warm-up); --rounds: runs
#     per mode, link and size. --keep DIR: keep every run's JSON there.
#   LOWBIT_BUILD_DIR (default build) holds lowbit; LOWBIT_BENCH_CACHE (default
#   $LOWBIT_BUILD_DIR/bench_cache) the checkpoints. RUN_TIMEOUT: seconds per run (default 1200).
#   BUSY_LIMIT: cores other processes may take during a run before it is run again (default 0.25,
#   --quick: no limit; the report's "elsewhere" column shows what they took).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES="1 10 25"
SIZES=512,2048,8192
REPS=2
ROUNDS=2
LAYERS=2
QUICK=0
KEEP=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --rates) RATES=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --layers) LAYERS=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    *) echo "bench_tp_prefill.sh: unknown argument $1 (see the header for usage)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${LOWBIT_BUILD_DIR:-build}
LOWBIT=$(realpath "$BUILD/lowbit")
[ -x "$LOWBIT" ] || { echo "bench_tp_prefill.sh: $LOWBIT missing; build it: ninja -C $BUILD lowbit" >&2; exit 1; }
PY=.venv/bin/python
[ -x "$PY" ] || { echo "bench_tp_prefill.sh: $PY missing (scripts/setup.sh makes the venv)" >&2; exit 1; }
CACHE=${LOWBIT_BENCH_CACHE:-$BUILD/bench_cache}
MODES=(off on int8-rs-ag auto)
if [ "$QUICK" = 1 ]; then
  RATES="" SIZES=64,256 REPS=2 ROUNDS=1
  MODEL_ARGS="--hidden 256 --layers 2 --heads 4 --kv-heads 2 --head-dim 64 --intermediate 768 --vocab 1024"
  RUN_TIMEOUT=${RUN_TIMEOUT:-120}
else
  MODEL_ARGS="--preset qwen3-1.7b --layers $LAYERS"
  RUN_TIMEOUT=${RUN_TIMEOUT:-1200}
fi
BUSY_LIMIT=${BUSY_LIMIT:-$([ "$QUICK" = 1 ] && echo 99 || echo 0.25)}  # --quick checks counters, not speed
IFS=, read -r -a SIZE_LIST <<<"$SIZES"

# shellcheck source=scripts/lib/tp_netns.sh
. scripts/lib/tp_netns.sh
TMP=$(mktemp -d)
cleanup() {
  tp_netns_down
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The random checkpoint for MODEL_ARGS, made once: the folder is keyed by the arguments and
# counts as made only once the generator has finished (a stamp file).
model_dir() {
  local dir
  dir=$CACHE/qwen3-random-$(echo "$MODEL_ARGS" | sha1sum | cut -c1-10)
  if [ ! -f "$dir/.made" ]; then
    echo "# making the random checkpoint ($MODEL_ARGS) in $dir" >&2
    rm -rf "$dir"
    # shellcheck disable=SC2086  # MODEL_ARGS is split into words on purpose
    "$PY" tools/prepare/make_random_qwen3.py --out "$dir" $MODEL_ARGS --no-check >&2
    echo "$MODEL_ARGS" >"$dir/.made"
  fi
  realpath "$dir"
}
MODEL=$(model_dir)

RUNS=$TMP/runs
mkdir -p "$RUNS"
FAILED=0 DONE=0
TOTAL=$(( ROUNDS * ${#SIZE_LIST[@]} * ((1 + $(wc -w <<<"$RATES")) * ${#MODES[@]} + 1) ))

# Runs a command and writes to the file $1 its wall seconds and the cores that other processes
# and the hypervisor (steal) took meanwhile, on average: what a shared machine did to the
# timing. Ours is the CPU time of every process of the run, counted by making this launcher the
# child subreaper: mpirun does not always wait for its remote-launch agents, whose daemons and
# ranks would otherwise be reaped by init and look like somebody else's work.
ACCOUNTED='
import ctypes, os, resource, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
def machine():  # busy (user, nice, system, irq, softirq) and steal CPU seconds
    v = [int(x) / os.sysconf("SC_CLK_TCK") for x in open("/proc/stat").readline().split()[1:9]]
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]
t0, (busy0, steal0) = time.monotonic(), machine()
rc = subprocess.call(sys.argv[2:])
deadline = time.monotonic() + 60
while True:  # orphans of the run, re-parented here; killed if they outlive the run by a minute
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                for pid in filter(str.isdigit, os.listdir("/proc")):
                    try:
                        ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
                        if ppid == os.getpid():
                            os.kill(int(pid), 9)
                    except (OSError, ValueError, IndexError):
                        pass
            time.sleep(0.05)
    except ChildProcessError:
        break
wall, (busy1, steal1) = time.monotonic() - t0, machine()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
others = max(0.0, busy1 - busy0 - ru.ru_utime - ru.ru_stime)
open(sys.argv[1], "w").write(f"{wall:.2f} {others / wall:.3f} {(steal1 - steal0) / wall:.3f}\n")
sys.exit(rc)
'

# One lowbit bench run: writes $RUNS/<link>_<mode>_<M>_<round>.json (and .wire on TCP: the bytes
# each veth end sent during the run; .load: see ACCOUNTED). A run during which other processes
# took more than BUSY_LIMIT cores is run again (up to 3 times; the last one counts). A failed
# run is reported and the others go on.
bench_run() {  # link mode M round
  local link=$1 mode=$2 m=$3 round=$4 out attempt wall others steal before tp
  out=$RUNS/${link}_${mode}_${m}_${round}
  tp=(--tp-size 2 -t 1 --quantize-tp-communications "$mode")
  [ "$mode" = single ] && tp=(--tp-size 1 -t 2)
  local args=(bench -q -m "$MODEL" -p "$m" -n 0 -r "$REPS" --roofline-mib 64 --json "${tp[@]}")
  local run=("$PY" -c "$ACCOUNTED" "$out.load" timeout "$RUN_TIMEOUT")
  for attempt in 1 2 3; do
    echo "0 0 0" >"$out.load"  # kept if the launcher itself fails
    if [ "$link" = shm ]; then
      "${run[@]}" "$LOWBIT" "${args[@]}" >"$out.json" 2>"$out.err" || true
    else
      before=$(tp_netns_tx_bytes)
      tp_netns_mpirun "${run[@]}" mpirun --allow-run-as-root -- "$LOWBIT" "${args[@]}" >"$out.json" 2>"$out.err" || true
      echo "$before $(tp_netns_tx_bytes)" >"$out.wire"
    fi
    read -r wall others steal <"$out.load"
    printf '# [%d/%d] %-7s %-10s M=%-5s round %s: %6.1f s; other processes %.2f cores, steal %.2f\n' \
      "$((DONE + 1))" "$TOTAL" "$link" "$mode" "$m" "$round" "$wall" "$others" "$steal" >&2
    awk -v b="$others" -v s="$steal" -v lim="$BUSY_LIMIT" 'BEGIN { exit !(b + s > lim) }' || break
    [ "$attempt" -lt 3 ] && echo "#   the machine was busy: again" >&2
  done
  DONE=$((DONE + 1))
  if ! "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))["rows"][0]["prefill"]' "$out.json" 2>/dev/null; then
    FAILED=$((FAILED + 1))
    echo "# FAILED: $link $mode M=$m round $round; its stderr ends:" >&2
    tail -n 15 "$out.err" >&2
    rm -f "$out.json"
  fi
}

run_link() {  # link round
  local link=$1 round=$2 m i
  for m in "${SIZE_LIST[@]}"; do
    for i in "${!MODES[@]}"; do  # rotated by the round, so no mode always runs first
      bench_run "$link" "${MODES[$(( (i + round) % ${#MODES[@]} ))]}" "$m" "$round"
    done
    if [ "$link" = shm ]; then bench_run shm single "$m" "$round"; fi
  done
}

echo "# bench_tp_prefill: $(date -u +%FT%TZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# model: $MODEL ($MODEL_ARGS)"
if [ "$QUICK" = 0 ]; then
  echo "# layers: $LAYERS of Qwen3-1.7B's 28 (--layers): per-layer compute and per-layer all-reduce bytes both" \
    "scale with the layer count,"
  echo "#   so their ratio, which decides whether compression pays, is the full model's; 28 layers x 8192 tokens" \
    "x every mode and link would take hours on $(nproc) cores."
fi
echo "# runs: lowbit bench -p M -n 0 -r $REPS (+1 untimed warm-up), rounds $ROUNDS; TP: --tp-size 2 -t 1 per rank;" \
  "single process: --tp-size 1 -t 2"

TCP_NOTE=""
for round in $(seq 1 "$ROUNDS"); do
  run_link shm "$round"
  [ -n "$RATES" ] || continue
  if [ "$TP_NETNS_OWNED" = 0 ] && ! tp_netns_up "$TMP"; then
    TCP_NOTE="TCP runs skipped: $TP_NETNS_WHY"; RATES=""; continue
  fi
  for rate in $RATES; do
    if ! tp_netns_rate "$rate"; then TCP_NOTE="rate limits skipped: $TP_NETNS_WHY"; RATES=""; break; fi
    run_link "tcp-${rate}g" "$round"
  done
done
[ -n "$TCP_NOTE" ] && echo "# $TCP_NOTE"
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); runs failed: $FAILED of $DONE"
[ -n "$KEEP" ] && mkdir -p "$KEEP" && cp "$RUNS"/* "$KEEP"/

# --- report ------------------------------------------------------------------------------
"$PY" - "$RUNS" "$MODEL" "$REPS" "$QUICK" <<'PY'
import glob, json, os, statistics, sys

runs_dir, model_dir, reps, quick = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
cfg = json.load(open(os.path.join(model_dir, "config.json")))
H, L, V, P = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], 2
MODES = ["off", "on", "int8-rs-ag", "auto"]
MiB = 1024.0 * 1024.0

# Spec bytes per rank for one all-reduce of M x H values over P ranks (ring), and per prefill
# (2 all-reduces per layer: after o_proj and after down_proj).
def spec(method, m):
    return {"fp32": 2 * (P - 1) / P * 4 * m * H, "bf16": 2 * (P - 1) / P * 2 * m * H,
            "int8_allgather": (P - 1) * (m * H + 4 * m), "int8_rs_ag": 2 * (P - 1) / P * (m * H + 4 * m)}[method]
METHODS = ["fp32", "int8_allgather", "int8_rs_ag"]

cells = {}  # (link, mode, M) -> dict of pooled samples
for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
    link, mode, m, _round = os.path.basename(path)[:-5].split("_")
    m = int(m)
    row = json.load(open(path))["rows"][0]
    c = cells.setdefault((link, mode, m), {"ms": [], "ar_ms": [], "tp": None, "wire": [], "settings": [], "busy": []})
    c["ms"] += [1e3 * m / t for t in row["prefill"]["tokens_per_s"]["samples"]]
    tp = row.get("tensor_parallel")
    if tp:
        c["ar_ms"] += [1e3 * s for s in tp["prefill_all_reduce_seconds"]["samples"]]
        c["tp"] = tp
        c["settings"].append(tp["setting"])
    load = path[:-5] + ".load"
    if os.path.exists(load):  # wall seconds, cores taken by other processes, by the hypervisor (steal)
        _wall, others, steal = map(float, open(load).read().split())
        c["busy"].append(others + steal)
    wire = path[:-5] + ".wire"
    if os.path.exists(wire):  # tx bytes of both ends before and after; warm-up + reps prefills
        a0, b0, a1, b1 = map(int, open(wire).read().split())
        c["wire"].append(max(a1 - a0, b1 - b0) / (reps + 1))

def stats(v):
    return (min(v), statistics.median(v), max(v)) if v else (float("nan"),) * 3

links = sorted({k[0] for k in cells}, key=lambda s: (s != "shm", float(s[4:-1]) if s != "shm" else 0))
sizes = sorted({k[2] for k in cells})
problems = []

shape = "Qwen3-1.7B shape, " if (H, cfg["intermediate_size"]) == (2048, 6144) else ""
print(f"\n## Prefill, {shape}H={H}, {L} layers ({2 * L} all-reduces per prefill), 2 ranks")
print("prefill ms: min / median / max over all samples; all-reduce ms: median, rank 0's wall time in the")
print("all-reduces of one prefill (includes waiting for the slower rank); MiB/rank: spec bytes per prefill")
print("(the counters); wire: bytes the busier veth end sent per prefill (TCP/IP headers, logits gather and")
print("control messages included; auto's: its start-up probes too); x fp32: median speed-up over")
print("--quantize-tp-communications off; x 1 proc: over the single process with 2 threads on the same cores;")
print("elsewhere: cores that other processes and the hypervisor (steal) took during the runs, median.\n")
head = f"| {'link':<9} | {'mode':<10} | {'M':>5} | {'prefill ms min/med/max':>26} | {'t/s':>7} | {'all-reduce ms':>13} " \
       f"| {'all-reduces per prefill':<26} | {'MiB/rank':>8} | {'wire MiB':>8} | {'x fp32':>6} | {'x 1 proc':>8} " \
       f"| {'elsewhere':>9} |"
print(head)
print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
for link in links:
    for m in sizes:
        base = cells.get((link, "off", m))
        single = cells.get(("shm", "single", m))
        for mode in MODES + (["single"] if link == "shm" else []):
            c = cells.get((link, mode, m))
            if not c or not c["ms"]:
                print(f"| {link:<9} | {mode:<10} | {m:>5} | {'failed':>26} |")
                continue
            lo, med, hi = stats(c["ms"])
            tp = c["tp"]
            counts = ", ".join(f"{tp['prefill_all_reduces'][k]} {k.replace('_', '-')}" for k in METHODS
                               if tp and tp["prefill_all_reduces"][k]) if tp else "-"
            ar = f"{stats(c['ar_ms'])[1]:.1f}" if tp else "-"
            mib = f"{tp['prefill_bytes_per_rank'] / MiB:.2f}" if tp else "-"
            wire = f"{statistics.median(c['wire']) / MiB:.2f}" if c["wire"] else "-"
            x_fp32 = f"{stats(base['ms'])[1] / med:.3f}" if base and base["ms"] and tp else "-"
            x_single = f"{stats(single['ms'])[1] / med:.3f}" if single and single["ms"] else "-"
            busy = f"{statistics.median(c['busy']):.2f}" if c["busy"] else "-"
            print(f"| {link:<9} | {mode:<10} | {m:>5} | {f'{lo:.0f} / {med:.0f} / {hi:.0f}':>26} | {m / med * 1e3:>7.1f} "
                  f"| {ar:>13} | {counts:<26} | {mib:>8} | {wire:>8} | {x_fp32:>6} | {x_single:>8} | {busy:>9} |")
            if tp:  # the counters must say what the mode asked for, at the spec's bytes
                n = tp["prefill_all_reduces"]
                want = {"off": "fp32", "on": "int8_allgather", "int8-rs-ag": "int8_rs_ag"}.get(mode)
                if sum(n.values()) != 2 * L or (want and n[want] != 2 * L):
                    problems.append(f"{link} {mode} M={m}: all-reduces {n}, expected {2 * L} of {want or 'any'}")
                expect = sum(n[k] * spec(k, m) for k in METHODS)
                if abs(tp["prefill_bytes_per_rank"] - expect) > 1e-6 * expect:
                    problems.append(f"{link} {mode} M={m}: {tp['prefill_bytes_per_rank']} bytes, spec {expect}")

print("\n## What auto measured at start-up (per link, first run): all-reduce ms at its probe sizes, M = 16/256/2048")
for link in links:
    for m in sizes:
        c = cells.get((link, "auto", m))
        if c and c["settings"]:
            print(f"{link}: {c['settings'][0].split('[', 1)[-1].rstrip(']')}")
            break

print(f"\n## Bytes per rank per prefill ({2 * L} all-reduces), spec formulas vs measured")
print("spec: fp32 2(p-1)/p*4MH (the engine's baseline), bf16 2(p-1)/p*2MH (the spec's reference), int8 all-gather")
print("(p-1)(MH+4M), int8 rs-ag 2(p-1)/p(MH+4M), p=2. wire: median over TCP runs of the busier veth end; it also")
logits = V // P * 4  # the last token's logits: each rank sends its vocabulary slice, fp32
print(f"carries the logits all-gather ({logits / MiB:.2f} MiB per prefill), TCP/IP headers and MPI's control messages;")
print("wire/expected: wire over (spec + logits), for off / on / rs-ag (auto's start-up probes make its wire bytes larger).")
print(f"| {'M':>5} | {'fp32 MiB':>9} | {'bf16 MiB':>9} | {'int8-ag MiB':>11} | {'rs-ag MiB':>9} | {'int8/fp32':>9} "
      f"| {'wire off':>9} | {'wire on':>9} | {'wire rs-ag':>10} | {'wire on/off':>11} | {'wire/expected':>19} |")
print(f"| ----: | --------: | --------: | ----------: | --------: | --------: | --------: | --------: | ---------: "
      f"| ----------: | ------------------: |")
for m in sizes:
    s = {k: 2 * L * spec(k, m) / MiB for k in ["fp32", "bf16", "int8_allgather", "int8_rs_ag"]}
    def wire(mode):
        w = [x for link in links if link != "shm" for x in (cells.get((link, mode, m)) or {"wire": []})["wire"]]
        return statistics.median(w) / MiB if w else None
    w_off, w_on, w_rs = wire("off"), wire("on"), wire("int8-rs-ag")
    f = lambda x: "-" if x is None else f"{x:.2f}"
    ratio = f"{w_on / w_off:.3f}" if w_on and w_off else "-"
    vs = " / ".join("-" if w is None else f"{w / (s[k] + logits / MiB):.3f}"
                    for w, k in [(w_off, "fp32"), (w_on, "int8_allgather"), (w_rs, "int8_rs_ag")])
    print(f"| {m:>5} | {s['fp32']:>9.2f} | {s['bf16']:>9.2f} | {s['int8_allgather']:>11.2f} | {s['int8_rs_ag']:>9.2f} "
          f"| {s['int8_allgather'] / s['fp32']:>9.3f} | {f(w_off):>9} | {f(w_on):>9} | {f(w_rs):>10} | {ratio:>11} "
          f"| {vs:>19} |")

print("\n## Where compression wins and loses (median prefill time vs fp32 TP; 'win'/'loss' only when the")
print("## min-max ranges do not overlap, else 'noise'); link time = fp32 spec bytes / link rate")
for link in links:
    for m in sizes:
        base = cells.get((link, "off", m))
        if not base or not base["ms"]:
            continue
        b_lo, b_med, b_hi = stats(base["ms"])
        rate = None if link == "shm" else float(link[4:-1]) * 1e9 / 8
        t_link = f"{2 * L * spec('fp32', m) / rate * 1e3:.0f} ms of fp32 traffic at the link rate" if rate else "shared memory"
        verdicts = []
        for mode in MODES[1:]:
            c = cells.get((link, mode, m))
            if not c or not c["ms"]:
                continue
            lo, med, hi = stats(c["ms"])
            v = "(too few samples)" if min(len(c["ms"]), len(base["ms"])) < 2 else \
                "win" if hi < b_lo else "loss" if lo > b_hi else "noise"
            extra = ""
            if mode == "auto" and c["tp"]:
                n = c["tp"]["prefill_all_reduces"]
                extra = " chose " + "+".join(k.replace("_", "-") for k in METHODS if n[k])
            verdicts.append(f"{mode}{extra} x{b_med / med:.3f} {v}")
        print(f"{link:<9} M={m:<5} fp32 {b_med:.0f} ms ({t_link}): " + "; ".join(verdicts))

if problems:
    print("\nCOUNTER CHECKS FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("\ncounter checks: every run's all-reduces match its mode and the spec's bytes")
PY
[ "$FAILED" = 0 ]
