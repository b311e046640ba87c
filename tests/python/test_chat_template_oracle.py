"""Oracle test: lowbit's ChatTemplate against transformers' apply_chat_template, text for text.

For the Qwen3 and SmolLM2 tokenizers, every conversation below is rendered by
tokenizer.apply_chat_template(messages, tools=..., tokenize=False, add_generation_prompt=...,
**kwargs) and by src/chat/chat_template_tool (JSON lines) from the same tokenizer_config.json;
the strings must be identical, and where transformers raises, lowbit must raise too.

Qwen3 tokenizer: $LOWBIT_QWEN3_TOKENIZER_DIR, else $LOWBIT_SOURCE_DIR/../shared/data/qwen3-tokenizer,
else $LOWBIT_SOURCE_DIR/data/qwen3-tokenizer (whose tokenizer.json may be stored as .xz).
SmolLM2: $LOWBIT_SMOLLM2_DIR, else $LOWBIT_SOURCE_DIR/models/smollm2-135m-instruct.
"""
import copy
import json
import lzma
import os
import pathlib
import subprocess

import pytest
import transformers  # the oracle; a missing install must fail, not skip

SOURCE = pathlib.Path(os.environ.get("LOWBIT_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
BUILD = pathlib.Path(os.environ.get("LOWBIT_BUILD_DIR", "/work/main/build"))
TOOL = BUILD / "src" / "chat" / "chat_template_tool"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Météo actuelle — returns \"temp\" in °C for {city}",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 東京"},
                "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
                "options": {"type": "object", "properties": {"nested": {"type": ["string", "null"]}},
                            "additionalProperties": False},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {"name": "search", "description": "", "parameters": {"type": "object", "properties": {}}},
}
TRICKY = "Quotes \"double\" 'single', braces {x} {{ y }} {% if %}, tabs\tand\nnewlines\n, emoji 🙂, 中文, \\backslash"


def tool_call(name, arguments, wrap=True):
    call = {"name": name, "arguments": arguments}
    return {"type": "function", "function": call} if wrap else call


def conversations():
    """(id, messages, tools, kwargs) cases; kwargs go to the template like enable_thinking."""
    user = {"role": "user", "content": "What is 2+2?"}
    system = {"role": "system", "content": "You are terse."}
    answer = {"role": "assistant", "content": "4"}
    cases = []
    for agp in (True, False):
        for thinking in (True, False, None):
            kw = {} if thinking is None else {"enable_thinking": thinking}
            tag = f"agp={agp},think={thinking}"
            cases.append((f"single_user[{tag}]", [user], None, agp, kw))
            cases.append((f"system_user[{tag}]", [system, user], None, agp, kw))
    cases += [
        ("multi_turn", [system, user, answer, {"role": "user", "content": "And 3+3?"}], None, True, {}),
        ("multi_turn_last_assistant", [user, answer], None, False, {}),
        ("reasoning_content_history", [user, {"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4."},
                                        {"role": "user", "content": "thanks"}], None, True, {}),
        ("reasoning_content_last", [user, {"role": "assistant", "content": "4", "reasoning_content": "\nadd\n"}],
         None, False, {}),
        ("reasoning_alias_field", [user, {"role": "assistant", "content": "4", "reasoning": "via alias"}], None, False, {}),
        ("reasoning_none_dropped", [user, {"role": "assistant", "content": "<think>\nin content\n</think>\n\n4",
                                           "reasoning_content": None}], None, False, {}),
        ("think_in_content_history", [user, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\n4"},
                                      {"role": "user", "content": "ok"}], None, True, {"enable_thinking": False}),
        ("think_in_content_last", [user, {"role": "assistant", "content": "<think>\n\nhmm\n\n</think>\n\n\n4"}],
         None, False, {}),
        ("think_without_open_tag", [user, {"role": "assistant", "content": "pre</think>post"}], None, False, {}),
        ("tools_no_system", [user], [WEATHER_TOOL], True, {}),
        ("tools_with_system", [system, user], [WEATHER_TOOL, SEARCH_TOOL], True, {"enable_thinking": False}),
        ("tools_empty_list", [user], [], True, {}),
        ("tool_calls_dict_args", [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {"role": "assistant", "content": "", "tool_calls": [
                tool_call("get_weather", {"city": "Paris", "options": {"nested": None}, "days": 2}),
                tool_call("get_weather", {"city": "東京", "unit": "f", "ratio": 0.5})]},
            {"role": "tool", "content": "{\"temp\": 21}"},
            {"role": "tool", "content": "{\"temp\": 68}"},
            {"role": "assistant", "content": "Paris 21°C, Tokyo 68°F.", "reasoning_content": "combine"},
        ], [WEATHER_TOOL], False, {}),
        ("tool_calls_string_args_with_content", [
            {"role": "user", "content": "Search it"},
            {"role": "assistant", "content": "Let me search.", "tool_calls": [
                tool_call("search", "{\"q\": \"lowbit\"}"), tool_call("search", "{}", wrap=False)]},
            {"role": "tool", "content": "no results"},
        ], [SEARCH_TOOL], True, {}),
        ("tool_calls_content_none", [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call("search", {"q": "x"})]},
        ], [SEARCH_TOOL], False, {}),
        ("tool_first_message", [{"role": "tool", "content": "orphan"}, user], None, True, {}),
        ("tool_response_user_turn", [
            user, {"role": "assistant", "content": "calling", "reasoning_content": "r1"},
            {"role": "user", "content": "<tool_response>\nresult\n</tool_response>"},
            {"role": "assistant", "content": "done", "reasoning_content": "r2"},
        ], None, False, {}),
        ("system_in_middle", [user, answer, {"role": "system", "content": "late system"},
                              {"role": "user", "content": "q"}], None, True, {}),
        ("tricky_content", [{"role": "system", "content": TRICKY}, {"role": "user", "content": TRICKY},
                            {"role": "assistant", "content": TRICKY}, {"role": "user", "content": ""}],
         None, True, {}),
        ("empty_contents", [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}], None, False, {}),
        ("extra_keys", [{"role": "user", "content": "hi", "name": "bob", "meta": {"k": [1, 2]}}], None, True,
         {"custom_flag": True}),
        ("list_content_errors", [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], None, True, {}),
    ]
    return cases


