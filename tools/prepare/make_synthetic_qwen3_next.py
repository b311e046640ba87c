#!/usr/bin/env python3
"""Writes a large random Qwen3-Next checkpoint for speed measurements, straight to safetensors
(BF16, streamed tensor by tensor; transformers would need the whole model in fp32 memory):
Qwen3-Next-80B-A3B's dimensions (../shared/spec/qwen3-moe-next.md §2.1: hidden 2048, attention
16/2 heads x 256 with output gate and 64 rotary channels, Gated DeltaNet 16/32 heads of 128,
Kc 4, 10 routed experts of 512 per token plus a 512-wide shared expert, vocab 151936) with fewer
layers and fewer experts per layer, so it fits in memory. What a decoded token reads — the
mixer, 10 experts, the shared expert, the router, the head — is the 80B model's per layer;
only the experts no token picks are fewer.

  python tools/prepare/make_synthetic_qwen3_next.py --out DIR [--layers 16] [--experts 64]
      [--mtp none|random|predictable] [--layer-scale 0.01] [--seed 0]

Layer pattern: full attention every 4th layer (interval 4). --mtp adds the mtp.* tensors (one
full-attention MoE layer, fc, norms) in the released layout; `predictable` builds them as
make_random_qwen3_next.py does (output projections of every layer scaled by --layer-scale,
mtp.fc = [I | 0], pre_fc_norm_embedding = 0, mtp.norm = model.norm), so drafts mostly agree.
Norm weights are stored as Qwen3-Next stores them (offset flavour: w ~ 0, applied as 1 + w).
The tokenizer is the real Qwen3 one.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qwen3_tokenizer  # noqa: E402

H, NQ, NKV, D = 2048, 16, 2, 256
HK, HV, DK, DV, KC = 16, 32, 128, 128, 4
F, FS, TOPK, VOCAB = 512, 512, 10, 151936


def bf16(x: np.ndarray) -> bytes:
    """float32 -> bfloat16 bytes, round to nearest even."""
    u = x.astype(np.float32).view(np.uint32)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16).tobytes()


class Writer:
    """safetensors with a header written first: shapes are known up front, data streamed after."""

    def __init__(self, path: Path, shapes: dict):
        self.shapes, offset, header = shapes, 0, {}
        for name, shape in shapes.items():
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        self.f = open(path, "wb")
        self.f.write(struct.pack("<Q", len(h)) + h)
        self.order = list(shapes)

    def write(self, name: str, values: np.ndarray):
        assert name == self.order.pop(0), name
        assert values.shape == tuple(self.shapes[name]), (name, values.shape)
        self.f.write(bf16(values))

    def close(self):
        assert not self.order, self.order
        self.f.close()


def layer_shapes(p: str, attention: bool, experts: int) -> dict:
    s = {p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,)}
    if attention:
        a = p + "self_attn."
        s.update({a + "q_proj.weight": (2 * NQ * D, H), a + "k_proj.weight": (NKV * D, H),
                  a + "v_proj.weight": (NKV * D, H), a + "o_proj.weight": (H, NQ * D),
                  a + "q_norm.weight": (D,), a + "k_norm.weight": (D,)})
    else:
        g = p + "linear_attn."
        s.update({g + "in_proj_qkvz.weight": (2 * HK * DK + 2 * HV * DV, H), g + "in_proj_ba.weight": (2 * HV, H),
                  g + "conv1d.weight": (2 * HK * DK + HV * DV, 1, KC), g + "A_log": (HV,), g + "dt_bias": (HV,),
                  g + "norm.weight": (DV,), g + "out_proj.weight": (H, HV * DV)})
    m = p + "mlp."
    s[m + "gate.weight"] = (experts, H)
    for e in range(experts):
        s.update({f"{m}experts.{e}.gate_proj.weight": (F, H), f"{m}experts.{e}.up_proj.weight": (F, H),
                  f"{m}experts.{e}.down_proj.weight": (H, F)})
    s.update({m + "shared_expert.gate_proj.weight": (FS, H), m + "shared_expert.up_proj.weight": (FS, H),
              m + "shared_expert.down_proj.weight": (H, FS), m + "shared_expert_gate.weight": (1, H)})
    return s


def values(name: str, shape, rng, a) -> np.ndarray:
    scaled = name.endswith(("o_proj.weight", "out_proj.weight", "down_proj.weight"))
    if name.endswith("mtp.fc.weight") and a.mtp == "predictable":
        return np.concatenate([np.eye(H, dtype=np.float32), np.zeros((H, H), np.float32)], 1)
    if name.endswith("mtp.pre_fc_norm_embedding.weight") and a.mtp == "predictable":
        return np.zeros(shape, np.float32)
    x = rng.standard_normal(shape, dtype=np.float32)
    if name.endswith("linear_attn.norm.weight"):
        return 1 + 0.1 * x
    if name.endswith(("norm.weight", "A_log", "dt_bias")):
        return (0.1 if "norm" in name else 0.5) * x
    if name.endswith("conv1d.weight"):
        return x / KC ** 0.5
    if name.endswith(("embed_tokens.weight", "lm_head.weight")):
        return x * 4 / H ** 0.5
    if name.endswith("mlp.gate.weight"):
        return x * 3 / H ** 0.5
    x /= shape[-1] ** 0.5
    return x * a.layer_scale if scaled and a.mtp == "predictable" else x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--mtp", choices=["none", "random", "predictable"], default="none")
    ap.add_argument("--layer-scale", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.experts < TOPK:
        ap.error(f"--experts must be >= {TOPK} (experts per token)")
    types = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(a.layers)]
    shapes = {"model.embed_tokens.weight": (VOCAB, H)}
    for i, t in enumerate(types):
        shapes.update(layer_shapes(f"model.layers.{i}.", t == "full_attention", a.experts))
    shapes.update({"model.norm.weight": (H,), "lm_head.weight": (VOCAB, H)})
    if a.mtp != "none":
        shapes.update({"mtp.fc.weight": (H, 2 * H), "mtp.pre_fc_norm_embedding.weight": (H,),
                       "mtp.pre_fc_norm_hidden.weight": (H,)})
        shapes.update(layer_shapes("mtp.layers.0.", True, a.experts))
        shapes["mtp.norm.weight"] = (H,)
    a.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    w = Writer(a.out / "model.safetensors", shapes)
    final_norm = None
    for name, shape in shapes.items():
        if name == "mtp.norm.weight" and a.mtp == "predictable":
            v = final_norm
        else:
            v = values(name, shape, rng, a)
        if name == "model.norm.weight":
            final_norm = v
        w.write(name, v)
    w.close()
    config = {
        "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next", "hidden_size": H,
        "num_hidden_layers": a.layers, "layer_types": types, "num_attention_heads": NQ, "num_key_value_heads": NKV,
        "head_dim": D, "partial_rotary_factor": 0.25,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25},
        "linear_num_key_heads": HK, "linear_num_value_heads": HV, "linear_key_head_dim": DK,
        "linear_value_head_dim": DV, "linear_conv_kernel_dim": KC, "num_experts": a.experts,
        "num_experts_per_tok": TOPK, "moe_intermediate_size": F, "shared_expert_intermediate_size": FS,
        "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [], "intermediate_size": 5120,
        "vocab_size": VOCAB, "max_position_embeddings": 262144, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": False, "dtype": "bfloat16", "torch_dtype": "bfloat16",
        "bos_token_id": 151643, "eos_token_id": 151645,
    }
    (a.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    qwen3_tokenizer.unpack_to(a.out)
    gib = (a.out / "model.safetensors").stat().st_size / 2 ** 30
    print(f"wrote {a.out}: Qwen3-Next-80B-A3B dims, {a.layers} layers ({types.count('full_attention')} attention), "
          f"{a.experts} experts, mtp={a.mtp}, {gib:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
