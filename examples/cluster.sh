#!/usr/bin/env bash
# Several machines: every node works on its own database file, the head merges them back.
# (One SQLite file must not be shared between machines over a network filesystem.)
#
#   head:      examples/cluster.sh export exp.db NODES "RUN [RUN ...]" OUTDIR
#   node k:    examples/cluster.sh node OUTDIR/node<k>.db k NODES "RUN [RUN ...]" [GPUS=8] [-- infer options]
#   head:      examples/cluster.sh merge exp.db "RUN [RUN ...]" OUTDIR/node*.db
#
# `export` writes OUTDIR/node0.db ... node<NODES-1>.db, each with the runs, their manifests, sets and
# items (no generations). Checkpoint folders and images are NOT copied: nodes must see them at the
# paths the database records (a shared filesystem), like the head. `node` runs
# examples/infer_gpus.sh on that node's file with shards k*GPUS ... k*GPUS+GPUS-1 of NODES*GPUS, then,
# when JUDGE is set, judges what the node generated (a node's file holds only its own answers) with
# JUDGE_PROCS (1) processes of examples/judge_shards.sh, e.g.
#   JUDGE="gpt-4o-mini --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --concurrency 32"
# for a vLLM-served judge on the node, or JUDGE=cascade (offline), or leave JUDGE empty and judge on
# the head with the Batch API.
# `merge` brings every node's generations and judgements back in one transaction (idempotent: merging
# a file again adds nothing) and prints what is still missing per run.
#
# With SLURM, e.g.: srun -N "$NODES" --ntasks-per-node=1 --gpus-per-node=8 bash -c \
#   'examples/cluster.sh node nodes/node$SLURM_NODEID.db $SLURM_NODEID '"$NODES"' "$RUNS"'
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: cluster.sh export|node|merge ...}
shift
case "$cmd" in
  export)
    db=${1:?exp.db}; nodes=${2:?NODES}; runs=${3:?RUNS}; out=${4:?OUTDIR}
    mkdir -p "$out"
    run_args=()
    for run in $runs; do run_args+=(--run "$run"); done
    for k in $(seq 0 $((nodes - 1))); do
      vlmdyn db export --db "$db" "${run_args[@]}" --out "$out/node$k.db" --force
    done
    ;;
  node)
    db=${1:?node database}; k=${2:?node index}; nodes=${3:?NODES}; runs=${4:?RUNS}
    shift 4
    gpus=8
    if [ $# -gt 0 ] && [ "$1" != "--" ]; then gpus=$1; shift; fi
    [ $# -gt 0 ] && shift
    bash "$here/infer_gpus.sh" "$db" "$runs" "$gpus" "$k" "$nodes" -- "$@"
    if [ -n "${JUDGE:-}" ]; then
      # shellcheck disable=SC2086  # JUDGE holds a judge name and its options
      bash "$here/judge_shards.sh" "$db" "$runs" "${JUDGE_PROCS:-1}" -- --judge $JUDGE
    fi
    ;;
  merge)
    db=${1:?exp.db}; runs=${2:?RUNS}
    shift 2
    vlmdyn db merge "$@" --into "$db"
    for run in $runs; do            # anything a node did not finish: rerun that node, or run it here
      vlmdyn infer --db "$db" --run "$run" --dry-run --backend "${BACKEND:-vllm}" | grep "units left"
    done
    ;;
  *)
    echo "usage: cluster.sh export|node|merge ..." >&2
    exit 2
    ;;
esac
