"""Cross-check of formats/compressed_tensors.cc against real compressed-tensors checkpoints.

A tiny random Qwen3 is quantized with llm-compressor's `oneshot` + `QuantizationModifier` for each
scheme below and saved compressed; `format_tool DIR` (built from src/formats/format_tool.cc) prints
our parser's view: per linear layer the SchemeSpec and the role -> (tensor, dtype, shape) map. We
compare it with what the compressed-tensors library says the config means (its own pydantic
QuantizationConfig) and with the tensors actually in the file (the `safetensors` package).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUILD, REPO, run

cq = pytest.importorskip("compressed_tensors.quantization")
pytest.importorskip("llmcompressor")
from safetensors import safe_open  # noqa: E402

TOOL = BUILD / "src" / "formats" / "format_tool"

# The writer is tools/prepare/llmcompressor_quantize.py (oneshot + QuantizationModifier), run in a
# fresh process per scheme: llm-compressor keeps global session state, and a crash in one scheme
# must not hide the others. W4A16_G32 also leaves every down_proj in float by regex.
WRITER = REPO / "tools" / "prepare" / "llmcompressor_quantize.py"
IGNORE = {"W4A16_G32": ["lm_head", "re:.*mlp\\.down_proj$"]}

# scheme -> expected SchemeKind name (scheme_kind_name) for targeted layers.
SCHEMES = {
    "W8A8": "W8A8_DYNAMIC",            # int8 channel weights, int8 dynamic per-token activations
    "W8A8_STATIC_ASYM": "W8A8_STATIC_UNFOLDED",
    "W4A16_G32": "W4A16",              # also ignores down_proj by regex
    "W4A16_ASYM_G32": "W4A16",
    "W4A16_CHANNEL": "W4A16",
    "FP8": "FP8",                      # per-tensor weights, static per-tensor activations
    "FP8_DYNAMIC": "FP8",              # per-channel weights, dynamic per-token activations
    "FP8_BLOCK": "FP8_BLOCK",
}

# compressed-tensors tensor suffix -> our canonical role.
ROLE_OF = {"weight": "weight", "weight_packed": "weight", "weight_scale": "weight_scale",
           "weight_zero_point": "weight_zero", "weight_g_idx": "weight_g_idx", "input_scale": "input_scale",
           "input_zero_point": "input_zero", "bias": "bias"}


@pytest.fixture(scope="session")
def base_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct") / "base"
    run([sys.executable, REPO / "tools/prepare/make_random_qwen3.py", "--out", out, "--hidden", 256,
         "--intermediate", 512, "--layers", 2, "--heads", 4, "--kv-heads", 2, "--head-dim", 64, "--vocab", 1024,
         "--dtype", "bfloat16", "--no-check"])
    return out


@pytest.fixture(scope="session")
def quantized(base_model, tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp("ct") / name
            env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
            run([sys.executable, WRITER, "--model", base_model, "--out", out, "--scheme", name,
                 "--ignore", *IGNORE.get(name, ["lm_head"])], env=env)
            cache[name] = out
        return cache[name]

    return get


def tool(folder):
    r = subprocess.run([str(TOOL), str(folder)], capture_output=True, text=True)
    return r


def file_tensors(folder):
    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                sl = st.get_slice(k)
                out[k] = (sl.get_dtype(), list(sl.get_shape()))
    return out


def check_args(ours, theirs, is_weight):
    assert ours["bits"] == theirs.num_bits
    assert ours["symmetric"] == theirs.symmetric
    assert ours["kind"] == ("e4m3" if theirs.type == "float" else "int")
    strategy = theirs.strategy
    if strategy == "block":
        assert ours["granularity"] == "block"
        assert [ours["block_rows"], ours["group_size"]] == list(theirs.block_structure)
    else:
        assert ours["granularity"] == strategy
        if strategy == "group":
            assert ours["group_size"] == theirs.group_size
    assert ours["dynamic"] == bool(theirs.dynamic)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_parser_matches_library_and_file(scheme, quantized):
    folder = quantized(scheme)
    qc_json = json.loads((folder / "config.json").read_text())["quantization_config"]
    qc = cq.QuantizationConfig.model_validate(qc_json)
    assert len(qc.config_groups) == 1
    group = next(iter(qc.config_groups.values()))
    r = tool(folder)
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["format"] == "compressed-tensors"
    tensors = file_tensors(folder)
    assert len(view["layers"]) == 14
    for prefix, layer in view["layers"].items():
        spec = layer["spec"]
        ignored = scheme == "W4A16_G32" and prefix.endswith("mlp.down_proj")
        if ignored:
            assert spec["kind"] == "FLOAT" and spec["origin"] == "compressed-tensors:ignore"
        else:
            assert spec["kind"] == SCHEMES[scheme], prefix
            assert spec["origin"] == "compressed-tensors:group_0"
            check_args(spec["weight"], group.weights, True)
            if group.input_activations is None:
                assert spec["activation"] is None
            else:
                check_args(spec["activation"], group.input_activations, False)
            want_encoding = "int4_packed_int32_k" if group.format == "pack-quantized" else "native"
            assert spec["encoding"] == want_encoding
        # Every tensor the file holds for this layer is handed over under its canonical role,
        # with the file's dtype and shape (weight_shape is consumed by the format's validation).
        in_file = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        in_file.pop("weight_shape", None)
        handed = layer["tensors"]
        assert {ROLE_OF[s] for s in in_file} == set(handed), prefix
        for suffix, (dtype, shape) in in_file.items():
            t = handed[ROLE_OF[suffix]]
            assert t["name"] == f"{prefix}.{suffix}"
            assert (t["dtype"], t["shape"]) == (dtype, shape), t["name"]


def test_weight_shape_disagreement_is_reported(quantized, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "bad"
    shutil.copytree(quantized("W4A16_ASYM_G32"), folder)
    st = folder / "model.safetensors"
    data = load_file(str(st))
    name = "model.layers.1.mlp.up_proj.weight_shape"
    data[name] = torch.tensor([512, 512], dtype=data[name].dtype)
    save_file(data, str(st), metadata={"format": "pt"})
    r = tool(folder)
    assert r.returncode == 1
    assert "model.layers.1.mlp.up_proj.weight_packed" in r.stderr
    assert "disagrees with weight_shape [512, 512]" in r.stderr


def test_fused_ignore_disagreement_is_reported(quantized, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(quantized("W8A8"), folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"]["ignore"].append("re:.*layers\\.0\\.self_attn\\.k_proj")
    (folder / "config.json").write_text(json.dumps(cfg))
    r = tool(folder)
    assert r.returncode == 1
    assert "fused modules must agree on ignore and target" in r.stderr
    assert "model.layers.0.self_attn.k_proj' is ignored" in r.stderr
