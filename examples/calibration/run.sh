#!/usr/bin/env bash
# The worked calibration example: judges vs human labels on 100 items of the synthetic benchmark.
#
#   examples/calibration/run.sh                  # fresh database in a temporary directory
#   examples/calibration/run.sh --db calib.db    # or a database of your choice (new or existing)
#   examples/calibration/run.sh --no-local       # skip the local GGUF judge (rules and a text-only fit)
#   examples/calibration/run.sh --keep           # keep the work directory (fitted judge specs, sheet)
#
# Needs `vlmdyn` on PATH. The items (items.jsonl) and the two filled rater sheets
# (ratings-agent-rater-*.csv) ship with the example, so it runs without the training run.
# Who rated and how: see README.md next to this script.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DB=""
LOCAL=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --db) DB="$(realpath -m "$2")"; shift 2 ;;
    --no-local) LOCAL=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

WORK="$(mktemp -d)"
if [ "$KEEP" = 1 ]; then echo "work directory: $WORK" >&2; else trap 'rm -rf "$WORK"' EXIT; fi
# work with relative paths inside WORK so the printed output does not depend on where it ran
cp "$HERE/items.jsonl" "$HERE"/ratings-agent-rater-*.csv "$WORK/"
cd "$WORK"
DB="${DB:-calib.db}"   # relative to WORK unless --db was given

export COLUMNS="${COLUMNS:-150}"  # wide enough for the agreement table when not on a terminal

step() { printf '\n$ %s\n' "$*"; "$@"; }

# 1. The sample: all 100 shipped items, seed 0, so the ids (synth100-0001..) match the filled sheets.
#    (The importer also checks each row's question/reference/prediction against the item.)
step vlmdyn calibrate sample --input items.jsonl --n 100 --name synth100 --seed 0 --out sheet.csv --db "$DB"

# 2. Two rating passes, one rater name each.
step vlmdyn calibrate import ratings-agent-rater-1.csv --rater agent-rater-1 --db "$DB"
step vlmdyn calibrate import ratings-agent-rater-2.csv --rater agent-rater-2 --db "$DB"

# 3. Human verdicts (yes when >= 75% of the raters say yes) and inter-rater agreement.
step vlmdyn calibrate labels --agreement 0.75 --min-raters 2 --sample synth100 --db "$DB"

# 4. The shipped judges against the human verdicts (judging the items first; cached in the DB).
if [ "$LOCAL" = 1 ]; then
  step vlmdyn calibrate report --judge rules --judge local --judge cascade \
    --min-raters 2 --sample synth100 --quiet --db "$DB"
else
  step vlmdyn calibrate report --judge rules --min-raters 2 --sample synth100 --quiet --db "$DB"
fi

# 5. Fitted judges: logistic regression over cheap signals, quality from 5-fold cross-validation.
step vlmdyn calibrate fit --name fitted-cheap --features rules,token-f1,contains,len-ratio \
  --out-dir judges --min-raters 2 --sample synth100 --quiet --db "$DB"
FITTED=(--judge judges/fitted-cheap.toml)
if [ "$LOCAL" = 1 ]; then
  step vlmdyn calibrate fit --name fitted-local --features rules,token-f1,contains,len-ratio,local-p_yes \
    --out-dir judges --min-raters 2 --sample synth100 --quiet --db "$DB"
  FITTED+=(--judge judges/fitted-local.toml)
fi

# 6. The whole table, fitted judges included (those rows are in-sample: the fit saw these labels;
#    the held-out numbers are the ones printed by `calibrate fit` above).
if [ "$LOCAL" = 1 ]; then
  step vlmdyn calibrate report --judge rules --judge local --judge cascade "${FITTED[@]}" \
    --min-raters 2 --sample synth100 --quiet --db "$DB"
else
  step vlmdyn calibrate report --judge rules "${FITTED[@]}" --min-raters 2 --sample synth100 --quiet --db "$DB"
fi
