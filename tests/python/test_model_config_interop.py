"""Cross-checks lowbit's config.json reader against the installed transformers.

Each case is read twice: by transformers.AutoConfig (the reference semantics: defaults,
rope_scaling vs rope_parameters, dtype spellings) and by `safetensors_tool config`.
Needs LOWBIT_BUILD_DIR (set by CTest).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from transformers import AutoConfig, LlamaConfig, Qwen3Config

QWEN3_0_6B = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "bos_token_id": 151643,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
    "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
    "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
    "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "use_sliding_window": False, "vocab_size": 151936,
}
SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 576, "intermediate_size": 1536,
    "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 9,
    "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": None, "rope_theta": 100000, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "vocab_size": 49152,
}
LLAMA31 = {
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "torch_dtype": "bfloat16", "vocab_size": 128256,
}
QWEN3_YARN = dict(QWEN3_0_6B, max_position_embeddings=131072,
                  rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                "original_max_position_embeddings": 32768})
# Minimal configs: everything else comes from the defaults.
LLAMA_MINIMAL = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512,
                 "vocab_size": 1000}
# num_attention_heads=64: Qwen3Config defaults num_key_value_heads to 32, which must divide it.
QWEN3_MINIMAL = dict(LLAMA_MINIMAL, architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                     num_attention_heads=64)
LLAMA_OLD_YARN = dict(LLAMA_MINIMAL, rope_scaling={"type": "yarn", "factor": 2.0, "beta_fast": 16})
LLAMA_LINEAR = dict(LLAMA_MINIMAL, rope_scaling={"type": "linear", "factor": 4.0}, rope_theta=5e5)

CASES = {"qwen3_0_6b": QWEN3_0_6B, "smollm2": SMOLLM2, "llama31": LLAMA31,
         "qwen3_yarn": QWEN3_YARN, "llama_minimal": LLAMA_MINIMAL, "qwen3_minimal": QWEN3_MINIMAL,
         "llama_old_yarn": LLAMA_OLD_YARN, "llama_linear": LLAMA_LINEAR}

DTYPE_NAMES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def lowbit_config(folder: Path) -> dict:
    build = os.environ.get("LOWBIT_BUILD_DIR")
    assert build, "set LOWBIT_BUILD_DIR to the CMake build folder"
    tool = Path(build) / "src" / "io" / "safetensors_tool"
    out = subprocess.run([tool, "config", str(folder)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def as_list(x):
    return [] if x is None else (list(x) if isinstance(x, (list, tuple)) else [x])


def compare(folder: Path):
    ref = AutoConfig.from_pretrained(folder)
    got = lowbit_config(folder)
    assert got["architecture"] == ref.architectures[0]
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "intermediate_size", "vocab_size", "max_position_embeddings",
                "tie_word_embeddings", "attention_bias"):
        assert got[key] == getattr(ref, key), key
    assert got["rms_norm_eps"] == pytest.approx(ref.rms_norm_eps)
    assert got["mlp_bias"] == getattr(ref, "mlp_bias", False)
    dtype = str(ref.dtype).removeprefix("torch.") if ref.dtype is not None else "float32"
    assert got["dtype"] == DTYPE_NAMES[dtype]
    assert got["bos_token_id"] == ref.bos_token_id
    assert got["eos_token_ids"] == as_list(ref.eos_token_id)

    rope = ref.rope_parameters
    assert got["rope_theta"] == pytest.approx(rope["rope_theta"])
    assert got["rope"]["type"] == rope["rope_type"]
    if rope["rope_type"] != "default":
        assert got["rope"]["factor"] == pytest.approx(rope["factor"])
    if rope["rope_type"] in ("llama3", "yarn"):
        omp = rope["original_max_position_embeddings"]
        assert got["rope"]["original_max_position_embeddings"] == omp
    if rope["rope_type"] == "llama3":
        assert got["rope"]["low_freq_factor"] == rope["low_freq_factor"]
        assert got["rope"]["high_freq_factor"] == rope["high_freq_factor"]
    if rope["rope_type"] == "yarn":  # read with `or` in _compute_yarn_parameters
        assert got["rope"]["beta_fast"] == (rope.get("beta_fast") or 32)
        assert got["rope"]["beta_slow"] == (rope.get("beta_slow") or 1)
        assert got["rope"]["truncate"] == rope.get("truncate", True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_written_config(tmp_path, name):
    (tmp_path / "config.json").write_text(json.dumps(CASES[name]))
    compare(tmp_path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_rewritten_by_transformers(tmp_path, name):
    # save_pretrained writes the v5 spelling: `rope_parameters` and `dtype`.
    cls = Qwen3Config if CASES[name]["architectures"][0].startswith("Qwen3") else LlamaConfig
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(CASES[name]))
    cls.from_pretrained(src).save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert "rope_parameters" in written and "rope_theta" not in written
    compare(tmp_path)
