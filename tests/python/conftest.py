"""Shared fixtures for the Python-side tests: where the build and the repo are, and how to run
the project's own scripts with the repo's virtual environment."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LOWBIT_BUILD_DIR", REPO / "build"))
PY = sys.executable


def run(cmd, **kw):
    """Runs a command, failing the test with its stderr when it fails."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stderr[-4000:]}")
    return r


@pytest.fixture(scope="session")
def build_dir():
    return BUILD


@pytest.fixture(scope="session")
def smollm2_dir():
    d = Path(os.environ.get("LOWBIT_SMOLLM2_DIR", REPO / "models" / "smollm2-135m-instruct"))
    if not (d / "model.safetensors").exists():
        pytest.fail(f"{d} is missing: run scripts/prepare_default_model.sh (the test command does)")
    return d
