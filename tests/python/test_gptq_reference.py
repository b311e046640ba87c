"""`lowbit quantize --algorithm gptq` against GPTQ written here from the paper, and against
llm-compressor's own GPTQ quantize_weight, on the layers of a tiny random Qwen3 (bf16, hidden 256,
intermediate 512, 2 layers).

lowbit writes each GPTQ layer's weight W, Hessian H (2/n Σ x xᵀ of the inputs it saw, through the
already-quantized layer 0 for layer 1), codes, scales and zero points with the hidden --gptq-dump.
On the same W and H:
1. the paper's algorithm (Frantar et al. 2022, Algorithm 1 with lazy batch updates; group scales at
   each group's first column from the already-updated weights) in numpy picks the same codes for
   most weights, and both have lower output error Σ_rows Δ H Δᵀ (Δ = W - Ŵ) than round to nearest;
2. with --gptq-static-groups --act-order, llm-compressor 0.14's quantize_weight (static group
   scales, actorder "static") picks the same codes for most weights;
3. --act-order (g_idx) writes weight_g_idx and actorder "group", and lowbit loads the result;
4. bad input: calibration shorter than requested; --act-order where the format cannot store g_idx.
Codes differ where float rounding differs (fp64 vs fp32 factorisation) and where lowbit forces a
group's extreme code so its writer re-derives GPTQ's scale (gptq.h); each difference then
propagates along its row, which is why the bound is a fraction, printed with -s.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import BUILD, REPO, run

LOWBIT = BUILD / "lowbit"
GROUP = 32


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq") / "base"
    run([sys.executable, REPO / "tools/prepare/make_random_qwen3.py", "--out", out, "--hidden", 256,
         "--intermediate", 512, "--layers", 2, "--heads", 4, "--kv-heads", 2, "--head-dim", 64, "--vocab", 1024,
         "--dtype", "bfloat16", "--no-check"])
    rng = np.random.default_rng(0)
    (out / "calib_ids.json").write_text(json.dumps(rng.integers(0, 1024, 1024).tolist()))
    return out


def quantize(base, out, *extra, tokens=1024):
    cmd = [LOWBIT, "quantize", "-m", base, "-o", out, "--format", "compressed-tensors", "--scheme", "W4A16",
           "--group-size", GROUP, "--algorithm", "gptq", "--calib-ids", base / "calib_ids.json",
           "--calib-tokens", tokens, "--calib-seq-len", 256, "--threads", 2, "-q", *extra]
    return run(cmd)


def load_dump(d):
    layers = {}
    for e in json.loads((d / "index.json").read_text()):
        n, k, name = e["n"], e["k"], e["name"]
        f = lambda ext, dt: np.fromfile(d / f"{name}.{ext}", dtype=dt)
        e["w"] = f("w.f32", np.float32).reshape(n, k)
        e["h"] = f("h.f64", np.float64).reshape(k, k)
        e["q"] = f("q.i8", np.int8).reshape(n, k)
        e["scale"] = f("scale.f32", np.float32).reshape(n, -1)
        e["zero"] = f("zero.f32", np.float32).reshape(n, -1)
        e["deq"] = f("deq.f32", np.float32).reshape(n, k)
        e["perm"] = f("perm.i32", np.int32) if e["has_perm"] else None
        layers[name] = e
    return layers


def bf16(x):
    """Round float32 to bfloat16 (nearest even) and back."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(torch.bfloat16).float().numpy()


def ct_sym_params(v):
    """compressed-tensors symmetric int4 scale of each row of v, in bf16 (the model's dtype)."""
    amax = np.abs(v).max(axis=1)
    s = bf16(amax / np.float32(7.5))
    return np.where(s == 0, np.float32(2 ** -7), s).astype(np.float32)


def ct_sym_codes(x, s):
    return np.round(np.clip(bf16(x / s), -8, 7)).astype(np.int8)


