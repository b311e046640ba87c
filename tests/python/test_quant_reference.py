"""Bit-exactness of lowbit's reference quantizers and packers (src/kernels/reference/
quantize_ref.cc, src/core/int4_packing.cc), driven through the test-only `quant_tool`.

Compared against (1) tests/reference/quant_ref.py, torch re-implementations of the upstream
writers, always; and (2) the real `compressed_tensors` library (calculate_qparams, quantize,
pack_to_int32) when it is importable (the repo's .venv has it), or through the interpreter
named by LOWBIT_CT_PYTHON. Integer codes must be equal and scales bit-identical (stricter than the 1-ulp allowance: the arithmetic is the same
sequence of correctly rounded operations, so there is no reason for any difference).
Run through CTest (which sets LOWBIT_BUILD_DIR) or by hand:
  LOWBIT_BUILD_DIR=build-quant .venv/bin/python -m pytest -q tests/python/test_quant_reference.py
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LOWBIT_BUILD_DIR", REPO / "build"))
TOOL = BUILD / "src" / "kernels" / "quant_tool"
sys.path.insert(0, str(REPO / "tests" / "reference"))
import quant_ref as ref  # noqa: E402

try:
    import compressed_tensors  # noqa: F401
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import quantize as ct_quantize
    from compressed_tensors.quantization.utils import calculate_qparams
    HAVE_CT = True
except ImportError:
    HAVE_CT = False
needs_ct = pytest.mark.skipif(not HAVE_CT, reason="compressed_tensors not importable here "
                              "(test_upstream_in_other_venv runs these elsewhere)")
# Another interpreter that has compressed_tensors, for when this one lacks it.
CT_PYTHON = os.environ.get("LOWBIT_CT_PYTHON")

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def tool(req):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} is missing: build the quant_tool target")
    r = subprocess.run([str(TOOL)], input=json.dumps(req), capture_output=True, text=True)
    out = json.loads(r.stdout)
    if r.returncode != 0:
        raise AssertionError(f"quant_tool failed: {out.get('error', r.stderr)}")
    return out


def bits(t):
    """fp32 bit patterns as unsigned ints, the way quant_tool writes them."""
    return [v & 0xFFFFFFFF for v in t.to(torch.float32).contiguous().view(torch.int32).reshape(-1).tolist()]


def from_bits(lst):
    return torch.tensor([v - 2**32 if v >= 2**31 else v for v in lst], dtype=torch.int32).view(torch.float32)


def sample(n, k, seed, dtype=torch.float32):
    """Gaussian weights with the edge cases that matter: an all-zero row, an outlier, an
    all-positive row, a constant row, and values on rounding ties."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    w[0] = 0
    w[1, 3] = 50.0
    w[2] = w[2].abs() + 0.1
    if n > 3:
        w[3] = 0.75
    if n > 4:
        w[4, :8] = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 3.5, 127.5, -127.5])
    return w.to(dtype)


def assert_same(ours, theirs, what):
    theirs = theirs.reshape(-1)
    assert len(ours) == theirs.numel(), what
    mism = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs.tolist())) if a != b]
    assert not mism, f"{what}: {len(mism)} mismatches, first {mism[:5]}"


def assert_same_floats(our_bits, theirs, what):
    theirs_bits = bits(theirs.to(torch.float32))
    assert_same(our_bits, torch.tensor(theirs_bits), what)


# ---- against tests/reference/quant_ref.py --------------------------------------------------
@pytest.mark.parametrize("dt", ["f32", "bf16"])
@pytest.mark.parametrize("group", [0, 32])
@pytest.mark.parametrize("bits_", [8, 4])
@pytest.mark.parametrize("rule", ["qmax", "ct"])
def test_weight_sym(rule, bits_, group, dt):
    w = sample(8, 96, 1, DTYPES[dt])
    out = tool({"op": "weight_sym", "x": bits(w), "n": 8, "k": 96, "bits": bits_,
                "group": group, "rule": rule, "compute": dt})
    fn = ref.weight_sym_qmax if rule == "qmax" else ref.weight_sym_ct
    q, s = fn(w, bits_, group)
    assert_same(out["q"], q, "codes")
    assert_same_floats(out["scale"], s, "scales")


@pytest.mark.parametrize("dt", ["f32", "bf16"])
@pytest.mark.parametrize("group", [0, 32])
@pytest.mark.parametrize("bits_", [8, 4])
def test_weight_asym_ct(bits_, group, dt):
    w = sample(8, 64, 2, DTYPES[dt])
    out = tool({"op": "weight_asym_ct", "x": bits(w), "n": 8, "k": 64, "bits": bits_,
                "group": group, "compute": dt})
    q, s, z = ref.weight_asym_ct(w, bits_, group)
    assert_same(out["q"], q, "codes")
    assert_same_floats(out["scale"], s, "scales")
    assert_same(out["zero"], z, "zero points")


