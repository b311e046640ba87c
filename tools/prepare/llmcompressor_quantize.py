#!/usr/bin/env python3
"""Writes a real compressed-tensors checkpoint with llm-compressor (0.14) from a float HF folder.

  python tools/prepare/llmcompressor_quantize.py --model DIR --out DIR --scheme NAME [--gptq | --awq]
      [--calib FILE --calib-tokens 2048 --seq-len 256 | --calib-samples 4 --seq-len 16]
      [--ignore lm_head ...] [--dtype bfloat16]

`oneshot` with `QuantizationModifier` (plain round-to-nearest with the library's min-max observers),
with --gptq `GPTQModifier`, or with --awq `AWQModifier` (its default Llama/Qwen3 mappings and
duo-scaling grid, then round to nearest), on every Linear except --ignore; saved with
save_compressed=True.
Schemes (preset names are compressed-tensors' own presets):
  W8A8          int8 channel weights, int8 dynamic per-token activations (preset)
  W8A8_STATIC   int8 channel weights, int8 static symmetric per-tensor activations
  W8A8_STATIC_ASYM  the same with asymmetric activations (adds input_zero_point)
  W4A16         int4 symmetric, group 128 (preset; pack-quantized)
  W4A16_ASYM    int4 asymmetric, group 128 (preset; packed zero points)
  W4A16_G32 / W4A16_ASYM_G32 / W4A16_CHANNEL   group 32 sym / asym, per-channel sym
  FP8           e4m3 per-tensor weights, static per-tensor activations (preset)
  FP8_DYNAMIC   e4m3 per-channel weights, dynamic per-token activations (preset)
  FP8_BLOCK     e4m3 128x128 blocks, dynamic per-token-group-128 activations (preset)

Calibration (static activation scales, GPTQ's Hessians; RTN weight-only schemes ignore the data):
--calib FILE tokenizes a text file with the folder's tokenizer and cuts its first --calib-tokens
tokens into rows of --seq-len; without it, --calib-samples rows of --seq-len random ids below
min(vocab, 1024) are drawn from a fixed seed. The Dataset is built here, so nothing is
downloaded (HF_HUB_OFFLINE=1 is set). Runs on the CPU; llm-compressor keeps global session
state, so run one scheme per process.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PRESETS = ["W8A8", "W4A16", "W4A16_ASYM", "FP8", "FP8_DYNAMIC", "FP8_BLOCK"]


def custom_schemes():
    from compressed_tensors.quantization import QuantizationArgs as A

    def int_w(bits, sym, strategy, group=None):
        return A(num_bits=bits, type="int", symmetric=sym, strategy=strategy, group_size=group)

    static_act = dict(num_bits=8, type="int", strategy="tensor", dynamic=False)
    return {
        "W8A8_STATIC": dict(weights=int_w(8, True, "channel"), input_activations=A(symmetric=True, **static_act)),
        "W8A8_STATIC_ASYM": dict(weights=int_w(8, True, "channel"), input_activations=A(symmetric=False, **static_act)),
        "W4A16_G32": dict(weights=int_w(4, True, "group", 32)),
        "W4A16_ASYM_G32": dict(weights=int_w(4, False, "group", 32)),
        "W4A16_CHANNEL": dict(weights=int_w(4, True, "channel")),
    }


SCHEMES = PRESETS + ["W8A8_STATIC", "W8A8_STATIC_ASYM", "W4A16_G32", "W4A16_ASYM_G32", "W4A16_CHANNEL"]


def calibration_rows(model_dir: Path, vocab: int, a) -> list[list[int]]:
    import torch
    if a.calib:
        from transformers import AutoTokenizer
        ids = AutoTokenizer.from_pretrained(model_dir)(Path(a.calib).read_text())["input_ids"][:a.calib_tokens]
        if max(ids) >= vocab:
            sys.exit(f"{a.calib}: token id {max(ids)} >= vocab_size {vocab} of {model_dir}; use random ids")
        rows = [ids[i:i + a.seq_len] for i in range(0, len(ids) - a.seq_len + 1, a.seq_len)]
        if not rows:
            sys.exit(f"{a.calib}: fewer than --seq-len {a.seq_len} tokens")
        return rows
    g = torch.Generator().manual_seed(a.seed)
    return torch.randint(0, min(vocab, 1024), (a.calib_samples, a.seq_len), generator=g).tolist()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--scheme", required=True, choices=SCHEMES)
    algo = ap.add_mutually_exclusive_group()
    algo.add_argument("--gptq", action="store_true", help="GPTQModifier instead of plain RTN")
    algo.add_argument("--awq", action="store_true", help="AWQModifier (scale search) instead of plain RTN")
    ap.add_argument("--calib", type=Path, help="text file for calibration (default: random ids)")
    ap.add_argument("--calib-tokens", type=int, default=2048)
    ap.add_argument("--calib-samples", type=int, default=4, help="rows of random ids (without --calib)")
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ignore", nargs="*", default=["lm_head"],
                    help="module names or re: patterns left in float (default: lm_head)")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    a = ap.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from llmcompressor import oneshot
    from llmcompressor.modifiers.awq import AWQModifier
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from compressed_tensors.quantization import QuantizationScheme

    if a.awq and not torch.cuda.is_available():
        # llm-compressor 0.14's AWQModifier pins its cached activations for faster host-to-GPU
        # copies; pin_memory() needs a CUDA driver and raises without one. Pinning is only a
        # transfer optimisation, so on a CPU-only machine it is skipped.
        from llmcompressor.pipelines.cache import IntermediatesCache
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype))
    Modifier = GPTQModifier if a.gptq else AWQModifier if a.awq else QuantizationModifier
    custom = custom_schemes()
    if a.scheme in custom:
        mod = Modifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], **custom[a.scheme])},
                       ignore=a.ignore)
    else:
        mod = Modifier(targets="Linear", scheme=a.scheme, ignore=a.ignore)
    rows = calibration_rows(a.model, model.config.vocab_size, a)
    ds = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]})
    oneshot(model=model, recipe=mod, dataset=ds, num_calibration_samples=len(rows), max_seq_length=a.seq_len)
    model.save_pretrained(a.out, save_compressed=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):  # keep the folder usable
        src, dst = a.model / f, a.out / f
        if src.exists() and not dst.exists():
            dst.write_bytes(src.read_bytes())
    qc = json.loads((a.out / "config.json").read_text())["quantization_config"]
    print(f"wrote {a.out}: {a.scheme}{' (GPTQ)' if a.gptq else ' (AWQ)' if a.awq else ''}, format {qc.get('format')}, "
          f"{len(rows)} calibration rows of {a.seq_len}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
