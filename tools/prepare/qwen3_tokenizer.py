#!/usr/bin/env python3
"""The Qwen3 tokenizer kept in the repo (data/qwen3-tokenizer/).

tokenizer.json is 11 MB, so the repo tracks it xz-compressed (tokenizer.json.xz, python lzma
preset 9); tokenizer_config.json (with the chat template) is tracked as is.

  python tools/prepare/qwen3_tokenizer.py --unpack DIR      # write DIR/tokenizer.json + tokenizer_config.json
  python tools/prepare/qwen3_tokenizer.py --pack SRC_DIR    # (maintainers) refresh the repo copy from SRC_DIR

Other tools import unpack_to(dir).
"""
from __future__ import annotations

import argparse
import hashlib
import lzma
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "qwen3-tokenizer"
XZ = DATA / "tokenizer.json.xz"
CONFIG = DATA / "tokenizer_config.json"
# sha256 of the uncompressed tokenizer.json as published with the Qwen3 models.
TOKENIZER_JSON_SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"


def tokenizer_json_bytes() -> bytes:
    data = lzma.decompress(XZ.read_bytes())
    got = hashlib.sha256(data).hexdigest()
    if got != TOKENIZER_JSON_SHA256:
        raise RuntimeError(f"{XZ}: decompressed sha256 {got} != expected {TOKENIZER_JSON_SHA256}")
    return data


def unpack_to(out_dir: str | Path) -> None:
    """Writes tokenizer.json and tokenizer_config.json into out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = tokenizer_json_bytes()
    tmp = out / "tokenizer.json.tmp"
    tmp.write_bytes(data)
    tmp.replace(out / "tokenizer.json")
    shutil.copyfile(CONFIG, out / "tokenizer_config.json")


def pack_from(src_dir: str | Path) -> None:
    src = Path(src_dir)
    data = (src / "tokenizer.json").read_bytes()
    if hashlib.sha256(data).hexdigest() != TOKENIZER_JSON_SHA256:
        print("warning: source tokenizer.json differs from the pinned sha256; update TOKENIZER_JSON_SHA256",
              file=sys.stderr)
    DATA.mkdir(parents=True, exist_ok=True)
    XZ.write_bytes(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9))
    shutil.copyfile(src / "tokenizer_config.json", CONFIG)
    print(f"{XZ}: {XZ.stat().st_size} bytes (from {len(data)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--unpack", metavar="DIR")
    g.add_argument("--pack", metavar="SRC_DIR")
    a = ap.parse_args()
    if a.pack:
        pack_from(a.pack)
    else:
        unpack_to(a.unpack)
        print(Path(a.unpack) / "tokenizer.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
