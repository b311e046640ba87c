#!/bin/sh
# expect_abort.sh MAX_SECONDS PATTERN COMMAND...: passes when COMMAND exits non-zero within
# MAX_SECONDS and its output contains PATTERN (empty pattern: any output). The dist watchdog
# test: a dead or hung rank must end the job, not hang it.
max=$1; pattern=$2; shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s%N)
timeout -k 5 $((max * 3)) "$@" >"$log" 2>&1
rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$log"
echo "expect_abort: exit code $rc after ${elapsed_ms} ms (bound ${max} s)"
if [ "$rc" -eq 0 ]; then echo "FAIL: the job succeeded; it must fail"; exit 1; fi
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "FAIL: the job hung (killed by timeout)"; exit 1; fi
if [ "$elapsed_ms" -gt $((max * 1000)) ]; then echo "FAIL: took longer than ${max}s"; exit 1; fi
if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$log"; then echo "FAIL: output lacks '$pattern'"; exit 1; fi
echo "PASS"