@pytest.mark.parametrize("dt", ["f32", "bf16", "f16"])
@pytest.mark.parametrize("group", [32, 64])
def test_weight_awq(group, dt):
    w = sample(8, 128, 3, DTYPES[dt])
    out = tool({"op": "weight_awq", "x": bits(w), "n": 8, "k": 128, "group": group,
                "compute": dt})
    q, s, z = ref.weight_awq(w, group)
    assert_same(out["q"], q, "codes")
    assert_same_floats(out["scale"], s, "scales")
    assert_same(out["zero"], z, "zeros")


@pytest.mark.parametrize("bits_", [8, 4])
def test_act_per_token(bits_):
    x = sample(6, 80, 4)
    out = tool({"op": "act_token", "x": bits(x), "m": 6, "k": 80, "bits": bits_})
    q, s = ref.act_per_token(x, bits_)
    assert_same(out["q"], q, "codes")
    assert_same_floats(out["scale"], s, "scales")


def test_act_static():
    x = sample(4, 64, 5) * 3
    scale, offset = 0.0371, -5.0
    sb = bits(torch.tensor([scale]))[0]
    ob = bits(torch.tensor([offset]))[0]
    out = tool({"op": "act_static", "x": bits(x), "scale": sb, "offset": ob})
    assert_same(out["q"], ref.act_static(x, from_bits([sb])[0].item(), offset), "codes")


def test_calibrate_static():
    g = torch.Generator().manual_seed(13)
    ranges = [(-1.0, 1.0), (0.5, 2.0), (-3.0, -0.25), (0.0, 0.0), (-7.3, 0.001)]
    ranges += [tuple(sorted(p)) for p in (torch.randn(20, 2, generator=g) * 5).tolist()]
    for lo, hi in ranges:
        lo_t, hi_t = torch.tensor([lo]), torch.tensor([hi])
        out = tool({"op": "calibrate", "lo": bits(lo_t)[0], "hi": bits(hi_t)[0]})
        s, off = ref.calibrate_static(lo_t, hi_t)
        assert_same_floats([out["scale"]], s, f"scale for {lo, hi}")
        assert_same_floats([out["offset"]], off, f"offset for {lo, hi}")


@pytest.mark.parametrize("elem,rule", [("e4m3", "ocp"), ("e2m1", "ocp"), ("e4m3", "msfp8"),
                                       ("e2m1", "msfp4")])
def test_mx(elem, rule):
    x = sample(6, 128, 6)
    x[5, 32:64] *= 1e-30  # tiny block: exponent near the bottom of the E8M0 range
    # Blocks whose exponent is 0 under every rule, holding exact rounding ties, so that
    # half-even and half-away rounding give different codes.
    x[3, :8] = torch.tensor([300.0, 1.0625, 1.1875, 17.0, 19.0, 2.0**-10, -1.0625, -17.0])
    x[4, :10] = torch.tensor([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -2.5, -5.0])
    out = tool({"op": "mx", "x": bits(x), "m": 6, "k": 128, "elem": elem, "rule": rule})
    q, u = ref.mx_quantize(x, elem, rule)
    assert_same(out["scale"], u, "E8M0 scales")
    assert_same(out["q"], q, "element codes")


def test_mx_rejects_ragged_k():
    with pytest.raises(AssertionError, match="32"):
        tool({"op": "mx", "x": bits(torch.ones(1, 40)), "m": 1, "k": 40, "elem": "e4m3",
              "rule": "ocp"})


@pytest.mark.parametrize("dt", ["f32", "bf16"])
@pytest.mark.parametrize("gran", ["tensor", "channel", "block"])
def test_fp8_weight(gran, dt):
    w = sample(130, 160, 7, DTYPES[dt])
    out = tool({"op": "fp8_weight", "x": bits(w), "n": 130, "k": 160, "gran": gran,
                "block": 128, "compute": dt})
    q, s = ref.fp8_weight(w, gran)
    assert_same_floats(out["scale"], s, "scales")
    assert_same(out["q"], q, "codes")


@pytest.mark.parametrize("fmt", ["e4m3", "e4m3_away", "e2m1", "e2m1_away"])
def test_encode(fmt):
    g = torch.Generator().manual_seed(8)
    x = torch.ldexp(torch.rand(4000, generator=g) * 2 - 1,
                    torch.randint(-12, 11, (4000,), generator=g).float())
    if fmt.startswith("e4m3"):
        grid = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
        extra = [1e9, 464.0, 500.0, float("inf"), -float("inf")]
    else:
        grid = ref.FP4_VALUES
        extra = [6.5, 100.0, 5.0, float("inf")]
    ties = (grid[1:] + grid[:-1]) / 2
    x = torch.cat([x, grid, -grid, ties, -ties, torch.tensor(extra)])
    out = tool({"op": "encode", "x": bits(x), "fmt": fmt})
    away = fmt.endswith("away")
    want = ref.fp8_e4m3_codes(x, away) if fmt.startswith("e4m3") else ref.fp4_e2m1_codes(x, away)
    assert_same(out["q"], want, fmt)


