#!/usr/bin/env python3
"""Writes a deterministic random Qwen3NextForCausalLM as a Hugging Face folder (config.json,
model.safetensors, the real Qwen3 tokenizer, random_init.json), built and saved by transformers.

  python tools/prepare/make_random_qwen3_next.py --out DIR [--layout per-expert|fused]
      [--hidden 64 --layers 8 --interval 4 --heads 4 --kv-heads 2 --head-dim 32 --partial-rotary 0.25
       --k-heads 2 --v-heads 6 --k-dim 16 --v-dim 24 --conv 4 --experts 8 --top-k 3
       --moe-intermediate 40 --shared-intermediate 56 --intermediate 96 --vocab 512]
      [--mlp-only-layers 0] [--norm-topk | --no-norm-topk] [--tied | --untied]
      [--dtype float32|bfloat16] [--seed 0] [--router-scale 3] [--mtp none|random|predictable]

Defaults are the sizes of ../shared/spec/qwen3-moe-next.md §5: attention at layers 3 and 7,
head_dim 32 with 8 rotary channels, GDN with Hk 2, Hv 6 (r = 3), dk 16 != dv 24, Kc 4,
8 experts top-3, F 40 != Fs 56. config.json is what transformers writes (`layer_types`,
`rope_parameters` with partial_rotary_factor), plus the legacy top-level keys.

Initialisation: every parameter from its own generator seeded by sha256(seed, name), randomised
after construction (§5: transformers initialises offset norms to 0 and the gated norm to 1,
which would hide a w-vs-1+w bug):
  offset-flavour norms (input/post-attention/final, q_norm, k_norm)   normal(0, 0.1)  -> 1 + w ~ 1
  the GDN gated norm (linear_attn.norm, plain flavour)               1 + normal(0, 0.1)
  A_log normal(0, 0.5); dt_bias normal(0, 0.5); conv1d normal(0, 1/sqrt(Kc))
  router (mlp.gate) normal(0, router_scale/sqrt(hidden)) (clear top-k margins)
  embeddings normal(0, 4/sqrt(hidden)); other matrices normal(0, 1/sqrt(fan_in)).

MTP head (--mtp, absent by default; transformers ignores mtp.*): the tensors of
../shared/spec/qwen3-moe-next.md §3.1 in the released layout, per-expert names:
  mtp.fc.weight [H, 2H], mtp.pre_fc_norm_{embedding,hidden}.weight, mtp.norm.weight (offset flavour),
  mtp.layers.0.* = one full-attention layer with the MoE and shared expert (built by transformers
  as layer 0 of a one-layer Qwen3-Next, randomised as above).
  random       everything random: drafts almost never agree with the model (acceptance ~ 0).
  predictable  a model whose next token is mostly a function of the current token, and an MTP head
               that computes the same function: every layer's output projection (attention o_proj,
               GDN out_proj, expert and shared-expert down_proj) is scaled by --layer-scale
               (default 0.01) in the model and in the MTP layer, mtp.fc = [I | 0] (it passes the
               normed embedding of t_{p+1} through), pre_fc_norm_embedding = 0 (gain 1), and
               mtp.norm = model.norm. Then main logits at p+1 ~ lm_head(N(embed(t_{p+1}))) ~ the
               MTP head's logits at p, so drafts mostly agree (acceptance ~0.9), while every
               layer still runs at full cost (speed figures are real).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_transformers  # noqa: E402  (also sets the offline environment)
import qwen3_tokenizer  # noqa: E402
from make_random_qwen3_moe import add_common_arguments, save_with_layout, tensor_seed, to_per_expert  # noqa: E402

OFFSET_NORMS = ("input_layernorm.weight", "post_attention_layernorm.weight", "q_norm.weight", "k_norm.weight")


def init_weights(model, seed: int, hidden: int, router_scale: float) -> None:
    import torch

    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            g = torch.Generator(device="cpu").manual_seed(tensor_seed(seed, name))
            x = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name == "model.norm.weight" or name.endswith(OFFSET_NORMS):
                v = 0.1 * x
            elif name.endswith("linear_attn.norm.weight"):
                v = 1.0 + 0.1 * x
            elif name.endswith(("A_log", "dt_bias")):
                v = 0.5 * x
            elif name.endswith("conv1d.weight"):
                v = x / p.shape[-1] ** 0.5
            elif name.endswith(("embed_tokens.weight", "lm_head.weight")):
                v = x * 4.0 / hidden ** 0.5
            elif name.endswith("mlp.gate.weight"):
                v = x * router_scale / hidden ** 0.5
            else:  # [out, in] or experts [E, out, in]
                v = x / p.shape[-1] ** 0.5
            p.copy_(v.to(p.dtype))


SCALED = ("self_attn.o_proj.weight", "linear_attn.out_proj.weight", "down_proj.weight", "experts.down_proj")


def scale_layers(tensors: dict, factor: float) -> None:
    for name in list(tensors):
        if name.endswith(SCALED):
            tensors[name] = (tensors[name].float() * factor).to(tensors[name].dtype)


def mtp_tensors(cfg, a, main: dict) -> dict:
    """The mtp.* tensors: layer 0 of a one-layer, full-attention Qwen3-Next built by transformers."""
    import copy
    import torch
    from transformers import Qwen3NextForCausalLM

    c = copy.deepcopy(cfg)
    c.num_hidden_layers = 1
    c.layer_types = ["full_attention"]
    c.mlp_only_layers = []
    one = Qwen3NextForCausalLM._from_config(c, dtype=getattr(torch, a.dtype))
    init_weights(one, a.seed + 1000, a.hidden, a.router_scale)
    out = {}
    for name, p in one.state_dict().items():
        if name.startswith("model.layers.0."):
            out["mtp.layers.0." + name[len("model.layers.0."):]] = p.detach().clone().contiguous()
    out = to_per_expert(out)
    H = a.hidden
    g = torch.Generator().manual_seed(a.seed + 2000)
    dtype = getattr(torch, a.dtype)
    rnd = lambda *shape, std=1.0: (torch.randn(*shape, generator=g) * std).to(dtype)
    if a.mtp == "predictable":
        scale_layers(out, a.layer_scale)
        out["mtp.fc.weight"] = torch.cat([torch.eye(H), torch.zeros(H, H)], 1).to(dtype).contiguous()
        out["mtp.pre_fc_norm_embedding.weight"] = torch.zeros(H, dtype=dtype)
        out["mtp.pre_fc_norm_hidden.weight"] = rnd(H, std=0.1)
        out["mtp.norm.weight"] = main["model.norm.weight"].clone()
    else:
        out["mtp.fc.weight"] = rnd(H, 2 * H, std=1 / (2 * H) ** 0.5)
        for n in ("pre_fc_norm_embedding", "pre_fc_norm_hidden", "norm"):
            out[f"mtp.{n}.weight"] = rnd(H, std=0.1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--layout", choices=["per-expert", "fused"], default="per-expert")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--interval", type=int, default=4, help="full_attention_interval")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--partial-rotary", type=float, default=0.25)
    ap.add_argument("--k-heads", type=int, default=2)
    ap.add_argument("--v-heads", type=int, default=6)
    ap.add_argument("--k-dim", type=int, default=16)
    ap.add_argument("--v-dim", type=int, default=24)
    ap.add_argument("--conv", type=int, default=4)
    ap.add_argument("--shared-intermediate", type=int, default=56)
    add_common_arguments(ap, rope_theta=10_000.0)
    ap.add_argument("--mtp", choices=["none", "random", "predictable"], default="none")
    ap.add_argument("--layer-scale", type=float, default=0.01)
    a = ap.parse_args()

    import torch
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    quiet_transformers()
    torch.manual_seed(a.seed)
    only = [int(v) for v in a.mlp_only_layers.split(",") if v.strip()]
    cfg = Qwen3NextConfig(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.head_dim, hidden_act="silu",
        max_position_embeddings=a.max_position, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": a.rope_theta, "partial_rotary_factor": a.partial_rotary},
        full_attention_interval=a.interval, linear_num_key_heads=a.k_heads, linear_num_value_heads=a.v_heads,
        linear_key_head_dim=a.k_dim, linear_value_head_dim=a.v_dim, linear_conv_kernel_dim=a.conv,
        tie_word_embeddings=a.tied, attention_bias=False, num_experts=a.experts, num_experts_per_tok=a.top_k,
        moe_intermediate_size=a.moe_intermediate, shared_expert_intermediate_size=a.shared_intermediate,
        norm_topk_prob=a.norm_topk, decoder_sparse_step=1, mlp_only_layers=only,
        bos_token_id=None, eos_token_id=None, pad_token_id=None, architectures=["Qwen3NextForCausalLM"], dtype=a.dtype)
    model = Qwen3NextForCausalLM._from_config(cfg, dtype=getattr(torch, a.dtype))
    init_weights(model, a.seed, a.hidden, a.router_scale)

    def add_mtp(tensors):
        if a.mtp == "predictable":
            scale_layers(tensors, a.layer_scale)
        if a.mtp != "none":
            tensors.update(mtp_tensors(cfg, a, tensors))

    out = a.out
    save_with_layout(model, out, a.layout, add_mtp)
    qwen3_tokenizer.unpack_to(out)
    (out / "random_init.json").write_text(json.dumps(
        {"generator": "tools/prepare/make_random_qwen3_next.py", "seed": a.seed, "layout": a.layout,
         "router_scale": a.router_scale, "mtp": a.mtp,
         **({"layer_scale": a.layer_scale} if a.mtp == "predictable" else {})}, indent=2) + "\n")
    kinds = "".join("L" if t == "linear_attention" else "A" for t in model.config.layer_types)
    print(f"wrote {out}: Qwen3-Next layers={kinds} hidden={a.hidden} GDN {a.k_heads}/{a.v_heads} x {a.k_dim}/{a.v_dim} "
          f"experts={a.experts} top-{a.top_k} shared={a.shared_intermediate} layout={a.layout} dtype={a.dtype} mtp={a.mtp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
