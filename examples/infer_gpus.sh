#!/usr/bin/env bash
# Answer every evaluation set at every checkpoint of some runs, one `vlmdyn infer` process per GPU.
#
#   examples/infer_gpus.sh DB "RUN [RUN ...]" [GPUS=8] [NODE=0] [NODES=1] [-- more `vlmdyn infer` options]
#
# GPU g of node n runs `vlmdyn infer --shard (n*GPUS+g)/(NODES*GPUS) --device cuda:g` for each run in
# turn, every process writing into DB: on one machine the experiment database itself, on a cluster
# node that node's export (examples/cluster.sh). A unit (checkpoint, QA pair) belongs to one shard by
# a hash of its content, so no two processes answer the same item, and their writes queue on SQLite's
# write lock (one short transaction per batch). Kill anything and run the script again: every process
# skips what is stored.
#
# Environment: BACKEND (vllm), DEVICE (cuda:{g}; e.g. DEVICE=cpu to try the script on a CPU box),
# LOGS (logs): one log per process, with progress (rate, ETA) and a summary per checkpoint;
# SPLIT=items (default: every run split over every process, so each process loads every checkpoint
# of every run) or SPLIT=runs (process p takes whole runs p, p+P, p+2P, ... of the list, no --shard:
# each checkpoint is loaded once; best when there are at least as many runs as processes, e.g.
# 8 seeds on 8 GPUs).
#
# Example (8 GPUs, 8 seeds):
#   examples/infer_gpus.sh exp.db "$(echo llava7b-s{0..7})" 8 -- --batch-size 256 --max-new-tokens 256
set -euo pipefail
usage="usage: infer_gpus.sh DB \"RUN [RUN ...]\" [GPUS=8] [NODE=0] [NODES=1] [-- infer options]"
db=${1:?$usage}
runs=${2:?$usage}
shift 2
pos=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do pos+=("$1"); shift; done
[ $# -gt 0 ] && shift          # the "--"
gpus=${pos[0]:-8}
node=${pos[1]:-0}
nodes=${pos[2]:-1}
backend=${BACKEND:-vllm}
device=${DEVICE:-cuda:\{g\}}
logs=${LOGS:-logs}
split=${SPLIT:-items}
total=$((nodes * gpus))
case "$split" in items|runs) ;; *) echo "SPLIT must be items or runs, not '$split'" >&2; exit 2 ;; esac
mkdir -p "$logs"

vlmdyn db migrate --db "$db" > /dev/null           # one process upgrades the schema, not N at once
for run in $runs; do                                # what is left, split the way it will be run
  if [ "$split" = items ]; then
    vlmdyn infer --db "$db" --run "$run" --backend "$backend" --dry-run --shard "$((node * gpus))/$total" "$@"
  else
    vlmdyn infer --db "$db" --run "$run" --backend "$backend" --dry-run "$@"
  fi
done

# shellcheck source=examples/wait_shards.sh
source "$(dirname "$0")/wait_shards.sh"
for g in $(seq 0 $((gpus - 1))); do
  shard="$((node * gpus + g))/$total"
  dev=${device//\{g\}/$g}
  log="$logs/infer-shard-${shard%/*}-of-$total.log"
  (
    i=0
    for run in $runs; do
      if [ "$split" = items ]; then
        vlmdyn infer --db "$db" --run "$run" --shard "$shard" --device "$dev" --backend "$backend" "$@"
      elif [ $((i % total)) -eq $((node * gpus + g)) ]; then
        vlmdyn infer --db "$db" --run "$run" --device "$dev" --backend "$backend" "$@"
      fi
      i=$((i + 1))
    done
  ) > "$log" 2>&1 &
  started "$log"
done
wait_shards
