"""Qwen3-MoE against transformers' Qwen3MoeForCausalLM (the oracle), on random tiny checkpoints
written by transformers itself (tools/prepare/make_random_qwen3_moe.py; sizes of
../shared/spec/qwen3-moe-next.md §5: hidden 64, 3 layers, heads 4/2 x 24 (head_dim != hidden /
heads), 8 experts, top-3, expert FFN 40, dense FFN 96, vocab 512).

Layer mixes and layouts (CASES): mlp_only_layers=[0], all layers sparse, decoder_sparse_step 2;
norm_topk_prob true and false; per-expert tensors (`experts.{e}.gate_proj.weight`, ...) and
transformers 5's fused `experts.gate_up_proj` [E, 2F, H] / `experts.down_proj` [E, H, F]; fp32
and bf16 files; num_experts and num_local_experts spellings; tied and untied heads.

Float checks (as test_forward_oracle, whose check_model runs them; its tolerances and their
derivation apply unchanged): prompt logits at every position and 16 teacher-forced decode steps
within 1e-3 x the oracle's max |logit| of transformers in fp32; the 32-token greedy continuation
identical; a ragged batch (prompts split into uneven chunks, mixed with decode tokens) within
1e-5 x scale of each sequence alone. The expert sum adds one fp32 accumulation of k terms per
output to the dense model's error budget, negligible against 1e-3. The router weights are drawn
with std 3/sqrt(hidden) so top-k choices have clear margins (a near-tie would let fp32 rounding
pick another expert on either side; §4.4). The same weights in the two layouts must give the
same logits (1e-5 x scale: same kernels, same values).

Online quantization (w8a8_int8: int8 per-channel weights, int8 per-token dynamic activations,
on attention, dense MLP and every expert; router and lm_head stay float) against a fake-quant
reference: transformers in fp32 with each Linear's weight replaced by its dequantized int8
weight (quant_ref.weight_sym_qmax: lowbit's online rule) and its input by the per-token
quantized activation (quant_ref.act_per_token), matmuls in float64; the experts module's forward
replaced by the same per expert (gate_up rows quantized per row, which is per channel of gate and
of up). Bounds are test_quant_logits' W8A8_DYNAMIC ones, for the same reasons (activation
rounding flips at fp32 ulp boundaries): median |dlogit| <= 5e-4 x scale, max <= 0.15 x scale,
top-1 agreement >= 90%; plus the guard that the float model misses the median bound, so the
bound sees quantization. The same reference and bounds for a msmodelslim-layout W8A8_DYNAMIC
per-expert checkpoint written here with the same rounding (gate and up with their own scales:
the loader's unfused path; measured identical to the online result).
Measured (fp32 oracle): median 4e-8, max 5e-7 x scale, top-1 1.000 for both.

Bad input: a missing expert tensor, a fused tensor of the wrong shape, a router of the wrong
shape and num_experts_per_tok > num_experts are load errors naming the tensor or field.
"""
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as np_load_file

from conftest import BUILD, PY, REPO, run
from test_forward_oracle import check_model, lowbit_logits, prompts

PREPARE = REPO / "tools" / "prepare"
VOCAB = 512

CASES = {
    "per_expert_mlp_only0_norm_f32": ["--layout", "per-expert", "--mlp-only-layers", "0", "--norm-topk"],
    "fused_mlp_only0_norm_f32": ["--layout", "fused", "--mlp-only-layers", "0", "--norm-topk"],
    "fused_all_sparse_nonorm_f32_tied": ["--layout", "fused", "--no-norm-topk", "--tied"],
    "per_expert_step2_nonorm_bf16_legacy_key": ["--layout", "per-expert", "--sparse-step", "2", "--no-norm-topk",
                                               "--dtype", "bfloat16", "--legacy-expert-key", "--layers", "4"],
}


def make(out: Path, args, seed=3):
    run([PY, PREPARE / "make_random_qwen3_moe.py", "--out", out, "--seed", str(seed), "--vocab", str(VOCAB), *args])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_qwen3_moe_matches_transformers(case, tmp_path):
    model_dir = make(tmp_path / "model", CASES[case])
    check_model(model_dir, tmp_path, VOCAB)


