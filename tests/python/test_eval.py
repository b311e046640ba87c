"""`lowbit eval ppl` and `lowbit eval kld` on the real SmolLM2-135M, against transformers.

Windows, as lowbit documents them (src/runtime/eval_text.h, llama.cpp's rule): non-overlapping
windows of CTX tokens, each from an empty cache, scoring the logits at positions CTX/2 … CTX−2
against the next token. SmolLM2's tokenizer adds no BOS, so windows are plain slices.

Tolerances.
  Perplexity vs transformers in float32 (BF16 weights upcast exactly, so both sides do the same
  math on the same weights): the forward-pass oracle bounds |Δlogit| by 1e-3 × the logit scale and
  measures ~1e-5 relative; a per-token NLL moves by at most ~2 max|Δlogit| (the target logit and
  the log-sum-exp), and the mean over 378 tokens averages the rounding noise. We require
  |ΔPPL|/PPL ≤ 1e-5 (measured 1.2e-7 on an AVX-512 host; the print shows it with -s): 80× margin
  for other kernels' summation orders, while a wrong window, an off-by-one target or a dropped
  position moves PPL by percents.
  KL of the model against itself: the same weights through the same deterministic kernels give
  bit-identical logits, so KL is exactly 0 and top-1 agreement 100%.
  KL against a copy with one layer's weights noised: compared with KL computed in float64 from
  transformers' float32 logits of both models; relative 2e-3 (both sides' logits carry ~1e-5
  relative noise, and this perturbation's KL is ~1e-2 nats, so noise/KL ≲ 1e-3; measured 2e-6).
  --save-base / --base: the stored base log-probs round to ≤ 1.2e-4 nats per entry
  (kl_divergence.h), so KL through the file agrees with direct KL to 2e-4 nats + 1e-3 relative,
  and PPL(base) is exact (the target's log-prob is stored in full precision).
"""
import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import BUILD, run

CTX = 128
MAX_TOKENS = 768  # 6 windows, 6 × 63 = 378 scored tokens

