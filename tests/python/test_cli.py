"""The `lowbit` command line on the real SmolLM2-135M-Instruct model, against transformers
and tokenizers: tokenize, chat rendering, generation (greedy ids identical to transformers'
generate), seeds, stop strings, streaming, and clear errors on bad input."""
import json
import shutil
import subprocess

import pytest

from conftest import BUILD, run

LOWBIT = BUILD / "lowbit"


def lowbit(*args, input=None, check=True):
    r = subprocess.run([str(LOWBIT), *map(str, args)], input=input, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"lowbit {' '.join(map(str, args))} exited {r.returncode}: {r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def hf(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return tok, model


def test_tokenize_matches_tokenizers(smollm2_dir, hf):
    tok, _ = hf
    for text in ["Hello world!", "  leading spaces\tand\ttabs\n\nnew lines", "数字 12345 emoji 👩‍👩‍👧", ""]:
        ids = json.loads(lowbit("tokenize", "--model-path", smollm2_dir, input=text).stdout)
        assert ids == tok.encode(text, add_special_tokens=False), text


def test_tokenize_chat_matches_apply_chat_template(smollm2_dir, hf):
    tok, _ = hf
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour."}]
    rendered = lowbit("tokenize", "--model-path", smollm2_dir, "--chat", input=json.dumps(msgs)).stdout
    assert rendered == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = json.loads(lowbit("tokenize", "--model-path", smollm2_dir, "--chat", "--ids", input=json.dumps(msgs)).stdout)
    want = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert ids == list(want)


def test_generate_greedy_matches_transformers(smollm2_dir, hf):
    import torch
    tok, model = hf
    msgs = [{"role": "user", "content": "Write a haiku about the sea."}]
    out = json.loads(lowbit("generate", "--model-path", smollm2_dir, "--messages", json.dumps(msgs),
                            "--max-new-tokens", "24", "--temperature", "0", "--ignore-eos", "--json").stdout)
    want_prompt = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    want_prompt = list(want_prompt["input_ids"] if hasattr(want_prompt, "keys") else want_prompt)
    assert out["prompt_token_ids"] == want_prompt
    with torch.no_grad():
        # An explicit all-ones mask: without it, generate() infers one from pad_token_id (2, which is
        # also <|im_end|>) once eos_token_id is None, and masks the prompt's <|im_end|> tokens.
        ids = torch.tensor([want_prompt])
        g = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                           eos_token_id=None)
    assert out["output_token_ids"] == g[0, len(want_prompt):].tolist()
    assert out["text"] == tok.decode(out["output_token_ids"], skip_special_tokens=True)
    assert out["finish_reason"] == "length"
    t = out["timings"]
    assert t["prefill_tokens"] == len(want_prompt) and t["decode_steps"] == 23


def test_streamed_text_equals_json_text(smollm2_dir):
    args = ["generate", "--model-path", smollm2_dir, "--prompt", "The three primary colours are",
            "--max-new-tokens", "20", "--temperature", "0"]
    streamed = lowbit(*args).stdout
    js = json.loads(lowbit(*args, "--json").stdout)
    assert streamed == js["text"] + "\n"


