#!/usr/bin/env bash
# Serving benchmark for issue 16's targets: `lowbit serve` against llama.cpp's llama-server on the
# same machine, model and threads, driven by `lowbit bench-serving`. A benchmark, not a test (CI
# does not run it); run it on a quiet machine (the report records the load average).
#
#   scripts/bench_serving.sh [--quick] [--sections throughput,prefix,chunked] [--models smollm2,qwen3-0.6b]
#                            [--concurrency "1 8 32"] [--q8] [--chunk-sizes "default 128"] [--chunk-slowdown 2.5]
#                            [--threads 2] [--out DIR] [--no-build]
#
# Sections (each server is started here on a free loopback port and killed on exit):
#  throughput  random 512 in / 128 out (ignore_eos) at each concurrency, 4x as many prompts (min 8);
#              lowbit (BF16) and llama-server (GGUF BF16 from convert_hf_to_gguf.py) both stay up
#              and run alternately, so drift hits both; --q8 adds lowbit w8a8_int8 vs Q8_0.
#              llama-server: -t/-tb THREADS, -np = the largest concurrency, -c = np x (in + out + 128).
#  prefix      generated-shared-prefix, 16 groups x 8 questions, system prompt 2048, question 128,
#              output 64, concurrency 8, against lowbit with and without --disable-radix-cache: the
#              run's hit rate (delta of sglang:cached_tokens_total / sglang:prompt_tokens_total in
#              /metrics) and median TTFT. Only system prompts repeat, so the hit rate cannot pass
#              groups x (questions - 1) x system / (groups x questions x (system + question)): 82.4 %.
#  chunked     4 streams (32 in, 512 out) decode; then one 4096-token prompt is sent. Reported: the
#              streams' ITL median, and their ITL p99 while the long prompt was in flight (target:
#              <= 4x the median), once per --chunk-sizes entry (default: the server's own), with the
#              server's latency bound --max-step-slowdown set to --chunk-slowdown (default 2.5; the
#              server's default, 4, favours time to first token and throughput).
# --quick shrinks every size (prompts, outputs, groups, concurrency 1 and 8) to prove the script.
# Results: one JSON per bench-serving run, /metrics snapshots, server logs, report.txt and
# summary.json in --out (default ~/.cache/lowbit/bench_serving/DATE). The steps shared with
# bench_vs_llamacpp.sh (llama.cpp build, random checkpoint, GGUF) are scripts/lib_llamacpp.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
command_line="$0 $*"
sections=throughput,prefix,chunked models=smollm2,qwen3-0.6b T=2 q8=0 no_build=0 out=
conc="1 8 32" per_conc=4 min_prompts=8 in_len=512 out_len=128
gsp_groups=16 gsp_per_group=8 gsp_sys=2048 gsp_q=128 gsp_out=64 gsp_conc=8
streams=4 stream_in=32 stream_out=512 long_len=4096 chunk_sizes=default chunk_slowdown=2.5
while [ $# -gt 0 ]; do
  case $1 in
    --quick) conc="1 8" in_len=128 out_len=32 gsp_groups=4 gsp_per_group=4 gsp_sys=512 gsp_q=32 gsp_out=8
             gsp_conc=4 stream_out=128 long_len=1024; shift ;;
    --sections) sections=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --q8) q8=1; shift ;;
    --chunk-sizes) chunk_sizes=$2; shift 2 ;;
    --chunk-slowdown) chunk_slowdown=$2; shift 2 ;;
    --threads) T=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) no_build=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for s in ${sections//,/ }; do
  case $s in throughput|prefix|chunked) ;; *) echo "--sections: unknown '$s' (throughput, prefix, chunked)" >&2; exit 2 ;; esac
done
for m in ${models//,/ }; do
  case $m in smollm2|qwen3-0.6b) ;; *) echo "--models: unknown '$m' (smollm2, qwen3-0.6b)" >&2; exit 2 ;; esac
done

py=$repo/.venv/bin/python
lowbit=${LOWBIT_BIN:-$repo/build/lowbit}
out=${out:-$HOME/.cache/lowbit/bench_serving/$(date +%Y%m%d-%H%M%S)}
log() { echo "[bench_serving] $*" >&2; }
# shellcheck source=scripts/lib_llamacpp.sh
. "$repo/scripts/lib_llamacpp.sh"
mkdir -p "$out/logs"

