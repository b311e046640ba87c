"""Fake-quant PyTorch reference for quantized checkpoints (compressed-tensors, msmodelslim, AutoAWQ).

`load(folder)` builds the transformers model from the folder's config.json in float32, loads its
float tensors, and replaces every quantized Linear with a `FakeQuantLinear` holding

  * the weight DEQUANTIZED from the files, decoded here independently of lowbit, per
    ../shared/spec/quantization.md, in float64 (codes and scales are exact in float64, so this is
    the exact value the checkpoint defines);
  * the activation rule the scheme applies at run time, with the spec's rounding:
      int per-token symmetric (W8A8/W4A8 dynamic: 8 bits, W4A4: 4 bits): s = max|x_m|/qmax,
        q = clamp(rne(x/s)) (quant_ref.act_per_token);
      msmodelslim W8A8 static: xq = clamp(rne(x·(1/s) + offset)); y = (Σ xq·wq + quant_bias)
        · deq_scale — quant_bias already holds the bias and the zero-point correction;
      compressed-tensors static int: xq = clamp(rne(x/s) + zp); y = Σ (xq − zp)·s · w;
      FP8: per-token dynamic s = amax/448, or static input_scale; e4m3 RNE of clamp(x/s, ±448);
      MX (W8A8_MXFP8, W4A8_MXFP, W4A4_MXFP4): the OCP rule floor(log2 amax) − emax, RNE,
        saturate (quant_ref.mx_quantize(..., "ocp")), as lowbit quantizes activations;
      W4A16 / AWQ: no activation quantization.
The matmul of the (de)quantized activation and weight runs in float64 and the result is cast to
float32, so the reference adds no rounding of its own beyond the model's fp32 float layers.

`decoded_weights(folder)` returns {prefix: float64 [N, K]} for cross-checks (against the float
model the checkpoint was made from, and for compressed-tensors against the library itself).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quant_ref  # noqa: E402

FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=torch.float64)


# ---- reading -----------------------------------------------------------------------------------
def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                out[k] = st.get_tensor(k)
    return out


def detect(folder: Path) -> str:
    folder = Path(folder)
    if (folder / "quant_model_description.json").exists():
        return "msmodelslim"
    qc = json.loads((folder / "config.json").read_text()).get("quantization_config")
    if qc is None:
        return "float"
    return {"compressed-tensors": "compressed-tensors", "awq": "awq"}[qc["quant_method"]]


# ---- code decoders -----------------------------------------------------------------------------
def unpack_int32_nibbles(packed: torch.Tensor, count: int) -> torch.Tensor:
    """[R, W] int32 → [R, count] int64 nibbles, element j at bits 4·(j%8) of word j/8."""
    p = packed.to(torch.int64) & 0xFFFFFFFF
    shifts = torch.arange(8, dtype=torch.int64) * 4
    nib = (p.unsqueeze(-1) >> shifts) & 0xF
    return nib.reshape(p.shape[0], -1)[:, :count]


def unpack_row_pairs(packed: torch.Tensor, n: int) -> torch.Tensor:
    """msmodelslim v1.0.0 W4A8: int8 [N/2, K], low nibble row 2j, high nibble row 2j+1 (signed)."""
    b = packed.view(torch.uint8).to(torch.int64)
    lo, hi = b & 0xF, (b >> 4) & 0xF
    rows = torch.stack([lo, hi], dim=1).reshape(-1, packed.shape[1])[:n]
    return torch.where(rows >= 8, rows - 16, rows)


def e4m3_values(bytes_u8: torch.Tensor) -> torch.Tensor:
    return bytes_u8.contiguous().view(torch.float8_e4m3fn).to(torch.float64)


def e2m1_values(codes: torch.Tensor) -> torch.Tensor:
    c = codes.to(torch.int64)
    v = FP4_VALUES[c & 7]
    return torch.where((c & 8) != 0, -v, v)


def e8m0_expand(u: torch.Tensor, k: int) -> torch.Tensor:
    """[N, K/32] uint8 → [N, K] float64 scale 2^(u−127)."""
    assert not (u == 255).any(), "E8M0 0xFF (NaN) in a checkpoint"
    return torch.ldexp(torch.ones(u.shape, dtype=torch.float64), u.to(torch.int64) - 127).repeat_interleave(32, dim=1)[:, :k]


def fp4_unpack(packed: torch.Tensor, k: int) -> torch.Tensor:
    b = packed.to(torch.int64)
    return torch.stack([b & 0xF, (b >> 4) & 0xF], dim=-1).reshape(b.shape[0], -1)[:, :k]


def group_expand(t: torch.Tensor, k: int, g: int) -> torch.Tensor:
    """[N, G] per-group values → [N, K]."""
    return t.to(torch.float64).repeat_interleave(g, dim=1)[:, :k]


# ---- activation rules --------------------------------------------------------------------------
def act_int_per_token(x: torch.Tensor, bits: int) -> torch.Tensor:
    q, s = quant_ref.act_per_token(x.float(), bits)
    return q.to(torch.float64) * s.to(torch.float64).unsqueeze(-1)


def act_fp8(x: torch.Tensor, static_scale: float | None) -> torch.Tensor:
    x = x.float()
    if static_scale is None:
        s = x.abs().amax(dim=-1, keepdim=True) / 448.0
        s = torch.where(s == 0, torch.ones_like(s), s)
    else:
        s = torch.tensor(static_scale, dtype=torch.float32)
    q = (x / s).clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.float64)
    return q * s.to(torch.float64)


def act_mx(x: torch.Tensor, elem: str) -> torch.Tensor:
    k = x.shape[-1]
    codes, u = quant_ref.mx_quantize(x.float().reshape(-1, k), elem, "ocp")
    vals = e4m3_values(codes) if elem == "e4m3" else e2m1_values(codes)
    return (vals * e8m0_expand(u, k)).reshape(x.shape)


# ---- the module --------------------------------------------------------------------------------
class FakeQuantLinear(torch.nn.Module):
    """y = act(x) · W_dqᵀ (+ bias) in float64, returned as float32. `static` holds msmodelslim
    W8A8's integer path (wq, quant_bias, deq_scale, input_scale, input_offset)."""

    def __init__(self, w: torch.Tensor, act, bias=None, static=None, name=""):
        super().__init__()
        self.w, self.act, self.bias, self.static, self.name = w, act, bias, static, name

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if self.static is not None:
            st = self.static
            xq = quant_ref.act_static(x2.float(), st["input_scale"], st["input_offset"]).to(torch.float64)
            y = (xq @ st["wq"].t() + st["quant_bias"]) * st["deq_scale"]
        else:
            y = self.act(x2) @ self.w.t()
            if self.bias is not None:
                y = y + self.bias
        return y.to(torch.float32).reshape(*shape[:-1], -1)


