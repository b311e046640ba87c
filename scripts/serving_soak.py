#!/usr/bin/env python3
"""A bounded soak of `lowbit serve` (issue 16, "How it is checked"): N requests at concurrency C,
a mix of chat and completions, streamed and not, of several prompt lengths and max_tokens, with a
fraction of clients leaving at random points (mid-stream after k chunks, after sending a request
but before its reply, or halfway through sending it). Greedy (temperature 0) requests over a fixed
set of prompts are checked token for token: each must return exactly the text, finish reason and
token count of the same request sent alone before the load starts (its reference). Sampled
requests are checked for well-formed replies (status, [DONE], usage within max_tokens).

At the end: the server still answers /health, /metrics shows no KV pages held by requests and no
running or queued request, and the server's RSS (VmRSS, sampled through the run) at the end is
within --rss-growth-mib of its value after the warmup. Prints a summary; exits 1 on any violation,
2 when it cannot start.

    .venv/bin/python scripts/serving_soak.py                         # 2,000 requests at concurrency 64
    .venv/bin/python scripts/serving_soak.py --requests 150 --concurrency 16
    .venv/bin/python scripts/serving_soak.py --base-url http://127.0.0.1:30000 --server-pid PID

The server it starts gets --max-total-tokens 16384 by default: the KV budget is touched lazily, so
with the default budget (gigabytes) the prefix cache would keep growing RSS for the whole run;
with a budget the warmup fills, a flat RSS means no leak. The other helpers here (LocalServer,
scrape_metrics, rss_mib, wait_idle) are also used by scripts/serving_connections.py.
"""
import argparse
import http.client
import json
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "smollm2-135m-instruct"
DEFAULT_LOWBIT = Path(os.environ.get("LOWBIT_BUILD_DIR", REPO / "build")) / "lowbit"

# ---- the server: started here on a free loopback port, or an existing one (--base-url) ----


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`lowbit serve` on 127.0.0.1; its output goes to a temporary file (a pipe nobody reads
    could fill and block the server during a long run)."""

    def __init__(self, lowbit, model, threads, extra=(), startup_timeout=120):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="lowbit_serve_", suffix=".log", delete=False)
        cmd = [str(lowbit), "serve", "--model-path", str(model), "--port", str(self.port), "--threads", str(threads),
               *map(str, extra)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.time() + startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lowbit serve exited {self.proc.returncode}: {self.output()[-3000:]}")
            try:
                if http_get("127.0.0.1", self.port, "/health", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"lowbit serve did not answer /health within {startup_timeout} s: {self.output()[-3000:]}")

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, timeout=60):
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()
        return self.proc.returncode


def http_get(host, port, path, timeout=30):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def scrape_metrics(host, port):
    """/metrics as {name: value}, labels dropped (one model: one sample per gauge)."""
    status, data = http_get(host, port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out = {}
    for line in data.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, value = line.rsplit(" ", 1)
        out.setdefault(key.split("{")[0], float(value))
    return out


# The metrics that must come back to 0 once no request is in flight: KV pages held by queued or
# running requests (not lowbit_kv_pages_used, which includes the prefix cache's pages) and the
# running/queued gauges.
IDLE_METRICS = ("lowbit_kv_pages_in_requests", "sglang:num_running_reqs", "sglang:num_queue_reqs")


def wait_idle(host, port, timeout=30):
    """Polls /metrics until IDLE_METRICS are all 0; returns (ok, last metrics)."""
    deadline = time.time() + timeout
    while True:
        m = scrape_metrics(host, port)
        if all(m.get(k, -1) == 0 for k in IDLE_METRICS):
            return True, m
        if time.time() > deadline:
            return False, m
        time.sleep(0.25)


def rss_mib(pid):
    """VmRSS of a process in MiB, or None if it is gone or not ours to read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(l.split()[1]) / 1024.0 for l in status.splitlines() if l.startswith("VmRSS:")), None)


class RssSampler(threading.Thread):
    """Samples a process's RSS every `interval` seconds, for its peak."""

    def __init__(self, pid, interval=0.5):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_mib = pid, interval, None
        self._halt = threading.Event()

    def run(self):
        while not self._halt.wait(self.interval):
            v = rss_mib(self.pid)
            self.peak_mib = max(self.peak_mib or 0, v or 0)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


# ---- the workload ----

PASSAGE = ("The lighthouse keeper climbed the spiral stairs each evening, counting the steps aloud while the "
           "wind pressed against the narrow windows. Below, the harbour lights came on one by one, and the "
           "fishing boats returned with their nets folded and their engines slowing. ")
