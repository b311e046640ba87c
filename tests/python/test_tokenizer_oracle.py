"""Oracle test: lowbit's tokenizer against Hugging Face `tokenizers`, id for id.

Drives the C++ test tool (src/tokenizer/tokenizer_tool, found in $LOWBIT_BUILD_DIR,
default /work/main/build) over JSON lines, for the Qwen3 and SmolLM2 tokenizers, on the
deterministic strings of test_tokenizer_cases.py. Invalid UTF-8 is compared against HF on
bytes.decode("utf-8", "replace"), which is lowbit's documented behaviour.
"""
import json
import lzma
import os
import pathlib
import random
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import test_tokenizer_cases as tokenizer_cases  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")

SOURCE = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("LOWBIT_BUILD_DIR", "/work/main/build"))
TOOL = BUILD / "src" / "tokenizer" / "tokenizer_tool"


def qwen3_dir(tmp_path_factory):
    env = os.environ.get("LOWBIT_QWEN3_TOKENIZER_DIR")
    candidates = [pathlib.Path(env)] if env else []
    candidates.append(SOURCE.parent / "shared" / "data" / "qwen3-tokenizer")
    for c in candidates:
        if (c / "tokenizer.json").exists():
            return c
    packed = SOURCE / "data" / "qwen3-tokenizer"
    if (packed / "tokenizer.json.xz").exists():  # the repo's compressed copy
        out = tmp_path_factory.mktemp("qwen3")
        (out / "tokenizer.json").write_bytes(lzma.decompress((packed / "tokenizer.json.xz").read_bytes()))
        if (packed / "tokenizer_config.json").exists():
            (out / "tokenizer_config.json").write_bytes((packed / "tokenizer_config.json").read_bytes())
        return out
    return None


def smollm2_dir(tmp_path_factory):
    env = os.environ.get("LOWBIT_SMOLLM2_DIR")
    c = pathlib.Path(env) if env else SOURCE / "models" / "smollm2-135m-instruct"
    return c if (c / "tokenizer.json").exists() else None


class Tool:
    """The C++ tokenizer; ask() sends a batch of requests through one process."""

    def __init__(self, directory):
        self.directory = directory

    def ask(self, requests):
        lines = "".join(json.dumps(r) + "\n" for r in requests)
        proc = subprocess.run([str(TOOL), str(self.directory)], input=lines.encode(),
                              capture_output=True, timeout=600)
        assert proc.returncode == 0, proc.stderr.decode()
        answers = [json.loads(line) for line in proc.stdout.decode().split("\n")[:-1]]
        assert len(answers) == len(requests)
        for a in answers:
            assert "error" not in a, a["error"]
        return answers


@pytest.fixture(scope="module", params=["qwen3", "smollm2"])
def pair(request, tmp_path_factory):
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (set LOWBIT_BUILD_DIR)")
    directory = {"qwen3": qwen3_dir, "smollm2": smollm2_dir}[request.param](tmp_path_factory)
    if directory is None:
        pytest.skip(f"{request.param} tokenizer not found")
    hf = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    return request.param, Tool(directory), hf


CASES = tokenizer_cases.cases()


def encode_request(raw, add_special_tokens):
    try:
        return {"op": "encode", "text": raw.decode("utf-8"), "add_special_tokens": add_special_tokens}
    except UnicodeDecodeError:
        return {"op": "encode", "hex": raw.hex(), "add_special_tokens": add_special_tokens}


def test_enough_cases():
    assert len(CASES) >= 500
    assert any(n.startswith("invalid") for n, _ in CASES)


def report(name, mismatches, total):
    detail = "\n".join(mismatches[:5])
    assert not mismatches, f"{name}: {len(mismatches)}/{total} differ, first ones:\n{detail}"


def test_encode_matches_hf(pair):
    name, tool, hf = pair
    requests, expected = [], []
    for i, (case, raw) in enumerate(CASES):
        text = raw.decode("utf-8", errors="replace")
        for special in (False, True) if i % 5 == 0 else (False,):
            requests.append(encode_request(raw, special))
            expected.append((case, text, special, hf.encode(text, add_special_tokens=special).ids))
    answers = tool.ask(requests)
    mismatches = [f"{case} {text[:60]!r} special={special}: hf={want[:20]} lowbit={got['ids'][:20]}"
                  for (case, text, special, want), got in zip(expected, answers)
                  if got["ids"] != want]
    report(name, mismatches, len(requests))