# ---- servers: started on free loopback ports, all killed on exit ----------------------------
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server NAME COMMAND... runs COMMAND --host 127.0.0.1 --port P in the background and
# waits for /health; sets srv_url and srv_pid (globals: the server must be this shell's child).
start_server() {
  local name=$1 port; shift
  port=$(free_port)
  "$@" --host 127.0.0.1 --port "$port" > "$out/logs/$name.log" 2>&1 &
  srv_pid=$! srv_url=http://127.0.0.1:$port
  pids+=("$srv_pid")
  for _ in $(seq 1200); do
    curl -sf "$srv_url/health" > /dev/null 2>&1 && { log "$name up at $srv_url"; return 0; }
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$out/logs/$name.log" >&2
  echo "$name did not become healthy (log: $out/logs/$name.log)" >&2
  exit 1
}

forget() {  # forget PID: it has ended, so cleanup must not signal the number again
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

start_lowbit() {  # start_lowbit NAME MODEL_DIR [serve flags...]
  local name=$1 model=$2; shift 2
  start_server "$name" "$lowbit" serve --model-path "$model" --threads "$T" "$@"
}

metric() {  # metric URL NAME: the value of the sample NAME in /metrics (awk reads all: no SIGPIPE)
  curl -sf "$1/metrics" | awk -v n="$2" '!v && (index($1, n "{") == 1 || $1 == n) { v = $2 } END { print v }'
}

# bench FILE URL TOKENIZER ARGS...: one bench-serving run, its JSON to FILE.json, its console
# summary to FILE.txt; no warm-up inside (warm_up below uses other prompts, so no request of a
# run finds its own prompt cached).
bench() {
  local file=$1 url=$2 tok=$3; shift 3
  mkdir -p "$(dirname "$file")"
  # In the background and waited for, so an INT/TERM trap runs at once, not after the run.
  "$lowbit" bench-serving --base-url "$url" --tokenizer "$tok" --disable-tqdm --warmup-requests 0 \
    --output-file "$file.json" "$@" > "$file.txt" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait "$pid" || { tail -20 "$file.txt" >&2; exit 1; }
  forget "$pid"
  log "$(basename "$file"): $(jq -r '"\(.completed) ok, \(.failed) failed, \(.output_throughput | floor) out tok/s, TTFT median \(.median_ttft_ms | floor) ms"' "$file.json")"
}

warm_up() {  # warm_up URL TOKENIZER: opens every path once (seed 999: prompts no run uses)
  bench "$out/logs/warmup-$(date +%s%N)" "$1" "$2" --dataset-name random --random-input-len 64 \
    --random-output-len 8 --random-range-ratio 1 --num-prompts 2 --max-concurrency 2 --seed 999
}

# ---- models: HF folder for lowbit and the tokenizer, GGUF for llama-server ------------------
declare -A hf_dir gguf_dir
prepare_model() {
  local key=$1 hf
  case $key in
    smollm2) hf=$repo/models/smollm2-135m-instruct; gguf_dir[$key]=$llamacpp_cache/models/smollm2-135m-instruct/gguf ;;
    qwen3-0.6b) hf=$(llamacpp_random_qwen3 "--preset qwen3-0.6b"); gguf_dir[$key]=$hf/gguf ;;
  esac
  [ -f "$hf/config.json" ] || { echo "$hf/config.json missing (scripts/prepare_default_model.sh)" >&2; exit 1; }
  hf_dir[$key]=$hf
  case ,$sections, in *,throughput,*) ;; *) return 0 ;; esac
  llamacpp_convert_gguf "$hf" "${gguf_dir[$key]}/BF16.gguf" bf16
  if [ "$q8" = 1 ]; then llamacpp_quantize "${gguf_dir[$key]}/BF16.gguf" "${gguf_dir[$key]}/Q8_0.gguf" Q8_0 "$T"; fi
}

