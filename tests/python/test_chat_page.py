"""The chat page of `lowbit serve` (src/server/chat_page/chat_page.html) in a real headless
browser: Debian's chromium, driven over the DevTools protocol (a small websocket client on the
standard library below). A stub OpenAI server written here serves the page file from the source
tree and streams scripted answers, so the page's own behaviour is checked exactly: streaming,
folded reasoning (reasoning_content and raw <think> text), speed figures, multi-turn history,
settings sent as request fields, the API key, errors, the stop button and a narrow window.
A second test runs the page against the real `lowbit serve` with SmolLM2 when that command
exists. Screenshots go to the build directory (chat_page*.png)."""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BUILD, REPO

PAGE = REPO / "src" / "server" / "chat_page" / "chat_page.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


# ---- a minimal DevTools-protocol client (RFC 6455 websocket, text frames only) ----
class DevTools:
    def __init__(self, ws_url, timeout=30):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("DevTools websocket closed")
        self.buf += chunk

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, text):
        data = text.encode()
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                  bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                  bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _message(self):
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if b0 & 0x0F == 8:
                raise ConnectionError("DevTools websocket closed")
            if b0 & 0x0F in (9, 10):  # ping / pong
                continue
            parts.append(payload)
            if b0 & 0x80:
                return json.loads(b"".join(parts))

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = self._message()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(expression):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}; page: {self.js(SNAPSHOT)}")

    def open(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && !!document.body && !!document.body.dataset.state")

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))


