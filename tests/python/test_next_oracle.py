"""Qwen3-Next against transformers' Qwen3NextForCausalLM (the oracle), on random tiny checkpoints
written by transformers itself (tools/prepare/make_random_qwen3_next.py; sizes of
../shared/spec/qwen3-moe-next.md §5: hidden 64, 8 layers with attention at 3 and 7, heads 4/2 x 32
with 8 rotary channels, Gated DeltaNet Hk 2 / Hv 6 (r = 3; and r = 1), dk 16 != dv 24, Kc 4,
8 experts top-3, expert FFN 40 != shared expert 56). Every parameter is randomised (offset norms
around 0, so w vs 1 + w cannot hide; A_log, dt_bias, shared_expert_gate random).

Float checks (test_forward_oracle.check_model; its tolerances and their derivation apply): prompt
logits at every position (prompts of 5, 37 and 130 tokens: the 130-token prefill crosses two
64-token chunk boundaries of the chunked delta rule and pads the last chunk) and 16 teacher-forced
decode steps (the recurrent form from the prefilled state) within 1e-3 x the oracle's max |logit|;
the 32-token greedy continuation identical; a ragged batch (prompts cut into uneven chunks, so the
chunked form continues from a non-zero state, mixed with decode tokens) within 1e-4 x scale of
each sequence alone. That bound is 10x the dense models': cutting a prompt elsewhere moves the
delta rule's 64-token chunk grid (and may turn a short piece into the recurrent form), which
sums the same terms in another fp32 order (§5 measured chunked vs recurrent at 1.3e-5-2.1e-5 x
a logit std of 3 over 8 layers, i.e. ~1e-5 x scale; observed here up to 1.0e-5 x scale).

Online quantization (w8a8_int8 on every projection and expert; router, shared_expert_gate,
lm_head, conv, A_log, dt_bias and norms float) and a msmodelslim-layout W8A8_DYNAMIC checkpoint,
against test_moe_oracle's fake-quant reference with its bounds and reasons.

Bad input: GDN tensors of the wrong shape or missing, a value-head count that Hk does not divide:
clear errors naming the tensor or field and the file.
"""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as np_load_file

from conftest import BUILD, PY, REPO, run
from test_forward_oracle import check_model
from test_moe_oracle import _fake_quant_model, _load_error, _rewrite, _write_msmodelslim_w8a8_dynamic

PREPARE = REPO / "tools" / "prepare"
VOCAB = 512

CASES = {
    "r3_per_expert_f32": ["--layout", "per-expert"],
    "r1_fused_tied_mlp_only0_f32": ["--layout", "fused", "--v-heads", "2", "--tied", "--mlp-only-layers", "0"],
    "r3_interval2_nonorm_bf16": ["--layout", "per-expert", "--interval", "2", "--layers", "4", "--no-norm-topk",
                                 "--dtype", "bfloat16"],
}


def make(out: Path, args, seed=5):
    run([PY, PREPARE / "make_random_qwen3_next.py", "--out", out, "--seed", str(seed), "--vocab", str(VOCAB), *args])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_qwen3_next_matches_transformers(case, tmp_path):
    check_model(make(tmp_path / "model", CASES[case]), tmp_path, VOCAB, ragged_tol=1e-4)


def _quant_logits(folder, seqs, tmp_path, tag, quant=None):
    spec = {"mode": "separate", "threads": 2, "greedy_steps": 1,
            "sequences": [{"prompt": s, "forced": []} for s in seqs], **({"quantization": quant} if quant else {})}
    (tmp_path / f"{tag}.json").write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", folder, tmp_path / f"{tag}.json", tmp_path / f"{tag}.safetensors"])
    got = np_load_file(str(tmp_path / f"{tag}.safetensors"))
    return np.concatenate([got[f"seq{i}.prompt_logits"] for i in range(len(seqs))])


def test_w8a8_online_and_msmodelslim_match_fake_quant_reference(tmp_path):
    float_dir = make(tmp_path / "model", ["--layout", "per-expert"])
    ms_dir = tmp_path / "ms"
    _write_msmodelslim_w8a8_dynamic(float_dir, ms_dir)
    rng = np.random.default_rng(99)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (7, 40, 90)]
    got = {"online": _quant_logits(float_dir, seqs, tmp_path, "online", "w8a8_int8"),
           "msmodelslim": _quant_logits(ms_dir, seqs, tmp_path, "ms")}
    ref_model, float_model = _fake_quant_model(float_dir, True), _fake_quant_model(float_dir, False)
    with torch.no_grad():
        ref = np.concatenate([ref_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs])
        flt = np.concatenate([float_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs])
    scale = float(np.abs(ref).max())
    for tag, lb in got.items():
        d = np.abs(lb - ref)
        top1 = float((lb.argmax(-1) == ref.argmax(-1)).mean())
        print(f"{tag} W8A8 Qwen3-Next: median {np.median(d) / scale:.3g}, max {d.max() / scale:.3g} x scale "
              f"{scale:.3g}, top-1 {top1:.3f}")
        assert np.median(d) <= 5e-4 * scale, tag
        assert d.max() <= 0.15 * scale, tag
        assert top1 >= 0.90, tag
    assert np.median(np.abs(flt - ref)) > 5e-4 * scale  # the bound sees the quantization


def test_bad_input_is_a_clear_error(tmp_path):
    base = make(tmp_path / "base", ["--layers", "4", "--interval", "2"])

    d = tmp_path / "conv_shape"
    shutil.copytree(base, d)
    _rewrite(d, lambda t: t.__setitem__("model.layers.0.linear_attn.conv1d.weight",
                                        t["model.layers.0.linear_attn.conv1d.weight"][:-1].contiguous()))
    err = _load_error(d, tmp_path)
    assert "model.layers.0.linear_attn.conv1d.weight" in err and "shape" in err, err

    d = tmp_path / "missing_a_log"
    shutil.copytree(base, d)
    _rewrite(d, lambda t: t.pop("model.layers.2.linear_attn.A_log"))
    err = _load_error(d, tmp_path)
    assert "model.layers.2.linear_attn.A_log" in err and "not found" in err, err

    d = tmp_path / "qkvz_shape"
    shutil.copytree(base, d)
    _rewrite(d, lambda t: t.__setitem__("model.layers.0.linear_attn.in_proj_qkvz.weight",
                                        t["model.layers.0.linear_attn.in_proj_qkvz.weight"][:-2].contiguous()))
    err = _load_error(d, tmp_path)
    assert "in_proj_qkvz" in err and "model.safetensors" in err, err

    d = tmp_path / "heads"
    shutil.copytree(base, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["linear_num_value_heads"] = 5
    (d / "config.json").write_text(json.dumps(cfg))
    err = _load_error(d, tmp_path)
    assert "linear_num_value_heads" in err and "config.json" in err, err
