#!/usr/bin/env bash
# Peak resident memory of loading and running each quantized variant of a Qwen3-1.7B-shaped
# random checkpoint (hidden 2048, 28 layers, intermediate 6144, 16/8 heads, head_dim 128),
# against the budget 1.15 × (weight bytes in memory + KV cache + a fixed overhead).
# The overhead is stated, not fitted: OVERHEAD_MIB (default 160) covers the binary and its
# libraries, the Qwen3 tokenizer (151k tokens), thread stacks, the activation workspace and
# the logits row. Each run loads, prefills 16 tokens and decodes 4 with 2 threads.
# Usage: scripts/bench_load_memory.sh [MODEL_DIR] [REPS]
#   Variants: the bf16 checkpoint as is, every online --quantization method, and every
#   checkpoint `lowbit quantize` wrote beside MODEL_DIR (MODEL_DIR-<format>-<scheme>).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/qwen3-1.7b-random}
reps=${2:-3}
overhead=${OVERHEAD_MIB:-160}
if [ ! -f "$model/model.safetensors" ]; then
  .venv/bin/python tools/prepare/make_random_qwen3.py --out "$model" --preset qwen3-1.7b --dtype bfloat16 --no-check
fi
ids=$(.venv/bin/python -c "import json; print(json.dumps([(i * 7919) % 4000 + 100 for i in range(16)]))")
out=$(mktemp)
run() {  # label dir [quantization]
  for _ in $(seq "$reps"); do
    line=$(./build/lowbit generate -q -m "$2" ${3:+--quantization "$3"} --prompt-ids "$ids" -n 4 --ignore-eos \
      --temperature 0 -t 2 --json)
    echo "{\"label\": \"$1\", \"run\": $line}" >> "$out"
  done
}
run "bf16 (float)" "$model"
for q in w8a8_int8 w4a8 w4a4 w4a16 mxfp8 mxfp4; do run "online $q" "$model" "$q"; done
for d in "$model"-*; do [ -f "$d/config.json" ] && run "$(basename "$d")" "$d"; done
.venv/bin/python - "$out" "$overhead" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
overhead = float(sys.argv[2])
labels = list(dict.fromkeys(r["label"] for r in rows))
print(f"fixed overhead {overhead:.0f} MiB; peak RSS min/median/max over {len(rows) // len(labels)} runs")
print(f"{'variant':34} {'weights':>8} {'KV':>6} {'budget':>8} {'peak min':>9} {'median':>8} {'max':>8} {'max/budget':>10}")
worst = 0
for lab in labels:
    rs = [r["run"] for r in rows if r["label"] == lab]
    w, kv = rs[0]["weight_mib"], rs[0]["kv_cache_mib"]
    budget = 1.15 * (w + kv + overhead)
    peaks = [r["peak_rss_mib"] for r in rs]
    ratio = max(peaks) / budget
    worst = max(worst, ratio)
    print(f"{lab:34} {w:8.0f} {kv:6.0f} {budget:8.0f} {min(peaks):9.0f} {statistics.median(peaks):8.0f} "
          f"{max(peaks):8.0f} {ratio:10.3f}")
print(f"worst peak / budget: {worst:.3f} ({'within' if worst <= 1 else 'OVER'} budget)")
PY
rm -f "$out"
