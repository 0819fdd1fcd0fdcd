#!/usr/bin/env bash
# Train the 8 seeds of the study one after another (each one epoch, same data, own order and init).
#
#   examples/train_seeds.sh CONFIG.toml exp.db [ACCELERATE_CONFIG.yaml]
#
# Without an accelerate config it runs `vlmdyn train` in this process (CPU / one GPU).
# --resume makes the script re-runnable: finished seeds are skipped, an interrupted one continues
# from its last checkpoint with the same data order (no gaps or duplicates in the manifest).
set -euo pipefail
config=${1:?usage: train_seeds.sh CONFIG.toml DB [ACCELERATE_CONFIG.yaml]}
db=${2:?usage: train_seeds.sh CONFIG.toml DB [ACCELERATE_CONFIG.yaml]}
acc=${3:-}
for seed in 0 1 2 3 4 5 6 7; do
  if [ -n "$acc" ]; then
    accelerate launch --config_file "$acc" -m vlmdyn_cli train "$config" --seed "$seed" --db "$db" --resume
  else
    vlmdyn train "$config" --seed "$seed" --db "$db" --resume
  fi
done
vlmdyn runs list --db "$db"
