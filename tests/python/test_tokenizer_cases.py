"""Deterministic test strings for the tokenizer oracle test and benchmark (no tests here).

cases(seed) returns (name, bytes) pairs: valid UTF-8 text of many kinds, and some invalid
byte strings (the tokenizer repairs those like bytes.decode("utf-8", "replace")).
"""
import random

CODE = [
    'def f(x):\n\treturn {"a": x**2, \'b\': [1, 2, 3]}  # comment\n',
    "int main(int argc, char** argv) {\n  std::vector<int> v{1,2,3};\n  return v.size() > 2 ? 0 : -1;\n}\n",
    "fn main() -> Result<(), Box<dyn Error>> {\n    let x: u64 = 0xFFFF_FFFF;\n    println!(\"{x:#x}\");\n    Ok(())\n}\n",
    "const f = async (a, b) => { await fetch(`/api/${a}?q=${b}`); return a ?? b; };\n",
    "func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {\n\tif err != nil {\n\t\treturn\n\t}\n}\n",
    "SELECT u.id, COUNT(*) AS n FROM users u LEFT JOIN orders o ON o.uid = u.id WHERE u.age >= 18 GROUP BY u.id;\n",
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>T&amp;C</title></head>\n<body class='x'>&nbsp;</body></html>\n",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\" | sed -e 's/a/b/g' >> out.log 2>&1; done\n",
    "\\begin{equation}\n  E = mc^2 \\quad \\forall x \\in \\mathbb{R}\n\\end{equation}\n",
    "    if (a && b || !c) { x += 1; y -= 2; z *= 3; w /= 4; } // ==> !== === <=> ...\n",
    "public static void main(String[] args) throws IOException {\r\n    System.out.println(\"Hi\");\r\n}\r\n",
    "{\"key\": [1.5e-10, -2, null, true], \"nested\": {\"k\": \"v\\u00e9\"}}\n",
]

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll love it; they've said it's great, and we'd agree.",
    "HE'S HERE AND THEY'LL SEE IT, DON'T THEY? I'D SAY SO. WE'VE BEEN THERE.",
    "She'S and he'Ll and It'S, mixed 'Re 'vE 'M 'D cases.",
    "Smart quotes: don’t, it’s, “quoted”, ‘single’ — dashes – and … ellipses.",
    "Numbers: 3.14159, 1,000,000, 2024-06-01, 12:30:45, +1 (555) 123-4567, 0x1F, 1e-9.",
    "Café naïve résumé coöperate Zürich São Paulo Ångström Ελληνικά Русский текст.",
]

CJK = [
    "这是一个测试。我们在北京大学学习自然语言处理，今天天气很好！",
    "日本語のテキスト：ひらがな、カタカナ、漢字を含みます。東京タワーは333メートルです。",
    "한국어 텍스트입니다. 서울에서 만나요! 안녕하세요?",
    "繁體中文與簡體中文混合：臺灣、台湾；體育、体育。",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３　！？",
]

EMOJI = [
    "😀😃😄😁", "👨‍👩‍👧‍👦 family", "👍🏽 thumbs 👍🏿", "🇺🇸🇯🇵🇩🇪 flags", "1️⃣ #️⃣ keycaps",
    "🏳️‍🌈 ❤️‍🔥 🧑🏻‍💻", "emoji🙂inside🙃words", "🫠🫡🫶 new ones", "☕️ ✔︎ variation",
]

COMBINING = [
    "e\u0301 a\u0300 o\u0308 n\u0303", "Tiếng Việt có dấu", "\u1e9b\u0323", "a\u0323\u0302\u0301",
    "हिन्दी भाषा देवनागरी", "العربيَّة مُشَكَّلة", "עִבְרִית", "ภาษาไทย", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǵ̟͇o̯̱̊͊",
    "\u0041\u030a \u212b \u00c5", "\u1100\u1161\u11a8 \uac01", "\u0915\u093c \u0958",
]

WHITESPACE = [
    " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "a  b   c    d", "tab\tsep\t\tvalues",
    "line1\r\nline2\r\n\r\nline3", "trailing   ", "   leading", "\u00a0nbsp\u00a0", "ideo\u3000space",
    "line\u2028sep\u2029para", "mixed \t\n\r\x0b\x0c end", "x" + " " * 40 + "y", "\n" * 17,
]

SPECIAL = [
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
    "text<|endoftext|>more text", "partial <|im_ token", "<|im_start", "<|im_start|", "|>",
    "<|im_end|><|im_start|><|endoftext|>", " <|im_start|> spaced <|im_end|> ",
    "<think>\nreasoning\n</think>\n\nanswer", "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<<|im_start|>>", "<|<|endoftext|>|>", "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
]

CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll",
                "'LL", "'lL", "'d", "'D", "'ſ", "'\u212a", "''", "'", "'x", "' s"]

