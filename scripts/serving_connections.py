#!/usr/bin/env python3
"""1,000 open connections against `lowbit serve` (issue 16, Targets): half idle keep-alive
clients (one completed request each, then held open), half streaming requests whose reader
stalls (never reads; a small SO_RCVBUF, and each stream echoes a long prompt, so the server must
hold the backlog). While all are open, normal requests must be served at about their usual
latency, and the server's RSS must grow by less than --rss-growth-mib (200 MiB). Then: the idle
connections still answer, half of the stalled streams are read to their end ([DONE]), everything
is closed, and the server must come back to no KV pages held by requests, nothing running or
queued. Prints a summary; exits 1 on any violation, 2 when it cannot start.

    .venv/bin/python scripts/serving_connections.py                  # 500 idle + 500 stalled
    .venv/bin/python scripts/serving_connections.py --idle 100 --streams 100

The latency bound: median with the connections open <= --latency-factor (2) x median before
+ --latency-slack-ms (50 ms), over --latency-requests sequential requests each (a 12-token
completion on a fresh connection). The server closes idle or stalled connections after its io
timeout (60 s): the phase with everything open must end before --io-timeout; if it does not
(a very slow machine), the run is a violation rather than a silent pass.
"""
import argparse
import http.client
import json
import os
import resource
import select
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_soak import (DEFAULT_LOWBIT, DEFAULT_MODEL, IDLE_METRICS, PASSAGE, RssSampler,  # noqa: E402
                          http_get, rss_mib, run_against_server, scrape_metrics, verdict, wait_idle)

