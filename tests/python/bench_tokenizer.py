#!/usr/bin/env python3
"""Encode speed of lowbit's tokenizer vs HF `tokenizers`, one core each, measured in one run.

Corpus (~3 MB, deterministic): the license texts in /usr/share/common-licenses (English), the
first ~1 MB of Python's standard library sources (code), and ~0.3 MB of CJK text built from
the phrases in tokenizer_cases.py. Both tokenizers encode the whole corpus as one string
(add_special_tokens=False), REPS times; MB/s = corpus bytes / seconds.

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
import tokenizer_cases  # noqa: E402

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
    try:
        tool = args.build / "src" / "tokenizer" / "tokenizer_tool"
        out = subprocess.run(["taskset", "-c", "0", str(tool), str(args.dir), "bench", path,
                              str(args.reps)], capture_output=True, check=True, text=True)
        ours = json.loads(out.stdout)
    finally:
        os.unlink(path)

    hf = tokenizers.Tokenizer.from_file(str(args.dir / "tokenizer.json"))
    hf_rates, hf_tokens = [], 0
    for _ in range(args.reps):
        t0 = time.perf_counter()
        hf_tokens = len(hf.encode(text, add_special_tokens=False).ids)
        hf_rates.append(len(data) / 1e6 / (time.perf_counter() - t0))

    result = {"tokenizer": str(args.dir), "corpus_mb": round(len(data) / 1e6, 2),
              "tokens": {"lowbit": ours["tokens"], "hf": hf_tokens},
              "lowbit_mb_per_s": summary(ours["mb_per_s"]), "hf_mb_per_s": summary(hf_rates),
              "speedup_median": round(statistics.median(ours["mb_per_s"]) / statistics.median(hf_rates), 2)}
    print(json.dumps(result, indent=1))
    if ours["tokens"] != hf_tokens:
        sys.exit("token counts differ")


if __name__ == "__main__":
    main()