# Code point ranges to sample random text from (weights favour real scripts).
BLOCKS = [
    (0x20, 0x7E, 30), (0xA0, 0x24F, 6), (0x300, 0x36F, 4), (0x370, 0x52F, 3),
    (0x590, 0x6FF, 3), (0x900, 0xDFF, 3), (0xE00, 0xEFF, 2), (0x1100, 0x11FF, 2),
    (0x1E00, 0x1FFF, 2), (0x2000, 0x206F, 3), (0x2070, 0x2BFF, 3), (0x3000, 0x30FF, 4),
    (0x3400, 0x4DBF, 2), (0x4E00, 0x9FFF, 8), (0xAC00, 0xD7A3, 4), (0xE000, 0xF8FF, 1),
    (0xF900, 0xFFFD, 3), (0x10000, 0x1FFFF, 6), (0x1F300, 0x1FAFF, 6), (0x20000, 0x2FFFF, 3),
    (0x30000, 0x323AF, 1), (0xE0000, 0xE01EF, 1), (0xF0000, 0x10FFFF, 1),
]


def random_char(rng):
    lo, hi, _ = rng.choices(BLOCKS, weights=[b[2] for b in BLOCKS])[0]
    while True:
        cp = rng.randint(lo, hi)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


def random_unicode(rng, n):
    return "".join(random_char(rng) for _ in range(n))


def random_invalid(rng):
    pieces = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(6)
        if kind == 0:
            pieces.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))))
        elif kind == 1:  # truncated multi-byte sequence
            pieces.append(random_char(rng).encode()[: -1] or b"\xc3")
        elif kind == 2:  # overlong / surrogate / out of range encodings
            pieces.append(rng.choice([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
                                      b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xff",
                                      b"\x80\x80", b"\xf0\x9f\x98"]))
        else:
            pieces.append(random_unicode(rng, rng.randint(0, 6)).encode())
    return b"".join(pieces)


def mutate(rng, s):
    """Random edits: cut, duplicate, change case, insert special-token text or spaces."""
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(s))
        op = rng.randrange(6)
        if op == 0:
            s = s[:i] + rng.choice(SPECIAL) + s[i:]
        elif op == 1:
            s = s[:i] + rng.choice([" ", "  ", "\t", "\n", "\r\n", "   \n"]) + s[i:]
        elif op == 2:
            s = s.upper() if rng.random() < 0.5 else s.swapcase()
        elif op == 3:
            s = s[:i]
        elif op == 4:
            s = s[:i] + str(rng.randint(0, 10 ** rng.randint(1, 20))) + s[i:]
        else:
            s = s[:i] + rng.choice(CONTRACTIONS) + s[i:]
    return s


def cases(seed=1234):
    rng = random.Random(seed)
    out = [("empty", b"")]
    fixed = CODE + PROSE + CJK + EMOJI + COMBINING + WHITESPACE + SPECIAL
    for i, s in enumerate(fixed):
        out.append((f"fixed{i}", s.encode()))
    for c in CONTRACTIONS:
        out.append((f"contraction {c!r}", f"word{c} {c.upper()} x{c}y".encode()))
    pools = [CODE, PROSE, CJK, EMOJI, COMBINING, WHITESPACE, SPECIAL]
    for i in range(200):  # mutated and mixed real text
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 4))]
        out.append((f"mixed{i}", mutate(rng, "".join(parts)).encode()))
    for i in range(60):  # digit runs
        digits = "".join(rng.choice("0123456789٠١٢٣٤٥٦٧٨٩０１２３¹²³½") for _ in range(rng.randint(1, 40)))
        out.append((f"digits{i}", f"x{digits} {digits}.{digits[:3]}".encode()))
    for i in range(60):  # whitespace runs
        ws = "".join(rng.choice([" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\x0b"])
                     for _ in range(rng.randint(1, 30)))
        out.append((f"ws{i}", rng.choice(["", "a", "a,", "1"]).join([ws, "word", ws]).encode()))
    for i in range(120):  # random Unicode, including astral planes
        out.append((f"unicode{i}", random_unicode(rng, rng.randint(1, 300)).encode()))
    for i in range(10):  # long strings
        out.append((f"long{i}", random_unicode(rng, rng.randint(2000, 5000)).encode()))
    for i in range(60):
        out.append((f"invalid{i}", random_invalid(rng)))
    return out + mark_cases()


def _marks():
    import unicodedata
    marks = [c for c in range(0x300, 0x20000) if unicodedata.combining(chr(c))]
    # Marks newer than HF's normalization data (see gen_unicode_tables.py), and parts of a
    # new composite, U+11938 = U+11935 U+11930.
    marks += [0xC3C, 0x10D24, 0x10EAB, 0x10F46, 0x11930, 0x11935, 0x1193E, 0x16FF0, 0x1E08F]
    return marks


def mark_cases(seed=4321, n=80):
    """Bases followed by runs of combining marks in random order, and Hangul jamo."""
    rng = random.Random(seed)
    marks = _marks()
    out = []
    for i in range(n):
        s = []
        for _ in range(rng.randint(1, 12)):
            s.append(rng.choice("aeoAEOnsuczyʌ가\u1100\u11a8\u0915\U00011935 "))
            s.extend(chr(rng.choice(marks)) for _ in range(rng.randint(0, 4)))
            if rng.random() < 0.2:
                s.append(rng.choice(["\u1161", "\u11a8", "\U00011930", "\u0301"]))
        out.append((f"marks{i}", "".join(s).encode()))
    return out
