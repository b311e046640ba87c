"""Cross-checks lowbit's C++ safetensors reader against the `safetensors` package.

Files are written by `safetensors.torch` (and sharded by huggingface_hub, as transformers'
save_pretrained does); the C++ side is `safetensors_tool dump`, which prints every tensor's
dtype, shape and the SHA-256 of the bytes its zero-copy view points at.
Run through CTest (which sets LOWBIT_BUILD_DIR) or by hand:
  LOWBIT_BUILD_DIR=build-io .venv/bin/python -m pytest -q tests/python/test_safetensors_interop.py
"""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import save_file

# torch dtype -> safetensors name, covering every dtype lowbit reads.
DTYPES = {
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.bool: "BOOL",
}


def tool() -> Path:
    build = os.environ.get("LOWBIT_BUILD_DIR")
    assert build, "set LOWBIT_BUILD_DIR to the CMake build folder"
    path = Path(build) / "src" / "io" / "safetensors_tool"
    assert path.exists(), f"{path} missing: build the safetensors_tool target"
    return path


def dump(path: Path) -> dict:
    out = subprocess.run([tool(), "dump", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def random_tensor(dtype: torch.dtype, shape, gen: torch.Generator) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=gen, dtype=torch.float32) * 10).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -(2**31)), min(info.max, 2**31 - 1), shape,
                         generator=gen, dtype=torch.int64).to(dtype)


def sha256(t: torch.Tensor) -> str:
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(raw).hexdigest()


def expect_same(tensors: dict, dumped: dict):
    assert set(dumped["tensors"]) == set(tensors)
    for name, t in tensors.items():
        got = dumped["tensors"][name]
        assert got["dtype"] == DTYPES[t.dtype], name
        assert got["shape"] == list(t.shape), name
        assert got["sha256"] == sha256(t), name


def test_every_dtype_single_file(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for i, dtype in enumerate(DTYPES):
        name = DTYPES[dtype].lower()
        tensors[f"model.{name}.weight"] = random_tensor(dtype, (3, 5 + i), gen)
        tensors[f"model.{name}.scalar"] = random_tensor(dtype, (), gen)
        tensors[f"model.{name}.odd"] = random_tensor(dtype, (7,), gen)  # unaligned follow-ons
    tensors["model.empty"] = torch.zeros((4, 0), dtype=torch.float32)
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt", "note": "ünïcode"})
    dumped = dump(path)
    expect_same(tensors, dumped)
    assert dumped["metadata"] == {"format": "pt", "note": "ünïcode"}


def test_sharded_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(1)
    tensors = {f"model.layers.{i}.mlp.weight": random_tensor(torch.bfloat16, (64, 48), gen)
               for i in range(6)}
    tensors["model.norm.weight"] = random_tensor(torch.float32, (48,), gen)
    save_torch_state_dict(tensors, tmp_path, max_shard_size=20_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "expected several shards"
    dumped = dump(tmp_path)
    expect_same(tensors, dumped)
    for name, file in index["weight_map"].items():
        assert dumped["tensors"][name]["file"] == file
    assert dumped["total_tensor_bytes"] == sum(t.numel() * t.element_size() for t in tensors.values())


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(16, 16)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    out = subprocess.run([tool(), "dump", str(path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert str(path) in out.stderr and "tensor 'w'" in out.stderr