PROBE = {"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0, "ignore_eos": True}


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def probe(host, port):
    """One normal request on a fresh connection: (seconds, text)."""
    t0 = time.time()
    c = http.client.HTTPConnection(host, port, timeout=120)
    try:
        c.request("POST", "/v1/completions", json.dumps(PROBE), {"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"probe answered {r.status}: {body[:300]!r}")
        return time.time() - t0, json.loads(body)["choices"][0]["text"]
    finally:
        c.close()


def probe_series(host, port, n, want_text, violations, label):
    times = []
    for _ in range(n):
        dt, text = probe(host, port)
        times.append(dt)
        if text != want_text:
            violations.append(f"{label}: greedy probe returned {text!r}, before it was {want_text!r}")
    return times


def request_bytes(host, method, path, body=None):
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return (head + "\r\n").encode() + payload


def read_response(sock, deadline):
    """Reads one HTTP/1.1 response with a Content-Length (or chunked) body: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += recv_some(sock, deadline)
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            rest += recv_some(sock, deadline)
        return status, rest[:n]
    while not rest.endswith(b"0\r\n\r\n"):
        rest += recv_some(sock, deadline)
    return status, rest


def recv_some(sock, deadline):
    sock.settimeout(max(0.1, deadline - time.time()))
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    return chunk


def open_idle(host, port, n):
    """n keep-alive connections, each with one completed request (a 1-token completion). One
    prompt for all: distinct prompts would each keep a KV page in the prefix cache, and RSS would
    grow with the cache, not with the connections."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=60)
        s.sendall(request_bytes(host, "POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1}))
        socks.append(s)
    deadline = time.time() + 120
    for s in socks:
        status, body = read_response(s, deadline)
        if status != 200:
            raise RuntimeError(f"idle connection's request answered {status}: {body[:300]!r}")
    return socks


def open_stalled(host, port, n, rcvbuf, prompt, max_tokens):
    """n streaming requests whose reader never reads (receive buffer set small before connect)."""
    socks = []
    body = {"prompt": prompt, "echo": True, "max_tokens": max_tokens, "ignore_eos": True, "stream": True,
            "temperature": 0}
    data = request_bytes(host, "POST", "/v1/completions", body)
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(60)
        s.connect((host, port))
        s.sendall(data)
        socks.append(s)
    return socks


def still_open(sock):
    """True when the server has not closed this connection (nothing to read, no EOF)."""
    # select, not a timed recv: Python waits for readability (up to the socket's timeout) before
    # any recv, MSG_DONTWAIT or not.
    try:
        if not select.select([sock], [], [], 0)[0]:
            return True
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def tcp_queues(server_port):
    """Bytes waiting in the kernel on loopback connections to the server, from /proc/net/tcp:
    (in the server's send queues, in the clients' receive queues)."""
    send = recv = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local_port, remote_port = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
        tx, rx = (int(x, 16) for x in f[4].split(":"))
        if local_port == server_port and f[3] == "01":  # ESTABLISHED, the server's side
            send += tx
        elif remote_port == server_port:
            recv += rx
    return send, recv


def stream_prompt(host, port, words):
    """The stalled streams' shared prompt as token ids, cut to whole KV pages + 2 tokens: the
    prefix cache then serves all of it but those two (it leaves at least two to compute), so each
    stream costs two prefill tokens, not a partial last page recomputed by every request."""
    w = PASSAGE.split()
    text = " ".join(w[i % len(w)] for i in range(words))
    c = http.client.HTTPConnection(host, port, timeout=60)
    try:
        c.request("POST", "/v1/tokenize", json.dumps({"prompt": text, "add_special_tokens": False}),
                  {"Content-Type": "application/json"})
        ids = json.loads(c.getresponse().read())["tokens"]
    finally:
        c.close()
    page = int(scrape_metrics(host, port).get("lowbit_kv_page_size_tokens", 32))
    return ids[: max(2, (len(ids) - 2) // page * page + 2)]


def ended(metrics):
    """Engine requests that have ended, one way or another."""
    return metrics.get("lowbit_requests_finished_total", 0) + metrics.get("lowbit_requests_aborted_total", 0)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle", type=int, default=500, help="idle keep-alive connections")
    p.add_argument("--streams", type=int, default=500, help="streaming requests whose reader stalls")
    p.add_argument("--stream-max-tokens", type=int, default=8)
    p.add_argument("--stream-prompt-words", type=int, default=600,
                   help="words of the shared prompt each stalled stream echoes (prefilled once: the prefix cache)")
    p.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of the stalled readers (bytes)")
    p.add_argument("--latency-requests", type=int, default=15)
    p.add_argument("--latency-factor", type=float, default=2.0)
    p.add_argument("--latency-slack-ms", type=float, default=50.0)
    p.add_argument("--rss-growth-mib", type=float, default=200.0)
    p.add_argument("--io-timeout", type=float, default=60.0, help="the server's io timeout (s)")
    p.add_argument("--base-url", help="use this running server instead of starting one")
    p.add_argument("--server-pid", type=int, help="with --base-url: the server's pid, for RSS (else RSS is not checked)")
    p.add_argument("--model-path", default=str(DEFAULT_MODEL))
    p.add_argument("--lowbit", default=str(DEFAULT_LOWBIT))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--server-arg", action="append", default=[], help="extra flag for lowbit serve (repeatable)")
    a = p.parse_args(argv)
    if a.idle < 0 or a.streams < 0 or a.latency_requests < 1:
        p.error("--idle and --streams must be >= 0, --latency-requests >= 1")
    return a


def main(argv=None):
    a = parse_args(argv)
    # Before starting the server, which inherits it (it also raises its own).
    nofile = raise_nofile(a.idle + a.streams + 256)
    if nofile < a.idle + a.streams + 64:
        print(f"serving_connections: RLIMIT_NOFILE is {nofile}, too low for {a.idle + a.streams} sockets", file=sys.stderr)
        return 2
    socks = []

    def body(host, port, pid, server):
        try:
            return run(a, host, port, pid, server, socks)
        finally:
            for s in socks:
                s.close()

    return run_against_server("serving_connections", a, [], body)


def run(a, host, port, pid, server, socks):
    violations = []
    load_start = os.getloadavg()
    prompt = stream_prompt(host, port, a.stream_prompt_words)
    # Warm up (first-use allocations, the shared prompt in the prefix cache), then the baseline.
    _, want = probe(host, port)
    conn = http.client.HTTPConnection(host, port, timeout=300)
    conn.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 1}),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status != 200:
        print(f"serving_connections: the shared prompt answered {r.status}", file=sys.stderr)
        return 2
    # A burst like the stalled streams, read normally: the engine's batch workspaces and the KV
    # pages a full running batch touches are in RSS before the "before" figure, so the growth
    # measured below is what the open connections cost.
    rss_fresh = rss_mib(pid) if pid else None
    burst = open_stalled(host, port, 64, 1 << 16, prompt, a.stream_max_tokens)
    for s in burst:
        read_response(s, time.time() + 120)
        s.close()
    before = probe_series(host, port, a.latency_requests, want, violations, "before")
    wait_idle(host, port)
    rss_before = rss_mib(pid) if pid else None
    sampler = RssSampler(pid, 0.25) if pid else None
    if sampler:
        sampler.start()

    ended0 = ended(scrape_metrics(host, port))
    t_open = time.time()
    idle = open_idle(host, port, a.idle)
    socks += idle
    t_idle = time.time() - t_open
    stalled = open_stalled(host, port, a.streams, a.rcvbuf, prompt, a.stream_max_tokens)
    socks += stalled
    t_streams = time.time() - t_open - t_idle
    # Wait until the stalled streams have all been generated (their output waits in the server),
    # then measure.
    deadline = time.time() + a.io_timeout
    while True:
        drained, m = wait_idle(host, port, timeout=max(0.0, deadline - time.time()))
        if ended(m) >= ended0 + a.idle + a.streams or time.time() > deadline:
            drained = drained and ended(m) >= ended0 + a.idle + a.streams
            break
        time.sleep(0.25)
    t_drained = time.time() - t_open
    if not drained:
        violations.append("the stalled streams were not all generated in time: "
                          + ", ".join(f"{k}={m.get(k)}" for k in IDLE_METRICS))
    during = probe_series(host, port, a.latency_requests, want, violations, "with the connections open")
    rss_open = rss_mib(pid) if pid else None
    kernel_send, kernel_recv = tcp_queues(port)
    # Every idle connection is still there and still answers.
    closed_idle = sum(not still_open(s) for s in idle)
    closed_stalled = sum(not still_open(s) for s in stalled)
    deadline = time.time() + 60
    for s in idle:
        if still_open(s):
            s.sendall(request_bytes(host, "GET", "/health"))
    unanswered = 0
    for s in idle:
        try:
            unanswered += read_response(s, deadline)[0] != 200
        except OSError:
            unanswered += 1
    # Half of the stalled readers resume and must get their whole stream; the rest just leave.
    incomplete, stream_bytes = 0, 0
    resumed = stalled[: len(stalled) // 2]
    for s in resumed:
        try:
            _, body = read_response(s, time.time() + 30)
            stream_bytes = max(stream_bytes, len(body))
            incomplete += b"data: [DONE]" not in body or b'"finish_reason":"length"' not in body
        except OSError:
            incomplete += 1
    t_open_total = time.time() - t_open
    if t_open_total > a.io_timeout - 2:
        violations.append(f"the connections were held {t_open_total:.0f} s, past the server's io timeout "
                          f"({a.io_timeout:.0f} s): use fewer connections or a quieter machine")
    for s in socks:
        s.close()
    socks.clear()
    recovered, m_end = wait_idle(host, port, timeout=30)
    if not recovered:
        violations.append("not idle 30 s after closing: " + ", ".join(f"{k}={m_end.get(k)}" for k in IDLE_METRICS))
    after = probe_series(host, port, 3, want, violations, "after closing")
    health = http_get(host, port, "/health")[0]
    if health != 200 or (server and not server.alive()):
        violations.append(f"server not healthy after closing: /health {health}")
    time.sleep(1.0)
    rss_after = rss_mib(pid) if pid else None
    if sampler:
        sampler.stop()

    for what, n in [("idle connections closed by the server", closed_idle),
                    ("idle connections that did not answer a second request", unanswered),
                    ("stalled streams closed by the server", closed_stalled),
                    ("resumed streams without their whole output", incomplete)]:
        if n:
            violations.append(f"{n} {what}")
    med_before, med_during = statistics.median(before), statistics.median(during)
    bound = a.latency_factor * med_before + a.latency_slack_ms / 1000
    if med_during > bound:
        violations.append(f"latency with the connections open: median {med_during * 1000:.0f} ms > bound "
                          f"{bound * 1000:.0f} ms ({a.latency_factor} x {med_before * 1000:.0f} ms + {a.latency_slack_ms:.0f} ms)")
    if pid:
        peak = sampler.peak_mib
        for label, v in [("peak with the connections open", peak), ("after closing", rss_after)]:
            if v is None or v - rss_before > a.rss_growth_mib:
                violations.append(f"RSS {label}: {v} MiB, {rss_before:.1f} MiB before (bound +{a.rss_growth_mib:.0f} MiB)")

    print(f"serving connections: {a.idle} idle keep-alive + {a.streams} stalled streams "
          f"(SO_RCVBUF {a.rcvbuf}, each echoing a {len(prompt)}-token prompt + {a.stream_max_tokens} tokens), "
          f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
    print(f"  opened idle in {t_idle:.1f} s, streams in {t_streams:.1f} s, streams generated after {t_drained:.1f} s; "
          f"held {t_open_total:.1f} s in all (server io timeout {a.io_timeout:.0f} s)")
    for label, t in [("before", before), ("with the connections open", during), ("after closing", after)]:
        print(f"  probe latency {label}: median {statistics.median(t) * 1000:.0f} ms, max {max(t) * 1000:.0f} ms "
              f"({len(t)} requests)")
    print(f"  latency bound: median open <= {a.latency_factor} x median before + {a.latency_slack_ms:.0f} ms "
          f"= {bound * 1000:.0f} ms")
    print(f"  stalled output: {stream_bytes} bytes per stream, {stream_bytes * a.streams / 2**20:.1f} MiB in all; while "
          f"stalled, {kernel_send / 2**20:.1f} MiB sat in the server's kernel send queues and "
          f"{kernel_recv / 2**20:.1f} MiB in the clients' receive queues, "
          f"{max(0, stream_bytes * a.streams - kernel_send - kernel_recv) / 2**20:.1f} MiB in the server process")
    print(f"  idle: {closed_idle} closed early, {unanswered} did not answer again; stalled: {closed_stalled} closed early, "
          f"{len(resumed)} resumed of which {incomplete} incomplete")
    print("  end state: " + ", ".join(f"{k} {m_end.get(k, float('nan')):.0f}" for k in IDLE_METRICS) + f", /health {health}")
    if pid:
        print(f"  server RSS (MiB): fresh {rss_fresh:.1f}, after a 64-stream warmup burst (before) {rss_before:.1f}, with the connections open {rss_open:.1f} "
              f"(peak {sampler.peak_mib:.1f}), after closing {rss_after:.1f} (bound: +{a.rss_growth_mib:.0f})")
    else:
        print("  server RSS: not measured (give --server-pid with --base-url)")
    print(f"  load average: {load_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    return verdict(violations)


if __name__ == "__main__":
    sys.exit(main())
