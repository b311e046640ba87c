#!/usr/bin/env python3
"""Writes an AutoAWQ "GEMM" checkpoint from a float HF folder, plain round-to-nearest (AutoAWQ's
pseudo_quantize_tensor without its activation-aware scale search or clipping), as AutoAWQ would
save it after `model.quantize(...)` with those steps skipped.

  python tests/reference/awq_writer.py --model DIR --out DIR [--group 128]

Written from AutoAWQ's source (casper-hansen/AutoAWQ), step by step:
  awq/quantize/quantizer.py  pseudo_quantize_tensor(w, w_bit=4, zero_point=True, q_group_size=g):
      w → [-1, g]; s = clamp(max - min, min=1e-5) / 15; z = clamp(-round(min / s), 0, 15);
      w_dq = (clamp(round(w / s) + z, 0, 15) - z) · s     (all in the weight's dtype, fp16)
  awq/modules/linear/gemm.py  WQLinear_GEMM.from_linear(linear, 4, g, scales=s, zeros=z) on the
      fake-quantized linear: scales/zeros transposed to [K/g, N]; scales stored fp16;
      intweight[k, n] = round((w_dq[n, k] + z[k/g, n]·s[k/g, n]) / s_fp16[k/g, n]) (int), i.e.
      the codes are re-derived from the dequantized weight; packed 8 per int32 along N with
      nibble slot i holding column 8c + [0,2,4,6,1,3,5,7][i]; zeros packed the same way.
  Saved model: every non-quantized tensor in fp16 (AutoAWQ loads models in fp16), quantized
  layers as {qweight int32 [K, N/8], qzeros int32 [K/g, N/8], scales fp16 [K/g, N]}, and
  config.json gets quantization_config {quant_method awq, bits 4, group_size g, zero_point true,
  version gemm}. Every Linear inside the decoder layers is quantized; lm_head is not.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quant_ref import pack_awq  # noqa: E402  (nibble order [0,2,4,6,1,3,5,7], shared with the other tests)

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def pseudo_quantize(w: torch.Tensor, group: int):
    """AutoAWQ pseudo_quantize_tensor(w_bit=4, zero_point=True), in w's dtype."""
    n, k = w.shape
    wg = w.reshape(-1, group)
    hi = wg.amax(dim=1, keepdim=True)
    lo = wg.amin(dim=1, keepdim=True)
    s = (hi - lo).clamp(min=1e-5) / 15
    z = (-torch.round(lo / s)).clamp_(0, 15)
    w_dq = (torch.clamp(torch.round(wg / s) + z, 0, 15) - z) * s
    return w_dq.reshape(n, k), s.view(n, -1), z.view(n, -1)


def from_linear(w_dq: torch.Tensor, s: torch.Tensor, z: torch.Tensor, group: int):
    """WQLinear_GEMM.from_linear: (qweight, qzeros, scales) from the fake-quantized weight."""
    n, k = w_dq.shape
    s_t, z_t = s.t().contiguous(), z.t().contiguous()  # [G, N]
    scale_zeros = z_t * s_t
    scales = s_t.clone().half()
    gi = torch.arange(k) // group
    intweight = torch.round((w_dq.t() + scale_zeros[gi]) / scales[gi]).to(torch.int32)  # [K, N]
    # The reference loop does this one input column at a time: same elementwise ops, same result.
    qweight = pack_awq(intweight.t())              # pack_awq takes codes [N, R] and packs along N
    qzeros = pack_awq(z_t.to(torch.int32).t())
    return qweight, qzeros, scales


def write(model: Path, out: Path, group: int) -> None:
    cfg = json.loads((model / "config.json").read_text())
    tensors = {}
    for f in sorted(model.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    saved = {}
    for name, t in tensors.items():
        prefix = name[: -len(".weight")]
        if name.endswith(".weight") and prefix.rsplit(".", 1)[-1] in LINEARS and ".layers." in name:
            w = t.to(torch.float16)
            if w.shape[1] % group or w.shape[0] % 8:
                sys.exit(f"{name}: shape {list(w.shape)} needs K % {group} == 0 and N % 8 == 0")
            w_dq, s, z = pseudo_quantize(w, group)
            qweight, qzeros, scales = from_linear(w_dq, s, z, group)
            saved[prefix + ".qweight"], saved[prefix + ".qzeros"], saved[prefix + ".scales"] = qweight, qzeros, scales
        else:
            saved[name] = t.to(torch.float16) if t.is_floating_point() else t
    out.mkdir(parents=True, exist_ok=True)
    save_file(saved, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True,
                                  "version": "gemm", "modules_to_not_convert": None}
    cfg["torch_dtype"] = cfg["dtype"] = "float16"
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for f in model.iterdir():
        if f.suffix in (".json", ".txt") and f.name not in ("config.json", "model.safetensors.index.json") \
                and not (out / f.name).exists():
            shutil.copy(f, out / f.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--group", type=int, default=128, choices=[32, 64, 128])
    a = ap.parse_args()
    write(a.model, a.out, a.group)
    print(f"wrote {a.out}: AWQ GEMM, group {a.group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