def find_qwen3_dir(tmp_path_factory):
    candidates = []
    if os.environ.get("LOWBIT_QWEN3_TOKENIZER_DIR"):
        candidates.append(pathlib.Path(os.environ["LOWBIT_QWEN3_TOKENIZER_DIR"]))
    candidates += [SOURCE.parent / "shared" / "data" / "qwen3-tokenizer", SOURCE / "data" / "qwen3-tokenizer"]
    for d in candidates:
        if not (d / "tokenizer_config.json").exists():
            continue
        if (d / "tokenizer.json").exists():
            return d
        if (d / "tokenizer.json.xz").exists():  # the repo keeps a compressed copy
            out = tmp_path_factory.mktemp("qwen3")
            (out / "tokenizer.json").write_bytes(lzma.decompress((d / "tokenizer.json.xz").read_bytes()))
            (out / "tokenizer_config.json").write_bytes((d / "tokenizer_config.json").read_bytes())
            return out
    pytest.fail(f"no Qwen3 tokenizer found in {[str(c) for c in candidates]}")


def find_smollm2_dir():
    d = pathlib.Path(os.environ.get("LOWBIT_SMOLLM2_DIR", SOURCE / "models" / "smollm2-135m-instruct"))
    if not (d / "tokenizer_config.json").exists():
        pytest.fail(f"{d}/tokenizer_config.json is missing: run scripts/prepare_default_model.sh")
    return d


def run_tool(config, requests):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built: build the chat_template_tool target")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    proc = subprocess.run([str(TOOL), "--jsonl", str(config)], input=lines, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == len(requests)
    return answers


def compare(tokenizer_dir, cases):
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    requests, expected = [], []
    for _, messages, tools, agp, kwargs in cases:
        context = {"messages": messages, "add_generation_prompt": agp, **kwargs}
        if tools is not None:
            context["tools"] = tools
        requests.append({"context": context})
        try:
            expected.append({"output": tokenizer.apply_chat_template(
                copy.deepcopy(messages), tools=copy.deepcopy(tools), tokenize=False,
                add_generation_prompt=agp, **kwargs)})
        except Exception as e:  # noqa: BLE001 - a transformers failure must be a lowbit failure
            expected.append({"error": f"{type(e).__name__}: {e}"})
    answers = run_tool(tokenizer_dir / "tokenizer_config.json", requests)
    failures = []
    for (name, *_), want, got in zip(cases, expected, answers):
        if "output" in want:
            if got.get("output") != want["output"]:
                failures.append(f"{name}: expected {want['output']!r}\n  got {got!r}")
        elif "error" not in got:
            failures.append(f"{name}: transformers raised {want['error']} but lowbit rendered {got['output']!r}")
    assert not failures, "\n".join(failures)
    return expected


def test_qwen3_matches_transformers(tmp_path_factory):
    expected = compare(find_qwen3_dir(tmp_path_factory), conversations())
    # The cases must exercise rendering, not only errors.
    assert sum("output" in e for e in expected) >= len(expected) - 2


def test_smollm2_matches_transformers():
    system = {"role": "system", "content": "Custom system."}
    user = {"role": "user", "content": "Hello {there} \"q\"\n🙂"}
    cases = []
    for agp in (True, False):
        cases += [
            (f"user[{agp}]", [user], None, agp, {}),
            (f"system_user[{agp}]", [system, user], None, agp, {}),
            (f"multi_turn[{agp}]", [user, {"role": "assistant", "content": "Hi!"},
                                    {"role": "user", "content": "again"}], None, agp, {}),
            (f"assistant_first[{agp}]", [{"role": "assistant", "content": "I start."}, user], None, agp, {}),
        ]
    cases.append(("tools_ignored", [user], [WEATHER_TOOL], True, {}))
    cases.append(("missing_content_errors", [{"role": "user"}], None, True, {}))
    compare(find_smollm2_dir(), cases)


def test_raise_exception_message_reaches_caller(tmp_path):
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({
        "chat_template": "{% if messages[0]['role'] != 'user' %}{{ raise_exception('First message must be from the user') }}{% endif %}ok",
        "eos_token": {"content": "</s>"},
    }))
    answers = run_tool(config, [{"context": {"messages": [{"role": "assistant", "content": "x"}]}},
                                {"context": {"messages": [{"role": "user", "content": "x"}]}}])
    assert answers[0]["raised"] == "First message must be from the user"
    assert answers[0]["error"].startswith("chat_template:1:")
    assert answers[1] == {"output": "ok"}
