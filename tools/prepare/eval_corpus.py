"""Writes lowbit's evaluation text, data/eval/austen-pride-and-prejudice.txt: Jane Austen's
"Pride and Prejudice" (1813, public domain) as shipped by the Debian package
r-cran-janeaustenr (MIT; the Project Gutenberg text, one element per line).

The package is only downloaded (`apt-get download`), never installed, so R is not needed:
its data lives in an R lazy-load database (data/Rdata.rdx: gzip'd serialized index of
name -> (offset, length); data/Rdata.rdb: per object, a 4-byte big-endian length followed
by a zlib stream of the serialized object). This file reads just the subset of R's XDR
serialization format those objects use (vectors, strings, attributes).

Usage: python3 tools/prepare/eval_corpus.py [--deb FILE] [--out FILE] [--novel NAME]
Idempotent: does nothing when the output exists. Standard library only.
"""
import argparse
import gzip
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "r-cran-janeaustenr"
DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"

# SEXP types used by the serialized objects (R Internals, "Serialization Formats").
NILVALUE, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, STRSXP, VECSXP, REFSXP = 254, 1, 2, 9, 10, 13, 16, 19, 255


class RReader:
    """Reads R's XDR serialization (format version 2 or 3) for the types listed above."""

    def __init__(self, data: bytes):
        if data[:2] != b"X\n":
            raise ValueError("not an XDR R serialization stream")
        self.d, self.p, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()  # writer's R version, minimal reader version
        if version == 3:
            encoding_len = self.int()  # then the native encoding's name
            self.p += encoding_len
        elif version != 2:
            raise ValueError(f"unsupported serialization version {version}")

    def int(self):
        v = struct.unpack_from(">i", self.d, self.p)[0]
        self.p += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two more words
            n = (self.int() << 32) + self.int()
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == NILVALUE:
            return None
        if kind == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == CHARSXP:
            n = self.int()
            if n == -1:  # NA_character_
                return None
            self.p += n
            return self.d[self.p - n:self.p].decode("utf-8")
        if kind == LISTSXP:  # pairlist (attributes): {tag: value}
            out = {}
            while kind == LISTSXP:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            if kind != NILVALUE:
                raise ValueError("pairlist not terminated by NULL")
            return out
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            value = list(struct.unpack_from(f">{n}i", self.d, self.p))
            self.p += 4 * n
        elif kind in (STRSXP, VECSXP):
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"SEXP type {kind} is not supported by this reader")
        if has_attr:
            attrs = self.item()
            if "names" in attrs:
                value = dict(zip(attrs["names"], value))
        return value


def read_lazyload(data_dir: Path, name: str):
    index = RReader(gzip.decompress((data_dir / "Rdata.rdx").read_bytes())).item()
    variables = index["variables"]
    if name not in variables:
        raise SystemExit(f"{name!r} not in {data_dir}: has {sorted(variables)}")
    offset, size = variables[name]
    with open(data_dir / "Rdata.rdb", "rb") as f:
        f.seek(offset)
        blob = f.read(size)
    raw_len = struct.unpack(">I", blob[:4])[0]
    raw = zlib.decompress(blob[4:])
    if len(raw) != raw_len:
        raise SystemExit(f"{name}: expected {raw_len} bytes after decompression, got {len(raw)}")
    return RReader(raw).item()


def fetch_deb(work: Path) -> Path:
    r = subprocess.run(["apt-get", "download", PACKAGE], cwd=work, capture_output=True, text=True)
    debs = list(work.glob(f"{PACKAGE}_*.deb"))
    if r.returncode != 0 or not debs:
        raise SystemExit(f"apt-get download {PACKAGE} failed (run `apt-get update` first?):\n{r.stderr.strip()}")
    return debs[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deb", type=Path, help=f"an already downloaded {PACKAGE} .deb (default: apt-get download)")
    ap.add_argument("--novel", default="prideprejudice", help="object name in the package (emma, persuasion, ...)")
    ap.add_argument("--out", type=Path, default=REPO / "data" / "eval" / "austen-pride-and-prejudice.txt")
    args = ap.parse_args()
    if args.out.exists():
        print(args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        deb = args.deb.resolve() if args.deb else fetch_deb(tmp)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], check=True)
        lines = read_lazyload(tmp / "x" / DATA_DIR, args.novel)
    if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
        raise SystemExit(f"{args.novel}: expected a character vector")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text("\n".join(lines).strip() + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(args.out)


if __name__ == "__main__":
    sys.exit(main())
