"""The forward pass against transformers (the oracle), on the real SmolLM2-135M (Llama) and on
random Qwen3 checkpoints covering GQA ratios 1/2/4, head_dim 64/128, tied and untied heads and
every rope scaling type.

What is compared, per model, for three prompts of different lengths:
  * logits at every prompt position (prefill) and at 16 decode steps (teacher-forced with the
    oracle's greedy tokens, so both sides see the same inputs);
  * the free-running greedy continuation of 32 tokens, which must be identical;
  * a ragged batch (all prompts at once, prefill chunks and decode tokens mixed in each forward
    call) against each sequence run alone.

Tolerances.
  FP32 oracle (transformers in float32; BF16 checkpoints are upcast exactly, so both sides do
  the same math on the same weights): max |Δlogit| <= 1e-3 x the logit scale (max |logit| of
  the oracle). The two sides differ only in fp32 summation order (GEMM tiles, attention), whose
  error grows like sqrt(K)·2^-24 per dot product and stays ~1e-5 relative through 30 layers;
  1e-3 leaves a wide margin yet fails on any real mistake (a wrong rope frequency, norm or
  head mapping moves logits by 1e-1 or more of the scale).
  Ragged batch vs alone: 1e-5 x scale. Each output element is computed by the same kernel in
  the same k order whatever the batch, so the results should be identical; the bound only
  allows for a future kernel that tiles M differently.
  BF16 oracle (transformers computing in bfloat16, as people run it): every op rounds its
  output to 8 significant bits (relative 2^-9 = 0.2%), over 2 x layers residual updates; we
  require top-1 agreement on >= 90% of prompt positions and max |Δlogit| <= 0.1 x scale,
  which is what bf16 compute alone explains (measured ~0.02-0.05 x scale) and far below what a
  functional bug gives (~1 x scale, top-1 agreement near chance).
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import BUILD, PY, REPO, run

PREPARE = REPO / "tools" / "prepare"

# name: make_random_qwen3 arguments
QWEN3_CASES = {
    "gqa1_hd64_tied_f32": ["--heads", "4", "--kv-heads", "4", "--head-dim", "64", "--hidden", "128",
                           "--tied", "--rope-scaling", "none", "--dtype", "float32"],
    "gqa2_hd128_untied_linear_bf16": ["--heads", "4", "--kv-heads", "2", "--head-dim", "128", "--hidden", "96",
                                      "--untied", "--rope-scaling", "linear", "--dtype", "bfloat16"],
    "gqa4_hd64_tied_yarn_bf16": ["--heads", "8", "--kv-heads", "2", "--head-dim", "64", "--hidden", "128",
                                 "--tied", "--rope-scaling", "yarn", "--dtype", "bfloat16", "--max-position", "256"],
    "gqa2_hd64_untied_llama3_f32": ["--heads", "6", "--kv-heads", "3", "--head-dim", "64", "--hidden", "192",
                                    "--untied", "--rope-scaling", "llama3", "--dtype", "float32", "--max-position", "512"],
}
COMMON = ["--layers", "3", "--intermediate", "256", "--vocab", "2048", "--seed", "7"]
PROMPT_LENGTHS = [5, 37, 130]  # 130 > yarn/llama3 original context: exercises the scaled band
GREEDY_STEPS, FORCED_STEPS = 32, 16


def prompts(vocab):
    rng = np.random.default_rng(1234)
    return [rng.integers(0, vocab, n).tolist() for n in PROMPT_LENGTHS]


def hf_oracle(model_dir, seqs, dtype, out, steps=GREEDY_STEPS):
    # In-process: torch is imported once for the whole module.
    sys.path.insert(0, str(PREPARE))
    import hf_oracle as oracle
    oracle.run(str(model_dir), {"sequences": seqs, "decode_steps": steps, "dtype": dtype}, str(out))
    return load_file(str(out))


def lowbit_logits(model_dir, seqs, forced, mode, out, chunks=None):
    spec = {"mode": mode, "threads": 2, "greedy_steps": GREEDY_STEPS,
            "sequences": [{"prompt": p, "forced": f, **({"chunks": chunks[i]} if chunks else {})}
                          for i, (p, f) in enumerate(zip(seqs, forced))]}
    spec_path = out.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", model_dir, spec_path, out])
    return load_file(str(out))


def check_model(model_dir, tmp_path, vocab):
    seqs = prompts(vocab)
    ref = hf_oracle(model_dir, seqs, "float32", tmp_path / "hf.safetensors")
    forced = [ref[f"seq{i}.greedy_ids"][:FORCED_STEPS - 1].tolist() for i in range(len(seqs))]
    got = lowbit_logits(model_dir, seqs, forced, "separate", tmp_path / "lb.safetensors")
    for i in range(len(seqs)):
        want_prompt = ref[f"seq{i}.prompt_logits"]
        scale = float(np.abs(want_prompt).max())
        d = np.abs(got[f"seq{i}.prompt_logits"] - want_prompt).max()
        assert d <= 1e-3 * scale, f"seq{i} prefill: max |dlogit| {d:.3g} > 1e-3 x {scale:.3g}"
        want_dec = ref[f"seq{i}.decode_logits"][:FORCED_STEPS]
        d = np.abs(got[f"seq{i}.decode_logits"] - want_dec).max()
        assert d <= 1e-3 * scale, f"seq{i} decode: max |dlogit| {d:.3g} > 1e-3 x {scale:.3g}"
        assert got[f"seq{i}.greedy_ids"].tolist() == ref[f"seq{i}.greedy_ids"].tolist(), f"seq{i} greedy"

    # Ragged: everything in shared forward calls, prompts split into uneven chunks.
    chunks = [[2, 3], [1, 16, 20], [64, 1, 65]]
    rag = lowbit_logits(model_dir, seqs, forced, "ragged", tmp_path / "rag.safetensors", chunks)
    for i in range(len(seqs)):
        for k in ("prompt_logits", "decode_logits"):
            scale = float(np.abs(got[f"seq{i}.{k}"]).max())
            d = np.abs(rag[f"seq{i}.{k}"] - got[f"seq{i}.{k}"]).max()
            assert d <= 1e-5 * scale, f"seq{i} {k}: ragged differs from alone by {d:.3g}"
    return seqs, got


@pytest.mark.parametrize("case", sorted(QWEN3_CASES))
def test_random_qwen3_matches_transformers(case, tmp_path):
    model_dir = tmp_path / "model"
    run([PY, PREPARE / "make_random_qwen3.py", "--out", model_dir, "--no-check", *COMMON, *QWEN3_CASES[case]])
    check_model(model_dir, tmp_path, 2048)


def test_smollm2_matches_transformers(smollm2_dir, tmp_path):
    seqs, got = check_model(smollm2_dir, tmp_path, 49152)
    # BF16 compute in transformers: the looser, bf16-justified bound (see the module docstring).
    ref = hf_oracle(smollm2_dir, seqs, "bfloat16", tmp_path / "hf_bf16.safetensors", steps=1)
    for i in range(len(seqs)):
        want = ref[f"seq{i}.prompt_logits"].astype(np.float32)
        mine = got[f"seq{i}.prompt_logits"]
        scale = float(np.abs(want).max())
        assert np.abs(mine - want).max() <= 0.1 * scale
        agree = (mine.argmax(-1) == want.argmax(-1)).mean()
        assert agree >= 0.9, f"seq{i}: top-1 agreement with bf16 transformers {agree:.2f}"


def test_sequence_mismatch_is_caught(smollm2_dir, tmp_path):
    """Guards the harness: a perturbed prompt must fail the same comparison."""
    seqs = prompts(49152)[:1]
    ref = hf_oracle(smollm2_dir, seqs, "float32", tmp_path / "hf.safetensors", steps=1)
    other = [[(seqs[0][0] + 1) % 49152] + seqs[0][1:]]
    got = lowbit_logits(smollm2_dir, other, [[]], "separate", tmp_path / "lb.safetensors")
    scale = float(np.abs(ref["seq0.prompt_logits"]).max())
    assert np.abs(got["seq0.prompt_logits"] - ref["seq0.prompt_logits"]).max() > 1e-3 * scale
