#!/usr/bin/env bash
# lowbit vs llama.cpp on the same machine, same random checkpoint, same threads, run
# alternately so both engines see the same machine state. A benchmark, not a test (CI does
# not run it); run it on a quiet machine.
#
#   scripts/bench_vs_llamacpp.sh [-p 512] [-n 128] [-t 2] [-r 3] [-d 0] [--quick] [--moe]
#                                [--model-args "--preset qwen3-1.7b"] [--build-only] [--no-build]
#
# --moe benches Qwen3-MoE instead: a random checkpoint of the Qwen3-30B-A3B shape (hidden 2048,
# 32/4 heads x 128, 128 experts, top-8, expert FFN 768, vocab 151936, untied, BF16) cut to the 4
# layers that fit in memory while transformers writes it (--model-args replaces the whole shape).
#
# What it does (everything cached under ~/.cache/lowbit/llamacpp, so a second run only benches;
# steps 1-3 are scripts/lib_llamacpp.sh, shared with bench_serving.sh):
#  1. llama.cpp from PyPI: the sdist of llama-cpp-python==0.3.36 vendors llama.cpp 0c1e57098;
#     builds llama-bench and llama-quantize (Release, native, static) with clang: Debian's GCC 12
#     miscompiles _tile_loadconfig, which would crash llama.cpp's AMX path (its PR #26954).
#  2. The random Qwen3-1.7B-shaped checkpoint (tools/prepare/make_random_qwen3.py; hidden 2048,
#     28 layers, 16/8 heads x 128, intermediate 6144, vocab 151936, BF16, tied embeddings), or
#     with --moe the Qwen3-MoE one (tools/prepare/make_random_qwen3_moe.py).
#  3. GGUF files with llama.cpp's convert_hf_to_gguf.py (BF16) and llama-quantize (Q8_0, Q4_0,
#     Q4_K_M; it also quantizes the tied output matrix, lowbit keeps it BF16 unless
#     --quantize-lm-head: compare bytes per token, not only bits per weight).
#  4. R rounds; in each, every pair runs lowbit then llama.cpp (one repetition each), so drift
#     hits both. Pairs: bf16~BF16, w8a8_int8~Q8_0, w4a8~Q4_0, w4a16~Q4_K_M, each quantized
#     scheme also as scheme+lmq (lowbit --quantize-lm-head: an int8 lm_head, as llama.cpp
#     quantizes its output matrix); mxfp4 and mxfp8 have no llama.cpp counterpart here.
#  5. One table: medians over rounds with min..max, the ratio lowbit / llama.cpp, and each
#     engine's decode bandwidth fraction (lowbit: its own bytes per token; llama.cpp: its model
#     size + KV, read once per token) against the bandwidth lowbit bench measured.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
P=512 N=128 T=2 R=3 D=0
model_args="--preset qwen3-1.7b"
moe_args="--hidden 2048 --layers 4 --heads 32 --kv-heads 4 --head-dim 128 --experts 128 --top-k 8 \
--moe-intermediate 768 --intermediate 6144 --vocab 151936 --untied --dtype bfloat16 --legacy-expert-key"
generator=make_random_qwen3.py
build_only=0 no_build=0 moe=0 own_args=0
while [ $# -gt 0 ]; do
  case $1 in
    -p) P=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    -t) T=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    -d) D=$2; shift 2 ;;
    --quick) P=128 N=32 R=1; shift ;;
    --model-args) model_args=$2; own_args=1; shift 2 ;;
    --moe) moe=1; shift ;;
    --build-only) build_only=1; shift ;;
    --no-build) no_build=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$moe" = 1 ]; then
  generator=make_random_qwen3_moe.py
  [ "$own_args" = 1 ] || model_args=$moe_args
fi
py=$repo/.venv/bin/python
lowbit=${LOWBIT_BIN:-$repo/build/lowbit}
log() { echo "[bench_vs_llamacpp] $*" >&2; }
# shellcheck source=scripts/lib_llamacpp.sh
. "$repo/scripts/lib_llamacpp.sh"
build=$llamacpp_build