# ---- 1. throughput: lowbit and llama-server alternately at each concurrency ------------------
section_throughput() {
  local key=$1 pair scheme qtype c n lb_url lb_pid ll_url ll_pid quant=() max_c
  local pairs="bf16:BF16" dir=$out/throughput/$key
  [ "$q8" = 1 ] && pairs="$pairs w8a8_int8:Q8_0"
  max_c=$(echo "$conc" | tr ' ' '\n' | sort -n | tail -1)
  for pair in $pairs; do
    scheme=${pair%%:*} qtype=${pair#*:} quant=()
    [ "$scheme" = bf16 ] || quant=(--quantization "$scheme")
    start_lowbit "lowbit-$key-$scheme" "${hf_dir[$key]}" "${quant[@]}"; lb_url=$srv_url lb_pid=$srv_pid
    start_server "llama-$key-$qtype" "$llamacpp_bin/llama-server" -m "${gguf_dir[$key]}/$qtype.gguf" -t "$T" -tb "$T" \
      -np "$max_c" -c $((max_c * (in_len + out_len + 128))) --cont-batching
    ll_url=$srv_url ll_pid=$srv_pid
    warm_up "$lb_url" "${hf_dir[$key]}"; warm_up "$ll_url" "${hf_dir[$key]}"
    for c in $conc; do
      n=$((c * per_conc)); [ "$n" -lt "$min_prompts" ] && n=$min_prompts
      local args=(--dataset-name random --random-input-len "$in_len" --random-output-len "$out_len"
                  --random-range-ratio 1 --num-prompts "$n" --max-concurrency "$c" --seed "$c")
      bench "$dir/lowbit-$scheme-c$c" "$lb_url" "${hf_dir[$key]}" "${args[@]}"
      bench "$dir/llama-$qtype-c$c" "$ll_url" "${hf_dir[$key]}" "${args[@]}"
    done
    stop_server "$lb_pid"; stop_server "$ll_pid"
  done
}

# ---- 2. prefix cache: the same shared-prefix run with the radix cache on and off --------------
section_prefix() {
  local key=$1 mode flags dir
  dir=$out/prefix/$key
  for mode in radix no-radix; do
    flags=(); [ "$mode" = no-radix ] && flags=(--disable-radix-cache)
    start_lowbit "lowbit-$key-prefix-$mode" "${hf_dir[$key]}" "${flags[@]}"
    warm_up "$srv_url" "${hf_dir[$key]}"
    mkdir -p "$dir"; curl -sf "$srv_url/metrics" > "$dir/$mode.before.prom"
    bench "$dir/$mode" "$srv_url" "${hf_dir[$key]}" --dataset-name generated-shared-prefix \
      --gsp-num-groups "$gsp_groups" --gsp-prompts-per-group "$gsp_per_group" --gsp-system-prompt-len "$gsp_sys" \
      --gsp-question-len "$gsp_q" --gsp-output-len "$gsp_out" --max-concurrency "$gsp_conc"
    curl -sf "$srv_url/metrics" > "$dir/$mode.after.prom"
    stop_server "$srv_pid"
  done
}

# ---- 3. chunked prefill: running streams' ITL while a long prompt is prefilled ----------------
section_chunked() {
  local key=$1 cs flags g0 t_streams t_long streams_pid dir
  dir=$out/chunked/$key
  for cs in $chunk_sizes; do
    flags=(--max-step-slowdown "$chunk_slowdown"); [ "$cs" = default ] || flags+=(--chunked-prefill-size "$cs")
    start_lowbit "lowbit-$key-chunk-$cs" "${hf_dir[$key]}" "${flags[@]}"
    warm_up "$srv_url" "${hf_dir[$key]}"
    g0=$(metric "$srv_url" sglang:generation_tokens_total)
    t_streams=$(date +%s.%N)
    bench "$dir/cs$cs.streams" "$srv_url" "${hf_dir[$key]}" --dataset-name random --random-input-len "$stream_in" \
      --random-output-len "$stream_out" --random-range-ratio 1 --num-prompts "$streams" --max-concurrency "$streams" --seed 7 &
    streams_pid=$!
    pids+=("$streams_pid")
    # Send the long prompt once every stream decodes (8 tokens each), not while they prefill.
    until [ "$(metric "$srv_url" sglang:generation_tokens_total | cut -d. -f1)" -ge $((${g0%.*} + 8 * streams)) ]; do
      kill -0 "$streams_pid" 2>/dev/null || break
      sleep 0.1
    done
    t_long=$(date +%s.%N)
    bench "$dir/cs$cs.long" "$srv_url" "${hf_dir[$key]}" --dataset-name random --random-input-len "$long_len" \
      --random-output-len 2 --random-range-ratio 1 --num-prompts 1 --seed 11
    echo "{\"streams_launch\": $t_streams, \"long_launch\": $t_long, \"running_after_long\": $(metric "$srv_url" sglang:num_running_reqs)}" \
      > "$dir/cs$cs.meta.json"
    wait "$streams_pid" || { echo "the streams' run failed" >&2; exit 1; }
    forget "$streams_pid"
    stop_server "$srv_pid"
  done
}

# ---- the run -----------------------------------------------------------------------------------
[ -x "$lowbit" ] || { echo "$lowbit missing: build lowbit first (scripts/build.sh) or set LOWBIT_BIN" >&2; exit 1; }
case ,$sections, in *,throughput,*)
  if [ "$no_build" = 0 ]; then llamacpp_build_tools llama-server llama-quantize; fi
  llamacpp_require_tools llama-server llama-quantize ;;
