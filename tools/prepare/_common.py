"""Helpers shared by the tools in tools/prepare (model preparation and oracles; never the engine)."""
from __future__ import annotations

import json
import os
from pathlib import Path

# No model hub on this machine, ever: everything is loaded from local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def quiet_transformers() -> None:
    """No progress bars ("Loading weights", "Writing model shards") on stderr."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def add_legacy_config_keys(config_json: str | Path) -> dict:
    """transformers 5 writes RoPE settings only as `rope_parameters` (with rope_theta inside) and
    the dtype as `dtype`. Checkpoints on the Hub (and readers written against them) use top-level
    `rope_theta`, `rope_scaling` (null or {rope_type, factor, ...}) and `torch_dtype`. Write both
    forms, consistently; transformers 5 loads such a file to the same rope_parameters."""
    path = Path(config_json)
    d = json.loads(path.read_text())
    rp = d.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" in rp:
        d["rope_theta"] = rp["rope_theta"]
        scaling = {k: v for k, v in rp.items() if k != "rope_theta"}
        d["rope_scaling"] = None if scaling.get("rope_type", "default") == "default" else scaling
    if "dtype" in d:
        d["torch_dtype"] = d["dtype"]
    path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    return d