# Everything the assertions look at, read from the DOM.
SNAPSHOT = """JSON.stringify({
  state: document.body.dataset.state,
  model: document.getElementById('model').textContent,
  banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
  users: [...document.querySelectorAll('.msg.user')].map(m => m.textContent),
  answers: [...document.querySelectorAll('.msg.assistant')].map(m => {
    const d = m.querySelector('details.reasoning'), s = m.querySelector('.stats'), e = m.querySelector('.error');
    return {content: m.querySelector('.content').textContent, reasoning: d.hidden ? null : m.querySelector('.thought').textContent,
            folded: !d.open, stats: s.hidden ? '' : s.textContent, tokens: s.dataset.tokens, tps: s.dataset.tps,
            ttft: s.dataset.ttft, error: e ? e.textContent : null, html: m.querySelector('.content').innerHTML};
  })})"""


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="lowbit_chromium_")
    args = [CHROMIUM, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1000,900", "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # chromium refuses to run its sandbox as root
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        yield tools
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the browser and its renderer/zygote children
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


# ---- a stub OpenAI server: the page file, /v1/models and scripted streamed answers ----
class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests = []        # (Authorization header, request body) of every chat completion
    disconnected = threading.Event()

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.split("?")[0] == "/":
            self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model", "owned_by": "test"}]})
        else:
            self._send(404, {"error": {"message": "not found", "type": "not_found", "code": 404}})

    def _event(self, obj):
        data = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj)) + "\n\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))  # chunked, as the real server sends
        self.wfile.flush()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Stub.requests.append((self.headers.get("Authorization"), body))
        prompt = body["messages"][-1]["content"]
        if "fail" in prompt:
            return self._send(400, {"error": {"message": "stub refuses: max_tokens is absurd",
                                              "type": "invalid_request_error", "code": 400}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta, finish=None):
            return {"id": "c1", "object": "chat.completion.chunk", "model": "stub-model",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if "raw" in prompt:  # a server without a reasoning parser: <think> stays in content
            pieces = [("content", "<think>"), ("content", "pondering"), ("content", "</think>"),
                      ("content", "\n\nPlain answer.\n```python\nprint('<x>')\n```")]
        elif "slow" in prompt:
            pieces = [("content", "tick ")] * 100
        else:
            pieces = [("reasoning_content", "Let me think"), ("reasoning_content", " about <b>it</b>."),
                      ("content", "Hello"), ("content", " from"), ("content", " the <i>stub</i>.")]
        try:
            self._event(chunk({"role": "assistant", "content": ""}))
            for field, text in pieces:
                time.sleep(0.2 if "slow" in prompt else 0.03)
                self._event(chunk({field: text}))
            self._event(chunk({}, "stop"))
            if "nousage" not in prompt:
                self._event({"id": "c1", "object": "chat.completion.chunk", "choices": [],
                             "usage": {"prompt_tokens": 9, "completion_tokens": len(pieces),
                                       "total_tokens": 9 + len(pieces)}})
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            Stub.disconnected.set()
            self.close_connection = True


@pytest.fixture(scope="module")
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def snapshot(tools):
    return json.loads(tools.js(SNAPSHOT))


def submit(tools, text):
    tools.js(f"document.getElementById('input').value = {json.dumps(text)};"
             "document.getElementById('composer').requestSubmit()")


def wait_finished(tools, timeout=20):
    tools.wait("['done', 'error'].includes(document.body.dataset.state)", timeout)
    return snapshot(tools)


def test_page_streams_reasoning_speed_and_keeps_the_conversation(browser, stub):
    Stub.requests.clear()
    browser.open(stub + "/?prompt=" + urllib.parse.quote("Hi & <b>bye</b>") + "&max_tokens=7")
    page = wait_finished(browser)
    assert page["state"] == "done", page
    assert page["model"] == "stub-model"
    assert page["users"] == ["Hi & <b>bye</b>"]
    [answer] = page["answers"]
    assert answer["content"] == "Hello from the <i>stub</i>."
    assert "<i>" not in answer["html"]  # model output is text, never markup
    assert answer["reasoning"] == "Let me think about <b>it</b>." and answer["folded"]
    assert answer["tokens"] == "5" and float(answer["tps"]) > 0 and float(answer["ttft"]) > 0
    assert "tok/s" in answer["stats"] and "first token" in answer["stats"]
    auth, body = Stub.requests[-1]
    assert auth is None
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 7 and body["model"] == "stub-model"
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["messages"] == [{"role": "user", "content": "Hi & <b>bye</b>"}]
    browser.screenshot(BUILD / "chat_page.png")

    # Second turn: the history holds the first answer without its reasoning; settings become
    # request fields (thinking off, a system prompt, temperature).
    browser.js("""(() => {
      const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('change')); };
      set('system-prompt', 'Be brief.'); set('temperature', '0.3');
      const t = document.getElementById('thinking'); t.checked = false; t.dispatchEvent(new Event('change'));
    })()""")
    submit(browser, "And now? nousage")
    page = wait_finished(browser)
    assert page["state"] == "done" and len(page["answers"]) == 2
    second = page["answers"][1]
    assert second["tokens"] == "5" and "counted chunks" in second["stats"]  # no usage chunk
    _, body = Stub.requests[-1]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi & <b>bye</b>"},
        {"role": "assistant", "content": "Hello from the <i>stub</i>."},
        {"role": "user", "content": "And now? nousage"}]
    assert body["temperature"] == 0.3 and body["chat_template_kwargs"] == {"enable_thinking": False}

    # Raw <think> text (no reasoning parser on the server) is folded all the same.
    submit(browser, "raw please")
    page = wait_finished(browser)
    third = page["answers"][2]
    assert third["reasoning"] == "pondering" and third["folded"]
    assert third["content"] == "Plain answer.print('<x>')\n"
    assert "<pre>print('&lt;x&gt;')\n</pre>" in third["html"]  # a fenced block, still as text
    assert Stub.requests[-1][1]["messages"][-2] == {"role": "assistant", "content": "Hello from the <i>stub</i>."}

    browser.js("document.querySelectorAll('details.reasoning').forEach(d => { d.open = true; })")
    browser.screenshot(BUILD / "chat_page_conversation.png")

    # Settings survive a reload (localStorage); reset them for the other tests.
    browser.open(stub + "/")
    assert browser.js("document.getElementById('system-prompt').value") == "Be brief."
    assert browser.js("document.getElementById('thinking').checked") is False
    browser.js("localStorage.clear()")


def test_page_shows_errors_stops_and_sends_the_api_key(browser, stub):
    Stub.requests.clear()
    browser.open(stub + "/?prompt=please+fail")
    page = wait_finished(browser)
    assert page["state"] == "error"
    assert "stub refuses: max_tokens is absurd" in page["answers"][0]["error"]
    assert "400" in page["answers"][0]["error"]
    # The failed turn is not kept: the next request starts afresh, its text back in the box.
    assert browser.js("document.getElementById('input').value") == "please fail"
    browser.js("""(() => { const e = document.getElementById('api-key'); e.value = 'sk-test';
                           e.dispatchEvent(new Event('change')); })()""")
    submit(browser, "hello")
    page = wait_finished(browser)
    assert page["state"] == "done"
    auth, body = Stub.requests[-1]
    assert auth == "Bearer sk-test"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert browser.js("localStorage.getItem('lowbit-chat:apiKey')") == "sk-test"

    # Stop: the fetch is aborted mid-stream (the stub sees the disconnect), the partial answer stays.
    Stub.disconnected.clear()
    submit(browser, "slow one")
    browser.wait("document.querySelectorAll('.msg.assistant')[2].querySelector('.content').textContent.includes('tick')")
    assert not browser.js("document.getElementById('stop').hidden")
    browser.js("document.getElementById('stop').click()")
    page = wait_finished(browser)
    assert page["state"] == "done"
    stopped = page["answers"][2]
    assert "stopped" in stopped["stats"] and stopped["content"].startswith("tick")
    assert len(stopped["content"]) < len("tick ") * 100
    assert Stub.disconnected.wait(10), "the stub never saw the aborted stream's connection close"
    assert browser.js("document.getElementById('stop').hidden")
    browser.js("localStorage.clear()")


def test_page_fits_a_narrow_window(browser, stub):
    browser.call("Emulation.setDeviceMetricsOverride", width=360, height=740, deviceScaleFactor=1, mobile=True)
    try:
        browser.open(stub + "/?prompt=" + urllib.parse.quote("A long question " * 12))
        page = wait_finished(browser)
        assert page["state"] == "done"
        browser.js("document.getElementById('toggle-settings').click()")
        assert browser.js("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal overflow"
        browser.screenshot(BUILD / "chat_page_narrow.png")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


def lowbit_has_serve():
    lowbit = BUILD / "lowbit"
    if not lowbit.exists():
        return False
    r = subprocess.run([str(lowbit), "--help"], capture_output=True, text=True, timeout=30)
    return any(line.split()[:1] == ["serve"] for line in r.stdout.splitlines())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not lowbit_has_serve(), reason="build/lowbit has no serve command")
def test_page_against_lowbit_serve(browser, smollm2_dir):
    port = free_port()
    server = subprocess.Popen([str(BUILD / "lowbit"), "serve", "--model-path", str(smollm2_dir), "--port", str(port),
                               "--threads", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"lowbit serve did not come up: {server.stderr.read().decode()[-3000:]}")
            time.sleep(0.2)
        with urllib.request.urlopen(base + "/", timeout=10) as r:
            assert r.read() == PAGE.read_bytes()  # the compiled-in page is the file in the tree
        browser.open(base + "/?prompt=" + urllib.parse.quote("What is the capital of France?")
                     + "&max_tokens=16&temperature=0")
        page = wait_finished(browser, timeout=120)
        assert page["state"] == "done", page
        assert page["model"] and page["model"] != "no model"
        [answer] = page["answers"]
        assert answer["content"].strip() and 1 <= int(answer["tokens"]) <= 16
        assert float(answer["tps"]) > 0 and "tok/s" in answer["stats"]
        submit(browser, "And of Germany?")  # a second turn carries the first in its history
        page = wait_finished(browser, timeout=120)
        assert page["state"] == "done" and len(page["answers"]) == 2, page
        assert page["answers"][1]["content"].strip() and page["answers"][1]["error"] is None
        browser.screenshot(BUILD / "chat_page_lowbit.png")
        browser.js("localStorage.clear()")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
