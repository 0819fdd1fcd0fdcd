# Sourced by infer_gpus.sh and judge_shards.sh: wait for the shard processes they started in the
# background and say which failed.
#   ( ... ) > "$log" 2>&1 &
#   started "$log"      right after starting each process in the background with its output in $log
#   wait_shards         waits for all; exit status 1 when any failed (naming its log)
shard_pids=()
shard_logs=()
started() { shard_pids+=("$!"); shard_logs+=("$1"); }
wait_shards() {
  local i failed=0
  for i in "${!shard_pids[@]}"; do
    if ! wait "${shard_pids[$i]}"; then
      echo "a shard process failed: see ${shard_logs[$i]}" >&2
      failed=1
    fi
  done
  return $failed
}
