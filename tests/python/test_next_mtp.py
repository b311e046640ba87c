"""Qwen3-Next's MTP head and NEXTN speculative decoding (../shared/spec/qwen3-moe-next.md §3), on
random tiny checkpoints with mtp.* tensors in the released layout
(tools/prepare/make_random_qwen3_next.py --mtp random|predictable).

* The MTP head against an oracle assembled from transformers' own modules (transformers drops
  mtp.*, §5): two Qwen3NextRMSNorm, a bias-free Linear(2H, H), one Qwen3NextDecoderLayer of a
  one-layer full-attention config, the rotary module, the final norm, and the main model's
  embedding and lm_head, fed the main model's final-normed hidden rows. fp32 checkpoint, same
  1e-3 x scale bound as the main model's oracle tests (test_forward_oracle), for the same reasons.
* Verify and rollback: teacher-forced decoding recomputed by 2-token verify steps whose drafts
  are alternately right and wrong, rolling the Gated DeltaNet state back after each wrong one.
  Every logit row must be bit-identical to plain token-by-token decoding: a verify step runs
  exactly the decode path (SequenceChunk::verify) and the rollback restores the saved state, so
  any difference, even one ulp, is a bug.
* End to end (`lowbit generate`): greedy and seeded-sampling outputs with --speculative-algorithm
  NEXTN are token-for-token those without it, on a head that predicts well (acceptance >= 0.7;
  the fixture's construction is in its docstring) and on a random one (acceptance ~ 0).
* Refusals: a checkpoint without mtp.*, a model without an MTP head, unsupported flag values.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from conftest import BUILD, PY, REPO, run

PREPARE = REPO / "tools" / "prepare"
LOWBIT = BUILD / "lowbit"
VOCAB = 512


def make(out: Path, *args, seed=5):
    run([PY, PREPARE / "make_random_qwen3_next.py", "--out", out, "--seed", str(seed), *map(str, args)])
    return out


def tool(model_dir, seqs, out, forced=None):
    spec = {"mode": "mtp", "threads": 2,
            "sequences": [{"prompt": p, "forced": (forced or [[]] * len(seqs))[i]} for i, p in enumerate(seqs)]}
    out.with_suffix(".json").write_text(json.dumps(spec))
    run([BUILD / "model_logits_tool", model_dir, out.with_suffix(".json"), out])
    return load_file(str(out))


def mtp_oracle(model_dir: Path, ids):
    sys.path.insert(0, str(PREPARE))
    from make_random_qwen3_moe import to_fused
    from safetensors.torch import load_file as torch_load
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.qwen3_next.modeling_qwen3_next import (Qwen3NextDecoderLayer, Qwen3NextRMSNorm,
                                                                    Qwen3NextRotaryEmbedding)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    cfg = AutoConfig.from_pretrained(str(model_dir))
    cfg.num_hidden_layers, cfg.layer_types, cfg._attn_implementation = 1, ["full_attention"], "eager"
    t = torch_load(str(model_dir / "model.safetensors"))
    mtp = {k: v.float() for k, v in t.items() if k.startswith("mtp.")}
    layer_sd = to_fused({"model.layers.0." + k[len("mtp.layers.0."):]: v for k, v in mtp.items()
                         if k.startswith("mtp.layers.0.")})
    layer = Qwen3NextDecoderLayer(cfg, 0).float().eval()
    layer.load_state_dict({k[len("model.layers.0."):]: v for k, v in layer_sd.items()})
    H = cfg.hidden_size
    norms = {}
    for n in ("pre_fc_norm_embedding", "pre_fc_norm_hidden", "norm"):
        norms[n] = Qwen3NextRMSNorm(H, eps=cfg.rms_norm_eps)
        norms[n].weight.data.copy_(mtp[f"mtp.{n}.weight"])
    fc = torch.nn.Linear(2 * H, H, bias=False)
    fc.weight.data.copy_(mtp["mtp.fc.weight"])
    rotary = Qwen3NextRotaryEmbedding(cfg)
    with torch.no_grad():
        x = torch.tensor([ids])
        h = model.model(x).last_hidden_state[:, :-1]             # final-normed h_p, p = 0..T-2
        e = model.model.embed_tokens(x[:, 1:])                   # t_{p+1}
        u = fc(torch.cat([norms["pre_fc_norm_embedding"](e), norms["pre_fc_norm_hidden"](h)], -1))
        T = u.shape[1]
        pos = torch.arange(T)[None]
        mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
        u = layer(u, position_embeddings=rotary(u, pos), attention_mask=mask, position_ids=pos)
        return model.lm_head(norms["norm"](u))[0].numpy()


def test_mtp_head_matches_transformers_modules(tmp_path):
    d = make(tmp_path / "m", "--mtp", "random", "--vocab", VOCAB)
    rng = np.random.default_rng(3)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (6, 70)]
    got = tool(d, seqs, tmp_path / "out.safetensors")
    for i, ids in enumerate(seqs):
        want = mtp_oracle(d, ids)
        lb = got[f"seq{i}.mtp_logits"]
        scale = float(np.abs(want).max())
        diff = float(np.abs(lb - want).max())
        print(f"MTP head, {len(ids)} tokens: max |dlogit| {diff:.3g} at scale {scale:.3g}")
        assert diff <= 1e-3 * scale


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_verify_with_rollback_equals_plain_decode_bit_for_bit(tmp_path, dtype):
    d = make(tmp_path / "m", "--mtp", "random", "--vocab", VOCAB, "--dtype", dtype)
    rng = np.random.default_rng(4)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (5, 67)]
    forced = [rng.integers(0, VOCAB, 21).tolist() for _ in seqs]
    got = tool(d, seqs, tmp_path / "out.safetensors", forced)
    for i in range(len(seqs)):
        plain, spec = got[f"seq{i}.decode_logits"], got[f"seq{i}.spec_logits"]
        # Row j: after feeding forced[0..j-1]; verify steps reach the last forced token or the one before.
        assert len(spec) >= len(plain) - 2, (spec.shape, plain.shape)
        plain = plain[:len(spec)]
        assert np.array_equal(spec, plain), f"seq{i}: rows {np.where((spec != plain).any(-1))[0].tolist()} differ"


def generate(model_dir, prompt, *extra):
    r = subprocess.run([str(LOWBIT), "generate", "-q", "--model-path", str(model_dir), "--prompt", prompt,
                        "--max-new-tokens", "48", "--ignore-eos", "--json", "--threads", "2", *map(str, extra)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


PROMPTS = ["Hello there, how are you", "The quick brown fox jumps over the lazy dog and then", "1 2 3"]


@pytest.fixture(scope="module")
def full_vocab(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtp")
    return {kind: make(root / kind, "--mtp", kind, "--vocab", 151936, "--dtype", "bfloat16", seed=3)
            for kind in ("predictable", "random")}


@pytest.mark.parametrize("kind", ["predictable", "random"])
def test_speculative_outputs_equal_plain_outputs(full_vocab, kind):
    rates = []
    for prompt in PROMPTS:
        for sampling in ([], ["--temperature", "0.8", "--seed", "11"]):
            plain = generate(full_vocab[kind], prompt, *sampling)
            spec = generate(full_vocab[kind], prompt, "--speculative-algorithm", "NEXTN", "--speculative-adaptive",
                            "false", *sampling)
            adaptive = generate(full_vocab[kind], prompt, "--speculative-algorithm", "NEXTN", *sampling)
            assert adaptive["output_token_ids"] == plain["output_token_ids"], (prompt, sampling)
            assert spec["output_token_ids"] == plain["output_token_ids"], (prompt, sampling)
            assert plain["speculative"] is None
            s = spec["speculative"]
            assert s["draft_tokens"] >= 24 and 0 <= s["accepted_draft_tokens"] <= s["draft_tokens"]
            if not sampling:
                rates.append(s["acceptance_rate"])
    print(f"{kind}: greedy acceptance rates {rates}")
    if kind == "predictable":
        assert min(rates) >= 0.7
    else:
        assert max(rates) <= 0.1


def test_refusals(tmp_path, full_vocab):
    no_mtp = make(tmp_path / "no_mtp", "--vocab", 151936, "--dtype", "bfloat16", "--layers", 4, "--interval", 2)
    r = subprocess.run([str(LOWBIT), "generate", "--model-path", str(no_mtp), "--prompt", "hi", "-n", "2",
                        "--speculative-algorithm", "NEXTN"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "mtp.fc.weight" in r.stderr and "--speculative-draft-model-path" in r.stderr, r.stderr
    # The MTP head from another folder (SGLang's --speculative-draft-model-path).
    out = generate(no_mtp, "hi", "--speculative-algorithm", "NEXTN", "--speculative-draft-model-path",
                   full_vocab["random"])
    assert out["speculative"]["draft_tokens"] > 0
    for flags, needle in [(["--speculative-algorithm", "EAGLE3"], "not supported"),
                          (["--speculative-algorithm", "NEXTN", "--speculative-num-draft-tokens", "4"], "--speculative-num-draft-tokens 2"),
                          (["--speculative-draft-model-path", str(full_vocab["random"])], "needs --speculative-algorithm")]:
        r = subprocess.run([str(LOWBIT), "generate", "--model-path", str(full_vocab["random"]), "--prompt", "hi",
                            "-n", "2", *flags], capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and needle in r.stderr, (flags, r.stderr)