def _none(x):
    return x.to(torch.float64)


# ---- compressed-tensors ------------------------------------------------------------------------
def decode_compressed_tensors(folder: Path, tensors: dict):
    qc = json.loads((Path(folder) / "config.json").read_text())["quantization_config"]
    assert len(qc["config_groups"]) == 1, "one config group expected"
    group = next(iter(qc["config_groups"].values()))
    wargs, aargs = group["weights"], group.get("input_activations")
    layers = {}
    for name in tensors:
        if not name.endswith(".weight_scale"):
            continue
        p = name[: -len(".weight_scale")]
        s = tensors[name].to(torch.float64)
        if p + ".weight_packed" in tensors:
            n, k = tensors[p + ".weight_shape"].tolist()
            q = unpack_int32_nibbles(tensors[p + ".weight_packed"], k) - 8
            g = k if wargs["strategy"] == "channel" else wargs["group_size"]
            if p + ".weight_zero_point" in tensors:
                zp = unpack_int32_nibbles(tensors[p + ".weight_zero_point"].t().contiguous(), n).t() - 8  # packed along N
            else:
                zp = torch.zeros_like(s, dtype=torch.int64)
            if p + ".weight_g_idx" in tensors:
                gi = tensors[p + ".weight_g_idx"].to(torch.int64)
                w = (q - zp[:, gi]).to(torch.float64) * s[:, gi]
            else:
                w = (q - group_expand(zp, k, g)).to(torch.float64) * group_expand(s, k, g)
        else:
            wt = tensors[p + ".weight"]
            codes = e4m3_values(wt.view(torch.uint8)) if wt.dtype == torch.float8_e4m3fn else wt.to(torch.float64)
            assert wargs["strategy"] in ("tensor", "channel"), wargs["strategy"]
            w = codes * (s.reshape(-1, 1) if s.numel() > 1 else s.reshape(1, 1))
        bias = tensors[p + ".bias"].to(torch.float64) if p + ".bias" in tensors else None
        if aargs is None:
            act = _none
        elif aargs["type"] == "float":
            st = None if aargs.get("dynamic") else float(tensors[p + ".input_scale"].float().reshape(()))
            act = (lambda x, st=st: act_fp8(x, st))
        elif aargs.get("dynamic"):
            act = (lambda x, b=aargs["num_bits"]: act_int_per_token(x, b))
        else:
            sx = tensors[p + ".input_scale"].float().reshape(())
            zx = tensors[p + ".input_zero_point"].float().reshape(()) if p + ".input_zero_point" in tensors \
                else torch.tensor(0.0)

            def act(x, sx=sx, zx=zx):  # compressed-tensors _quantize/_dequantize, fp32
                xq = (x.float() / sx + zx).round().clamp(-128, 127)
                return (xq - zx).to(torch.float64) * sx.to(torch.float64)
        layers[p] = FakeQuantLinear(w, act, bias, name=p)
    return layers


