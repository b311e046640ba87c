#!/usr/bin/env python3
"""Writes real msmodelslim checkpoints (quant_model_description.json + safetensors) from a float HF
folder, on the CPU, with Ascend's own tool (msmodelslim 26.1.0; no NPU, no torch_npu needed).

  PY tools/prepare/msmodelslim_quantize.py --model DIR --out DIR --scheme NAME [--calib-samples 4]

PY must be a Python with msmodelslim installed: tools/prepare/setup_msmodelslim_venv.sh makes one
(a venv that borrows torch/transformers from the repo's .venv and adds msmodelslim with --no-deps,
leaving the repo's pinned .venv untouched).

Schemes:
  modelslim_v1 (the current YAML pipeline, `msmodelslim quant --device cpu`, saver ascendv1.py):
    W8A8 (static, per-tensor asym activations), W8A8_DYNAMIC, W4A4_DYNAMIC, W4A8_DYNAMIC
    (per-channel, version 1.0.0 row-pair packed), W8A8_MXFP8, W4A8_MXFP, W4A4_MXFP4,
    MIXED (attention W8A8, MLP W8A8_DYNAMIC, layer 1's down_proj left FLOAT).
  modelslim_v0 (the older Calibrator API; the only path that writes per-group W4A8):
    W4A8_GROUP (save_type ascendV1: version 1.0.0, packed, weight_scale_second),
    W4A8_GROUP_OLD (save_type safe_tensor: no version or group_size key, unpacked int8 [N, K];
    its description file is renamed to quant_model_description.json, as users do).
    Both decode as w = q · weight_scale_second[n, k/64] · weight_scale[n]; lm_head stays FLOAT.
All use minmax (RTN) weights with no smoothing or rotation, so the checkpoint is a pure function
of the float weights (and, for W8A8 static, of the calibration activations); the exception is
W4A4_DYNAMIC, see run_v1.

The model must have untied embeddings: msmodelslim's saver calls safetensors.save_file, which
refuses tensors that share memory (embed_tokens / lm_head). Calibration text is digits separated
by spaces: Qwen's pre-tokenizer splits digits one by one, so every id is < 256 and any tiny
random vocabulary (>= 256) can embed it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def qconfig(w: str, a: str | None, group: int = 0) -> dict:
    """The YAML qconfig for weight dtype w and activation a (int8/int4 per-token sym, 'static'
    per-tensor asym int8, or mxfp8/mxfp4 per block of 32)."""
    if w in ("mxfp8", "mxfp4"):
        weight = {"scope": "per_block", "dtype": w, "symmetric": True, "method": "minmax"}
    else:
        weight = {"scope": "per_channel", "dtype": w, "symmetric": True, "method": "minmax"}
        if group:
            weight["ext"] = {"group_size": group}
    if a == "static":
        act = {"scope": "per_tensor", "dtype": "int8", "symmetric": False, "method": "minmax"}
    elif a in ("mxfp8", "mxfp4"):
        act = {"scope": "per_block", "dtype": a, "symmetric": True, "method": "minmax"}
    else:
        act = {"scope": "per_token", "dtype": a, "symmetric": True, "method": "minmax"}
    return {"weight": weight, "act": act}


V1_SCHEMES = {
    "W8A8": [(qconfig("int8", "static"), ["*"], [])],
    "W8A8_DYNAMIC": [(qconfig("int8", "int8"), ["*"], [])],
    "W4A4_DYNAMIC": [(qconfig("int4", "int4"), ["*"], [])],
    "W4A8_DYNAMIC": [(qconfig("int4", "int8"), ["*"], [])],
    "W8A8_MXFP8": [(qconfig("mxfp8", "mxfp8"), ["*"], [])],
    "W4A8_MXFP": [(qconfig("mxfp4", "mxfp8"), ["*"], [])],
    "W4A4_MXFP4": [(qconfig("mxfp4", "mxfp4"), ["*"], [])],
    "MIXED": [(qconfig("int8", "static"), ["*self_attn*"], []),
              (qconfig("int8", "int8"), ["*mlp*"], ["model.layers.1.mlp.down_proj"])],
}
V0_SCHEMES = {"W4A8_GROUP": "ascendV1", "W4A8_GROUP_OLD": "safe_tensor"}
SCHEMES = [*V1_SCHEMES, *V0_SCHEMES]


def calib_texts(n: int, seed: int = 0) -> list[str]:
    import random
    rng = random.Random(seed)
    return [" ".join(str(rng.randrange(10 ** rng.randint(1, 4))) for _ in range(24)) for _ in range(n)]


def run_v1(model: Path, out: Path, scheme: str, n_calib: int) -> None:
    work = out.parent / f".{out.name}.msmodelslim"
    work.mkdir(parents=True, exist_ok=True)
    calib = work / "calib.jsonl"
    calib.write_text("".join(json.dumps({"inputs_pretokenized": t, "text": t}) + "\n" for t in calib_texts(n_calib)))
    if scheme == "W4A4_DYNAMIC":
        # linear_quant has no int4 per-token activation quantizer; autoround_quant does. It needs at
        # least one trainable tensor, so round tuning is on for a single step (weights are then RTN
        # up to a few codes moved by one; the checkpoint stays self-consistent, which is all we need).
        qc = qconfig("int4", "int4")
        qc["weight"]["method"] = "autoround"
        process = [{"type": "autoround_quant", "iters": 1, "enable_minmax_tuning": False,
                    "enable_round_tuning": True, "strategies": [{"qconfig": qc, "include": ["*"]}]}]
    else:
        process = [{"type": "linear_quant", "qconfig": qc, "include": inc, "exclude": exc}
                   for qc, inc, exc in V1_SCHEMES[scheme]]
    cfg = {"apiversion": "modelslim_v1",
           "metadata": {"config_id": f"lowbit-{scheme.lower()}", "score": 90, "verified_model_types": ["Qwen3-8B"],
                        "label": {"w_bit": 8, "a_bit": 8, "is_sparse": False, "kv_cache": False}},
           "spec": {"process": process, "save": [{"type": "ascendv1_saver", "part_file_size": 0}],
                    "dataset": str(calib)}}
    yaml_path = work / "config.yaml"
    yaml_path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    cmd = [sys.executable, "-m", "msmodelslim.cli", "quant", "--model_type", "Qwen3-8B", "--model_path", str(model),
           "--save_path", str(out), "--device", "cpu", "--config_path", str(yaml_path), "--trust_remote_code", "False"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    (work / "log.txt").write_text(r.stdout + r.stderr)
    if r.returncode != 0 or not (out / "quant_model_description.json").exists():
        sys.exit(f"msmodelslim failed ({r.returncode}) for {scheme}; log in {work / 'log.txt'}:\n{r.stderr[-3000:]}")


def run_v0(model: Path, out: Path, scheme: str, n_calib: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from msmodelslim.pytorch.llm_ptq.llm_ptq_tools import Calibrator, QuantConfig

    tok = AutoTokenizer.from_pretrained(model)
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    calib = [[tok(t, return_tensors="pt").input_ids] for t in calib_texts(n_calib)]
    # W4A8_DYNAMIC in the v0 API = w_bit 4, a_bit 8, dynamic, is_lowbit without outliers, per group.
    cfg = QuantConfig(w_bit=4, a_bit=8, is_dynamic=True, is_lowbit=True, open_outlier=False, group_size=64,
                      w_sym=True, mm_tensor=False, dev_type="cpu")  # disable_last_linear: lm_head stays FLOAT
    calibrator = Calibrator(m, cfg, calib_data=calib, disable_level="L0")
    calibrator.run()
    calibrator.save(str(out), save_type=[V0_SCHEMES[scheme]], part_file_size=None)
    # The v0 safe_tensor saver names its description quant_model_description_w4a8_dynamic.json;
    # SGLang and vllm-ascend (and lowbit) look only for quant_model_description.json, which is
    # what users rename such files to. The weights file name does not matter to any loader.
    for f in out.glob("quant_model_description_*.json"):
        f.rename(out / "quant_model_description.json")
    # The v0 saver writes only the weights and the description: copy the rest of the folder.
    import shutil
    for f in Path(model).iterdir():
        if f.suffix in (".json", ".txt", ".model") and not f.name.startswith(("model.safetensors", "quant_model")) \
                and not (out / f.name).exists():
            shutil.copy(f, out / f.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--scheme", required=True, choices=SCHEMES)
    ap.add_argument("--calib-samples", type=int, default=4)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.scheme in V1_SCHEMES:
        run_v1(a.model.resolve(), a.out.resolve(), a.scheme, a.calib_samples)
    else:
        run_v0(a.model.resolve(), a.out.resolve(), a.scheme, a.calib_samples)
    print(f"wrote {a.out} ({a.scheme})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
