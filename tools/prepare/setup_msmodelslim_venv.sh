#!/usr/bin/env bash
# Makes a Python environment that can run msmodelslim (Ascend's quantization tool) on the CPU,
# for tools/prepare/msmodelslim_quantize.py and tests/python/test_quant_logits.py.
#
#   tools/prepare/setup_msmodelslim_venv.sh [VENV_DIR]
#   (default: $LOWBIT_VENV_HOME/msmodelslim-venv, i.e. ~/.cache/lowbit/msmodelslim-venv, beside
#   the main venv and, like it, made once per machine; scripts/setup.sh calls this)
#
# Why a separate venv: msmodelslim recommends transformers 4.51 and must not change the pins of
# the repo's .venv. Why --no-deps: its wheel needs nothing NPU-specific, and its few pure-Python
# deps are listed here; torch, transformers, safetensors, pydantic, accelerate and tokenizers are
# borrowed from the repo's .venv through a .pth file (read-only, appended after the venv's own
# site-packages). msmodelslim 26.1.0 then runs `msmodelslim quant --device cpu` without an NPU
# (it logs "torch_npu module not available" and carries on).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-${LOWBIT_VENV_HOME:-$HOME/.cache/lowbit}/msmodelslim-venv}
if "$venv/bin/python" -c 'import msmodelslim' 2>/dev/null; then
  echo "[setup] msmodelslim venv ready: $venv"
  exit 0
fi
main_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
python3 -m venv "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$main_site" > "$site/zz_lowbit_main_venv.pth"
"$venv/bin/pip" install -q --no-deps msmodelslim==26.1.0 easydict==1.13 einops==0.8.2 wcmatch==12.0.1 \
  bracex==3.2.2 pygtrie==2.6.2 scipy==1.17.1
"$venv/bin/python" -c 'import msmodelslim, torch, transformers; print("msmodelslim ok:", msmodelslim.__file__, torch.__version__, transformers.__version__)'
echo "export LOWBIT_MSMODELSLIM_PYTHON=$(cd "$venv" && pwd)/bin/python"