# ---- msmodelslim -------------------------------------------------------------------------------
MS_ACT = {
    "W8A8_DYNAMIC": lambda x: act_int_per_token(x, 8),
    "W4A8_DYNAMIC": lambda x: act_int_per_token(x, 8),
    "W4A4_DYNAMIC": lambda x: act_int_per_token(x, 4),
    "W8A8_MXFP8": lambda x: act_mx(x, "e4m3"),
    "W4A8_MXFP": lambda x: act_mx(x, "e4m3"),
    "W4A4_MXFP4": lambda x: act_mx(x, "e2m1"),
}


def _deq_scale(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.int64:  # fp32 bit pattern in the low 32 bits (older fp16 models)
        return (t & 0xFFFFFFFF).to(torch.int32).view(torch.float32).to(torch.float64)
    return t.to(torch.float64)


def decode_msmodelslim(folder: Path, tensors: dict):
    desc = json.loads((Path(folder) / "quant_model_description.json").read_text())
    packed = desc.get("version") == "1.0.0"
    gsize = int(desc.get("group_size") or 0)
    layers = {}
    for name, kind in desc.items():
        if not (isinstance(kind, str) and name.endswith(".weight")) or kind == "FLOAT":
            continue
        p = name[: -len(".weight")]
        wt = tensors[name]
        bias = tensors[p + ".bias"].to(torch.float64) if p + ".bias" in tensors else None
        if kind == "W8A8":
            wq = wt.to(torch.float64)
            st = {"wq": wq, "quant_bias": tensors[p + ".quant_bias"].to(torch.float64),
                  "deq_scale": _deq_scale(tensors[p + ".deq_scale"]),
                  "input_scale": float(tensors[p + ".input_scale"].float().reshape(())),
                  "input_offset": float(tensors[p + ".input_offset"].float().reshape(()))}
            w = wq * (st["deq_scale"] / st["input_scale"]).unsqueeze(1)  # for weight checks only
            layers[p] = FakeQuantLinear(w, None, static=st, name=p)
            continue
        scale = tensors[p + ".weight_scale"]
        if kind in ("W8A8_DYNAMIC", "W4A4_DYNAMIC"):
            w = wt.to(torch.float64) * scale.to(torch.float64).reshape(-1, 1)
        elif kind == "W4A8_DYNAMIC":
            n = scale.shape[0]
            q = unpack_row_pairs(wt, n) if packed else wt.to(torch.int64)
            k = q.shape[1]
            w = q.to(torch.float64) * scale.to(torch.float64).reshape(-1, 1)
            if p + ".weight_scale_second" in tensors:
                # w = q · scale_second[n, k/g] · weight_scale[n]. g from the shapes: files written
                # with save_type safe_tensor (the old layout) carry no group_size key.
                second = tensors[p + ".weight_scale_second"]
                g = k // second.shape[1]
                assert gsize in (0, g) and g * second.shape[1] == k, f"{p}: group {g} vs JSON {gsize}"
                w = w * group_expand(second, k, g)
        elif kind == "W8A8_MXFP8":
            k = wt.shape[1]
            w = e4m3_values(wt.view(torch.uint8)) * e8m0_expand(scale, k)
        elif kind in ("W4A8_MXFP", "W4A4_MXFP4"):
            k = wt.shape[1] * 2
            w = e2m1_values(fp4_unpack(wt, k)) * e8m0_expand(scale, k)
        else:
            raise ValueError(f"{name}: msmodelslim type {kind} not covered by the reference")
        layers[p] = FakeQuantLinear(w, MS_ACT[kind], bias, name=p)
    return layers


# ---- AWQ ---------------------------------------------------------------------------------------
AWQ_SLOT_OF_COLUMN = [0, 4, 1, 5, 2, 6, 3, 7]  # column 8c+j sits in nibble slot [..][j]


def decode_awq(folder: Path, tensors: dict):
    qc = json.loads((Path(folder) / "config.json").read_text())["quantization_config"]
    g = qc["group_size"]
    layers = {}
    for name in tensors:
        if not name.endswith(".qweight"):
            continue
        p = name[: -len(".qweight")]

        def unpack(t):  # [R, N/8] int32 → [R, N]
            nib = unpack_int32_nibbles(t, t.shape[1] * 8).reshape(t.shape[0], -1, 8)
            return nib[:, :, AWQ_SLOT_OF_COLUMN].reshape(t.shape[0], -1)

        q, z = unpack(tensors[name]), unpack(tensors[p + ".qzeros"])  # [K, N], [K/g, N]
        s = tensors[p + ".scales"].to(torch.float64)                  # [K/g, N]
        k = q.shape[0]
        gi = torch.arange(k) // g
        w = ((q - z[gi]).to(torch.float64) * s[gi]).t().contiguous()  # [N, K]
        bias = tensors[p + ".bias"].to(torch.float64) if p + ".bias" in tensors else None
        layers[p] = FakeQuantLinear(w, _none, bias, name=p)
    return layers


DECODERS = {"float": lambda folder, tensors: {}, "compressed-tensors": decode_compressed_tensors, "msmodelslim": decode_msmodelslim, "awq": decode_awq}


def quantized_layers(folder: Path, tensors: dict | None = None) -> dict[str, FakeQuantLinear]:
    tensors = read_tensors(folder) if tensors is None else tensors
    return DECODERS[detect(folder)](folder, tensors)


def decoded_weights(folder: Path) -> dict[str, torch.Tensor]:
    return {p: m.w for p, m in quantized_layers(folder).items()}


# ---- the model ---------------------------------------------------------------------------------
def load(folder: Path):
    """The transformers model (fp32, eval) with the quantized Linears replaced."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    cfg_dict = json.loads((folder / "config.json").read_text())
    cfg_dict.pop("quantization_config", None)
    cfg = AutoConfig.for_model(**{k: v for k, v in cfg_dict.items() if k != "model_type"},
                               model_type=cfg_dict["model_type"])
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    tensors = read_tensors(folder)
    layers = quantized_layers(folder, tensors)
    state = model.state_dict()
    loaded = set()
    for name, t in tensors.items():
        if name in state and t.is_floating_point() and not any(name.startswith(p + ".") for p in layers):
            state[name].copy_(t.to(torch.float32))
            loaded.add(name)
    for p, mod in layers.items():
        parent, child = p.rsplit(".", 1)
        setattr(model.get_submodule(parent), child, mod)
    expected = {n for n in state if not any(n.startswith(p + ".") for p in layers)}
    if getattr(cfg, "tie_word_embeddings", False):
        expected.discard("lm_head.weight")
    missing = expected - loaded
    assert not missing, f"{folder}: float tensors missing from the checkpoint: {sorted(missing)[:5]}"
    if getattr(cfg, "tie_word_embeddings", False):
        model.tie_weights()
    return model


@torch.no_grad()
def logits(model, ids: list[int]) -> torch.Tensor:
    """Logits [len(ids), V] for one sequence in one causal forward pass."""
    return model(torch.tensor([ids])).logits[0].float()