def test_decode_matches_hf(pair):
    name, tool, hf = pair
    rng = random.Random(99)
    sequences = [hf.encode(raw.decode("utf-8", errors="replace")).ids for _, raw in CASES]
    vocab = hf.get_vocab_size(with_added_tokens=True)
    sequences += [[rng.randrange(vocab) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    requests, expected = [], []
    for ids in sequences:
        for skip in (False, True):
            requests.append({"op": "decode", "ids": ids, "skip_special_tokens": skip})
            expected.append(hf.decode(ids, skip_special_tokens=skip))
    answers = tool.ask(requests)
    mismatches = [f"{r['ids'][:10]} skip={r['skip_special_tokens']}: hf={want[:40]!r} lowbit={got['text'][:40]!r}"
                  for r, want, got in zip(requests, expected, answers) if got["text"] != want]
    report(name, mismatches, len(requests))


def test_stream_decode_matches_full_decode(pair):
    name, tool, hf = pair
    rng = random.Random(7)
    sequences = [hf.encode(raw.decode("utf-8", errors="replace")).ids for _, raw in CASES[::3]]
    vocab = hf.get_vocab_size(with_added_tokens=True)
    sequences += [[rng.randrange(vocab) for _ in range(rng.randint(1, 30))] for _ in range(100)]
    answers = tool.ask([{"op": "stream", "ids": ids} for ids in sequences])
    mismatches = []
    for ids, got in zip(sequences, answers):
        want = hf.decode(ids, skip_special_tokens=False)
        if "".join(got["pieces"]) != want:
            mismatches.append(f"{ids[:10]}: hf={want[:40]!r} pieces={got['pieces'][:8]}")
    report(name, mismatches, len(sequences))


def test_info_matches_hf(pair):
    name, tool, hf = pair
    info = tool.ask([{"op": "info"}])[0]
    assert info["vocab_size"] == hf.get_vocab_size(with_added_tokens=True)


# Variants of the SmolLM2 tokenizer.json that exercise the components and flags the two real
# tokenizers do not use. HF loads the same modified file, so it stays the oracle.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level(prefix=False, regex=False):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": False, "use_regex": regex}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def added(id_, content, **flags):
    token = {"id": id_, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": False}
    token.update(flags)
    return token


VARIANTS = {
    "gpt2_prefix_space": {
        "pre_tokenizer": byte_level(prefix=True, regex=True),
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|im_end|>", 2],
                           "cls": ["<|im_start|>", 1], "trim_offsets": True, "add_prefix_space": True},
    },
    "llama3_split": {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(LLAMA3_PATTERN, "Isolated"), byte_level()]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                                                "tokens": ["<|endoftext|>"]}}},
        "model.ignore_merges": True,
    },
    "behaviours": {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"\s+", "MergedWithPrevious"), split(",", "MergedWithNext", literal=True),
            split(r"\p{P}", "Contiguous", invert=True), {"type": "Digits", "individual_digits": False},
            split(r"[aeiou]", "Removed"), byte_level(regex=True)]},
    },
    "invert_removed": {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"\p{L}+|\p{N}", "Removed", invert=True), split(r"^.|.$", "Isolated"),
            byte_level(prefix=True)]},
    },
    "nfkc_lowercase_flags": {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
        "pre_tokenizer": byte_level(regex=True),
        "added_tokens+": [added(49152, "cat", single_word=True), added(49153, "ÉCOLE", normalized=True),
                          added(49154, " the", normalized=True, lstrip=True),
                          added(49155, "<|im_end|>", lstrip=True, rstrip=True, special=True),
                          added(49156, "ﬁne", normalized=True, rstrip=True),
                          added(49157, "is", single_word=True, lstrip=True)],
    },
    "nfd": {"normalizer": {"type": "NFD"}},
    "nfkd_no_decoder": {"normalizer": {"type": "NFKD"}, "decoder": None},
}

VARIANT_CASES = CASES[::4] + [
    (f"flags{i}", s.encode()) for i, s in enumerate([
        "cat category the cat, cats", "a cat\tis here; concat", "École ECOLE école  the  the",
        "x <|im_end|>  y", "  <|im_end|>\n\nnext", "fine ﬁne  FINE", "this is isn't is", "is", "cat"])]


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, tmp_path_factory):
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built (set LOWBIT_BUILD_DIR)")
    base = smollm2_dir(tmp_path_factory)
    if base is None:
        pytest.skip("smollm2 tokenizer not found")
    spec = json.loads((base / "tokenizer.json").read_text())
    for key, value in VARIANTS[request.param].items():
        if key == "added_tokens+":
            spec["added_tokens"] += value
        elif key.startswith("model."):
            spec["model"][key[6:]] = value
        else:
            spec[key] = value
    directory = tmp_path_factory.mktemp(request.param)
    (directory / "tokenizer.json").write_text(json.dumps(spec))
    hf = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    return request.param, Tool(directory), hf


def test_variants_match_hf(variant):
    name, tool, hf = variant
    requests, expected = [], []
    for case, raw in VARIANT_CASES:
        text = raw.decode("utf-8", errors="replace")
        requests.append(encode_request(raw, True))
        expected.append((case, text, hf.encode(text, add_special_tokens=True).ids))
    answers = tool.ask(requests)
    mismatches = [f"{case} {text[:60]!r}: hf={want[:20]} lowbit={got['ids'][:20]}"
                  for (case, text, want), got in zip(expected, answers) if got["ids"] != want]
    decoded = tool.ask([{"op": "decode", "ids": want} for _, _, want in expected])
    mismatches += [f"decode {want[:10]}: hf={hf.decode(want, skip_special_tokens=False)[:40]!r} "
                   f"lowbit={got['text'][:40]!r}" for (_, _, want), got in zip(expected, decoded)
                   if got["text"] != hf.decode(want, skip_special_tokens=False)]
    report(name, mismatches, len(requests))