# ---- 1. llama.cpp sources and tools --------------------------------------------------------
if [ "$no_build" = 0 ]; then llamacpp_build_tools llama-bench llama-quantize; fi
[ "$build_only" = 1 ] && { log "built: $build/bin/llama-bench, $build/bin/llama-quantize"; exit 0; }
llamacpp_require_tools llama-bench llama-quantize
[ -x "$lowbit" ] || { echo "$lowbit missing: build lowbit first (scripts/build.sh) or set LOWBIT_BIN" >&2; exit 1; }

# ---- 2. the random checkpoint --------------------------------------------------------------
model=$(llamacpp_random_qwen3 "$model_args" "$generator")

# ---- 3. GGUF conversions -------------------------------------------------------------------
gguf=$model/gguf
llamacpp_convert_gguf "$model" "$gguf/BF16.gguf" bf16
for q in Q8_0 Q4_0 Q4_K_M; do
  llamacpp_quantize "$gguf/BF16.gguf" "$gguf/$q.gguf" "$q" "$T"
done

# ---- 4. alternate rounds -------------------------------------------------------------------
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# A scheme+lmq row is lowbit with --quantize-lm-head (int8 lm_head, as llama-quantize makes the
# output matrix Q8_0/Q6_K): the same bytes per token as llama.cpp reads, not only the same
# linears. llama.cpp runs once per round per type, right after the first lowbit row of it.
pairs="bf16:BF16 w8a8_int8:Q8_0 w8a8_int8+lmq:Q8_0 w4a8:Q4_0 w4a8+lmq:Q4_0 w4a16:Q4_K_M w4a16+lmq:Q4_K_M mxfp4:- mxfp8:-"
depth_args=()
[ "$D" -gt 0 ] && depth_args=(-d "$D")
for round in $(seq "$R"); do
  ran=" "
  for pair in $pairs; do
    scheme=${pair%%:*} qtype=${pair#*:}
    lm_args=()
    [ "${scheme%+lmq}" != "$scheme" ] && lm_args=(--quantize-lm-head)
    log "round $round/$R: lowbit $scheme"
    "$lowbit" bench -q -m "$model" --quantization "${scheme%+lmq}" "${lm_args[@]}" -p "$P" -n "$N" -t "$T" -r 1 \
      "${depth_args[@]}" --json > "$out/lowbit.$scheme.$round.json"
    if [ "$qtype" != - ] && [ "${ran#* $qtype }" = "$ran" ]; then
      ran="$ran$qtype "
      log "round $round/$R: llama.cpp $qtype"
      "$build/bin/llama-bench" -m "$gguf/$qtype.gguf" -p "$P" -n "$N" -t "$T" -r 1 "${depth_args[@]}" -o jsonl \
        > "$out/llama.$qtype.$round.jsonl" 2> "$out/llama.$qtype.$round.log" ||
        { tail -20 "$out/llama.$qtype.$round.log"; exit 1; }
    fi
  done
done

# ---- 5. one table --------------------------------------------------------------------------
"$py" - "$out" "$pairs" "$P" "$N" "$D" "$T" "$R" "$model_args" "$gguf" <<'PY'
import glob, json, os, statistics, sys
from gguf import GGUFReader
out, pairs, P, N, D, T, R, margs, gguf_dir = sys.argv[1], sys.argv[2].split(), *map(int, sys.argv[3:8]), *sys.argv[8:10]

def gguf_weight_bytes_per_token(path):
    """Bytes of the GGUF's tensors one decode step reads: every tensor once, except that expert
    tensors (*_exps) count top-k / experts of their size and an untied token_embd one row."""
    r = GGUFReader(path)
    def field(suffix):
        for k, f in r.fields.items():
            if k.endswith(suffix):
                return int(f.parts[f.data[0]][0])
        return None
    experts, used = field(".expert_count"), field(".expert_used_count")
    names = {t.name for t in r.tensors}
    total = 0.0
    for t in r.tensors:
        n = float(t.n_bytes)
        if "_exps" in t.name and experts:
            n *= used / experts
        elif t.name == "token_embd.weight" and "output.weight" in names:
            n /= int(t.shape[-1])  # one row of [n_embd, n_vocab] (GGUF lists dims fastest first)
        total += n
    return total

def stat(v):
    return (statistics.median(v), min(v), max(v)) if v else None

def fmt(s):
    return f"{s[0]:.2f} ({s[1]:.2f}..{s[2]:.2f})" if s else "-"

def ratio(a, b):
    return f"{a[0] / b[0]:.2f}x" if a and b and b[0] > 0 else "-"

rows, bw, header = [], [], None
for pair in pairs:
    scheme, qtype = pair.split(":")
    lb = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/lowbit.{scheme}.*.json"))]
    if not lb:
        continue
    header = header or lb[0]
    bw += [d["limits"]["read_bytes_per_s"] for d in lb]
    r = [d["rows"][0] for d in lb]
    l_pp = stat([x["prefill"]["tokens_per_s"]["median"] for x in r if P])
    l_tg = stat([x["decode"]["tokens_per_s"]["median"] for x in r if N])
    l_bytes = r[0]["decode"]["bytes_per_token"]["total"]
    c_pp = c_tg = c_bytes = None
    if qtype != "-":
        tests = [json.loads(line) for f in sorted(glob.glob(f"{out}/llama.{qtype}.*.jsonl")) for line in open(f) if line.strip()]
        c_pp = stat([t["avg_ts"] for t in tests if t["n_prompt"] == P and t["n_gen"] == 0])
        c_tg = stat([t["avg_ts"] for t in tests if t["n_gen"] == N and t["n_prompt"] == 0])
        if tests:
            # Model tensors read per token (the tied output matrix is token_embd itself; experts
            # top-k of E) plus the KV cache llama.cpp reads (F16 by default) over the mean context.
            kv = r[0]["decode"]["bytes_per_token"]["kv"] / max(r[0]["kv_element_bytes"], 1e-9) * 2
            c_bytes = gguf_weight_bytes_per_token(f"{gguf_dir}/{qtype}.gguf") + kv
    rows.append((scheme, l_pp, l_tg, l_bytes, qtype, c_pp, c_tg, c_bytes))

med_bw = statistics.median(bw) if bw else 0
print(f"lowbit vs llama.cpp: {margs}; {T} threads, pp{P} / tg{N}" + (f" @ d{D}" if D else "") +
      f"; medians of {R} alternating rounds (min..max)")
if header:
    print(f"cpu: {header['cpu']}; {header['kernels'].splitlines()[0]}; read bandwidth {med_bw / 1e9:.1f} GB/s (lowbit bench)")
print()
cols = ["lowbit", "pp t/s", "tg t/s", "MiB/tok", "tg bw %", "llama.cpp", "pp t/s", "tg t/s", "MiB/tok", "tg bw %",
        "pp ratio", "tg ratio"]
print("| " + " | ".join(cols) + " |")
print("|" + "|".join("---" for _ in cols) + "|")
def bw_fraction(tg, nbytes):
    # Both engines against the same figure: each run's own probe swings with this machine's
    # bandwidth (30-64 GB/s on the shared Zen4), so per-run fractions were not comparable.
    return f"{100 * tg[0] * nbytes / med_bw:.1f}" if tg and nbytes and med_bw else "-"

for scheme, l_pp, l_tg, l_bytes, qtype, c_pp, c_tg, c_bytes in rows:
    print("| " + " | ".join([
        scheme, fmt(l_pp), fmt(l_tg), f"{l_bytes / 2**20:.1f}", bw_fraction(l_tg, l_bytes),
        qtype if qtype != "-" else "(none)", fmt(c_pp), fmt(c_tg), f"{c_bytes / 2**20:.1f}" if c_bytes else "-", bw_fraction(c_tg, c_bytes),
        ratio(l_pp, c_pp), ratio(l_tg, c_tg)]) + " |")
print("\nratio = lowbit / llama.cpp (medians). MiB/tok: lowbit counts its packed linears, lm_head, one embedding row "
      "and KV; llama.cpp's is its GGUF tensors (experts: top-k / E of them; untied token_embd: one row) "
      "+ an F16 KV cache over the same context. tg bw % = median decode t/s x MiB/tok / the median read "
      "bandwidth lowbit bench measured over the run, for both engines.")
PY
