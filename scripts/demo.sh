#!/usr/bin/env bash
# Install (first run only) and run the whole experiment on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${VLMDYN_VENV:-.venv}/bin/vlmdyn" demo "$@"
