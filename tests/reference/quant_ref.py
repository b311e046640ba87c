"""Python references for lowbit's quantizers and packers, written from
shared/spec/quantization.md with torch, mirroring the upstream writers operation by
operation (compressed-tensors calculate_qparams/_quantize, AutoAWQ pseudo_quantize_tensor and
awq/utils/packing_utils.py, msmodelslim's MX rules as the spec states them). Every function
computes in the dtype of its input tensor, as the upstream code does, so bf16 inputs give
bf16-rounded intermediates.

Used by tests/python/test_quant_reference.py; torch is the only dependency.
"""
import math

import torch

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble slot i holds column 8c + AWQ_ORDER[i]
FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
FP8_MAX = 448.0


def _groups(w, group):
    """[N, K] → [N, G, g] (group 0 = one group of K)."""
    n, k = w.shape
    g = k if group == 0 else group
    assert k % g == 0 or k < g
    if k < g:
        g = k
    return w.reshape(n, k // g, g)


# ---- integer weights -------------------------------------------------------------------
def weight_sym_qmax(w, bits, group):
    """msmodelslim calculate_int_qparam + int_quantize, symmetric: s = max(amax / qmax, eps32),
    q = clamp(round(w / s)). Also lowbit's rule for online quantization."""
    qmax = 2 ** (bits - 1) - 1
    wg = _groups(w, group)
    eps = torch.tensor([torch.finfo(torch.float32).eps]).type_as(w)
    lo = torch.minimum(wg.amin(dim=-1, keepdim=True), torch.zeros((), dtype=w.dtype))
    hi = torch.maximum(wg.amax(dim=-1, keepdim=True), torch.zeros((), dtype=w.dtype))
    s = torch.max(torch.max(-lo, hi) / float(qmax), eps)
    q = (wg / s).round().clamp(-qmax - 1, qmax).to(torch.int8)
    return q.reshape(w.shape), s.squeeze(-1)


def _eps(dtype):
    return torch.finfo(dtype).eps


def weight_sym_ct(w, bits, group):
    """compressed-tensors symmetric int: range includes 0, s = amax / ((qmax - qmin) / 2)."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    wg = _groups(w, group)
    lo = torch.minimum(wg.amin(dim=-1, keepdim=True), torch.zeros((), dtype=w.dtype))
    hi = torch.maximum(wg.amax(dim=-1, keepdim=True), torch.zeros((), dtype=w.dtype))
    amax = torch.maximum(lo.abs(), hi.abs())
    s = amax / (torch.tensor(float(qmax - qmin)).to(w.dtype) / 2)
    s = torch.where(s == 0, torch.tensor(_eps(w.dtype), dtype=w.dtype), s)
    q = (wg / s).clamp(qmin, qmax).round().to(torch.int8)
    return q.reshape(w.shape), s.squeeze(-1)


def weight_asym_ct(w, bits, group):
    """compressed-tensors asymmetric int: zp = round(clamp(qmin - min / s)), q = rne(w/s + zp)."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    wg = _groups(w, group)
    lo = torch.minimum(wg.amin(dim=-1, keepdim=True), torch.zeros((), dtype=w.dtype))
    hi = torch.maximum(wg.amax(dim=-1, keepdim=True), torch.zeros((), dtype=w.dtype))
    s = (hi - lo) / torch.tensor(float(qmax - qmin)).to(w.dtype)
    zp = torch.tensor(float(qmin)) - lo / s
    zp = zp.clamp(qmin, qmax)
    s = torch.where(s == 0, torch.tensor(_eps(w.dtype), dtype=w.dtype), s)
    zp = torch.nan_to_num(zp, nan=0.0).round().to(torch.int8)
    scaled = wg / s
    scaled = scaled + zp.to(w.dtype)
    q = scaled.clamp(qmin, qmax).round().to(torch.int8)
    return q.reshape(w.shape), s.squeeze(-1), zp.squeeze(-1)


def weight_awq(w, group):
    """AutoAWQ pseudo_quantize_tensor(w_bit=4, zero_point=True): unsigned codes and zeros."""
    wg = _groups(w, group)
    hi = wg.amax(dim=-1, keepdim=True)
    lo = wg.amin(dim=-1, keepdim=True)
    s = (hi - lo).clamp(min=1e-5) / 15
    z = (-torch.round(lo / s)).clamp_(0, 15)
    q = torch.clamp(torch.round(wg / s) + z, 0, 15).to(torch.int8)
    return q.reshape(w.shape), s.squeeze(-1), z.squeeze(-1).to(torch.int8)


# ---- activations -----------------------------------------------------------------------
def act_per_token(x, bits):
    qmax = 2 ** (bits - 1) - 1
    s = x.abs().amax(dim=-1, keepdim=True) / qmax
    q = torch.where(s == 0, torch.zeros_like(x), x / torch.where(s == 0, 1, s))
    return q.clamp(-qmax - 1, qmax).round().to(torch.int8), s.squeeze(-1)


def calibrate_static(lo, hi):
    """msmodelslim calculate_int_qparam, asymmetric signed int8 (fp32 tensors lo, hi)."""
    eps = torch.tensor([torch.finfo(torch.float32).eps])
    lo = torch.minimum(lo, torch.zeros_like(lo))
    hi = torch.maximum(hi, torch.zeros_like(hi))
    scale = torch.max(hi / 255 - lo / 255, eps)
    offset = (-1 * lo / scale).round() + -128
    return scale, offset


def act_static(x, scale, offset):
    """msmodelslim W8A8 as SGLang runs it: x · (1/s) + offset, round half even, clamp."""
    inv = torch.tensor(1.0, dtype=torch.float32) / torch.tensor(scale, dtype=torch.float32)
    return (x * inv + offset).round().clamp(-128, 127).to(torch.int8)


# ---- small floats ----------------------------------------------------------------------
def _round_to_grid(ax, mant_bits, min_normal_exp, vmax, half_away):
    """|x| onto the E(e)M(m) grid: step = 2^(floor(log2 |x|) - m), subnormal step below."""
    ax = ax.to(torch.float32)
    _, e = torch.frexp(ax)
    e = torch.clamp(e - 1, min=min_normal_exp)
    units = torch.ldexp(ax, -(e - mant_bits).to(torch.float32))
    r = torch.floor(units + 0.5) if half_away else torch.round(units)
    v = torch.ldexp(r, (e - mant_bits).to(torch.float32))
    return torch.clamp(torch.where(ax >= vmax, torch.tensor(vmax), v), max=vmax)


def fp8_e4m3_codes(x, half_away=False):
    """E4M3 bytes, saturating. RNE is torch's own cast; half-away is built on the grid."""
    if not half_away:
        return x.to(torch.float32).to(torch.float8_e4m3fn).view(torch.uint8)
    v = _round_to_grid(x.abs(), 3, -6, FP8_MAX, True)
    return torch.copysign(v, x.to(torch.float32)).to(torch.float8_e4m3fn).view(torch.uint8)


def fp4_e2m1_codes(x, half_away=False):
    v = _round_to_grid(x.abs(), 1, 0, 6.0, half_away)
    idx = torch.searchsorted(FP4_VALUES, v)  # exact matches: v is on the grid
    return (idx | torch.where(torch.signbit(x), 8, 0)).to(torch.uint8)


def mx_quantize(x, elem, rule):
    """[M, K] → (codes [M, K] uint8, E8M0 [M, K/32] uint8), rules as the spec words them."""
    m, k = x.shape
    assert k % 32 == 0
    xb = x.to(torch.float32).reshape(m, k // 32, 32)
    amax = xb.abs().amax(dim=-1)
    _, fe = torch.frexp(amax)
    floor_log2 = fe - 1
    if rule == "ocp":
        e = floor_log2 - (8 if elem == "e4m3" else 2)
    elif rule == "msfp8":
        e = floor_log2 - 8
    else:  # msmodelslim calculate_mxfp4_qparam: floor(log2(amax / (1 - 0.5^3) + 9.6e-7)) - 2
        _, fe2 = torch.frexp(amax / 0.875 + 9.6e-7)
        e = fe2 - 1 - 2
    if rule != "msfp4":
        e = torch.where(amax == 0, torch.full_like(e, -127), e)
    flush = (amax == 0) | ((e < -127) & (rule == "msfp4"))
    e = torch.clamp(e, -127, 127)
    u = (e + 127).to(torch.uint8)
    scaled = torch.ldexp(xb, -e.unsqueeze(-1).to(torch.float32))
    scaled = torch.where(flush.unsqueeze(-1), torch.zeros_like(scaled), scaled)
    half_away = rule != "ocp"
    codes = fp8_e4m3_codes(scaled, half_away) if elem == "e4m3" else fp4_e2m1_codes(scaled, half_away)
    return codes.reshape(m, k), u


def fp8_weight(w, gran, block=128):
    """compressed-tensors float8: s = amax / 448 per tensor / row / block, zero → eps."""
    n, k = w.shape
    if gran == "tensor":
        tn, tk = n, k
    elif gran == "channel":
        tn, tk = 1, k
    else:
        tn, tk = block, block
    gn, gk = math.ceil(n / tn), math.ceil(k / tk)
    s = torch.empty(gn, gk, dtype=w.dtype)
    q = torch.empty(n, k, dtype=torch.uint8)
    for i in range(gn):
        for j in range(gk):
            t = w[i * tn:(i + 1) * tn, j * tk:(j + 1) * tk]
            sc = t.abs().amax() / torch.tensor(FP8_MAX).to(w.dtype)
            sc = torch.where(sc == 0, torch.tensor(_eps(w.dtype), dtype=w.dtype), sc)
            s[i, j] = sc
            q[i * tn:(i + 1) * tn, j * tk:(j + 1) * tk] = fp8_e4m3_codes(
                (t / sc).clamp(-FP8_MAX, FP8_MAX))
    return q, s.reshape(-1)


# ---- packing ---------------------------------------------------------------------------
def pack_row_pairs(q):
    n, k = q.shape
    if n % 2:
        q = torch.cat([q, torch.zeros(1, k, dtype=q.dtype)])
    lo = q[0::2].to(torch.int32) & 0xF
    hi = q[1::2].to(torch.int32) & 0xF
    return (lo | (hi << 4)).to(torch.uint8).view(torch.int8)


def pack_int32_k(q):
    """compressed-tensors pack-quantized, as its docs describe: k at bits 4·(k%8), +8."""
    n, k = q.shape
    words = math.ceil(k / 8)
    v = torch.zeros(n, words * 8, dtype=torch.int64)
    v[:, :k] = q.to(torch.int64) + 8
    shifts = torch.arange(8, dtype=torch.int64) * 4
    packed = (v.reshape(n, words, 8) << shifts).sum(-1)
    return (packed - (packed >= 2 ** 31).to(torch.int64) * 2 ** 32).to(torch.int32)


def pack_awq(q):
    """AutoAWQ GEMM: codes [N, R] (unsigned) → int32 [R, N/8], slot i ← column 8c+AWQ_ORDER[i]."""
    n, r = q.shape
    t = q.t().to(torch.int64).reshape(r, n // 8, 8)[:, :, AWQ_ORDER]
    shifts = torch.arange(8, dtype=torch.int64) * 4
    packed = (t << shifts).sum(-1)
    return (packed - (packed >= 2 ** 31).to(torch.int64) * 2 ** 32).to(torch.int32)


def pack_fp4(codes):
    n, k = codes.shape
    if k % 2:
        codes = torch.cat([codes, torch.zeros(n, 1, dtype=codes.dtype)], dim=1)
    c = codes.to(torch.int32)
    return (c[:, 0::2] | (c[:, 1::2] << 4)).to(torch.uint8)