@pytest.mark.parametrize("n,k", [(16, 24), (7, 13), (8, 1)])
def test_pack(n, k):
    g = torch.Generator().manual_seed(9)
    s = torch.randint(-8, 8, (n, k), generator=g, dtype=torch.int8)
    u = torch.randint(0, 16, (n, k), generator=g, dtype=torch.int8)
    req = {"op": "pack", "n": n, "k": k}
    assert_same(tool({**req, "codes": s.reshape(-1).tolist(), "enc": "row_pairs"})["packed"],
                ref.pack_row_pairs(s), "row pairs")
    assert_same(tool({**req, "codes": s.reshape(-1).tolist(), "enc": "int32k"})["packed"],
                ref.pack_int32_k(s), "int32 along K")
    assert_same(tool({**req, "codes": u.reshape(-1).tolist(), "enc": "fp4"})["packed"],
                ref.pack_fp4(u), "fp4")
    if n % 8 == 0:
        assert_same(tool({**req, "codes": u.reshape(-1).tolist(), "enc": "awq"})["packed"],
                    ref.pack_awq(u), "awq")


# ---- against the real compressed_tensors -----------------------------------------------------
def ct_args(bits_, group, symmetric, typ="int"):
    if group:
        return QuantizationArgs(num_bits=bits_, type=typ, symmetric=symmetric, strategy="group",
                                group_size=group)
    return QuantizationArgs(num_bits=bits_, type=typ, symmetric=symmetric, strategy="channel")


def ct_minmax(w, group):
    wg = ref._groups(w, group)
    return wg.amin(dim=-1), wg.amax(dim=-1)


@needs_ct
@pytest.mark.parametrize("dt", ["f32", "bf16"])
@pytest.mark.parametrize("group", [0, 16, 32])
@pytest.mark.parametrize("bits_", [8, 4])
@pytest.mark.parametrize("symmetric", [True, False])
def test_compressed_tensors_int(symmetric, bits_, group, dt):
    w = sample(8, 96, 10, DTYPES[dt])
    n, k = w.shape
    args = ct_args(bits_, group, symmetric)
    lo, hi = ct_minmax(w, group)
    scale, zp = calculate_qparams(lo, hi, args)
    q = ct_quantize(w, scale, zp, args, dtype=torch.int8)
    op = "weight_sym" if symmetric else "weight_asym_ct"
    out = tool({"op": op, "x": bits(w), "n": n, "k": k, "bits": bits_, "group": group,
                "rule": "ct", "compute": dt})
    assert_same_floats(out["scale"], scale, "scales vs compressed_tensors")
    assert_same(out["q"], q, "codes vs compressed_tensors")
    if not symmetric:
        assert_same(out["zero"], zp, "zero points vs compressed_tensors")


@needs_ct
@pytest.mark.parametrize("dt", ["f32", "bf16"])
@pytest.mark.parametrize("strategy", ["tensor", "channel"])
def test_compressed_tensors_fp8(strategy, dt):
    w = sample(8, 96, 11, DTYPES[dt])
    args = QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy=strategy)
    if strategy == "tensor":
        lo, hi = w.amin().reshape(1), w.amax().reshape(1)
    else:
        lo, hi = w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    scale, zp = calculate_qparams(lo, hi, args)
    q = ct_quantize(w, scale, zp, args, dtype=torch.float8_e4m3fn).view(torch.uint8)
    out = tool({"op": "fp8_weight", "x": bits(w), "n": 8, "k": 96, "gran": strategy,
                "compute": dt})
    assert_same_floats(out["scale"], scale, "scales vs compressed_tensors")
    assert_same(out["q"], q, "codes vs compressed_tensors")


@needs_ct
@pytest.mark.parametrize("n,k", [(16, 24), (9, 13), (3, 64)])
def test_compressed_tensors_pack(n, k):
    g = torch.Generator().manual_seed(12)
    s = torch.randint(-8, 8, (n, k), generator=g, dtype=torch.int8)
    out = tool({"op": "pack", "n": n, "k": k, "codes": s.reshape(-1).tolist(), "enc": "int32k"})
    assert_same(out["packed"], pack_to_int32(s, 4, packed_dim=1), "weight_packed")
    # Zero points [N, G] are packed along N (packed_dim=0) into [ceil(N/8), G].
    out = tool({"op": "pack", "n": n, "k": k, "codes": s.reshape(-1).tolist(), "enc": "zp_n"})
    assert_same(out["packed"], pack_to_int32(s, 4, packed_dim=0), "weight_zero_point")


@pytest.mark.skipif(HAVE_CT, reason="compressed_tensors is importable: tests above ran here")
def test_upstream_in_other_venv():
    """Runs the compressed_tensors comparisons under CT_PYTHON when this interpreter lacks the
    library, so CTest (which uses the repo's .venv) still checks against upstream."""
    if not CT_PYTHON or not Path(CT_PYTHON).exists():
        pytest.skip("set LOWBIT_CT_PYTHON to an interpreter that has compressed_tensors")
    r = subprocess.run([CT_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-k", "compressed_tensors", __file__],
                       capture_output=True, text=True, env={**os.environ, "LOWBIT_BUILD_DIR": str(BUILD)})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout, r.stdout[-2000:]
