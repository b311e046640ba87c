#!/usr/bin/env python3
"""Writes a deterministic random Qwen3MoeForCausalLM as a Hugging Face folder (config.json,
model.safetensors, the real Qwen3 tokenizer, random_init.json), built and saved by transformers.

  python tools/prepare/make_random_qwen3_moe.py --out DIR [--layout per-expert|fused]
      [--hidden 64 --layers 3 --heads 4 --kv-heads 2 --head-dim 24 --experts 8 --top-k 3
       --moe-intermediate 40 --intermediate 96 --vocab 512] [--mlp-only-layers 0,2]
      [--sparse-step 1] [--norm-topk | --no-norm-topk] [--tied | --untied]
      [--dtype float32|bfloat16] [--seed 0] [--router-scale 3] [--legacy-expert-key]

Defaults are the sizes of ../shared/spec/qwen3-moe-next.md §5 (head_dim 24 != hidden/heads).

Expert layout on disk (--layout):
  per-expert  model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight [F,H] / [H,F]
              (released checkpoints; what transformers 4.57 and msmodelslim write)
  fused       model.layers.{i}.mlp.experts.gate_up_proj [E, 2F, H] (rows [0,F) gate, [F,2F) up)
              model.layers.{i}.mlp.experts.down_proj    [E, H, F]
              (transformers 5's own parameters; loads in transformers 5 as they are)
The folder is written by save_pretrained and then its model.safetensors is rewritten, tensor
for tensor identical values, in the requested layout (whatever save_pretrained chose).

config.json: transformers 5 writes the expert count as `num_local_experts` and RoPE in
`rope_parameters`; the legacy top-level `rope_theta`/`rope_scaling`/`torch_dtype` are added (as
make_random_qwen3.py does). --legacy-expert-key renames num_local_experts to num_experts (the
released checkpoints' spelling).

Initialisation (make_random_qwen3.py's, plus the router): every parameter from its own
generator seeded by sha256(seed, name); linear and expert matrices normal(0, 1/sqrt(fan_in));
router (mlp.gate) normal(0, router_scale/sqrt(hidden)) so router logits have std ~router_scale
and top-k choices have clear margins (near-ties would make torch.topk's order matter);
embeddings normal(0, 4/sqrt(hidden)); norms 1 + normal(0, 0.1); final norm with random signs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_legacy_config_keys, quiet_transformers  # noqa: E402  (also sets the offline environment)
import qwen3_tokenizer  # noqa: E402

FUSED = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$")
PER_EXPERT = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def tensor_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def init_weights(model, seed: int, hidden: int, router_scale: float) -> None:
    import torch

    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            g = torch.Generator(device="cpu").manual_seed(tensor_seed(seed, name))
            x = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name == "model.norm.weight":
                v = torch.where(torch.randn(p.shape, generator=g) > 0, 1.0, -1.0) * (1.0 + 0.1 * x)
            elif p.dim() == 1:
                v = 1.0 + 0.1 * x
            elif name.endswith(("embed_tokens.weight", "lm_head.weight")):
                v = x * 4.0 / hidden ** 0.5
            elif name.endswith("mlp.gate.weight"):
                v = x * router_scale / hidden ** 0.5
            else:  # [out, in] or experts [E, out, in]
                v = x / p.shape[-1] ** 0.5
            p.copy_(v.to(p.dtype))


def to_fused(tensors: dict) -> dict:
    import torch

    out, groups = {}, {}
    for name, t in tensors.items():
        m = PER_EXPERT.match(name)
        if m:
            groups.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = t
        else:
            out[name] = t
    for prefix, experts in groups.items():
        ids = sorted(experts)
        assert ids == list(range(len(ids))), f"{prefix}: experts {ids}"
        out[prefix + ".gate_up_proj"] = torch.stack(
            [torch.cat([experts[e]["gate_proj"], experts[e]["up_proj"]], 0) for e in ids]).contiguous()
        out[prefix + ".down_proj"] = torch.stack([experts[e]["down_proj"] for e in ids]).contiguous()
    return out


def to_per_expert(tensors: dict) -> dict:
    out = {}
    for name, t in tensors.items():
        m = FUSED.match(name)
        if not m:
            out[name] = t
            continue
        for e in range(t.shape[0]):
            if m.group(2) == "gate_up_proj":
                f = t.shape[1] // 2
                out[f"{m.group(1)}.{e}.gate_proj.weight"] = t[e, :f].clone().contiguous()
                out[f"{m.group(1)}.{e}.up_proj.weight"] = t[e, f:].clone().contiguous()
            else:
                out[f"{m.group(1)}.{e}.down_proj.weight"] = t[e].clone().contiguous()
    return out


def add_common_arguments(ap, rope_theta: float) -> None:
    """The arguments every random MoE maker shares (after its own sizes)."""
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--moe-intermediate", type=int, default=40)
    ap.add_argument("--intermediate", type=int, default=96)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--mlp-only-layers", default="", help="comma-separated layer indices with a dense MLP")
    ap.add_argument("--norm-topk", dest="norm_topk", action="store_true", default=True)
    ap.add_argument("--no-norm-topk", dest="norm_topk", action="store_false")
    tie = ap.add_mutually_exclusive_group()
    tie.add_argument("--tied", dest="tied", action="store_true", default=False)
    tie.add_argument("--untied", dest="tied", action="store_false")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--router-scale", type=float, default=3.0)
    ap.add_argument("--rope-theta", type=float, default=rope_theta)
    ap.add_argument("--max-position", type=int, default=4096)


def save_with_layout(model, out: Path, layout: str, edit=None) -> dict:
    """save_pretrained, then model.safetensors rewritten in the expert layout (tensor for tensor
    the same values), after `edit(tensors)` if given; the legacy config keys added. Returns the
    config dict."""
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="1000GB")
    st = out / "model.safetensors"
    tensors = load_file(str(st))
    tensors = to_fused(tensors) if layout == "fused" else to_per_expert(tensors)
    if edit:
        edit(tensors)
    save_file(tensors, str(st), metadata={"format": "pt"})
    st.chmod(0o644)
    return add_legacy_config_keys(out / "config.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--layout", choices=["per-expert", "fused"], default="per-expert")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=24)
    ap.add_argument("--sparse-step", type=int, default=1)
    add_common_arguments(ap, rope_theta=1_000_000.0)
    ap.add_argument("--legacy-expert-key", action="store_true")
    a = ap.parse_args()

    import torch
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    quiet_transformers()
    torch.manual_seed(a.seed)
    only = [int(v) for v in a.mlp_only_layers.split(",") if v.strip()]
    cfg = Qwen3MoeConfig(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.head_dim, hidden_act="silu",
        max_position_embeddings=a.max_position, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": a.rope_theta},
        tie_word_embeddings=a.tied, attention_bias=False, use_sliding_window=False, sliding_window=None,
        num_experts=a.experts, num_experts_per_tok=a.top_k, moe_intermediate_size=a.moe_intermediate,
        norm_topk_prob=a.norm_topk, decoder_sparse_step=a.sparse_step, mlp_only_layers=only,
        bos_token_id=None, eos_token_id=None, pad_token_id=None, architectures=["Qwen3MoeForCausalLM"], dtype=a.dtype)
    model = Qwen3MoeForCausalLM._from_config(cfg, dtype=getattr(torch, a.dtype))
    init_weights(model, a.seed, a.hidden, a.router_scale)

    out = a.out
    d = save_with_layout(model, out, a.layout)
    if a.legacy_expert_key and "num_local_experts" in d:
        d["num_experts"] = d.pop("num_local_experts")
        (out / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    qwen3_tokenizer.unpack_to(out)
    (out / "random_init.json").write_text(json.dumps(
        {"generator": "tools/prepare/make_random_qwen3_moe.py", "seed": a.seed, "layout": a.layout,
         "router_scale": a.router_scale}, indent=2) + "\n")
    n_moe = sum(1 for i in range(a.layers)
                if i not in only and a.experts > 0 and (i + 1) % a.sparse_step == 0)
    print(f"wrote {out}: Qwen3-MoE layers={a.layers} ({n_moe} sparse) hidden={a.hidden} experts={a.experts} "
          f"top-{a.top_k} F={a.moe_intermediate} norm_topk={a.norm_topk} layout={a.layout} dtype={a.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