QUESTIONS = ["Write one sentence about the sea.", "Name three colours.", "What is two plus two?",
             "Describe a cat in five words.", "Give a short greeting.", "List two fruits."]
WORDS = ("river stone cloud quiet amber engine letter garden winter paper signal orbit candle harbour "
         "lantern meadow copper violet thunder pocket island marble ribbon").split()


@dataclass(frozen=True)
class Spec:
    """One request to make. `ref` names the reference a greedy request must match (None: sampled)."""
    kind: str            # "chat" or "completions"
    prompt: object       # text, or token ids (completions)
    max_tokens: int
    temperature: float
    ignore_eos: bool = False
    ref: tuple = None

    def body(self, stream):
        b = {"max_tokens": self.max_tokens, "temperature": self.temperature, "stream": stream}
        if self.kind == "chat":
            b["messages"] = [{"role": "user", "content": self.prompt}]
        else:
            b["prompt"] = self.prompt
        if self.ignore_eos:
            b["ignore_eos"] = True
        if stream:
            b["stream_options"] = {"include_usage": True}
        return b

    def path(self):
        return "/v1/chat/completions" if self.kind == "chat" else "/v1/completions"


def greedy_specs():
    """The fixed greedy requests: both endpoints, short / medium / long prompts (the long ones
    take two prefill chunks at the default --chunked-prefill-size 512), small to larger outputs."""
    prompts = {"short": QUESTIONS, "medium": [PASSAGE * 2 + q for q in QUESTIONS[:3]],
               "long": [PASSAGE * 12 + QUESTIONS[0]]}
    specs = []
    for length, texts in prompts.items():
        for i, text in enumerate(texts):
            for kind in ("chat", "completions"):
                max_tokens = [4, 8, 16, 32][(i + len(specs)) % 4]
                specs.append(Spec(kind, text, max_tokens, 0.0, ignore_eos=(i % 2 == 1), ref=(kind, length, i, max_tokens)))
    return specs


def sampled_spec(rng):
    n = rng.choice([3, 15, 40, 150])
    prompt = " ".join(rng.choice(WORDS) for _ in range(n))
    return Spec(rng.choice(["chat", "completions"]), prompt, rng.randint(1, 40), rng.choice([0.7, 1.0]))


DISCONNECT_MODES = ("mid_stream", "before_reply", "mid_send")


@dataclass
class Job:
    spec: Spec
    stream: bool
    disconnect: str = None   # one of DISCONNECT_MODES, or None
    after_chunks: int = 0    # mid_stream: events read before leaving
    after_seconds: float = 0.0  # before_reply: how long to wait before leaving


def make_jobs(n, disconnect_fraction, rng):
    greedy = greedy_specs()
    jobs = []
    for _ in range(n):
        leaving = rng.random() < disconnect_fraction
        if leaving:
            # Long outputs, so that leaving usually happens while the request still runs.
            spec = Spec(rng.choice(["chat", "completions"]), rng.choice(QUESTIONS), rng.randint(32, 160), 0.8,
                        ignore_eos=True)
            mode = rng.choice(DISCONNECT_MODES)
            jobs.append(Job(spec, mode == "mid_stream", mode, rng.randint(0, 24), rng.uniform(0.0, 1.5)))
        else:
            spec = rng.choice(greedy) if rng.random() < 0.5 else sampled_spec(rng)
            jobs.append(Job(spec, rng.random() < 0.5))
    return greedy, jobs


# ---- one request over HTTP/1.1 ----


class Violation(Exception):
    pass


@dataclass
class Result:
    text: str = ""
    finish_reason: str = None
    completion_tokens: int = None


def post(conn, spec, stream):
    """Sends `spec` on an http.client connection and reads its reply: Result, or Violation."""
    conn.request("POST", spec.path(), json.dumps(spec.body(stream)), {"Content-Type": "application/json"})
    return read_reply(conn, spec, stream)


def read_reply(conn, spec, stream):
    r = conn.getresponse()
    if r.status != 200:
        raise Violation(f"status {r.status}: {r.read()[:300]!r}")
    if not stream:
        d = json.loads(r.read())
        c = d["choices"][0]
        text = c["message"]["content"] if spec.kind == "chat" else c["text"]
        return Result(text or "", c["finish_reason"], d["usage"]["completion_tokens"])
    res, done = Result(), False
    for event in sse_events(r):
        if done:
            raise Violation(f"event after [DONE]: {event[:200]!r}")
        if event == "[DONE]":
            done = True
            continue
        d = json.loads(event)
        if "error" in d:
            raise Violation(f"error in stream: {d['error']}")
        if d.get("usage"):
            res.completion_tokens = d["usage"]["completion_tokens"]
        for c in d.get("choices") or []:
            res.text += (c.get("delta", {}).get("content") if spec.kind == "chat" else c.get("text")) or ""
            res.finish_reason = c.get("finish_reason") or res.finish_reason
    if not done:
        raise Violation("stream ended without data: [DONE]")
    return res


