"""`lowbit quantize --smooth` (SmoothQuant, src/quantize/smooth_quant.h) end to end on SmolLM2-135M:
a smoothed msmodelslim W8A8 (static activations) checkpoint loads in lowbit, its folded RMSNorm
weights are F32 tensors tagged FLOAT, and its KL divergence from the float model is well below the
unsmoothed one's (short run: ctx 128, 768 tokens: 0.55 -> 0.09; full table 0.57 -> 0.040). Also the
refusals: dynamic-activation schemes, GPTQ, no calibration data, a bad --smooth value.
"""
import json
import subprocess

import pytest

from conftest import run
from short_kld import LOWBIT, calib_tail, kld, safetensors_header, save_base


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    return calib_tail(tmp_path_factory.mktemp("smooth"))


def quantize(model, out, calib, *extra):
    return run([LOWBIT, "quantize", "-m", model, "-o", out, "--format", "msmodelslim", "--scheme", "W8A8",
                "--calib", calib, "--calib-tokens", 1024, "--calib-rows", 64, "--threads", 2, "-q", *extra])


def test_smoothed_w8a8_static_beats_unsmoothed(smollm2_dir, calib, tmp_path):
    plain, smooth = tmp_path / "plain", tmp_path / "smooth"
    quantize(smollm2_dir, plain, calib)
    quantize(smollm2_dir, smooth, calib, "--smooth", "auto", "--json", tmp_path / "report.json")
    base = tmp_path / "base.bin"
    save_base(smollm2_dir, base)
    k_plain, k_smooth = kld(plain, base), kld(smooth, base)
    assert k_smooth < 0.5 * k_plain and k_smooth < 0.15, (k_plain, k_smooth)

    header = safetensors_header(smooth / "quant_model_weights.safetensors")
    desc = json.loads((smooth / "quant_model_description.json").read_text())
    for name in ["model.layers.0.input_layernorm.weight", "model.layers.29.post_attention_layernorm.weight"]:
        assert header[name]["dtype"] == "F32", name  # the fold is not rounded to BF16
        assert desc[name] == "FLOAT"
    assert header["model.norm.weight"]["dtype"] == "BF16"  # the final norm feeds lm_head: untouched
    notes = json.loads((tmp_path / "report.json").read_text())["notes"]
    assert any(n.startswith("SmoothQuant") and "120 of 120 groups" in n for n in notes), notes


@pytest.mark.parametrize("args, message", [
    (["--format", "msmodelslim", "--scheme", "W8A8_DYNAMIC", "--smooth", "auto", "--calib", None],
     "static activation scales"),
    (["--format", "msmodelslim", "--scheme", "W8A8", "--smooth", "0.5", "--algorithm", "gptq", "--calib", None],
     "--algorithm gptq"),
    (["--format", "compressed-tensors", "--scheme", "W8A8_STATIC", "--smooth", "auto"], "--smooth needs calibration"),
    (["--format", "msmodelslim", "--scheme", "W8A8", "--smooth", "1.5", "--calib", None], "--smooth '1.5'"),
])
def test_smooth_refusals(smollm2_dir, calib, tmp_path, args, message):
    args = [str(calib) if a is None else a for a in args]
    cmd = [str(LOWBIT), "quantize", "-m", str(smollm2_dir), "-o", str(tmp_path / "out"), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not (tmp_path / "out" / "config.json").exists()
