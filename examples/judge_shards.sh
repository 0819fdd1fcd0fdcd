#!/usr/bin/env bash
# Judge every generation of some runs with N `vlmdyn judge --shard i/N` processes side by side.
#
#   examples/judge_shards.sh DB "RUN [RUN ...]" [PROCS=8] -- --judge JUDGE [more `vlmdyn judge` options]
#
# Process p judges, run after run, the triples whose hash is p mod PROCS (`--shard p/PROCS`), all of
# them writing into DB (the experiment database on one machine, a node's export on a cluster:
# examples/cluster.sh). Process p sees only GPU p (CUDA_VISIBLE_DEVICES=p; GPUS=n makes it p mod n):
# for a judge on the GPU, e.g. a `transformers` spec (device auto -> that GPU). For an API judge (a
# vLLM server: --base-url URL --concurrency 32; OpenAI) the processes are only more clients.
# Kill anything and run the script again: every process skips what is stored. First it prints the
# dry run of shard 0 per run (items new vs cached; tokens and cost for an API judge).
#
# Environment: LOGS (logs): one log per process (judge-DBNAME-shard-p-of-PROCS.log), with progress
# (rate, ETA) and the summary per run;
# GPUS (PROCS).
#
# Examples:
#   examples/judge_shards.sh exp.db "$(echo llava7b-s{0..7})" 8 -- --judge cascade
#   examples/judge_shards.sh exp.db "llava7b-s0" 4 -- --judge gpt-4o-mini \
#       --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --concurrency 16
set -euo pipefail
usage="usage: judge_shards.sh DB \"RUN [RUN ...]\" [PROCS=8] -- --judge JUDGE [judge options]"
db=${1:?$usage}
runs=${2:?$usage}
shift 2
procs=8
if [ $# -gt 0 ] && [ "$1" != "--" ]; then procs=$1; shift; fi
case "$procs" in ''|*[!0-9]*|0) echo "PROCS must be a number >= 1, not '$procs'" >&2; exit 2 ;; esac
[ $# -gt 0 ] && shift          # the "--"
case " $* " in *" --judge "*|*" --judge="*|*" -j "*) ;; *) echo "$usage (no --judge given)" >&2; exit 2 ;; esac
gpus=${GPUS:-$procs}
logs=${LOGS:-logs}
mkdir -p "$logs"
name=$(basename "$db" .db)     # nodes of a cluster may share LOGS: logs/judge-node3-shard-1-of-8.log

shard() { if [ "$procs" -gt 1 ]; then echo "--shard $1/$procs"; fi; }   # one process: no split to record

vlmdyn db migrate --db "$db" > /dev/null           # one process upgrades the schema, not N at once
for run in $runs; do
  # shellcheck disable=SC2046
  vlmdyn judge --db "$db" --run "$run" $(shard 0) --dry-run "$@"
done

# shellcheck source=examples/wait_shards.sh
source "$(dirname "$0")/wait_shards.sh"
for p in $(seq 0 $((procs - 1))); do
  log="$logs/judge-$name-shard-$p-of-$procs.log"
  (
    for run in $runs; do
      # shellcheck disable=SC2046
      CUDA_VISIBLE_DEVICES=$((p % gpus)) vlmdyn judge --db "$db" --run "$run" $(shard "$p") "$@"
    done
  ) > "$log" 2>&1 &
  started "$log"
done
wait_shards