def test_seed_reproducible_and_stop_string(smollm2_dir):
    base = ["generate", "--model-path", smollm2_dir, "--prompt", "Once upon a time", "--max-new-tokens", "24",
            "--temperature", "1.0", "--top-p", "0.95", "--json", "--ignore-eos"]
    a = json.loads(lowbit(*base, "--seed", "11").stdout)
    b = json.loads(lowbit(*base, "--seed", "11").stdout)
    c = json.loads(lowbit(*base, "--seed", "12").stdout)
    assert a["output_token_ids"] == b["output_token_ids"]
    assert a["output_token_ids"] != c["output_token_ids"]
    # A stop string taken from the middle of the text cuts it there.
    text = a["text"]
    stop = text[len(text) // 2: len(text) // 2 + 3]
    if stop.strip():
        s = json.loads(lowbit(*base, "--seed", "11", "--stop", stop).stdout)
        assert s["finish_reason"] == "stop"
        assert s["text"] == text[: text.index(stop)]


def test_chat_answers_coherently(smollm2_dir):
    r = lowbit("chat", "--model-path", smollm2_dir, "--message", "What is the capital of France?",
               "--max-new-tokens", "48", "--temperature", "0")
    assert "Paris" in r.stdout, r.stdout


def test_chat_multi_turn_from_stdin(smollm2_dir):
    r = lowbit("chat", "--model-path", smollm2_dir, "--max-new-tokens", "16", "--temperature", "0",
               input="Hello!\nWhat is 2 + 2?\n")
    assert len([line for line in r.stdout.splitlines() if line.strip()]) >= 2
    # The second turn reuses the first turn's KV cache: fewer new prompt tokens than the chat.
    turns = [line for line in r.stderr.splitlines() if "new prompt tokens" in line]
    assert len(turns) == 2


def test_chat_template_jinja_file_is_used(smollm2_dir, tmp_path):
    # transformers >= 4.43 saves the template as chat_template.jinja, not in tokenizer_config.json.
    moved = tmp_path / "model"
    moved.mkdir()
    for f in smollm2_dir.iterdir():
        if f.name != "tokenizer_config.json":
            (moved / f.name).symlink_to(f)
    config = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    (moved / "chat_template.jinja").write_text(config.pop("chat_template"))
    (moved / "tokenizer_config.json").write_text(json.dumps(config))
    msgs = json.dumps([{"role": "user", "content": "Name a colour."}])
    args = ["--messages", msgs, "--max-new-tokens", "2", "--temperature", "0", "--json"]
    want = json.loads(lowbit("generate", "--model-path", smollm2_dir, *args).stdout)
    got = json.loads(lowbit("generate", "--model-path", moved, *args).stdout)
    assert got["prompt_token_ids"] == want["prompt_token_ids"]
    assert got["output_token_ids"] == want["output_token_ids"]
    r = lowbit("chat", "--model-path", moved, "--message", "Hi", "--max-new-tokens", "2", "--temperature", "0")
    assert r.stdout.strip(), r.stderr
    # Without either template, the error names both places it looked.
    (moved / "chat_template.jinja").unlink()
    r = lowbit("generate", "--model-path", moved, *args, check=False)
    assert r.returncode != 0 and "chat_template.jinja" in r.stderr, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--prompt-ids", "[1, 99999999]"], "99999999"),
    (["--prompt-ids", "[1, \"x\"]"], "--prompt-ids[1]"),
    (["--messages", "[{\"content\": \"hi\"}]"], "role"),
    (["--messages", "not json"], "--messages"),
    (["--prompt", "hi", "--top-p", "0"], "top_p"),
])
def test_generate_bad_input_is_a_clear_error(smollm2_dir, args, needle):
    r = lowbit("generate", "--model-path", smollm2_dir, "--max-new-tokens", "2", *args, check=False)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr


def test_broken_checkpoint_names_file_and_tensor(smollm2_dir, tmp_path):
    bad = tmp_path / "model"
    shutil.copytree(smollm2_dir, bad, ignore=shutil.ignore_patterns("model.safetensors"))
    data = (smollm2_dir / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    r = lowbit("generate", "--model-path", bad, "--prompt", "hi", "--max-new-tokens", "1", check=False)
    assert r.returncode != 0 and "model.safetensors" in r.stderr, r.stderr
    # A config naming an architecture we do not run.
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (bad / "model.safetensors").write_bytes(data)
    (bad / "config.json").write_text(json.dumps(cfg))
    r = lowbit("generate", "--model-path", bad, "--prompt", "hi", "--max-new-tokens", "1", check=False)
    assert r.returncode != 0 and "MambaForCausalLM" in r.stderr, r.stderr


@pytest.mark.parametrize("var", ["LOWBIT_KV_CACHE_DTYPE", "LOWBIT_FLOAT_ACTIVATIONS", "LOWBIT_W4A16_ACTIVATIONS"])
def test_bad_numeric_policy_variable_is_a_clear_error(smollm2_dir, var):
    import os
    r = subprocess.run([str(LOWBIT), "generate", "-m", str(smollm2_dir), "--prompt", "hi", "-n", "1"],
                       capture_output=True, text=True, env={**os.environ, var: "bogus"})
    assert r.returncode == 2, r.stderr
    assert var in r.stderr and "'bogus'" in r.stderr, r.stderr
    assert "terminate" not in r.stderr


def test_bad_numeric_policy_flag_is_a_clear_error(smollm2_dir):
    r = subprocess.run([str(LOWBIT), "generate", "-m", str(smollm2_dir), "--kv-cache-dtype", "bogus", "--prompt", "hi"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--kv-cache-dtype" in r.stderr, r.stderr
