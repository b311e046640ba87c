"""Short CI forms of scripts/serving_soak.py (requests with disconnects; greedy outputs equal to
alone; pages back to 0; RSS flat) and scripts/serving_connections.py (idle keep-alive and stalled
streams held open; latency and RSS bounds; recovery), plus the checks those scripts rely on
failing when they should. The full runs (2,000 requests at concurrency 64; 1,000 connections)
are benchmarks: run the scripts with no arguments."""
import os
import subprocess
import sys

import pytest

from conftest import BUILD, FAST_ENV, PY, REPO

SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))
import serving_soak  # noqa: E402


def run_script(name, *args, timeout):
    # The server runs with the numeric policies users get (BF16 activations and KV), not the
    # exact ones the oracle tests default to.
    env = {**os.environ, **FAST_ENV, "LOWBIT_BUILD_DIR": str(BUILD)}
    r = subprocess.run([PY, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env=env)
    print(r.stdout[-4000:], r.stderr[-4000:])
    return r


def test_soak_short(smollm2_dir):
    # A small KV budget (64 pages): the prefix cache fills it during the 50-request warmup, so the
    # run skips touching it all first, and RSS after the warmup already holds the whole KV.
    r = run_script("serving_soak.py", "--requests", 100, "--concurrency", 16, "--disconnect-fraction", 0.1,
                   "--max-total-tokens", 2048, "--context-length", 1024, "--no-fill-kv", "--model-path", smollm2_dir,
                   "--quiet", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "OK" in r.stdout and "identical to alone" in r.stdout
    assert "lowbit_kv_pages_in_requests 0" in r.stdout


def test_connections_short(smollm2_dir):
    r = run_script("serving_connections.py", "--idle", 100, "--streams", 100, "--latency-requests", 8,
                   "--model-path", smollm2_dir, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0 closed early, 0 did not answer again" in r.stdout and "of which 0 incomplete" in r.stdout


# ---- the checks fail when they should (no server needed) ----

def greedy_spec(max_tokens=8, ignore_eos=False):
    return serving_soak.Spec("completions", "x", max_tokens, 0.0, ignore_eos=ignore_eos, ref=("completions", "x", 0, 8))


def test_check_result_rejects_a_changed_greedy_output():
    spec = greedy_spec()
    refs = {spec.ref: serving_soak.Result("alone", "length", 8)}
    serving_soak.check_result(spec, serving_soak.Result("alone", "length", 8), refs)
    for bad in [serving_soak.Result("batched", "length", 8), serving_soak.Result("alone", "stop", 8),
                serving_soak.Result("alone", "length", 7)]:
        with pytest.raises(serving_soak.Violation):
            serving_soak.check_result(spec, bad, refs)


def test_check_result_rejects_bad_counts_and_reasons():
    refs = {}
    sampled = serving_soak.Spec("chat", "x", 8, 1.0)
    serving_soak.check_result(sampled, serving_soak.Result("t", "stop", 3), refs)
    for bad in [serving_soak.Result("t", "stop", 9), serving_soak.Result("t", "stop", None),
                serving_soak.Result("t", "abort", 3), serving_soak.Result("t", None, 3)]:
        with pytest.raises(serving_soak.Violation):
            serving_soak.check_result(sampled, bad, refs)
    with pytest.raises(serving_soak.Violation):  # ignore_eos must run to max_tokens
        serving_soak.check_result(serving_soak.Spec("chat", "x", 8, 1.0, ignore_eos=True),
                                  serving_soak.Result("t", "stop", 5), refs)


def test_stream_without_done_is_a_violation():
    class FakeResponse:
        status = 200

        def __init__(self, lines):
            self.lines = list(lines)

        def readline(self):
            return self.lines.pop(0) if self.lines else b""

    class FakeConn:
        def __init__(self, lines):
            self.response = FakeResponse(lines)

        def getresponse(self):
            return self.response

    spec = serving_soak.Spec("completions", "x", 4, 1.0)
    chunk = b'data: {"choices": [{"text": "a", "finish_reason": "length"}]}\n'
    usage = b'data: {"choices": [], "usage": {"completion_tokens": 1}}\n'
    res = serving_soak.read_reply(FakeConn([chunk, b"\n", usage, b"\n", b"data: [DONE]\n", b"\n"]), spec, True)
    assert (res.text, res.finish_reason, res.completion_tokens) == ("a", "length", 1)
    with pytest.raises(serving_soak.Violation):
        serving_soak.read_reply(FakeConn([chunk, b"\n", usage]), spec, True)
    with pytest.raises(serving_soak.Violation):
        serving_soak.read_reply(FakeConn([b'data: {"error": {"message": "boom"}}\n', b"data: [DONE]\n"]), spec, True)
