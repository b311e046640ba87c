"""`lowbit serve` on a random Qwen3-Next (Gated DeltaNet layers with per-sequence recurrent state
beside paged KV; tools/prepare/make_random_qwen3_next.py with the real Qwen3 vocabulary, BF16).

Continuous batching must not change what a greedy request generates: eight prompts whose lengths
straddle the delta rule's 64-token block (3 ... 257 tokens) give the same token ids sent one at a
time and all at once (chunked prefill of 64 and a 128-token prefill budget, so prompts are cut
into several chunks that continue from a non-zero recurrent state and mix with decode tokens).
Bit-identical is the right bound: the scheduler cuts recurrent models' prompts on the 64-token
grid and the kernels run each block the same way whatever the call (kernels/gdn.h), and every
other op is batch-invariant on one kernel family (engine_test; pinned to AVX-512 here too).

With --speculative-algorithm NEXTN (2-token verify chunks of several requests in one batch, the
MTP head's rows of every request in one more), the same requests give the same ids again (greedy,
and seeded sampling), and
/metrics reports SGLang's accept length (> 1.5 on this head).

Under a KV budget so small that requests are preempted, every request still completes with its
full length (a preempted sequence gives its recurrent slot back and restarts from a zeroed one),
and the prefix cache reports itself off for this model (its prefix is a state, not KV pages).
"""
import threading

import pytest

from conftest import PY, REPO, run
from test_server import Server

PROMPT_LENGTHS = [3, 17, 64, 65, 100, 150, 200, 257]
NEW_TOKENS = 10


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # With a predictable MTP head (acceptance ~0.9; make_random_qwen3_next.py says how), which
    # plain serving ignores.
    out = tmp_path_factory.mktemp("next") / "model"
    run([PY, REPO / "tools" / "prepare" / "make_random_qwen3_next.py", "--out", out, "--vocab", "151936",
         "--dtype", "bfloat16", "--seed", "11", "--mtp", "predictable"])
    return out


def prompts():
    import numpy as np
    rng = np.random.default_rng(7)
    return [rng.integers(0, 150000, n).tolist() for n in PROMPT_LENGTHS]


def generate(server, ids, new_tokens=NEW_TOKENS, **sampling):
    status, r = server.json("POST", "/generate", {"input_ids": ids, "sampling_params": {
        "max_new_tokens": new_tokens, "temperature": 0, "ignore_eos": True, **sampling}})
    assert status == 200, r
    return r["output_ids"]


def concurrently(server, seqs, new_tokens=NEW_TOKENS):
    out = [None] * len(seqs)

    def one(i):
        out[i] = generate(server, seqs[i], new_tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(seqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out


def test_batching_does_not_change_greedy_outputs(model_dir, monkeypatch):
    # On AMX machines batched prompt rows go to AMX tiles, which sum in another order than the
    # AVX-512 decode kernels (engine_test pins the same): invariance is a property of one family.
    monkeypatch.setenv("LOWBIT_MAX_ISA", "avx512")
    s = Server(model_dir, "--max-running-requests", 8, "--chunked-prefill-size", 64, "--max-prefill-tokens", 128)
    try:
        seqs = prompts()
        alone = [generate(s, ids) for ids in seqs]
        together = concurrently(s, seqs)
        assert all(len(a) == NEW_TOKENS for a in alone)
        assert together == alone
    finally:
        code, out = s.stop()
    assert code == 0, out
    assert "radix-cache=off" in out, out


def test_preemption_frees_and_resets_recurrent_slots(model_dir):
    # 512 tokens of KV (16 pages of 32): five 60-token prompts are admitted (3 pages each with
    # the reserve), then grow to 120 tokens (4 pages each): the newest are preempted.
    s = Server(model_dir, "--max-running-requests", 8, "--max-total-tokens", 512, "--context-length", 300)
    try:
        seqs = [p[:60] for p in prompts()[-6:]]
        together = concurrently(s, seqs, 60)
        assert [len(t) for t in together] == [60] * len(seqs)
        m = s.metrics()
        assert m["lowbit_preemptions_total"] > 0, "the budget was meant to force preemptions"
        # Every recurrent slot is free again: a further request runs normally.
        assert len(generate(s, seqs[0])) == NEW_TOKENS
    finally:
        code, out = s.stop()
    assert code == 0, out


def test_nextn_serving_gives_the_same_outputs(model_dir, monkeypatch):
    monkeypatch.setenv("LOWBIT_MAX_ISA", "avx512")  # as above: one kernel family
    seqs = prompts()
    seeded = {"temperature": 0.8, "seed": 7}
    plain = Server(model_dir, "--max-running-requests", 8, "--chunked-prefill-size", 64)
    try:
        alone = [generate(plain, ids) for ids in seqs]
        sampled = [generate(plain, ids, 24, **seeded) for ids in seqs[:3]]
    finally:
        plain.stop()
    s = Server(model_dir, "--max-running-requests", 8, "--chunked-prefill-size", 64,
               "--speculative-algorithm", "NEXTN", "--speculative-adaptive", "false")
    try:
        together = concurrently(s, seqs)
        assert together == alone
        m = s.metrics()
        assert m["lowbit_spec_plain_steps_total"] == 0, "every decode step drafts without the governor"
        print(f"accept length {m['sglang:spec_accept_length']:.2f} over {m['lowbit_spec_draft_tokens_total']:.0f} drafts")
        assert m["lowbit_spec_draft_tokens_total"] >= len(seqs) * NEW_TOKENS // 2
        assert m["sglang:spec_accept_length"] > 1.5
        # Seeded sampling: the draft is accepted iff the sampled token equals it, so the same
        # draws give the same tokens.
        assert [generate(s, ids, 24, **seeded) for ids in seqs[:3]] == sampled
    finally:
        code, out = s.stop()
    assert code == 0, out


def test_adaptive_nextn_serving_mixes_plain_and_draft_steps(model_dir, monkeypatch):
    # The default governor (runtime/spec_governor.h) starts with drafts, then measures one plain
    # step and keeps probing, so a run of decode steps has both kinds whatever the timings; on
    # plain steps the MTP rows wait in the sequence and run batched before its next draft. The
    # tokens must be those of plain serving however the steps were mixed.
    monkeypatch.setenv("LOWBIT_MAX_ISA", "avx512")
    seqs = prompts()
    plain = Server(model_dir, "--max-running-requests", 8, "--chunked-prefill-size", 64)
    try:
        alone = [generate(plain, ids, 40) for ids in seqs]
    finally:
        plain.stop()
    s = Server(model_dir, "--max-running-requests", 8, "--chunked-prefill-size", 64,
               "--speculative-algorithm", "NEXTN")
    try:
        together = concurrently(s, seqs, 40)
        assert together == alone
        m = s.metrics()
        print(f"verify steps {m['lowbit_spec_verify_steps_total']:.0f}, plain steps "
              f"{m['lowbit_spec_plain_steps_total']:.0f}, accept length {m['sglang:spec_accept_length']:.2f}")
        assert m["lowbit_spec_verify_steps_total"] > 0
        assert m["lowbit_spec_plain_steps_total"] > 0
        # One request alone after the batch: its steps follow the governor's current choice.
        assert generate(s, seqs[0], 40) == alone[0]
    finally:
        code, out = s.stop()
    assert code == 0, out
    assert "adaptive" in out, out