def paper_gptq(w, h, group, damp=0.01, block=128):
    """GPTQ from the paper: H += damp·mean(diag)·I, U = chol(H⁻¹) upper, columns left to right,
    error spread through U, lazy updates per block of 128; group params at each group's start."""
    w = w.astype(np.float32).copy()
    h = h.copy()
    k = h.shape[0]
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h[np.diag_indices(k)] += damp * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T.astype(np.float32)  # upper, Uᵀ U = H⁻¹
    q = np.zeros(w.shape, np.int8)
    scales = np.zeros((w.shape[0], k // group), np.float32)
    s = None
    loss = 0.0
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        err = np.zeros((w.shape[0], i2 - i1), np.float32)
        for i in range(i1, i2):
            if i % group == 0:
                s = ct_sym_params(w[:, i:i + group])
                scales[:, i // group] = s
            qi = ct_sym_codes(w[:, i], s)
            wq = qi.astype(np.float32) * s
            e = (w[:, i] - wq) / u[i, i]
            loss += float(np.sum(e.astype(np.float64) ** 2) / 2)
            q[:, i] = qi
            w[:, i] = wq
            w[:, i + 1:i2] -= np.outer(e, u[i, i + 1:i2])
            err[:, i - i1] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return q, scales, loss


def dequant(q, scale, group):
    return q.astype(np.float32) * np.repeat(scale, group, axis=1)


def out_err(w, w_hat, h):
    d = (w - w_hat).astype(np.float64)
    return float(np.einsum("ij,jk,ik->", d, h, d))


def rtn(w):
    n, k = w.shape
    g = w.reshape(n, k // GROUP, GROUP)
    s = ct_sym_params(g.reshape(-1, GROUP)).reshape(n, k // GROUP)
    q = ct_sym_codes(w, np.repeat(s, GROUP, axis=1))
    return q, s


def test_codes_and_error_match_the_paper(base, tmp_path):
    quantize(base, tmp_path / "out", "--gptq-basic", "--gptq-dump", tmp_path / "dump")
    layers = load_dump(tmp_path / "dump")
    assert len(layers) == 14
    fractions = []
    for name, e in layers.items():
        assert np.isfinite(e["deq"]).all()
        q_ref, s_ref, loss_ref = paper_gptq(e["w"], e["h"], GROUP)
        same = float(np.mean(q_ref == e["q"]))
        fractions.append(same)
        q_rtn, s_rtn = rtn(e["w"])
        err_rtn = out_err(e["w"], dequant(q_rtn, s_rtn, GROUP), e["h"])
        err_ours = out_err(e["w"], e["deq"], e["h"])
        err_ref = out_err(e["w"], dequant(q_ref, s_ref, GROUP), e["h"])
        print(f"{name}: same codes {same:.4f}, forced {e['forced']}, output error ours {err_ours:.4g} "
              f"paper {err_ref:.4g} rtn {err_rtn:.4g}, loss ours {e['loss']:.4g} paper {loss_ref:.4g}")
        assert err_ours < err_rtn, name
        assert err_ours <= 1.05 * err_ref, name
        # Measured 0.87-0.96 here (0.73-0.86 on SmolLM2's real layers, whose codes sit closer
        # to rounding boundaries); ours' output error is within ±3% of the paper's.
        assert same >= 0.8, name
    assert np.mean(fractions) >= 0.85


def test_codes_match_llm_compressor(base, tmp_path):
    lc = pytest.importorskip("llmcompressor.modifiers.gptq.gptq_quantize")
    from compressed_tensors.quantization import QuantizationArgs
    quantize(base, tmp_path / "out", "--gptq-static-groups", "--act-order", "--gptq-dump", tmp_path / "dump")
    layers = load_dump(tmp_path / "dump")
    args = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=GROUP,
                            actorder="static")
    fractions = []
    for name, e in layers.items():
        w = torch.from_numpy(e["w"])
        # llm-compressor's observer scales: round to nearest on the original weights.
        _, s_rtn = rtn(e["w"])
        assert np.array_equal(s_rtn, e["scale"]), name
        scale = torch.from_numpy(s_rtn).to(torch.bfloat16)
        zp = torch.zeros_like(scale, dtype=torch.int8)
        wq, losses, fallback = lc.quantize_weight(w[None].clone(), torch.from_numpy(e["h"]).float()[None].clone(),
                                                  scale[None], zp[None], None, args)
        q_lc = torch.round(wq[0].float() / torch.from_numpy(np.repeat(s_rtn, GROUP, axis=1))).numpy()
        same = float(np.mean(q_lc == e["q"]))
        fractions.append(same)
        print(f"{name}: same codes as llm-compressor {same:.4f} (forced {e['forced']}), loss ours {e['loss']:.4g} "
              f"llm-compressor {float(losses[0]):.4g}")
        assert not bool(fallback[0])
        # Measured 0.84-0.91 (forced codes, fp32 vs fp64 factors); the loss within 3%.
        assert same >= 0.8, name
        assert e["loss"] <= 1.05 * float(losses[0]), name
    assert np.mean(fractions) >= 0.85


def test_act_order_writes_g_idx_and_loads(base, tmp_path):
    out = tmp_path / "out"
    quantize(base, out, "--act-order", "--gptq-dump", tmp_path / "dump")
    layers = load_dump(tmp_path / "dump")
    cfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert cfg["config_groups"]["group_0"]["weights"]["actorder"] == "group"
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        name = "model.layers.1.mlp.down_proj"
        g_idx = f.get_tensor(name + ".weight_g_idx").numpy()
        packed = f.get_tensor(name + ".weight_packed").numpy().view(np.uint32)
    e = layers[name]
    k = e["k"]
    assert e["perm"] is not None and sorted(e["perm"].tolist()) == list(range(k))
    # g_idx[c] = group of input column c in activation order; every group holds GROUP columns.
    assert np.array_equal(np.bincount(g_idx), np.full(k // GROUP, GROUP))
    codes = ((packed[:, :, None] >> (4 * np.arange(8))) & 0xF).reshape(e["n"], -1)[:, :k].astype(np.int32) - 8
    w_hat = codes * e["scale"][:, g_idx]
    assert np.array_equal(w_hat.astype(np.float32), e["deq"])
    # lowbit's loader runs it. (transformers cannot: compressed-tensors 0.19 rejects
    # actorder "group" as removed, so only lowbit and engines on older compressed-tensors read it.)
    spec = {"mode": "separate", "threads": 2, "greedy_steps": 1, "sequences": [{"prompt": list(range(5, 29))}]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", out, tmp_path / "s.json", tmp_path / "o.safetensors"])


def test_bad_input(base, tmp_path):
    r = subprocess.run([str(c) for c in [LOWBIT, "quantize", "-m", base, "-o", tmp_path / "a", "--format",
                        "compressed-tensors", "--scheme", "W4A16", "--group-size", GROUP, "--algorithm", "gptq",
                        "--calib-ids", base / "calib_ids.json", "--calib-tokens", 5000, "-q"]],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--calib-tokens 5000" in r.stderr and "only 1024 tokens" in r.stderr, r.stderr
    r = subprocess.run([str(c) for c in [LOWBIT, "quantize", "-m", base, "-o", tmp_path / "b", "--format", "awq",
                        "--scheme", "W4A16", "--group-size", GROUP, "--algorithm", "gptq", "--act-order",
                        "--calib-ids", base / "calib_ids.json", "--calib-tokens", 256, "-q"]],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--act-order" in r.stderr and "g_idx" in r.stderr and "awq" in r.stderr, r.stderr
    r = subprocess.run([str(c) for c in [LOWBIT, "quantize", "-m", base, "-o", tmp_path / "c", "--format",
                        "compressed-tensors", "--scheme", "W4A16", "--algorithm", "gptq", "-q"]],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "needs calibration data" in r.stderr, r.stderr
    r = subprocess.run([str(c) for c in [LOWBIT, "quantize", "-m", base, "-o", tmp_path / "d", "--format",
                        "compressed-tensors", "--scheme", "FP8_DYNAMIC", "--algorithm", "gptq", "--calib-ids",
                        base / "calib_ids.json", "--calib-tokens", 256, "-q"]],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "FP8_DYNAMIC" in r.stderr and "integer" in r.stderr, r.stderr


SCHEMES = [("compressed-tensors", "W4A16_ASYM", "--group-size", "32"), ("compressed-tensors", "W4A16", "--group-size", "0"),
           ("compressed-tensors", "W8A8"), ("compressed-tensors", "W8A8_STATIC"), ("msmodelslim", "W8A8"),
           ("msmodelslim", "W4A8_DYNAMIC"), ("msmodelslim", "W4A4_DYNAMIC"), ("awq", "W4A16", "--group-size", "32")]


@pytest.mark.parametrize("case", SCHEMES, ids=lambda c: "-".join(c[:2]))
def test_every_integer_scheme(case, base, tmp_path):
    """Every integer-weight scheme: the writer re-derives exactly GPTQ's codes (no mismatch), with a
    range search and act-order where the format allows, and lowbit runs the result."""
    fmt, scheme, *extra = case
    out = tmp_path / "out"
    extra += ["--act-order", "--gptq-scale-search"] + (["--gptq-static-groups"] if fmt != "compressed-tensors" else [])
    run([LOWBIT, "quantize", "-m", base, "-o", out, "--format", fmt, "--scheme", scheme, "--algorithm", "gptq",
         "--calib-ids", base / "calib_ids.json", "--calib-tokens", 512, "--calib-seq-len", 256, "--threads", 2,
         "-q", "--json", tmp_path / "r.json", *extra])
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["gptq"]["layers"]) == 14
    assert all(l["writer_mismatches"] == 0 for l in report["gptq"]["layers"]), report["gptq"]["layers"]
    spec = {"mode": "separate", "threads": 2, "greedy_steps": 1, "sequences": [{"prompt": list(range(5, 29))}]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", out, tmp_path / "s.json", tmp_path / "o.safetensors"])