def sse_events(response):
    """The `data:` payloads of a server-sent event stream (http.client undoes the chunking)."""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.strip()
        if line.startswith(b"data: "):
            yield line[6:].decode()


def check_result(spec, res, refs):
    if res.finish_reason not in ("stop", "length"):
        raise Violation(f"finish_reason {res.finish_reason!r}")
    if res.completion_tokens is None or not 0 < res.completion_tokens <= spec.max_tokens:
        raise Violation(f"completion_tokens {res.completion_tokens} for max_tokens {spec.max_tokens}")
    if spec.ignore_eos and res.completion_tokens != spec.max_tokens:
        raise Violation(f"ignore_eos: {res.completion_tokens} tokens, not {spec.max_tokens}")
    if spec.ref is not None:
        want = refs[spec.ref]
        got = (res.text, res.finish_reason, res.completion_tokens)
        if got != (want.text, want.finish_reason, want.completion_tokens):
            raise Violation(f"greedy {spec.ref}: got {got!r}, alone it was "
                            f"{(want.text, want.finish_reason, want.completion_tokens)!r}")


def send_raw(host, port, path, body, cut=None):
    """Sends a POST on a fresh socket; `cut` in (0, 1): only that fraction of the request's bytes
    (headers and body), as a client that dies while sending."""
    payload = json.dumps(body).encode()
    data = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
    sock = socket.create_connection((host, port), timeout=60)
    sock.sendall(data if cut is None else data[:max(1, int(cut * len(data)))])
    return sock


def leave(host, port, job, rng):
    """A client that goes away: mid-stream after k events, before the reply, or mid-send."""
    body = job.spec.body(job.stream)
    if job.disconnect == "mid_send":
        send_raw(host, port, job.spec.path(), body, cut=rng.uniform(0.05, 0.95)).close()
        return
    sock = send_raw(host, port, job.spec.path(), body)
    try:
        if job.disconnect == "before_reply":
            time.sleep(job.after_seconds)
        else:
            got = b""
            while got.count(b"data: ") < job.after_chunks and b"[DONE]" not in got:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
    finally:
        sock.close()


# ---- the run ----


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.done, self.reconnects = 0, 0
        self.ok = {"greedy": 0, "sampled": 0}
        self.left = {m: 0 for m in DISCONNECT_MODES}
        self.violations, self.latencies = [], []


def run_load(host, port, jobs, concurrency, refs, stats, deadline, seed, on_progress):
    work = queue.Queue()
    for j in jobs:
        work.put(j)

    def worker(wid):
        rng = random.Random(seed * 1000 + wid)
        conn = None
        while time.time() < deadline:
            try:
                job = work.get_nowait()
            except queue.Empty:
                break
            try:
                if job.disconnect:
                    leave(host, port, job, rng)
                    with stats.lock:
                        stats.left[job.disconnect] += 1
                else:
                    t0 = time.time()
                    conn = conn or http.client.HTTPConnection(host, port, timeout=300)
                    try:
                        res = post(conn, job.spec, job.stream)
                    except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                        # A kept-alive connection the server closed between requests: once more, fresh.
                        conn.close()
                        conn = http.client.HTTPConnection(host, port, timeout=300)
                        res = post(conn, job.spec, job.stream)
                        with stats.lock:
                            stats.reconnects += 1
                    check_result(job.spec, res, refs)
                    with stats.lock:
                        stats.ok["greedy" if job.spec.ref else "sampled"] += 1
                        stats.latencies.append(time.time() - t0)
            except (Violation, OSError, ValueError, KeyError, http.client.HTTPException) as e:
                msg = str(e) if isinstance(e, Violation) else f"{type(e).__name__}: {e}"
                with stats.lock:
                    stats.violations.append(f"{job.spec.kind} stream={job.stream} max_tokens={job.spec.max_tokens}: {msg}")
                if conn is not None:
                    conn.close()
                    conn = None
            with stats.lock:
                stats.done += 1
                done = stats.done
            on_progress(done)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + 310)  # a request's own timeout is 300 s
    return not any(t.is_alive() for t in threads) and work.empty()


def references(host, port, greedy):
    """Each greedy request alone, non-streamed, before any load: the texts to match."""
    conn = http.client.HTTPConnection(host, port, timeout=300)
    try:
        return {spec.ref: post(conn, spec, False) for spec in greedy}
    finally:
        conn.close()