esac
printf '%s\n' "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "command=$command_line" "cores=$(nproc)" "threads=$T" \
  "cpu=$(lscpu | sed -n 's/^Model name: *//p')" \
  "cpu_flags=$(grep -o -w -E 'amx[a-z0-9_]*|avx512[a-z0-9_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')" \
  "lowbit=$("$lowbit" --version 2>&1 | head -1)" \
  "llama_server=$("$llamacpp_bin/llama-server" --version 2>&1 | grep -m1 version || echo -)" \
  "load_start=$(cut -d' ' -f1-3 /proc/loadavg)" > "$out/machine.env"
for key in ${models//,/ }; do prepare_model "$key"; done
for key in ${models//,/ }; do
  for section in ${sections//,/ }; do
    log "== $section: $key"; "section_$section" "$key"
  done
done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.env"
"$py" - "$out" "$gsp_groups" "$gsp_per_group" "$gsp_sys" "$gsp_q" <<'PY' | tee "$out/report.txt"
# The report: reads what the sections wrote under OUT, prints it, writes summary.json.
import glob, json, os, re, statistics, sys
out, G, P, S, Q = sys.argv[1], *map(int, sys.argv[2:6])
env = dict(l.rstrip("\n").split("=", 1) for l in open(f"{out}/machine.env"))
load = lambda path: json.load(open(path))
summary = {"machine": env, "throughput": [], "prefix": [], "chunked": []}
pct = lambda v, q: statistics.quantiles(v, n=100, method="inclusive")[q - 1] if len(v) > 1 else (v or [float("nan")])[0]
prom = lambda path, name: next((float(l.split()[-1]) for l in open(path) if re.match(re.escape(name) + r"[{ ]", l)), 0.0)

print(f"lowbit serve vs llama-server, {env['date']}; {env['threads']} threads on {env['cores']} cores")
print(f"cpu: {env['cpu']}; flags: {env['cpu_flags'] or '(no avx512/amx)'}")
print(f"load average (1/5/15 min): {env['load_start']} at start, {env['load_end']} at end")
print(f"{env['lowbit']}; llama-server {env['llama_server']}\ncommand: {env['command']}\n")

runs = sorted(glob.glob(f"{out}/throughput/*/*.json"))
if runs:
    print("Throughput: random prompts, ignore_eos (ms: median / p99)")
    print("| model | engine | scheme | conc | prompts | in/out | out tok/s | TTFT | TPOT | ITL | failed |\n|" + "---|" * 11)
    tp = {}
    for f in runs:
        d, key = load(f), os.path.basename(os.path.dirname(f))
        engine, scheme, c = re.match(r"(\w+)-(.+)-c(\d+)\.json", os.path.basename(f)).groups()
        tp[key, engine, scheme, int(c)] = d["output_throughput"]
        summary["throughput"].append({k: v for k, v in d.items() if k != "requests"} | {"model_key": key, "engine": engine, "scheme": scheme})
        ms = lambda m: f"{d[f'median_{m}_ms']:.0f} / {d[f'p99_{m}_ms']:.0f}"
        print(f"| {key} | {engine} | {scheme} | {c} | {d['num_prompts']} | {d['random_input_len']}/{d['random_output_len']} | "
              f"{d['output_throughput']:.1f} | {ms('ttft')} | {ms('tpot')} | {ms('itl')} | {d['failed']} |")
    for (key, engine, scheme, c), v in sorted(tp.items()):
        base, peer = tp.get((key, engine, scheme, 1)), tp.get((key, "llama", {"bf16": "BF16", "w8a8_int8": "Q8_0"}.get(scheme), 8))
        if c != 8 or not base: continue
        line = f"{key} {engine} {scheme}: c8 / c1 = {v / base:.2f}x" + (" (target >= 3)" if engine == "lowbit" else "")
        print(line + (f"; lowbit / llama-server at c8 = {v / peer:.2f}x (target >= 1.5)" if engine == "lowbit" and peer else ""))
    print()

for key in sorted({os.path.basename(os.path.dirname(f)) for f in glob.glob(f"{out}/prefix/*/*.json")}):
    rows = {}
    for mode in ("radix", "no-radix"):
        f = f"{out}/prefix/{key}/{mode}"
        if not os.path.exists(f + ".json"): continue
        d = load(f + ".json")
        delta = lambda n: prom(f + ".after.prom", n) - prom(f + ".before.prom", n)
        hit = delta("sglang:cached_tokens_total") / max(delta("sglang:prompt_tokens_total"), 1)
        rows[mode] = (d, hit, prom(f + ".after.prom", "sglang:cache_hit_rate"))
    print(f"Prefix cache ({key}): generated-shared-prefix {G} groups x {P} questions, system {S}, question {Q} tokens")
    print("| radix cache | hit rate (run) | sglang:cache_hit_rate | TTFT median ms | TTFT p99 ms | out tok/s | duration s |\n|" + "---|" * 7)
    for mode, (d, hit, gauge) in rows.items():
        print(f"| {mode} | {100 * hit:.1f} % | {100 * gauge:.1f} % | {d['median_ttft_ms']:.0f} | {d['p99_ttft_ms']:.0f} | "
              f"{d['output_throughput']:.1f} | {d['duration']:.1f} |")
        summary["prefix"].append({"model_key": key, "mode": mode, "hit_rate": hit, "gauge": gauge, "median_ttft_ms": d["median_ttft_ms"]})
    ceiling = G * (P - 1) * S / (G * P * (S + Q))
    if len(rows) == 2:
        r = rows["radix"][0]["median_ttft_ms"] / rows["no-radix"][0]["median_ttft_ms"]
        print(f"median TTFT radix / no-radix = {100 * r:.1f} % (target <= 25 %); hit rate target >= 85 %, "
              f"this workload's ceiling (only the system prompts repeat) = {100 * ceiling:.1f} %")
    print()

for f in sorted(glob.glob(f"{out}/chunked/*/*.meta.json")):
    key, base = os.path.basename(os.path.dirname(f)), f[:-len(".meta.json")]
    meta, st, lg = load(f), load(base + ".streams.json"), load(base + ".long.json")
    long_req = lg["requests"][0]
    # Both bench-serving processes start their clocks about as long after launch (same tokenizer,
    # no warm-up), so the long request's time in the streams' clock is its launch offset + start.
    # The long process makes a longer prompt first, so its clock starts a little later: pad the window.
    w0 = meta["long_launch"] - meta["streams_launch"] + long_req["start_s"] - 0.5
    w1 = w0 + long_req["latency_ms"] / 1000 + 1.0
    every, inside = [], []
    for r in st["requests"]:
        t = r["start_s"] + r["ttft_ms"] / 1000
        for itl in r["itl_ms"]:
            every.append(itl)
            if t + itl / 1000 >= w0 and t <= w1: inside.append(itl)
            t += itl / 1000
    med = statistics.median(every) if every else float("nan")
    print(f"Chunked prefill ({key}, {os.path.basename(base)}): {len(st['requests'])} streams of {st['random_input_len']} in / "
          f"{st['random_output_len']} out; one {lg['random_input_len']}-token prompt, TTFT {long_req['ttft_ms']:.0f} ms")
    print(f"  streams' ITL median {med:.1f} ms, p99 {pct(every, 99):.1f} ms; while the long prompt ran ({len(inside)} ITLs): "
          f"p99 {pct(inside, 99):.1f} ms, max {max(inside, default=float('nan')):.1f} ms -> p99 / median = "
          f"{pct(inside, 99) / med:.2f}x (target <= 4)")
    if meta["running_after_long"] < len(st["requests"]):
        print("  warning: some streams ended before the long prompt finished: raise the streams' output length")
    summary["chunked"].append({"model_key": key, "run": os.path.basename(base), "itl_median_ms": med,
                               "itl_p99_ms": pct(every, 99), "itl_p99_during_long_ms": pct(inside, 99), **meta})
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
PY
log "results in $out (report.txt, summary.json, one JSON per run, logs/)"
