#!/usr/bin/env python3
"""Writes the Unicode data the tokenizer needs to agree with HF `tokenizers` on every code point.

unicode_tables.inc: general category and \\s/\\w/\\d membership of every code point.

Hugging Face `tokenizers` matches its pre-tokenizer regexes with Oniguruma, whose Unicode data
(16.0 for tokenizers 0.23) is newer than PCRE2's (14.0 in Debian 12). To split text exactly as HF
does, we take the tables from the engine itself: each class is probed over all code points with a
`Split(..., "removed")` pre-tokenizer, which leaves the non-matching code points.

normalization_exceptions.inc: code points that utf8proc (Unicode 15) normalizes but HF's
normalizer (the unicode-normalization-alignments crate, older Unicode data) leaves alone as
unassigned: their combining class, decomposition and compositions are ignored by lowbit too.
Found by normalizing every code point with both (utf8proc through ctypes).

lowercase_table.inc: HF's Lowercase normalizer (Rust's char::to_lowercase, Unicode 16) for
every code point it changes.

nfc_unstable.inc: code points where text may not be cut for NFC (not a starter that is its
own NFC and never composes with what precedes it: UAX #15 NFC_Quick_Check=Yes and ccc=0).
NFC only has to run on the stretches around them.

Run with the project venv:  .venv/bin/python src/tokenizer/gen_unicode_tables.py
"""
import ctypes
import ctypes.util
import pathlib

import tokenizers
from tokenizers import Regex, normalizers, pre_tokenizers

LEAVES = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd",
          "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf",
          "Cs", "Co"]
FLAGS = [("kWhiteSpace", r"\s"), ("kWord", r"\w"), ("kDigit", r"\d")]

CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
TEXT = "".join(map(chr, CODE_POINTS))


def members(pattern):
    """Set of code points the Oniguruma pattern (one code point wide) matches."""
    rest = pre_tokenizers.Split(Regex(pattern), "removed").pre_tokenize_str(TEXT)
    unmatched = set()
    for _, (start, end) in rest:
        unmatched.update(range(start, end))
    return {CODE_POINTS[i] for i in range(len(CODE_POINTS)) if i not in unmatched}


def normalization_exceptions():
    lib = ctypes.CDLL("libutf8proc.so.2")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.free.argtypes = [ctypes.c_void_p]
    lib.utf8proc_get_property.restype = ctypes.POINTER(ctypes.c_int16)
    for name in ("utf8proc_NFD", "utf8proc_NFKD"):
        getattr(lib, name).restype = ctypes.c_void_p

    def utf8proc(name, s):
        p = getattr(lib, name)(s.encode())
        out = ctypes.string_at(p).decode()
        libc.free(p)
        return out

    cps = CODE_POINTS[1:]  # not U+0000, our separator
    sep = "\x00"

    def hf(normalizer, strings):
        return normalizer.normalize_str(sep.join(strings)).split(sep)

    nfd = hf(normalizers.NFD(), [chr(c) for c in cps])
    nfkd = hf(normalizers.NFKD(), [chr(c) for c in cps])
    # Canonical ordering against marks of combining class 240 (before) and 1 (after).
    before = hf(normalizers.NFD(), ["\u0345" + chr(c) for c in cps])
    after = hf(normalizers.NFD(), [chr(c) + "\u0334" for c in cps])
    unknown, components = set(), set()
    for k, c in enumerate(cps):
        ch = chr(c)
        ccc = lib.utf8proc_get_property(c)[1]
        decomposed = utf8proc("utf8proc_NFD", ch)
        if ccc == 0 and decomposed == ch and utf8proc("utf8proc_NFKD", ch) == ch:
            continue  # nothing for utf8proc to do either
        hf_inert = (nfd[k] == ch and nfkd[k] == ch and before[k] == "\u0345" + ch
                    and after[k] == ch + "\u0334")
        if hf_inert:
            unknown.add(c)
            if decomposed != ch:  # a new composite: its (new) parts must not compose
                components.update(ord(x) for x in decomposed)
        else:
            assert nfd[k] == decomposed, hex(c)
    print(f"normalization: {len(unknown)} code points unknown to HF, composite parts "
          f"{sorted(hex(c) for c in components)}")
    exceptions = unknown | components

    # NFC-unstable code points: combining marks, code points NFC changes, and the second
    # halves of compositions (the last code point of a composite's full decomposition).
    lib.utf8proc_NFC.restype = ctypes.c_void_p
    unstable = set()
    for c in cps:
        if c in exceptions:
            continue
        ch = chr(c)
        if lib.utf8proc_get_property(c)[1] != 0 or utf8proc("utf8proc_NFC", ch) != ch:
            unstable.add(c)
        decomposed = utf8proc("utf8proc_NFD", ch)
        if decomposed != ch and utf8proc("utf8proc_NFC", decomposed) == ch:
            unstable.add(ord(decomposed[-1]))
    unstable.update(range(0x1161, 0x1176))  # Hangul vowels and trailing consonants compose
    unstable.update(range(0x11A8, 0x11C3))  # algorithmically
    return sorted(exceptions), sorted(unstable - exceptions)


