#!/usr/bin/env bash
# Set up vlmdyn in a virtual environment (default .venv; override with VLMDYN_VENV).
#   bash scripts/setup.sh          # runtime dependencies
#   bash scripts/setup.sh test     # plus what the tests need
# PyTorch: where no torch is importable, install the 2.13.0 CPU build first so
# the project's torch range never pulls a multi-GB CUDA build on a CPU box.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VLMDYN_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "installing torch 2.13.0 (CPU)" >&2
  "$PY" -m pip install -q "torch==2.13.0"
fi
if [ "${1:-}" = "test" ]; then
  extras=".[test]"
else
  extras="."
fi
# llama-cpp-python compiles from source the first time (~6 min), with flags that avoid AMX (see the script).
bash scripts/llama-wheel.sh "$PY"
echo "installing vlmdyn and its dependencies (first time: several minutes)" >&2
"$PY" -m pip install -q -e "$extras"