# Chapter 1 of Jane Austen's "Pride and Prejudice" (1813, public domain), as in the Debian
# package r-cran-janeaustenr that tools/prepare/eval_corpus.py reads for the full evaluation.
TEXT = """It is a truth universally acknowledged, that a single man in possession
of a good fortune, must be in want of a wife.

However little known the feelings or views of such a man may be on his
first entering a neighbourhood, this truth is so well fixed in the minds
of the surrounding families, that he is considered the rightful property
of some one or other of their daughters.

"My dear Mr. Bennet," said his lady to him one day, "have you heard that
Netherfield Park is let at last?"

Mr. Bennet replied that he had not.

"But it is," returned she; "for Mrs. Long has just been here, and she
told me all about it."

Mr. Bennet made no answer.

"Do you not want to know who has taken it?" cried his wife impatiently.

"_You_ want to tell me, and I have no objection to hearing it."

This was invitation enough.

"Why, my dear, you must know, Mrs. Long says that Netherfield is taken
by a young man of large fortune from the north of England; that he came
down on Monday in a chaise and four to see the place, and was so much
delighted with it, that he agreed with Mr. Morris immediately; that he
is to take possession before Michaelmas, and some of his servants are to
be in the house by the end of next week."

"What is his name?"

"Bingley."

"Is he married or single?"

"Oh! Single, my dear, to be sure! A single man of large fortune; four or
five thousand a year. What a fine thing for our girls!"

"How so? How can it affect them?"

"My dear Mr. Bennet," replied his wife, "how can you be so tiresome! You
must know that I am thinking of his marrying one of them."

"Is that his design in settling here?"

"Design! Nonsense, how can you talk so! But it is very likely that he
_may_ fall in love with one of them, and therefore you must visit him as
soon as he comes."

"I see no occasion for that. You and the girls may go, or you may send
them by themselves, which perhaps will be still better, for as you are
as handsome as any of them, Mr. Bingley may like you the best of the
party."

"My dear, you flatter me. I certainly _have_ had my share of beauty, but
I do not pretend to be anything extraordinary now. When a woman has five
grown-up daughters, she ought to give over thinking of her own beauty."

"In such cases, a woman has not often much beauty to think of."

"But, my dear, you must indeed go and see Mr. Bingley when he comes into
the neighbourhood."

"It is more than I engage for, I assure you."

"But consider your daughters. Only think what an establishment it would
be for one of them. Sir William and Lady Lucas are determined to
go, merely on that account, for in general, you know, they visit no
newcomers. Indeed you must go, for it will be impossible for _us_ to
visit him if you do not."

"You are over-scrupulous, surely. I dare say Mr. Bingley will be very
glad to see you; and I will send a few lines by you to assure him of my
hearty consent to his marrying whichever he chooses of the girls; though
I must throw in a good word for my little Lizzy."

"I desire you will do no such thing. Lizzy is not a bit better than the
others; and I am sure she is not half so handsome as Jane, nor half so
good-humoured as Lydia. But you are always giving _her_ the preference."

"They have none of them much to recommend them," replied he; "they are
all silly and ignorant like other girls; but Lizzy has something more of
quickness than her sisters."

"Mr. Bennet, how _can_ you abuse your own children in such a way? You
take delight in vexing me. You have no compassion for my poor nerves."

"You mistake me, my dear. I have a high respect for your nerves. They
are my old friends. I have heard you mention them with consideration
these last twenty years at least."

"Ah, you do not know what I suffer."

"But I hope you will get over it, and live to see many young men of four
thousand a year come into the neighbourhood."

"It will be no use to us, if twenty such should come, since you will not
visit them."

"Depend upon it, my dear, that when there are twenty, I will visit them
all."

Mr. Bennet was so odd a mixture of quick parts, sarcastic humour,
reserve, and caprice, that the experience of three-and-twenty years had
been insufficient to make his wife understand his character. _Her_ mind
was less difficult to develop. She was a woman of mean understanding,
little information, and uncertain temper. When she was discontented,
she fancied herself nervous. The business of her life was to get her
daughters married; its solace was visiting and news.
"""


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("eval") / "chapter1.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def lowbit_eval(*args):
    r = run([BUILD / "lowbit", "eval", *args, "--ctx", CTX, "--max-tokens", MAX_TOKENS, "--threads", 2,
             "--json", "--quiet"])
    return json.loads(r.stdout)


def windows(model_dir, text):
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    ids = ids[:MAX_TOKENS]
    n = len(ids) // CTX
    assert n >= 2
    return [ids[w * CTX:(w + 1) * CTX] for w in range(n)]


