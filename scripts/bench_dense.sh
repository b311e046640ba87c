#!/usr/bin/env bash
# Dense-inference speed of one model: prefill of a 512-token prompt and decode of 128 tokens
# with 2 threads, repeated, reported as min/median/max (the machines are shared and noisy),
# with load time and peak RSS. Usage: scripts/bench_dense.sh MODEL_DIR [REPS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1; reps=${2:-5}; threads=${3:-2}
ids=$(.venv/bin/python -c "import json; print(json.dumps([(i * 7919) % 4000 + 100 for i in range(512)]))")
out=$(mktemp)
for _ in $(seq "$reps"); do
  ./build/lowbit generate -q -m "$model" --prompt-ids "$ids" -n 128 --ignore-eos --temperature 0 -t "$threads" --json >> "$out"
done
.venv/bin/python - "$out" "$model" "$threads" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def stat(key, src="timings"):
    v = [r[src][key] if src else r[key] for r in rows]
    return f"{min(v):8.2f} {statistics.median(v):8.2f} {max(v):8.2f}"
print(f"model {sys.argv[2]}, {len(rows)} runs, {sys.argv[3]} threads          min   median      max")
print(f"  load (s)                              {stat('load_s')}")
print(f"  prefill 512 tokens (tok/s)            {stat('prefill_tokens_per_s')}")
print(f"  decode 128 tokens (tok/s)             {stat('decode_tokens_per_s')}")
print(f"  peak RSS (MiB)                        {stat('peak_rss_mib', None)}")
PY
rm -f "$out"
