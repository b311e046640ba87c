#!/usr/bin/env python3
"""Encode speed of lowbit's tokenizer vs HF `tokenizers`, one core each, measured in one run.

Corpus (~3 MB, deterministic): the license texts in /usr/share/common-licenses (English), the
first ~1 MB of Python's standard library sources (code), and ~0.3 MB of CJK text built from
the phrases in test_tokenizer_cases.py. Both tokenizers encode the whole corpus as one string
(add_special_tokens=False), REPS times; MB/s = corpus bytes / seconds. A second measurement
encodes it paragraph by paragraph (cut after each blank line; HF's encode_batch, which runs on
one thread with RAYON_NUM_THREADS=1), which is kinder to HF: its cost per call grows with the
length of the string.

  .venv/bin/python tests/python/bench_tokenizer.py [--dir TOKENIZER_DIR] [--reps 7]
"""
import argparse
import glob
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402  (after the thread settings)

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import test_tokenizer_cases as tokenizer_cases  # noqa: E402

DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "qwen3-tokenizer"


def corpus():
    english = "".join(pathlib.Path(f).read_text(errors="replace")
                      for f in sorted(glob.glob("/usr/share/common-licenses/*")) if os.path.isfile(f))
    code, size = [], 0
    for f in sorted(glob.glob(f"/usr/lib/python3.{sys.version_info.minor}/*.py")):
        text = pathlib.Path(f).read_text(errors="replace")
        code.append(text)
        size += len(text)
        if size > 1_000_000:
            break
    rng = random.Random(0)
    cjk = []
    while sum(map(len, cjk)) < 100_000:  # ~3 bytes per character
        cjk.append(rng.choice(tokenizer_cases.CJK) + rng.choice(["", "\n", " "]))
    parts = [english] * max(1, 1_700_000 // len(english)) + code + ["".join(cjk)]
    return "".join(parts)


def summary(rates):
    return {"min": round(min(rates), 2), "median": round(statistics.median(rates), 2),
            "max": round(max(rates), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("LOWBIT_QWEN3_TOKENIZER_DIR", DEFAULT_DIR)))
    ap.add_argument("--build", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("LOWBIT_BUILD_DIR", "/work/main/build")))
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    text = corpus()
    data = text.encode()
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(data)
        path = f.name
    tool = args.build / "src" / "tokenizer" / "tokenizer_tool"
    hf = tokenizers.Tokenizer.from_file(str(args.dir / "tokenizer.json"))
    paragraphs = [p for p in text.replace("\n\n", "\n\n\0").split("\0") if p]
    result = {"tokenizer": str(args.dir), "corpus_mb": round(len(data) / 1e6, 2)}
    try:
        for mode in ("whole", "paragraphs"):
            out = subprocess.run(["taskset", "-c", "0", str(tool), str(args.dir), "bench", path,
                                  str(args.reps), mode], capture_output=True, check=True, text=True)
            ours = json.loads(out.stdout)
            hf_rates, hf_tokens = [], 0
            for _ in range(args.reps):
                t0 = time.perf_counter()
                if mode == "whole":
                    hf_tokens = len(hf.encode(text, add_special_tokens=False).ids)
                else:
                    batch = hf.encode_batch(paragraphs, add_special_tokens=False)
                    hf_tokens = sum(len(e.ids) for e in batch)
                hf_rates.append(len(data) / 1e6 / (time.perf_counter() - t0))
            result[mode] = {
                "tokens": {"lowbit": ours["tokens"], "hf": hf_tokens},
                "lowbit_mb_per_s": summary(ours["mb_per_s"]), "hf_mb_per_s": summary(hf_rates),
                "speedup_median": round(statistics.median(ours["mb_per_s"])
                                        / statistics.median(hf_rates), 2)}
            if ours["tokens"] != hf_tokens:
                sys.exit(f"{mode}: token counts differ")
    finally:
        os.unlink(path)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
