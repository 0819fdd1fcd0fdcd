#!/usr/bin/env bash
# Install (first run only) with the test extras and run the test suite: the fast set by default
# (tests marked `slow` are deselected in pyproject.toml); `-m slow` runs the slow set, `-m ""` everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec "${VLMDYN_VENV:-.venv}/bin/python" -m pytest -q "$@"