def fill_kv(host, port, concurrency, rng, max_tokens_to_fill=65536):
    """Touches the whole KV budget once (the server maps it lazily): unique prompts whose pages
    the prefix cache keeps, max_tokens 1. Returns the tokens sent, or 0 when the budget is over
    max_tokens_to_fill (then RSS also grows while the prefix cache first fills)."""
    m = scrape_metrics(host, port)
    budget = int(m.get("lowbit_kv_pages_total", 0) * m.get("lowbit_kv_page_size_tokens", 0))
    if not 0 < budget <= max_tokens_to_fill:
        return 0
    per_prompt = int(min(512, m.get("lowbit_kv_page_size_tokens", 32) * 8))
    specs = [Spec("completions", [rng.randrange(100, 40000) for _ in range(per_prompt)], 1, 0.0)
             for _ in range(budget // per_prompt + 2)]
    stats = Stats()
    run_load(host, port, [Job(s, False) for s in specs], concurrency, {}, stats, time.time() + 600, 0, lambda d: None)
    if stats.violations:
        raise RuntimeError("filling the KV cache: " + stats.violations[0])
    return len(specs) * per_prompt


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--disconnect-fraction", type=float, default=0.10)
    p.add_argument("--warmup", type=int, default=0,
                   help="requests after which 'after warmup' RSS is taken (default: 20%% of --requests, at least 50)")
    p.add_argument("--rss-growth-mib", type=float, default=64.0,
                   help="end RSS may exceed the after-warmup RSS by at most this (default 64 MiB)")
    p.add_argument("--time-limit", type=float, default=1200.0, help="seconds for the whole load; past it: a violation")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--base-url", help="use this running server instead of starting one")
    p.add_argument("--server-pid", type=int, help="with --base-url: the server's pid, for RSS (else RSS is not checked)")
    p.add_argument("--model-path", default=str(DEFAULT_MODEL))
    p.add_argument("--lowbit", default=str(DEFAULT_LOWBIT))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-total-tokens", type=int, default=16384, help="KV budget of the server this starts")
    p.add_argument("--context-length", type=int, default=2048, help="of the server this starts (the prompts need < 1,000)")
    p.add_argument("--no-fill-kv", dest="fill_kv", action="store_false",
                   help="skip touching the whole KV budget before the load (then RSS grows as the prefix cache fills)")
    p.add_argument("--server-arg", action="append", default=[], help="extra flag for lowbit serve (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    if a.requests < 1 or a.concurrency < 1 or not 0 <= a.disconnect_fraction <= 1:
        p.error("--requests and --concurrency must be >= 1, --disconnect-fraction within [0, 1]")
    if not a.warmup:
        a.warmup = min(a.requests, max(50, a.requests // 5))
    return a


def run_against_server(name, a, extra_flags, body):
    """Starts the server (or attaches to --base-url), runs body(host, port, pid, server) and
    stops it; a server that cannot start is exit code 2, one that does not exit cleanly is reported."""
    server = None
    if a.base_url:
        u = urlparse(a.base_url)
        host, port, pid = u.hostname, u.port or 80, a.server_pid
    else:
        try:
            server = LocalServer(a.lowbit, a.model_path, a.threads, [*extra_flags, *a.server_arg])
        except (RuntimeError, OSError) as e:
            print(f"{name}: cannot start the server: {e}", file=sys.stderr)
            return 2
        host, port, pid = "127.0.0.1", server.port, server.pid
    try:
        return body(host, port, pid, server)
    finally:
        if server is not None and server.stop() != 0:
            print(f"{name}: lowbit serve exited {server.proc.returncode} on SIGTERM:\n{server.output()[-2000:]}",
                  file=sys.stderr)


def verdict(violations):
    """Prints OK or the violations; the exit code."""
    if not violations:
        print("OK")
        return 0
    print(f"FAIL: {len(violations)} violation(s)")
    for v in violations[:20]:
        print("  - " + v)
    return 1


def main(argv=None):
    a = parse_args(argv)
    flags = ["--max-total-tokens", a.max_total_tokens, "--context-length", a.context_length]
    return run_against_server("serving_soak", a, flags, lambda host, port, pid, server:
                              soak(a, random.Random(a.seed), host, port, pid, server))


def soak(a, rng, host, port, pid, server):
    violations = []
    load_start = os.getloadavg()
    sampler = RssSampler(pid) if pid else None
    rss = {"start": rss_mib(pid) if pid else None}
    if sampler:
        sampler.start()
    t_fill = time.time()
    filled = fill_kv(host, port, min(a.concurrency, 16), rng) if a.fill_kv else 0
    t_fill = time.time() - t_fill
    rss["after_fill"] = rss_mib(pid) if pid else None
    m0 = scrape_metrics(host, port)
    greedy, jobs = make_jobs(a.requests, a.disconnect_fraction, rng)
    t_ref = time.time()
    refs = references(host, port, greedy)
    t_ref = time.time() - t_ref
    t0 = time.time()
    last_print = [0.0]

    def on_progress(done):
        if done == a.warmup and pid:
            rss["after_warmup"] = rss_mib(pid)
        if not a.quiet and (time.time() - last_print[0] > 10 or done == len(jobs)):
            last_print[0] = time.time()
            print(f"  {done}/{len(jobs)} requests, {time.time() - t0:.0f} s, RSS {rss_mib(pid) if pid else 0:.0f} MiB",
                  flush=True)

    stats = Stats()
    finished = run_load(host, port, jobs, a.concurrency, refs, stats, t0 + a.time_limit, a.seed, on_progress)
    wall = time.time() - t0
    if not finished:
        violations.append(f"the load did not finish within --time-limit {a.time_limit:.0f} s "
                          f"({stats.done}/{len(jobs)} requests done)")
    violations.extend(stats.violations)
    # The end state: alive, idle, pages back.
    alive = server.alive() if server else True
    try:
        health = http_get(host, port, "/health", timeout=30)[0]
    except OSError as e:
        health = f"{type(e).__name__}: {e}"
    if not alive or health != 200:
        violations.append(f"server not answering after the load: alive={alive}, /health={health}")
        m1, idle = {}, False
    else:
        idle, m1 = wait_idle(host, port, timeout=30)
        if not idle:
            violations.append("not idle 30 s after the load: " + ", ".join(f"{k}={m1.get(k)}" for k in IDLE_METRICS))
    if sampler:
        time.sleep(1.0)
        rss["end"] = rss_mib(pid)
        sampler.stop()
        w, e = rss.get("after_warmup"), rss["end"]
        if w is None or e is None:
            violations.append(f"RSS not measured: {rss}")
        elif e - w > a.rss_growth_mib:
            violations.append(f"RSS grew {e - w:.1f} MiB after the warmup (bound {a.rss_growth_mib:.0f} MiB): "
                              f"{w:.1f} -> {e:.1f} MiB")
    load_end = os.getloadavg()

    def delta(k):
        return m1.get(k, 0) - m0.get(k, 0)

    lat = stats.latencies
    print(f"serving soak: {len(jobs)} requests at concurrency {a.concurrency}, seed {a.seed}, "
          f"{wall:.1f} s ({len(jobs) / wall:.1f} req/s); references: {len(refs)} greedy requests alone in {t_ref:.1f} s")
    print(f"  completed and checked: {stats.ok['greedy']} greedy (identical to alone), {stats.ok['sampled']} sampled; "
          f"left early: " + ", ".join(f"{k} {v}" for k, v in stats.left.items())
          + f"; keep-alive reconnects {stats.reconnects}")
    print(f"  latency of completed requests: median {statistics.median(lat) if lat else float('nan'):.2f} s, "
          f"p99 {pct(lat, 0.99):.2f} s")
    if m1:
        print(f"  engine: {delta('lowbit_requests_finished_total'):.0f} finished, "
              f"{delta('lowbit_requests_aborted_total'):.0f} aborted, {delta('lowbit_preemptions_total'):.0f} preemptions, "
              f"{delta('sglang:generation_tokens_total'):.0f} tokens generated, prefix-cache hit rate "
              f"{m1.get('sglang:cache_hit_rate', 0):.2f}, {m1.get('lowbit_prefix_cache_pages', 0):.0f} pages in the "
              f"prefix cache of {m1.get('lowbit_kv_pages_total', 0):.0f}")
        print("  end state: " + ", ".join(f"{k} {m1.get(k, float('nan')):.0f}" for k in IDLE_METRICS)
              + f", /health {health}")
    if sampler:
        print(f"  server RSS (MiB): start {rss['start']:.1f}, KV budget touched ({filled} prompt tokens in "
              f"{t_fill:.1f} s) {rss['after_fill']:.1f}, after warmup ({a.warmup} requests) "
              f"{rss.get('after_warmup') or float('nan'):.1f}, peak {sampler.peak_mib:.1f}, end {rss['end'] or float('nan'):.1f} "
              f"(bound: end <= after warmup + {a.rss_growth_mib:.0f})")
    else:
        print("  server RSS: not measured (give --server-pid with --base-url)")
    print(f"  load average: {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    return verdict(violations)


if __name__ == "__main__":
    sys.exit(main())
