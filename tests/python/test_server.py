"""`lowbit serve` on SmolLM2-135M-Instruct, driven by the official openai client and by raw
HTTP: chat and completions (streamed and not), n > 1, stop strings, seeds, logprobs, usage
that matches the tokenizer, tools and reasoning through a Qwen-style template, SGLang's
/generate, tokenize, every malformed-request status, a client that leaves mid-stream, API
keys, bad flags and a graceful SIGTERM."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD

LOWBIT = BUILD / "lowbit"

# ---- starting and stopping the server: a free loopback port, a bounded wait for /health, a kill
# on teardown whatever happens ----
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# LOWBIT_TEST_SERVE_ARGS adds flags to every server of this suite: CTest runs it a second time
# as python_server_tp2 with "--tp-size 2" (two ranks of one thread each on a 2-core machine).
SERVE_ARGS = os.environ.get("LOWBIT_TEST_SERVE_ARGS", "").split()


class Server:
    def __init__(self, model_dir, *extra, threads=2, startup_timeout=120):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        if "--tp-size" in SERVE_ARGS:
            threads = 1
        extra = (*SERVE_ARGS, *extra)
        self.proc = subprocess.Popen(
            [str(LOWBIT), "serve", "--model-path", str(model_dir), "--port", str(self.port), "--threads", str(threads),
             *map(str, extra)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"lowbit serve exited {self.proc.returncode}: {self.proc.stdout.read()[-3000:]}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise AssertionError("lowbit serve did not answer /health in time")

    def request(self, method, path, body=None, headers=None, timeout=120):
        """Raw HTTP: (status, headers dict, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def json(self, method, path, body=None, **kw):
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def metrics(self):
        """{name{labels}: value} of the /metrics text, and {name: value} ignoring labels."""
        _, _, data = self.request("GET", "/metrics")
        out = {}
        for line in data.decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
            out.setdefault(key.split("{")[0], float(value))
        return out

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the server and returns its exit code and output."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("lowbit serve did not exit after the signal")
        return self.proc.returncode, out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


MODEL_NAME = "smol"


@pytest.fixture(scope="module")
def server(smollm2_dir):
    s = Server(smollm2_dir, "--served-model-name", MODEL_NAME)
    try:
        yield s
    finally:
        s.kill()


@pytest.fixture(scope="module")
def client(server):
    import openai
    return openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def hf_tok(smollm2_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(smollm2_dir)


MSGS = [{"role": "user", "content": "Write one sentence about the sea."}]


def test_models_health_metrics(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL_NAME]
    assert server.json("GET", "/health")[0] == 200
    m = server.metrics()
    for name in ["sglang:prompt_tokens_total", "sglang:num_running_reqs", "sglang:token_usage",
                 "sglang:cache_hit_rate", "lowbit_kv_pages_used", "sglang:time_to_first_token_seconds_count"]:
        assert name in m, name


def test_chat_usage_matches_tokenizer(client, hf_tok):
    r = client.chat.completions.create(model=MODEL_NAME, messages=MSGS, max_tokens=8, temperature=0,
                                       extra_body={"ignore_eos": True})
    prompt_ids = hf_tok.apply_chat_template(MSGS, tokenize=True, add_generation_prompt=True)
    prompt_ids = list(prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids)
    assert r.object == "chat.completion" and r.model == MODEL_NAME
    assert r.usage.prompt_tokens == len(prompt_ids)
    assert r.usage.completion_tokens == 8
    assert r.usage.total_tokens == len(prompt_ids) + 8
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content


def test_chat_stream_equals_non_stream(client):
    kw = dict(model=MODEL_NAME, messages=MSGS, max_tokens=24, temperature=0)
    full = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens


def test_completions_stream_and_prompt_forms(client, hf_tok):
    kw = dict(model=MODEL_NAME, max_tokens=6, temperature=0)
    full = client.completions.create(prompt="The capital of France is", **kw)
    assert full.object == "text_completion"
    streamed = list(client.completions.create(prompt="The capital of France is", stream=True, **kw))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == full.choices[0].text
    ids = hf_tok.encode("The capital of France is", add_special_tokens=False)
    by_ids = client.completions.create(prompt=ids, **kw)
    assert by_ids.choices[0].text == full.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids)
    many = client.completions.create(prompt=["The capital of France is", "One plus one is"], **kw)
    assert [c.index for c in many.choices] == [0, 1]
    assert many.choices[0].text == full.choices[0].text
    echo = client.completions.create(prompt="The capital of France is", echo=True, **kw)
    assert echo.choices[0].text == "The capital of France is" + full.choices[0].text


def test_n_choices_and_seed(client):
    kw = dict(model=MODEL_NAME, messages=MSGS, max_tokens=12, temperature=1.0, n=3, seed=1234)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert len({c.message.content for c in a.choices}) > 1, "choices of one request must not share a seed"
    assert a.usage.completion_tokens == 36 or any(c.finish_reason == "stop" for c in a.choices)
    # stream with n > 1: every index gets its own finish
    chunks = list(client.chat.completions.create(stream=True, **kw))
    finished = sorted(ch.choices[0].index for ch in chunks if ch.choices and ch.choices[0].finish_reason)
    assert finished == [0, 1, 2]
    texts = {i: "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices and ch.choices[0].index == i)
             for i in range(3)}
    assert [texts[i] for i in range(3)] == [c.message.content for c in a.choices]


def test_stop_strings(client):
    kw = dict(model=MODEL_NAME, messages=MSGS, max_tokens=40, temperature=0)
    text = client.chat.completions.create(**kw).choices[0].message.content
    words = text.split()
    assert len(words) > 4, text
    stop = " " + words[3]
    r = client.chat.completions.create(stop=[stop, "@@never@@"], **kw)
    assert r.choices[0].message.content == text[: text.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    s = list(client.chat.completions.create(stop=stop, stream=True, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == text[: text.index(stop)]


def test_chat_logprobs(client):
    r = client.chat.completions.create(model=MODEL_NAME, messages=MSGS, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=3, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 6
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert abs(e.logprob - max(t.logprob for t in e.top_logprobs)) < 1e-4  # greedy picks the top token
        assert e.token == e.top_logprobs[0].token
    assert "".join(e.token for e in content) == r.choices[0].message.content


def test_completion_logprobs(client):
    r = client.completions.create(model=MODEL_NAME, prompt="Once upon a time", max_tokens=5, temperature=0, logprobs=2,
                                  extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert all(len(t) <= 2 for t in lp.top_logprobs) and all(x <= 0 for x in lp.token_logprobs)
    assert "".join(lp.tokens) == r.choices[0].text


def test_generate_native(server, hf_tok):
    status, r = server.json("POST", "/generate", {"text": "The capital of France is",
                                                  "sampling_params": {"max_new_tokens": 6, "temperature": 0}})
    assert status == 200, r
    assert r["meta_info"]["completion_tokens"] == len(r["output_ids"]) == 6 or r["meta_info"]["finish_reason"]["type"] == "stop"
    assert r["meta_info"]["prompt_tokens"] == len(hf_tok.encode("The capital of France is"))
    assert r["text"] == hf_tok.decode(r["output_ids"], skip_special_tokens=True)
    status, _, body = server.request("POST", "/generate", {"input_ids": hf_tok.encode("The capital of France is"),
                                                          "sampling_params": {"max_new_tokens": 6, "temperature": 0},
                                                          "stream": True})
    events = [l[6:] for l in body.decode().split("\n\n") if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["text"] == r["text"] and last["meta_info"]["finish_reason"] is not None


def test_tokenize_detokenize(server, hf_tok):
    text = "Hello world, 数字 123"
    status, r = server.json("POST", "/v1/tokenize", {"prompt": text, "add_special_tokens": False})
    assert status == 200 and r["tokens"] == hf_tok.encode(text, add_special_tokens=False) and r["count"] == len(r["tokens"])
    assert r["max_model_len"] > 0
    status, d = server.json("POST", "/v1/detokenize", {"tokens": r["tokens"]})
    assert status == 200 and d["prompt"] == text
    status, r = server.json("POST", "/v1/tokenize", {"messages": MSGS})
    want = hf_tok.apply_chat_template(MSGS, tokenize=True, add_generation_prompt=True)
    assert r["tokens"] == list(want["input_ids"] if hasattr(want, "keys") else want)


def check_error(status, headers, body, want_status, param=None):
    assert status == want_status, (status, body)
    if want_status == 413:
        return  # libevent's own reply (the body is never read)
    err = json.loads(body)["error"]
    assert err["message"] and err["type"] and err["code"] == want_status, err
    if param:
        assert err["param"] == param and param in err["message"], err


@pytest.mark.parametrize("body,param", [
    ('{"messages": [', None),
    (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', None),
    ('[]', None),
    ('{"messages": "hi"}', "messages"),
    ('{"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', "max_tokens"),
    ('{"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000000000000}', "max_tokens"),
    ('{"messages": [{"role": "user", "content": "x"}], "max_tokens": 9000}', "max_tokens"),
    ('{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
    ('{"messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
    ('{"messages": [{"role": "user", "content": "x"}], "stop": [1]}', "stop"),
    ('{"messages": [{"role": "user", "content": "x"}], "top_p": 1.5}', "top_p"),
])
def test_bad_chat_requests_are_400(server, body, param):
    check_error(*server.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}), 400, param)


def test_bad_completion_requests_are_400(server):
    check_error(*server.request("POST", "/v1/completions", {"prompt": [1, -1]}), 400, "prompt")
    check_error(*server.request("POST", "/v1/completions", {"prompt": [10 ** 8]}), 400, "prompt")
    check_error(*server.request("POST", "/v1/completions", {"prompt": "x " * 9000, "max_tokens": 1}), 400, "prompt")
    check_error(*server.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 8200}), 400, "max_tokens")
    check_error(*server.request("POST", "/generate", {"text": 5}), 400, "text")


def test_routing_and_size_errors(server):
    check_error(*server.request("GET", "/v1/nope"), 404)
    status, headers, body = server.request("GET", "/v1/chat/completions")
    check_error(status, headers, body, 405)
    assert "POST" in headers.get("Allow", "")
    # 413 for a body over the 8 MiB limit, answered from the headers (the body is never read).
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {9 << 20}\r\n\r\n".encode() + b"x" * 1000)
    assert sock.recv(4096).startswith(b"HTTP/1.1 413"), "expected 413"
    sock.close()
    status, _, _ = server.request("POST", "/v1/completions", "x" * ((8 << 20) - 10))  # under the limit: read, then 400
    assert status == 400
    assert server.request("GET", "/")[0] == 200


def test_disconnect_mid_stream_cancels(server):
    before = server.metrics().get("lowbit_requests_aborted_total", 0)
    body = json.dumps({"model": MODEL_NAME, "messages": MSGS, "max_tokens": 4000, "stream": True, "ignore_eos": True})
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(4096)
    sock.close()
    deadline = time.time() + 30
    while time.time() < deadline:
        m = server.metrics()
        if (m["sglang:num_running_reqs"] == 0 and m.get("lowbit_requests_aborted_total", 0) > before
                and m["lowbit_kv_pages_in_requests"] == 0):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the abandoned stream kept running: {m}")
    status, r = server.json("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 2})
    assert status == 200, r


def test_disconnect_frees_pages_and_shutdown_is_graceful(smollm2_dir):
    s = Server(smollm2_dir, "--disable-radix-cache")
    try:
        # 1) a client that leaves a non-streamed request: its pages come back.
        body = json.dumps({"prompt": "Tell me a story.", "max_tokens": 4000, "ignore_eos": True})
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        deadline = time.time() + 30
        while s.metrics()["sglang:num_running_reqs"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        sock.close()
        while time.time() < deadline:
            m = s.metrics()
            if m["sglang:num_running_reqs"] == 0 and m["lowbit_kv_pages_used"] == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"pages not freed after the client left: {m}")
        # 2) SIGTERM while a stream runs: the stream finishes with [DONE], the process exits 0.
        result = {}

        def stream():
            status, _, data = s.request("POST", "/v1/completions", {"prompt": "Count:", "max_tokens": 60, "stream": True,
                                                                    "ignore_eos": True})
            result["status"], result["data"] = status, data.decode()

        t = threading.Thread(target=stream)
        t.start()
        while s.metrics()["sglang:num_running_reqs"] == 0 and t.is_alive():
            time.sleep(0.02)
        code, out = s.stop(signal.SIGTERM)
        t.join(timeout=60)
        assert code == 0, out
        assert result["status"] == 200 and result["data"].endswith("data: [DONE]\n\n"), result
        assert '"finish_reason":"length"' in result["data"], result["data"][-500:]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.port), timeout=5).close()
    finally:
        s.kill()


def test_api_key(smollm2_dir):
    s = Server(smollm2_dir, "--api-key", "sekrit")
    try:
        check_error(*s.request("GET", "/v1/models"), 401)
        check_error(*s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer sekrit"})[0] == 200
        assert s.request("GET", "/health")[0] == 200 and s.request("GET", "/metrics")[0] == 200
        import openai
        c = openai.OpenAI(base_url=s.base + "/v1", api_key="sekrit", max_retries=0)
        assert c.completions.create(model="x", prompt="Hi", max_tokens=2).usage.completion_tokens >= 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.base + "/v1", api_key="nope", max_retries=0).models.list()
    finally:
        s.kill()


def test_queued_request_outlives_the_io_timeout(smollm2_dir):
    """A request waiting in the queue sends no byte for longer than --io-timeout (2 s here), yet
    its connection stays open and it completes: the io timeout bounds slow clients and idle
    keep-alive connections, not time spent waiting for the engine."""
    s = Server(smollm2_dir, "--io-timeout", "2", "--max-running-requests", "1")
    try:
        import openai
        c = openai.OpenAI(base_url=s.base + "/v1", api_key="x", max_retries=0, timeout=120)
        results = {}

        def long_one():
            results["long"] = c.completions.create(model="x", prompt="Once upon a time", max_tokens=1000,
                                                   temperature=0, extra_body={"ignore_eos": True})

        t = threading.Thread(target=long_one)
        t0 = time.time()
        t.start()
        time.sleep(0.3)
        chunks = list(c.completions.create(model="x", prompt="Hello", max_tokens=4, temperature=0, stream=True,
                                           extra_body={"ignore_eos": True}))
        t.join(timeout=120)
        waited = time.time() - t0
        assert results["long"].usage.completion_tokens == 1000
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices)
        assert waited > 2.5, f"the first request took only {waited:.1f} s: the queue wait did not exceed the timeout"
        # An idle keep-alive connection is still closed after the timeout.
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("GET", "/health")
        assert conn.getresponse().read()
        time.sleep(3.5)
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("GET", "/health")
            conn.getresponse().read()
    finally:
        s.kill()


@pytest.mark.parametrize("flags,needle", [
    (["--max-total-tokens", "1000", "--mem-fraction-static", "0.5"], "--mem-fraction-static"),
    (["--reasoning-parser", "nope"], "--reasoning-parser"),
    (["--tool-call-parser", "nope"], "--tool-call-parser"),
    (["--port", "70000"], "--port"),
    (["--chunked-prefill-size", "512", "--max-prefill-tokens", "100"], "--max-prefill-tokens"),
])
def test_bad_flags_exit_2(smollm2_dir, flags, needle):
    r = subprocess.run([str(LOWBIT), "serve", "--model-path", str(smollm2_dir), *flags], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and needle in r.stderr, (r.returncode, r.stderr)


# A Qwen-style template over SmolLM2's tokens: renders tools, and opens a think block unless
# enable_thinking is false (as Qwen3-Thinking's template does), so the reasoning parser sees
# model output that starts inside <think>.
QWEN_STYLE_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\\n# Tools\\n<tools>' }}{%- for t in tools %}{{ '\\n' + (t | tojson) }}"
    "{%- endfor %}{{ '\\n</tools><|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{ '<think>\\n' }}{%- endif %}{%- endif %}")

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def qwen_style_server(smollm2_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("qwen_style")
    for f in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]:
        os.symlink(smollm2_dir / f, d / f)
    cfg = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    cfg["chat_template"] = QWEN_STYLE_TEMPLATE
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    s = Server(d, "--reasoning-parser", "qwen3", "--tool-call-parser", "qwen25")
    try:
        yield s
    finally:
        s.kill()


def test_tools_are_rendered_by_the_template(qwen_style_server):
    status, r = qwen_style_server.json("POST", "/v1/tokenize", {"messages": MSGS, "tools": TOOLS})
    assert status == 200
    _, d = qwen_style_server.json("POST", "/v1/detokenize", {"tokens": r["tokens"]})
    assert '"name": "get_weather"' in d["prompt"] and d["prompt"].endswith("<|im_start|>assistant\n<think>\n")
    status, r = qwen_style_server.json("POST", "/v1/chat/completions", {"messages": MSGS, "tools": TOOLS, "max_tokens": 4})
    assert status == 200, r


def test_reasoning_content(qwen_style_server):
    import openai
    c = openai.OpenAI(base_url=qwen_style_server.base + "/v1", api_key="x", max_retries=0)
    # The template opened <think> and SmolLM2 never closes it: everything is reasoning.
    r = c.chat.completions.create(model="x", messages=MSGS, max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    msg = r.choices[0].message
    assert msg.reasoning_content and not msg.content, msg
    chunks = list(c.chat.completions.create(model="x", messages=MSGS, max_tokens=8, temperature=0, stream=True,
                                            extra_body={"ignore_eos": True}))
    streamed = "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or "" for ch in chunks if ch.choices)
    assert streamed.strip() == msg.reasoning_content
    # enable_thinking=false: the template closes the block in the prompt; all is content.
    r = c.chat.completions.create(model="x", messages=MSGS, max_tokens=8, temperature=0,
                                  extra_body={"ignore_eos": True, "chat_template_kwargs": {"enable_thinking": False}})
    assert r.choices[0].message.content and not r.choices[0].message.reasoning_content


def test_second_signal_aborts_in_flight_requests(smollm2_dir):
    s = Server(smollm2_dir)
    try:
        res = {}

        def run(kind):
            body = {"prompt": "x", "max_tokens": 3000, "ignore_eos": True, "stream": kind == "stream"}
            status, _, data = s.request("POST", "/v1/completions", body)
            res[kind] = (status, data.decode())

        threads = [threading.Thread(target=run, args=(k,)) for k in ("plain", "stream")]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while s.metrics()["sglang:num_running_reqs"] < 2 and time.time() < deadline:
            time.sleep(0.05)
        s.proc.send_signal(signal.SIGINT)  # drain ...
        time.sleep(0.5)
        code, out = s.stop(signal.SIGINT)  # ... then give up on them
        for t in threads:
            t.join(timeout=60)
        assert code == 0, out
        status, body = res["plain"]
        assert status == 503 and json.loads(body)["error"]["code"] == 503, res
        status, body = res["stream"]
        assert status == 200 and '"error"' in body and body.endswith("data: [DONE]\n\n"), body[-500:]
    finally:
        s.kill()
