"""The short KLD setting the quantizer tests share (test_smooth_quant.py, test_awq.py): the first
768 tokens of the repo's evaluation text at ctx 128 against the float model, calibration on the
novel's tail (which that prefix never reaches), and a look into a written safetensors header."""
import json
import struct

from conftest import BUILD, REPO, run

LOWBIT = BUILD / "lowbit"
TEXT = REPO / "data/eval/austen-pride-and-prejudice.txt"
EVAL = ["--text", TEXT, "--ctx", 128, "--max-tokens", 768, "-t", 2, "-q"]


def calib_tail(folder):
    p = folder / "calib.txt"
    p.write_bytes(TEXT.read_bytes()[-12000:])
    return p


def save_base(model, base):
    run([LOWBIT, "eval", "kld", "--base-model-path", model, "--save-base", base, *EVAL])


def kld(model, base):
    r = run([LOWBIT, "eval", "kld", "-m", model, "--base", base, *EVAL, "--json"])
    return json.loads(r.stdout)["kl"]["mean"]


def safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))