def hf_log_probs(model_dir, wins):
    """float64 log-softmax of transformers' float32 logits at the scored positions: [W, CTX/2-1, V]."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    first = CTX // 2
    out = []
    with torch.no_grad():
        for w in wins:
            logits = model(torch.tensor([w])).logits[0, first:CTX - 1].double()
            out.append(torch.log_softmax(logits, dim=-1).numpy())
    return np.stack(out)


def targets(wins):
    first = CTX // 2
    return np.array([w[first + 1:CTX] for w in wins])


@pytest.fixture(scope="module")
def perturbed_dir(smollm2_dir, tmp_path_factory):
    """SmolLM2 with layer 3's MLP weights noised by 20% of their RMS, written with safetensors."""
    import torch
    from safetensors.torch import load_file, save_file
    d = tmp_path_factory.mktemp("perturbed")
    for f in smollm2_dir.iterdir():
        if f.name != "model.safetensors" and f.is_file():
            shutil.copy(f, d / f.name)
    tensors = load_file(str(smollm2_dir / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    for name in ("gate_proj", "up_proj", "down_proj"):
        key = f"model.layers.3.mlp.{name}.weight"
        w = tensors[key].float()
        noise = torch.randn(w.shape, generator=g) * w.pow(2).mean().sqrt() * 0.2
        tensors[key] = (w + noise).to(tensors[key].dtype)
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    return d


@pytest.fixture(scope="module")
def oracle(smollm2_dir, perturbed_dir):
    wins = windows(smollm2_dir, TEXT)
    return {"targets": targets(wins), "base": hf_log_probs(smollm2_dir, wins),
            "perturbed": hf_log_probs(perturbed_dir, wins)}


def oracle_ppl(logp, tgt):
    nll = -np.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
    return float(np.exp(nll.mean())), nll.size


def test_ppl_matches_transformers(smollm2_dir, text_file, oracle):
    ours = lowbit_eval("ppl", "--model-path", smollm2_dir, "--text", text_file)
    want, n = oracle_ppl(oracle["base"], oracle["targets"])
    assert ours["scored_tokens"] == n == 6 * (CTX - 1 - CTX // 2)
    assert ours["windows"] == 6 and ours["ctx"] == CTX
    rel = abs(ours["ppl"] - want) / want
    print(f"PPL lowbit {ours['ppl']:.6f} transformers {want:.6f} relative {rel:.2e}")
    assert rel <= 1e-5, f"lowbit PPL {ours['ppl']:.6f} vs transformers {want:.6f} (relative {rel:.2e})"


def test_kld_of_model_against_itself_is_zero(smollm2_dir, text_file):
    out = lowbit_eval("kld", "--model-path", smollm2_dir, "--base-model-path", smollm2_dir, "--text", text_file)
    assert out["kl"]["max"] == 0.0 and out["kl"]["mean"] == 0.0
    assert out["same_top"] == 1.0
    assert out["delta_ppl"] == 0.0
    assert out["ppl_base"]["ppl"] == out["ppl_quant"]["ppl"]
    ppl = lowbit_eval("ppl", "--model-path", smollm2_dir, "--text", text_file)
    assert ppl["ppl"] == out["ppl_quant"]["ppl"]


def test_kld_against_perturbed_model_matches_transformers(smollm2_dir, perturbed_dir, text_file, oracle, tmp_path):
    direct = lowbit_eval("kld", "--model-path", perturbed_dir, "--base-model-path", smollm2_dir, "--text", text_file)
    p, q = oracle["base"], oracle["perturbed"]
    kl = (np.exp(p) * (p - q)).sum(-1).ravel()
    same_top = float((p.argmax(-1) == q.argmax(-1)).mean())
    print(f"KL mean lowbit {direct['kl']['mean']:.6e} transformers {kl.mean():.6e}; same top {same_top:.4f}")
    assert kl.mean() > 1e-3, "the perturbation is too weak to test anything"
    assert direct["kl"]["mean"] == pytest.approx(kl.mean(), rel=2e-3)
    assert direct["kl"]["max"] == pytest.approx(kl.max(), rel=2e-3)
    assert direct["kl"]["median"] == pytest.approx(np.median(kl), rel=2e-3)
    assert abs(direct["same_top"] - same_top) <= 1.5 / kl.size  # one near-tie may flip
    assert direct["same_top"] < 1.0
    assert direct["ppl_quant"]["ppl"] == pytest.approx(oracle_ppl(q, oracle["targets"])[0], rel=1e-4)

    # Two-step mode: store the base once, then evaluate without the float model.
    base = tmp_path / "base.kld"
    saved = lowbit_eval("kld", "--model-path", perturbed_dir, "--base-model-path", smollm2_dir, "--text", text_file,
                        "--save-base", base)
    assert saved["kl"] == direct["kl"]
    vocab = p.shape[-1]
    assert base.stat().st_size == 40 + direct["scored_tokens"] * (24 + 2 * vocab)
    from_file = lowbit_eval("kld", "--model-path", perturbed_dir, "--base", base, "--text", text_file)
    assert from_file["ppl_base"] == direct["ppl_base"]
    assert from_file["ppl_quant"] == direct["ppl_quant"]
    assert from_file["same_top"] == direct["same_top"]
    assert from_file["kl"]["mean"] == pytest.approx(direct["kl"]["mean"], abs=2e-4, rel=1e-3)
    assert from_file["kl"]["max"] == pytest.approx(direct["kl"]["max"], abs=2e-4, rel=1e-3)

    # A base file made with another window size is refused.
    bad = subprocess.run([str(BUILD / "lowbit"), "eval", "kld", "--model-path", str(perturbed_dir), "--base", str(base),
                          "--text", str(text_file), "--ctx", "64", "--max-tokens", str(MAX_TOKENS), "-q"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "windows of 128 tokens" in bad.stderr
