#!/usr/bin/env python3
"""Writes a deterministic random Qwen3ForCausalLM as a complete Hugging Face folder:
config.json, generation_config.json, model.safetensors (one file), tokenizer.json +
tokenizer_config.json (the real Qwen3 tokenizer, from data/qwen3-tokenizer/) and random_init.json
(how the weights were drawn).

  python tools/prepare/make_random_qwen3.py --out DIR [--hidden 64 --layers 2 --heads 4 --kv-heads 2
      --head-dim 32 --intermediate 128 --vocab 1024 | --real-vocab] [--tied | --untied]
      [--rope-scaling none|linear|llama3|yarn] [--dtype float32|bfloat16] [--seed 0] [--max-position 4096]
  python tools/prepare/make_random_qwen3.py --out DIR --preset qwen3-0.6b|qwen3-1.7b [--seed 0]

Determinism: the same arguments give byte-identical files. Every parameter tensor is drawn from its
own torch.Generator seeded with sha256(seed, tensor name), in float32 on the CPU, then cast to
--dtype; so a tensor's values do not depend on the other tensors' shapes.

Initialisation (chosen so logits are informative and greedy paths are not degenerate; transformers'
default std 0.02 gives near-uniform logits):
  linear weights          normal(0, 1/sqrt(fan_in))  -> activations stay O(1) at any width
  embed_tokens / lm_head  normal(0, 4/sqrt(hidden))  -> logits (RMS-normed hidden @ W^T) have std ~4,
                                                        p(top1) typically 0.3-0.6 (vocab 1024)
  RMSNorm weights (input/post-attention, q_norm, k_norm)  1 + normal(0, 0.1)
  final norm (model.norm)  random sign * (1 + normal(0, 0.1))
Why the signs: with tied embeddings the residual stream still contains the input token's own
embedding e_t, so logit_t gets +|e_t|^2/rms(h) and greedy decoding repeats the last token forever.
A random-sign final norm makes that self term zero-mean (measured: 1 distinct token in 24 greedy
steps without it, 12-22 with it). Qwen3 has no biases. --init-scale multiplies the normal stds.

Vocabulary: --vocab N (default 1024) sets the embedding size. When N is smaller than the tokenizer
(151,669 tokens; Qwen3 pads the embedding to 151,936 = --real-vocab), the folder still holds the
full tokenizer: the checkpoint is for id-based tests (ids < N); text that encodes to ids >= N
cannot be fed. bos/eos ids (151643 <|endoftext|>, 151645 <|im_end|>) are written only when they
fit in the vocabulary, otherwise they are null.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_legacy_config_keys, quiet_transformers  # noqa: E402  (also sets the offline environment)
import qwen3_tokenizer  # noqa: E402

QWEN3_BOS = 151643  # <|endoftext|>
QWEN3_EOS = 151645  # <|im_end|>
QWEN3_VOCAB = 151936

PRESETS = {
    "qwen3-0.6b": dict(hidden=1024, layers=28, intermediate=3072, heads=16, kv_heads=8, head_dim=128,
                       vocab=QWEN3_VOCAB, tied=True, dtype="bfloat16", max_position=40960),
    "qwen3-1.7b": dict(hidden=2048, layers=28, intermediate=6144, heads=16, kv_heads=8, head_dim=128,
                       vocab=QWEN3_VOCAB, tied=True, dtype="bfloat16", max_position=40960),
}


def rope_parameters(kind: str, theta: float, max_pos: int, factor: float | None) -> dict:
    rp: dict = {"rope_type": "default" if kind == "none" else kind, "rope_theta": theta}
    if kind == "linear":
        rp["factor"] = factor or 2.0
    elif kind == "llama3":
        f = factor or 8.0
        rp.update(factor=f, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=max(1, max_pos // 4))
    elif kind == "yarn":
        f = factor or 4.0
        rp.update(factor=f, original_max_position_embeddings=max(1, int(max_pos / f)))
    return rp


def tensor_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def init_weights(model, seed: int, hidden: int, scale: float) -> dict:
    import torch

    stds = {}
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):  # tied lm_head appears once
            g = torch.Generator(device="cpu").manual_seed(tensor_seed(seed, name))
            x = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name == "model.norm.weight":  # final norm: random signs (see module doc)
                sign = torch.where(torch.randn(p.shape, generator=g) > 0, 1.0, -1.0)
                kind, v = "final_norm", sign * (1.0 + 0.1 * x)
            elif p.dim() == 1:  # RMSNorm weights
                kind, v = "norm", 1.0 + 0.1 * x
            elif name.endswith(("embed_tokens.weight", "lm_head.weight")):
                kind, std = "embedding", scale * 4.0 / hidden ** 0.5
                v = x * std
            else:  # nn.Linear [out, in]
                kind, std = "linear", scale / p.shape[1] ** 0.5
                v = x * std
            p.copy_(v.to(p.dtype))
            stds.setdefault(kind, {"norm": "1 + normal(0, 0.1)",
                                   "final_norm": "random sign * (1 + normal(0, 0.1))",
                                   "embedding": "normal(0, %g/sqrt(hidden))" % (4.0 * scale),
                                   "linear": "normal(0, %g/sqrt(fan_in))" % scale}[kind])
            del x, v
    return stds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--intermediate", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--real-vocab", action="store_true", help=f"vocab = {QWEN3_VOCAB} (Qwen3's padded size)")
    tie = ap.add_mutually_exclusive_group()
    tie.add_argument("--tied", dest="tied", action="store_true", default=None)
    tie.add_argument("--untied", dest="tied", action="store_false")
    ap.add_argument("--rope-scaling", choices=["none", "linear", "llama3", "yarn"], default="none")
    ap.add_argument("--rope-factor", type=float, help="scaling factor (default linear 2, llama3 8, yarn 4)")
    ap.add_argument("--rope-theta", type=float, default=1_000_000.0)
    ap.add_argument("--rms-eps", type=float, default=1e-6)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-position", type=int)
    ap.add_argument("--init-scale", type=float, default=1.0)
    ap.add_argument("--no-check", action="store_true", help="skip reloading the folder with transformers")
    a = ap.parse_args()

    # Preset values, unless given explicitly on the command line.
    given = {arg.split("=")[0].lstrip("-").replace("-", "_") for arg in sys.argv[1:] if arg.startswith("--")}
    if a.preset:
        for k, v in PRESETS[a.preset].items():
            if k == "tied":
                if not ({"tied", "untied"} & given):
                    a.tied = v
            elif k not in given:
                setattr(a, k, v)
    if a.tied is None:
        a.tied = True
    a.dtype = a.dtype or "float32"
    a.max_position = a.max_position or 4096
    if a.real_vocab:
        a.vocab = QWEN3_VOCAB

    t0 = time.time()
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    quiet_transformers()

    torch.manual_seed(a.seed)
    dtype = getattr(torch, a.dtype)
    in_vocab = a.vocab > QWEN3_EOS
    cfg = Qwen3Config(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
        num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
        head_dim=a.head_dim, hidden_act="silu", max_position_embeddings=a.max_position,
        rms_norm_eps=a.rms_eps, rope_parameters=rope_parameters(a.rope_scaling, a.rope_theta, a.max_position, a.rope_factor),
        tie_word_embeddings=a.tied, attention_bias=False, attention_dropout=0.0,
        use_sliding_window=False, sliding_window=None, max_window_layers=a.layers,
        bos_token_id=QWEN3_BOS if in_vocab else None, eos_token_id=QWEN3_EOS if in_vocab else None,
        pad_token_id=None, architectures=["Qwen3ForCausalLM"], dtype=a.dtype,
    )
    model = Qwen3ForCausalLM._from_config(cfg, dtype=dtype)
    stds = init_weights(model, a.seed, a.hidden, a.init_scale)
    if a.tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"

    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.safetensors.index.json",):
        (out / stale).unlink(missing_ok=True)
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="1000GB")
    (out / "model.safetensors").chmod(0o644)  # transformers writes it 0600
    add_legacy_config_keys(out / "config.json")
    gen = GenerationConfig(bos_token_id=QWEN3_BOS, eos_token_id=[QWEN3_EOS, QWEN3_BOS], pad_token_id=QWEN3_BOS) \
        if in_vocab else GenerationConfig()
    gen.save_pretrained(str(out))
    qwen3_tokenizer.unpack_to(out)
    info = {"generator": "tools/prepare/make_random_qwen3.py", "preset": a.preset, "seed": a.seed,
            "init": stds, "per_tensor_seed": "sha256(f'{seed}:{name}')[:8] little-endian & (2**63-1)",
            "vocab_note": None if a.vocab >= QWEN3_VOCAB else
            f"vocab {a.vocab} < tokenizer size: use only token ids < {a.vocab}"}
    (out / "random_init.json").write_text(json.dumps(info, indent=2) + "\n")
    del model

    n_params = 0
    files = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in files and not any(f.startswith("model-0") for f in files), files
    msg = ""
    if not a.no_check:
        from safetensors import safe_open
        from transformers import AutoTokenizer

        with safe_open(str(out / "model.safetensors"), "pt") as f:
            keys = list(f.keys())
            n_params = sum(_prod(f.get_slice(k).get_shape()) for k in keys)
        assert ("lm_head.weight" in keys) == (not a.tied), "lm_head vs tie_word_embeddings"
        AutoTokenizer.from_pretrained(str(out))
        m, linfo = AutoModelForCausalLM.from_pretrained(str(out), dtype=dtype, output_loading_info=True)
        assert not any(linfo[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), linfo
        m.eval()
        ids = torch.tensor([[i % a.vocab for i in (9707, 11, 1879, 0, 17, 100, 3, 42)]])
        with torch.no_grad():
            logits = m(ids).logits[0, -1].float()
            greedy = m.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:]
        top2 = logits.topk(2).values
        msg = (f"check: last-position logits std {logits.std():.2f}, top1-top2 {float(top2[0] - top2[1]):.3f}, "
               f"p(top1) {float(logits.softmax(-1).max()):.3f}; greedy {greedy.tolist()}")
        del m
    print(f"wrote {out}: Qwen3 layers={a.layers} hidden={a.hidden} heads={a.heads}/{a.kv_heads} head_dim={a.head_dim} "
          f"ffn={a.intermediate} vocab={a.vocab} tied={a.tied} rope={a.rope_scaling} dtype={a.dtype} seed={a.seed} "
          f"params={n_params or '?'} ({time.time() - t0:.1f}s)")
    if msg:
        print(msg)
    return 0


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


if __name__ == "__main__":
    sys.exit(main())