def test_layouts_give_the_same_logits(tmp_path):
    seqs = prompts(VOCAB)
    got = {}
    for layout in ("per-expert", "fused"):
        d = make(tmp_path / layout, ["--layout", layout, "--mlp-only-layers", "0"])
        got[layout] = lowbit_logits(d, seqs, [[]] * len(seqs), "separate", tmp_path / f"{layout}.safetensors")
    for i in range(len(seqs)):
        a, b = got["per-expert"][f"seq{i}.prompt_logits"], got["fused"][f"seq{i}.prompt_logits"]
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), f"seq{i}: layouts differ"


# ---- online quantization against a fake-quant reference ------------------------------------------
def _fake_quant_model(model_dir: Path, quantize: bool, weight_rule=None):
    """weight_rule(w2d) -> (q, s per row): quant_ref.weight_sym_qmax (lowbit's online rule,
    msmodelslim's) unless given (compressed-tensors: weight_sym_ct, s = amax / 127.5)."""
    import torch
    sys.path.insert(0, str(REPO / "tests" / "reference"))
    import quant_ref
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    if not quantize:
        return model

    def dq(w):  # [.., N, K] per-row int8, lowbit's online rule
        shape = w.shape
        rule = weight_rule or (lambda m: quant_ref.weight_sym_qmax(m, 8, 0))
        q, s = rule(w.reshape(-1, shape[-1]).float())
        return (q.double() * s.double().reshape(-1, 1)).reshape(shape)

    def act(x):
        q, s = quant_ref.act_per_token(x.float(), 8)
        return q.double() * s.double().unsqueeze(-1)

    class FqLinear(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = dq(w.detach())

        def forward(self, x):
            shape = x.shape
            y = act(x.reshape(-1, shape[-1])) @ self.w.t()
            return y.float().reshape(*shape[:-1], -1)

    def experts_forward(self, hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        for e in range(self.num_experts):
            token_idx, pos = torch.where(top_k_index == e)
            if token_idx.numel() == 0:
                continue
            gu = (act(hidden_states[token_idx]) @ self.fq_gate_up[e].t()).float()
            gate, up = gu.chunk(2, dim=-1)
            h = (act(self.act_fn(gate) * up) @ self.fq_down[e].t()).float()
            out.index_add_(0, token_idx, h * top_k_weights[token_idx, pos, None])
        return out

    with torch.no_grad():
        for name, mod in list(model.named_modules()):
            for child_name, child in list(mod.named_children()):
                full = f"{name}.{child_name}" if name else child_name
                # lm_head and Qwen3-Next's one-logit shared_expert_gate stay float, as in lowbit.
                if isinstance(child, torch.nn.Linear) and full != "lm_head" and child_name != "shared_expert_gate":
                    setattr(mod, child_name, FqLinear(child.weight))
            if type(mod).__name__ in ("Qwen3MoeExperts", "Qwen3NextExperts"):
                mod.fq_gate_up, mod.fq_down = dq(mod.gate_up_proj.detach()), dq(mod.down_proj.detach())
                mod.forward = types.MethodType(experts_forward, mod)
    return model


def _assert_fake_quant_bounds(label, lb, ref, fl=None):
    """test_quant_logits' W8A8_DYNAMIC bounds of lowbit's logits `lb` against the fake-quant
    reference `ref`, and (given the float model's `fl`) the guard that the float model misses
    the median bound, so the bound sees quantization."""
    scale = float(np.abs(ref).max())
    d = np.abs(lb - ref)
    top1 = float((lb.argmax(-1) == ref.argmax(-1)).mean())
    print(f"{label}: median {np.median(d) / scale:.3g}, max {d.max() / scale:.3g} x scale {scale:.3g}, "
          f"top-1 {top1:.3f}")
    assert np.median(d) <= 5e-4 * scale
    assert d.max() <= 0.15 * scale
    assert top1 >= 0.90
    if fl is not None:
        assert np.median(np.abs(fl - ref)) > 5e-4 * scale


def test_online_w8a8_int8_matches_fake_quant_reference(tmp_path):
    import torch
    model_dir = make(tmp_path / "model", ["--layout", "per-expert", "--mlp-only-layers", "0"])
    rng = np.random.default_rng(99)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (7, 40, 90)]
    spec = {"mode": "separate", "threads": 2, "greedy_steps": 1, "quantization": "w8a8_int8",
            "sequences": [{"prompt": s, "forced": []} for s in seqs]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", model_dir, tmp_path / "spec.json", tmp_path / "lb.safetensors"])
    got = np_load_file(str(tmp_path / "lb.safetensors"))
    ref_model, float_model = _fake_quant_model(model_dir, True), _fake_quant_model(model_dir, False)
    with torch.no_grad():
        want = [ref_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs]
        flt = [float_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs]
    lb = np.concatenate([got[f"seq{i}.prompt_logits"] for i in range(len(seqs))])
    _assert_fake_quant_bounds("w8a8_int8 MoE", lb, np.concatenate(want), np.concatenate(flt))


def _write_msmodelslim_w8a8_dynamic(src: Path, dst: Path):
    """msmodelslim's per-expert W8A8_DYNAMIC layout (../shared/spec/qwen3-moe-next.md §8: weight I8
    [N,K], weight_scale F32 [N,1], weight_offset F32 [N,1]; router, lm_head, embeddings and norms
    FLOAT), quantized with lowbit's online rule (quant_ref.weight_sym_qmax), so the fake-quant
    reference of the online test applies to it unchanged. Gate and up carry their own scales here,
    so lowbit keeps them as two matrices: this covers the loader's non-fused path."""
    import torch
    from safetensors.torch import load_file, save_file
    sys.path.insert(0, str(REPO / "tests" / "reference"))
    import quant_ref

    shutil.copytree(src, dst)
    (dst / "model.safetensors").unlink()
    tensors, out, desc = load_file(str(src / "model.safetensors")), {}, {"model_quant_type": "W8A8_DYNAMIC"}
    for name, t in tensors.items():
        # Every linear layer's weight (Qwen3-Next's in_proj_qkvz/in_proj_ba included); the router,
        # Qwen3-Next's one-row shared_expert_gate, embeddings and head stay float.
        quantize = t.dim() == 2 and name.endswith(".weight") and not name.endswith(
            ("mlp.gate.weight", "shared_expert_gate.weight", "embed_tokens.weight", "lm_head.weight"))
        if not quantize:
            out[name], desc[name] = t, "FLOAT"
            continue
        q, sc = quant_ref.weight_sym_qmax(t.float(), 8, 0)
        base = name[: -len(".weight")]
        out[name] = q.contiguous()
        out[base + ".weight_scale"] = sc.float().reshape(-1, 1).contiguous()
        out[base + ".weight_offset"] = torch.zeros(t.shape[0], 1, dtype=torch.float32)
        for suffix in (".weight", ".weight_scale", ".weight_offset"):
            desc[base + suffix] = "W8A8_DYNAMIC"
    save_file(out, str(dst / "quant_model_weights.safetensors"), metadata={"format": "pt"})
    (dst / "quant_model_description.json").write_text(json.dumps(desc, indent=1))


def test_msmodelslim_w8a8_dynamic_experts_match_fake_quant_reference(tmp_path):
    import torch
    float_dir = make(tmp_path / "model", ["--layout", "per-expert", "--mlp-only-layers", "0"])
    ms_dir = tmp_path / "ms"
    _write_msmodelslim_w8a8_dynamic(float_dir, ms_dir)
    rng = np.random.default_rng(99)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (7, 40, 90)]
    results = {}
    for tag, folder, quant in (("ms", ms_dir, None), ("online", float_dir, "w8a8_int8")):
        spec = {"mode": "separate", "threads": 2, "greedy_steps": 1,
                "sequences": [{"prompt": s, "forced": []} for s in seqs], **({"quantization": quant} if quant else {})}
        (tmp_path / f"{tag}.json").write_text(json.dumps(spec))
        run([BUILD / "model_logits_tool", folder, tmp_path / f"{tag}.json", tmp_path / f"{tag}.safetensors"])
        got = np_load_file(str(tmp_path / f"{tag}.safetensors"))
        results[tag] = np.concatenate([got[f"seq{i}.prompt_logits"] for i in range(len(seqs))])
    ref_model = _fake_quant_model(float_dir, True)
    with torch.no_grad():
        ref = np.concatenate([ref_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs])
    print(f"msmodelslim vs online max {np.abs(results['ms'] - results['online']).max() / np.abs(ref).max():.3g} x scale")
    _assert_fake_quant_bounds("msmodelslim W8A8_DYNAMIC MoE", results["ms"], ref)


# ---- bad input -------------------------------------------------------------------------------
def _load_error(model_dir: Path, tmp_path: Path) -> str:
    spec = {"mode": "separate", "threads": 1, "greedy_steps": 1, "sequences": [{"prompt": [1, 2], "forced": []}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    r = subprocess.run([str(BUILD / "model_logits_tool"), str(model_dir), str(tmp_path / "spec.json"),
                        str(tmp_path / "out.safetensors")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, "load should have failed"
    return r.stderr


def _rewrite(model_dir: Path, edit):
    from safetensors.torch import load_file, save_file
    st = model_dir / "model.safetensors"
    t = load_file(str(st))
    edit(t)
    save_file(t, str(st), metadata={"format": "pt"})


def test_bad_input_is_a_clear_error(tmp_path):
    import torch
    base = make(tmp_path / "base", ["--layout", "per-expert", "--layers", "2"])
    fused = make(tmp_path / "fused", ["--layout", "fused", "--layers", "2"])

    d = tmp_path / "missing"
    shutil.copytree(base, d)
    _rewrite(d, lambda t: t.pop("model.layers.1.mlp.experts.5.up_proj.weight"))
    err = _load_error(d, tmp_path)
    assert "model.layers.1.mlp.experts.5.up_proj.weight" in err and "not found" in err, err

    d = tmp_path / "bad_fused"
    shutil.copytree(fused, d)
    _rewrite(d, lambda t: t.__setitem__("model.layers.0.mlp.experts.down_proj",
                                        t["model.layers.0.mlp.experts.down_proj"][:, :, :-1].contiguous()))
    err = _load_error(d, tmp_path)
    assert "model.layers.0.mlp.experts.down_proj" in err and "model.safetensors" in err, err

    d = tmp_path / "bad_router"
    shutil.copytree(base, d)
    _rewrite(d, lambda t: t.__setitem__("model.layers.1.mlp.gate.weight", torch.zeros(7, 64)))
    err = _load_error(d, tmp_path)
    assert "model.layers.1.mlp.gate" in err, err

    d = tmp_path / "bad_topk"
    shutil.copytree(base, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_experts_per_tok"] = 9
    (d / "config.json").write_text(json.dumps(cfg))
    err = _load_error(d, tmp_path)
    assert "num_experts_per_tok" in err and "config.json" in err, err


def test_serve_reports_tokens_per_expert(tmp_path):
    """`serve --enable-expert-distribution-metrics`: /metrics counts, per MoE layer, each token's
    top-k choices (so a layer's experts sum to k x the tokens it ran: the prompt, then one per
    decode step), and the balancedness gauge is mean / max of those counts. Without the flag
    no expert series is rendered."""
    from test_server import Server
    model = make(tmp_path / "m", ["--layout", "per-expert", "--mlp-only-layers", "0", "--norm-topk"])
    k, experts, layers = 3, 8, [1, 2]  # the fixture: top-3 of 8, layer 0 dense
    prompt, new = list(range(5, 16)), 5
    server = Server(model, "--enable-expert-distribution-metrics")
    try:
        status, r = server.json("POST", "/generate", {"input_ids": prompt, "sampling_params": {
            "max_new_tokens": new, "temperature": 0, "ignore_eos": True}})
        assert status == 200, r
        m = server.metrics()
        forwarded = len(prompt) + new - 1  # the last new token is sampled, never run
        for layer in layers:
            counts = [m[f'lowbit_moe_expert_tokens_total{{model_name="{model}",layer="{layer}",expert="{e}"}}']
                      if f'lowbit_moe_expert_tokens_total{{model_name="{model}",layer="{layer}",expert="{e}"}}' in m
                      else None for e in range(experts)]
            assert None not in counts, sorted(k for k in m if k.startswith("lowbit_moe"))
            assert sum(counts) == k * forwarded, counts
            bal = m[f'lowbit_moe_expert_balancedness{{model_name="{model}",layer="{layer}"}}']
            assert bal == pytest.approx(sum(counts) / experts / max(counts)), (bal, counts)
        assert not any(key.startswith("lowbit_moe") and 'layer="0"' in key for key in m), "layer 0 is dense"
    finally:
        server.stop()
    plain = Server(model)
    try:
        assert not any(key.startswith("lowbit_moe") for key in plain.metrics())
    finally:
        plain.stop()


# ---- lowbit quantize on Qwen3-MoE --------------------------------------------------------------
# (format, scheme, extra args): the dynamic schemes each format offers for experts, and
# msmodelslim's mixed Qwen3-30B-A3B file (attention W8A8 static, experts W8A8_DYNAMIC).
QUANTIZE_CASES = {
    "ct-W8A8": ("compressed-tensors", "W8A8", []),
    "ct-W4A16-g32": ("compressed-tensors", "W4A16", ["--group-size", "32"]),
    "ct-mixed": ("compressed-tensors", "W8A8", ["--override", r".*\.experts\..*=W4A16", "--group-size", "32"]),
    "ms-W8A8_DYNAMIC": ("msmodelslim", "W8A8_DYNAMIC", []),
    "ms-W4A8_DYNAMIC": ("msmodelslim", "W4A8_DYNAMIC", []),
    "ms-W4A4_DYNAMIC": ("msmodelslim", "W4A4_DYNAMIC", []),
    "ms-W8A8_MXFP8": ("msmodelslim", "W8A8_MXFP8", []),
    "ms-mixed-static-attention": ("msmodelslim", "W8A8", ["--override", r".*\.experts\..*=W8A8_DYNAMIC"]),
    "awq-W4A16-g32": ("awq", "W4A16", ["--group-size", "32"]),
}
QUANT_SHAPE = ["--mlp-only-layers", "0", "--moe-intermediate", "64", "--hidden", "64"]


def _quantize(src: Path, out: Path, fmt: str, scheme: str, extra, calib: Path):
    run([BUILD / "lowbit", "quantize", "-m", src, "-o", out, "--format", fmt, "--scheme", scheme,
         "--calib-ids", calib, "--calib-tokens", "256", *extra])
    return out


def _weights_file(folder: Path) -> Path:
    return next(p for p in folder.glob("*.safetensors"))


@pytest.mark.parametrize("case", sorted(QUANTIZE_CASES))
def test_quantize_writes_per_expert_tensors_from_either_layout(case, tmp_path):
    """`lowbit quantize` on a Qwen3-MoE: every expert's gate/up/down is quantized under the
    per-expert names the upstream tools write (mlp.experts.<e>.gate_proj...), the router
    (mlp.gate) stays float, and a transformers-5 checkpoint with fused experts (gate_up_proj
    [E, 2F, H], down_proj [E, H, F]) gives byte-identical tensors to the per-expert file of the
    same values (its slices are read in place). The result loads and generates."""
    import torch
    from safetensors import safe_open
    fmt, scheme, extra = QUANTIZE_CASES[case]
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(np.random.default_rng(5).integers(0, VOCAB, 256).tolist()))
    outs = {}
    for layout in ("per-expert", "fused"):
        src = make(tmp_path / f"src-{layout}", ["--layout", layout, *QUANT_SHAPE])
        outs[layout] = _quantize(src, tmp_path / f"q-{layout}", fmt, scheme, extra, calib)
    tensors = {}
    for layout, folder in outs.items():
        with safe_open(str(_weights_file(folder)), "pt") as f:  # "pt": numpy has no float8
            tensors[layout] = {k: f.get_tensor(k) for k in f.keys()}
    a, b = tensors["per-expert"], tensors["fused"]
    assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), f"{case}: {k} differs between layouts"
    assert not any("gate_up_proj" in k for k in a), "fused expert names leaked into the output"
    weight = "weight_packed" if fmt == "compressed-tensors" and ("W4" in scheme or case == "ct-mixed") else \
        "qweight" if fmt == "awq" else "weight"
    for e in range(8):
        for proj in ("gate_proj", "up_proj", "down_proj"):
            name = f"model.layers.1.mlp.experts.{e}.{proj}.{weight}"
            assert name in a, f"{name} missing: {sorted(a)[:12]}"
            assert a[name].dtype not in (torch.float32, torch.float16, torch.bfloat16), (name, a[name].dtype)
    router = a["model.layers.1.mlp.gate.weight"]
    assert router.dtype == torch.float32 and tuple(router.shape) == (8, 64)
    cfg = json.loads((outs["per-expert"] / "config.json").read_text())
    if fmt == "compressed-tensors":
        qc = cfg["quantization_config"]
        assert "model.layers.1.mlp.gate" in qc["ignore"]
        # Each quantized module is matched by exactly one config group, whose format fits its
        # tensors (targets as compressed-tensors reads them: "Linear" or re: with re.match).
        import re
        modules = {k.rsplit(".", 1)[0] for k in a if k.endswith((".weight_packed", ".weight_scale"))}
        assert any(".experts." in m for m in modules) and any("self_attn" in m for m in modules)
        for m in modules:
            groups = [g for g in qc["config_groups"].values()
                      if any(t == "Linear" or (t.startswith("re:") and re.match(t[3:], m)) for t in g["targets"])]
            assert len(groups) == 1, (m, [g["targets"] for g in groups])
            packed = f"{m}.weight_packed" in a
            assert groups[0]["format"] == ("pack-quantized" if packed else "int-quantized"), (m, groups[0]["format"])
    if fmt == "msmodelslim":
        desc = json.loads((outs["per-expert"] / "quant_model_description.json").read_text())
        assert desc["model.layers.1.mlp.gate.weight"] == "FLOAT"
        want = "W8A8_DYNAMIC" if case == "ms-mixed-static-attention" else scheme
        assert desc[f"model.layers.2.mlp.experts.3.down_proj.{weight}"] == want
        if case == "ms-mixed-static-attention":
            assert desc["model.layers.2.self_attn.q_proj.weight"] == "W8A8"
    r = run([BUILD / "lowbit", "generate", "-m", outs["fused"], "--prompt-ids", "[1, 2, 3]", "-n", "4", "--json"])
    assert len(json.loads(r.stdout)["output_token_ids"]) == 4


@pytest.mark.parametrize("case", ["ct-W8A8", "ms-W8A8_DYNAMIC"])
def test_quantized_moe_matches_fake_quant_reference(case, tmp_path):
    """The written int8 per-channel experts (and attention, dense MLP) against the online test's
    fake-quant reference with the format's own weight rule (msmodelslim: amax / 127, as online;
    compressed-tensors: amax / 127.5) and per-token int8 activations: the same bounds."""
    import torch
    fmt, scheme, extra = QUANTIZE_CASES[case]
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(list(range(256))))
    float_dir = make(tmp_path / "model", ["--layout", "fused", *QUANT_SHAPE])
    q = _quantize(float_dir, tmp_path / "q", fmt, scheme, extra, calib)
    rng = np.random.default_rng(99)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (7, 40, 90)]
    spec = {"mode": "separate", "threads": 2, "greedy_steps": 1, "sequences": [{"prompt": s, "forced": []} for s in seqs]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", q, tmp_path / "spec.json", tmp_path / "lb.safetensors"])
    got = np_load_file(str(tmp_path / "lb.safetensors"))
    lb = np.concatenate([got[f"seq{i}.prompt_logits"] for i in range(len(seqs))])
    sys.path.insert(0, str(REPO / "tests" / "reference"))
    import quant_ref
    rule = (lambda m: quant_ref.weight_sym_ct(m, 8, 0)) if fmt == "compressed-tensors" else None
    ref_model, float_model = _fake_quant_model(float_dir, True, rule), _fake_quant_model(float_dir, False)
    with torch.no_grad():
        ref = np.concatenate([ref_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs])
        fl = np.concatenate([float_model(torch.tensor([s])).logits[0].float().numpy() for s in seqs])
    _assert_fake_quant_bounds(f"{case} MoE written by lowbit quantize", lb, ref, fl)


def test_quantize_moe_refusals(tmp_path):
    """Static activation scales on experts (no per-expert calibration) and the dense-only
    searches are refused before any work, with the layer or flag named."""
    src = make(tmp_path / "src", ["--layout", "per-expert", *QUANT_SHAPE])
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(list(range(64))))
    for args, needle in (
            (["--format", "msmodelslim", "--scheme", "W8A8"], "model.layers.1.mlp.experts.0.gate_proj"),
            (["--format", "compressed-tensors", "--target-bits", "6"], "mixture-of-experts"),
            (["--format", "compressed-tensors", "--scheme", "W4A16", "--group-size", "32", "--algorithm", "gptq"],
             "mixture-of-experts")):
        r = subprocess.run([str(BUILD / "lowbit"), "quantize", "-m", str(src), "-o", str(tmp_path / "out"), *args,
                            "--calib-ids", str(calib), "--calib-tokens", "64"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and needle in r.stderr, (args, r.stderr)
    # A transformers-5 fused source whose down_proj has the wrong shape: the file and tensor are named.
    bad = make(tmp_path / "bad", ["--layout", "fused", *QUANT_SHAPE])
    _rewrite(bad, lambda t: t.__setitem__("model.layers.2.mlp.experts.down_proj",
                                          t["model.layers.2.mlp.experts.down_proj"][:, :, :-1].contiguous()))
    r = subprocess.run([str(BUILD / "lowbit"), "quantize", "-m", str(bad), "-o", str(tmp_path / "out2"), "--format",
                        "msmodelslim", "--scheme", "W8A8_DYNAMIC"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stderr
    assert "model.layers.2.mlp.experts.down_proj" in r.stderr and "model.safetensors" in r.stderr, r.stderr
    assert not (tmp_path / "out2" / "quant_model_weights.safetensors").exists(), "a partial file was left behind"
