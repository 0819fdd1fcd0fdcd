#!/usr/bin/env bash
# Individual Select end to end on synthetic candidates (README.md next to this file).
# Under 10 minutes on 2 CPU cores. Usage: bash examples/select/run.sh [OUT_FOLDER]
# Rerunning continues where it stopped: synth, import and every run are reused.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-select-example}"
DB="$OUT/select.db"
VLMDYN="${VLMDYN:-vlmdyn}"
mkdir -p "$OUT/data"

synth() {   # family, images
  $VLMDYN data synth --family "$1" --out "$OUT/data/$1" --images "$2" --quiet
  $VLMDYN data import "$OUT/data/$1/llava.json" --images "$OUT/data/$1/images" --name "$1" --db "$DB" --quiet >/dev/null
}
synth base 1200
synth yellow 600
synth wrong-colour 1000
synth shapes 600
synth chatter 600
synth bench 300
$VLMDYN data categorize --method rules --db "$DB" --quiet >/dev/null

$VLMDYN select "$HERE/plan.toml" --db "$DB"
$VLMDYN select report "$HERE/plan.toml" --db "$DB" --figure "$OUT/select.png"
