#!/usr/bin/env bash
# Vision-Flan two-stage tuning at toy size, on the synthetic benchmark (about 1.5 CPU-minutes; 4-6 minutes on a busy 2-core machine):
#   stage 1: one epoch over a "many tasks" dataset (600 synthetic images);
#   stage 2: a fixed number of steps (64) over a sampled subset (200 conversations) of a second,
#            "style" dataset (other images), at half the stage-1 learning rate, from stage 1's last
#            checkpoint (--init-from);
# then Seen@k / unseen sets, answers and judgements at stage 2's checkpoints, and the learning curves.
# Usage: examples/vision-flan/run.sh [OUT]   (VLMDYN=path/to/vlmdyn to use another install)
set -euo pipefail
V="${VLMDYN:-vlmdyn}"
out="${1:-vf-demo}"
db="$out/exp.db"
mkdir -p "$out"
$V data synth --out "$out/tasks" --images 600 --seed 0 -q > /dev/null
$V data synth --out "$out/style" --images 150 --seed 1 -q > /dev/null
$V data import "$out/tasks/llava.json" --images "$out/tasks/images" --name tasks --db "$db" -q
$V data import "$out/style/llava.json" --images "$out/style/images" --name style --db "$db" -q
$V data categorize --db "$db" -q
# the toy-size counterparts of stage1.toml and stage2.toml (the tiny model's learning rate is 1e-3;
# stage 2 halves it, as Vision-Flan's 1e-5 halves its 2e-5)
$V train --db "$db" --dataset tasks --run vf-stage1 --seed 0 --out-dir "$out/runs" -q
$V train --db "$db" --dataset style --run vf-stage2 --seed 0 --out-dir "$out/runs" -q \
    --init-from vf-stage1 --checkpoints 8,16,32 \
    --set data.sample=200 --set train.steps=64 --set train.lr=5e-4 --set train.warmup=0.03
$V runs list --db "$db"
$V sets build --run vf-stage2 --seen-size 150 --unseen-size 300 --db "$db" -q
$V infer --run vf-stage2 --db "$db" -q
$V judge --run vf-stage2 --judge rules --db "$db" -q
$V sets list --run vf-stage2 --db "$db" 2>/dev/null || true
$V plot frontiers --run vf-stage2 --judge rules --out "$out/figures" --db "$db" --terminal
