"""The model-preparation tools (tools/prepare): random Qwen3 checkpoints are deterministic and form
complete Hugging Face folders, and the transformers oracle's outputs are self-consistent
(decode_logits[0] is the last prompt position's, greedy ids are argmaxes, cached decode steps
equal a cache-free forward over prompt + greedy tokens)."""
import hashlib
import json
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import PY, REPO, run

PREPARE = REPO / "tools" / "prepare"
SMALL = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "32",
         "--intermediate", "128", "--vocab", "512", "--seed", "11", "--no-check"]
QWEN3_TOKENIZER_SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"


@pytest.fixture(scope="module")
def random_pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("random_qwen3")
    dirs = [base / "a", base / "b"]
    procs = [subprocess.Popen([str(PY), str(PREPARE / "make_random_qwen3.py"), "--out", str(d), *SMALL,
                               "--dtype", "bfloat16", "--rope-scaling", "yarn", "--max-position", "256"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in dirs]  # two independent runs, concurrently (the machine has 2 cores)
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err[-4000:]
    return dirs


def test_random_qwen3_is_deterministic(random_pair):
    a, b = random_pair
    for name in ("model.safetensors", "config.json", "generation_config.json", "random_init.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_random_qwen3_folder_is_complete(random_pair):
    d = random_pair[0]
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"] and cfg["model_type"] == "qwen3"
    assert cfg["vocab_size"] == 512 and cfg["tie_word_embeddings"] is True
    assert cfg["rope_scaling"]["rope_type"] == cfg["rope_parameters"]["rope_type"] == "yarn"
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"]
    assert hashlib.sha256((d / "tokenizer.json").read_bytes()).hexdigest() == QWEN3_TOKENIZER_SHA256
    tc = json.loads((d / "tokenizer_config.json").read_text())
    assert "chat_template" in tc
    files = {p.name for p in d.iterdir()}
    assert not any(f.endswith(".index.json") for f in files), files
    from safetensors import safe_open
    with safe_open(str(d / "model.safetensors"), "np") as f:  # numpy has no bfloat16: shapes only
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"BF16"}
    assert "lm_head.weight" not in shapes  # tied
    assert shapes["model.embed_tokens.weight"] == (512, 64)
    assert shapes["model.layers.0.self_attn.q_norm.weight"] == (32,)
    # The tokenizer loads and is the real one (transformers loading the model: see the oracle test).
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert tok.encode("Hello world").ids == [9707, 1879]
    assert tok.token_to_id("<|im_end|>") == 151645


def oracle(model_dir, spec, out):
    spec_path = out.with_suffix(".json")
    spec_path.write_text(json.dumps(spec))
    r = run([PY, PREPARE / "hf_oracle.py", model_dir, "--spec", spec_path, "--out", out])
    assert r.stdout.startswith("hf_oracle:")
    return load_file(str(out))


def test_oracle_is_self_consistent(random_pair, tmp_path):
    d = random_pair[0]
    seqs = [[1, 2, 3, 4, 5, 6, 7], [300]]
    steps = 6
    ref = oracle(d, {"sequences": seqs, "decode_steps": steps, "dtype": "float32"}, tmp_path / "o.safetensors")
    for i, s in enumerate(seqs):
        p, dl, g = ref[f"seq{i}.prompt_logits"], ref[f"seq{i}.decode_logits"], ref[f"seq{i}.greedy_ids"]
        assert p.dtype == np.float32 and p.shape == (len(s), 512)
        assert dl.dtype == np.float32 and dl.shape == (steps, 512)
        assert g.dtype == np.int64 and g.shape == (steps,)
        assert ref[f"seq{i}.prompt_ids"].tolist() == s
        assert np.abs(dl[0] - p[-1]).max() <= 1e-5
        assert g.tolist() == dl.argmax(-1).tolist()
        assert len(set(g.tolist())) > 1, "degenerate greedy path"
    # Cached decoding == one cache-free forward over prompt + greedy[:-1].
    full = [s + ref[f"seq{i}.greedy_ids"][:-1].tolist() for i, s in enumerate(seqs)]
    ref2 = oracle(d, {"sequences": full, "decode_steps": 1, "dtype": "float32"}, tmp_path / "o2.safetensors")
    for i, s in enumerate(seqs):
        got = ref2[f"seq{i}.prompt_logits"][len(s) - 1:]
        assert np.abs(got - ref[f"seq{i}.decode_logits"]).max() <= 1e-4


def test_converted_smollm2_folder(smollm2_dir):
    """Light check of the default model's folder (the conversion itself verifies much more)."""
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["tie_word_embeddings"] is True
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (1, 2)
    tc = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    assert "<|im_start|>assistant" in tc["chat_template"] and tc["eos_token"] == "<|im_end|>"
    from safetensors import safe_open
    with safe_open(str(smollm2_dir / "model.safetensors"), "np") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys and len(keys) == 2 + 9 * cfg["num_hidden_layers"]
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))
    for s in ["Hello, world!", "The year 2024.\n\n  x", "naïve café 東京 😀"]:
        assert tok.decode(tok.encode(s, add_special_tokens=False).ids, skip_special_tokens=False) == s
    assert tok.encode("<|im_start|>user", add_special_tokens=False).ids[0] == 1
    assert len(tok.encode("2024", add_special_tokens=False).ids) == 4  # digits split like llama.cpp's smollm
