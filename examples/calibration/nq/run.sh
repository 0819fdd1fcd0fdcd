#!/usr/bin/env bash
# The calibrated cascade on real human votes (judges/data/nq-dev.jsonl, 731 answers, 2-3 raters each),
# with GPT-4's stored verdicts served by a loopback OpenAI-compatible server as the escalation stage.
#   examples/calibration/nq/run.sh [--lexical] [--db nq.db]
# Features: lexical,minilm (the recommended set for a cascade; MiniLM comes with the embed extra);
# --lexical: the lexical features only (no model at all).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; REPO="$(cd "$HERE/../../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"; VLMDYN="${VLMDYN:-$REPO/.venv/bin/vlmdyn}"
FEATURES=lexical,minilm; DB=""
while [ $# -gt 0 ]; do case "$1" in
  --lexical) FEATURES=lexical; shift;;
  --minilm) FEATURES=lexical,minilm; shift;;
  --db) DB="$2"; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
WORK="$(mktemp -d)"; trap 'kill $SRV 2>/dev/null || true; rm -rf "$WORK"' EXIT
DB="${DB:-$WORK/nq.db}"
"$PY" "$REPO/tests/servers/replay_verdicts.py" "$REPO/judges/data/nq-dev.jsonl" --field gpt4 --seconds 1800 > "$WORK/url" &
SRV=$!
for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.2; done
URL="$(cat "$WORK/url")"
set -x
"$VLMDYN" calibrate import "$REPO/judges/data/nq-dev.jsonl" --db "$DB"
"$VLMDYN" calibrate labels --agreement 0.5 --db "$DB"
"$VLMDYN" calibrate fit --name nq --features "$FEATURES" --agreement 0.5 --folds 10 \
  --escalate-to "$HERE/gpt4-replay.toml" --base-url "$URL" --max-escalation 0.25 --out-dir "$WORK/judges-local" --db "$DB"
"$VLMDYN" judge --input "$REPO/judges/data/nq-dev.jsonl" --judge "$WORK/judges-local/nq.toml" --db "$DB" > /dev/null
"$VLMDYN" judgements status --db "$DB"
"$VLMDYN" calibrate report --agreement 0.5 --judge rules --judge cascade --judge "$HERE/gpt4-replay.toml" \
  --judge "$WORK/judges-local/nq.toml" --base-url "$URL" --png "${PNG:-nq-cost.png}" --db "$DB"