def lowercase_table():
    cps = CODE_POINTS[1:]
    lowered = normalizers.Lowercase().normalize_str("\x00".join(map(chr, cps))).split("\x00")
    rows = []
    for c, low in zip(cps, lowered):
        if low != chr(c):
            escaped = "".join(f"\\x{b:02X}" for b in low.encode())
            rows.append(f'{{0x{c:X}, "{escaped}"}},')
    return rows


def main():
    category = {}
    for index, name in enumerate(LEAVES):
        if name in ("Cn", "Cs"):
            continue
        for cp in members(r"\p{%s}" % name):
            assert cp not in category, (hex(cp), name)
            category[cp] = index
    flags = [members(pattern) for _, pattern in FLAGS]

    def value(cp):
        if 0xD800 <= cp < 0xE000:
            v = LEAVES.index("Cs")
        else:
            v = category.get(cp, 0)  # unassigned: Cn
        for bit, members_ in enumerate(flags):
            if cp in members_:
                v |= 0x20 << bit
        return v

    runs = []
    previous = None
    for cp in range(0x110000):
        v = value(cp)
        if v != previous:
            runs.append((cp, v))
            previous = v
    out = [f"// Generated by gen_unicode_tables.py from tokenizers {tokenizers.__version__}"
           " (Oniguruma's Unicode data). Do not edit.",
           "// {first code point of a run, general category | flag bits}"]
    line = ""
    for cp, v in runs:
        item = f"{{0x{cp:X}, {v}}},"
        if len(line) + len(item) > 96:
            out.append(line.rstrip())
            line = ""
        line += item + " "
    out.append(line.rstrip())
    path = pathlib.Path(__file__).with_name("unicode_tables.inc")
    path.write_text("\n".join(out) + "\n")
    print(f"{len(runs)} runs -> {path}")

    exceptions, unstable = normalization_exceptions()
    lines = [f"// Generated by gen_unicode_tables.py from tokenizers {tokenizers.__version__} and"
             " utf8proc. Do not edit."]
    for i in range(0, len(exceptions), 8):
        lines.append(" ".join(f"0x{c:X}," for c in exceptions[i:i + 8]))
    path = pathlib.Path(__file__).with_name("normalization_exceptions.inc")
    path.write_text("\n".join(lines) + "\n")
    print(f"{len(exceptions)} exceptions -> {path}")

    ranges = []
    for c in unstable:
        if ranges and ranges[-1][1] + 1 == c:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    lines = [f"// Generated by gen_unicode_tables.py from utf8proc. Do not edit.",
             "// {first, last} code point ranges"]
    for i in range(0, len(ranges), 6):
        lines.append(" ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in ranges[i:i + 6]))
    path = pathlib.Path(__file__).with_name("nfc_unstable.inc")
    path.write_text("\n".join(lines) + "\n")
    print(f"{len(ranges)} NFC-unstable ranges -> {path}")

    rows = lowercase_table()
    path = pathlib.Path(__file__).with_name("lowercase_table.inc")
    path.write_text(f"// Generated by gen_unicode_tables.py from tokenizers {tokenizers.__version__}."
                    " Do not edit.\n// {code point, UTF-8 of its lowercase}\n" + "\n".join(rows) + "\n")
    print(f"{len(rows)} lowercase mappings -> {path}")


if __name__ == "__main__":
    main()
