#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers, for comparing lowbit against.

  python tools/prepare/hf_oracle.py MODEL_DIR --out ORACLE.safetensors [--spec SPEC.json]   (spec on stdin if no --spec)

SPEC: {"sequences": [[ids...], ...], "decode_steps": 16, "dtype": "float32" | "bfloat16"}
      (decode_steps defaults to 16, dtype to "float32")

The model is loaded with AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=..., attn_implementation
="eager"), in eval mode, without gradients, on the CPU. dtype float32 with a BF16 checkpoint upcasts
the weights exactly (and computes in float32); bfloat16 computes in bfloat16 (logits stored as F32).

Output tensors, for each sequence i (T = prompt length, V = vocab size, S = decode_steps):
  seq{i}.prompt_ids     I64 [T]     the prompt
  seq{i}.prompt_logits  F32 [T, V]  logits at every prompt position (one forward over the prompt)
  seq{i}.greedy_ids     I64 [S]     greedy continuation: greedy_ids[j] = argmax(decode_logits[j])
                                    (torch.argmax: the lowest id among exact ties)
  seq{i}.decode_logits  F32 [S, V]  decode_logits[0] = prompt_logits[T-1]; decode_logits[j] (j >= 1) =
                                    logits of a one-token step fed greedy_ids[j-1] with the KV cache
                                    (model(..., past_key_values=cache, use_cache=True)), as generate does
No EOS handling: always S steps. File metadata (__metadata__): model dir, dtype, decode_steps,
n_sequences, transformers/torch versions. Prints a one-line summary including the smallest top1-top2
logit gap over all decode steps (a small gap means a greedy path another implementation may
legitimately leave).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_transformers  # noqa: E402  (also sets the offline environment)


def run(model_dir: str, spec: dict, out: str) -> str:
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    quiet_transformers()

    seqs = spec.get("sequences")
    if not isinstance(seqs, list) or not seqs or not all(isinstance(s, list) and s for s in seqs):
        raise SystemExit("spec.sequences must be a non-empty list of non-empty id lists")
    steps = int(spec.get("decode_steps", 16))
    dtype_name = spec.get("dtype", "float32")
    if dtype_name not in ("float32", "bfloat16") or steps < 0:
        raise SystemExit(f"bad spec: dtype {dtype_name!r}, decode_steps {steps}")
    unknown = set(spec) - {"sequences", "decode_steps", "dtype"}
    if unknown:
        raise SystemExit(f"unknown spec keys {sorted(unknown)}")

    t0 = time.time()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype_name),
                                                 attn_implementation="eager")
    model.eval()
    vocab = model.config.vocab_size
    tensors: dict[str, torch.Tensor] = {}
    min_gap = float("inf")
    n_tokens = 0
    with torch.no_grad():
        for i, seq in enumerate(seqs):
            if any((not isinstance(t, int)) or t < 0 or t >= vocab for t in seq):
                raise SystemExit(f"sequence {i}: ids must be ints in [0, {vocab})")
            ids = torch.tensor([seq], dtype=torch.long)
            o = model(input_ids=ids, use_cache=True)
            prompt_logits = o.logits[0].float()
            cache = o.past_key_values
            last = prompt_logits[-1]
            greedy, decode = [], []
            for j in range(steps):
                if j > 0:
                    o = model(input_ids=greedy[-1].view(1, 1), past_key_values=cache, use_cache=True)
                    cache = o.past_key_values
                    last = o.logits[0, -1].float()
                decode.append(last.clone())
                greedy.append(torch.argmax(last))
                if vocab > 1:
                    top2 = torch.topk(last, 2).values
                    min_gap = min(min_gap, float(top2[0] - top2[1]))
            tensors[f"seq{i}.prompt_ids"] = ids[0].clone()
            tensors[f"seq{i}.prompt_logits"] = prompt_logits.contiguous()
            tensors[f"seq{i}.greedy_ids"] = torch.stack(greedy).to(torch.int64) if greedy else torch.zeros(0, dtype=torch.int64)
            tensors[f"seq{i}.decode_logits"] = torch.stack(decode).contiguous() if decode else torch.zeros(0, vocab)
            n_tokens += len(seq)
    meta = {"model_dir": str(Path(model_dir).resolve()), "dtype": dtype_name, "decode_steps": str(steps),
            "n_sequences": str(len(seqs)), "transformers": transformers.__version__, "torch": torch.__version__,
            "generator": "tools/prepare/hf_oracle.py"}
    save_file(tensors, out, metadata=meta)
    gap = f"{min_gap:.4g}" if steps and min_gap != float("inf") else "n/a"
    return (f"hf_oracle: {len(seqs)} sequences, {n_tokens} prompt tokens, {steps} decode steps, dtype {dtype_name}, "
            f"vocab {vocab}, min top1-top2 gap {gap} -> {out} ({time.time() - t0:.1f}s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="Hugging Face model folder")
    ap.add_argument("--model", dest="model_opt", help="same as the positional MODEL_DIR")
    ap.add_argument("--spec", help="JSON spec file (default: stdin)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model_dir = a.model or a.model_opt
    if not model_dir:
        ap.error("MODEL_DIR required")
    spec = json.loads(Path(a.spec).read_text() if a.spec else sys.stdin.read())
    print(run(model_dir, spec, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
