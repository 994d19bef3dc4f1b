#!/usr/bin/env bash
# The Ray executor's own cost on one machine (README: run on a cluster): the same quick cells, one
# per method family, serially and under `--executor ray` with one 2-thread worker, one after the
# other, nothing else running. Prints wall time and peak memory (all processes: the machine's used
# memory over its level before the run, sampled every 0.5 s) of each.
#   BENCHSUITE_DATA=../shared/data bash tools/measure_executor_overhead.sh [OUT_DIR]
set -euo pipefail
out=${1:-/tmp/executor-overhead}
methods=${METHODS:-random,dc,dm,mtt,hmn}
rm -rf "$out"; mkdir -p "$out"
used() { free -b | awk '/^Mem:/ {print $3}'; }

measure() {  # name, command...
  local name=$1; shift
  local base; base=$(used); local peak=$base
  local t0; t0=$(date +%s.%N)
  "$@" > "$out/$name.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local now; now=$(used); (( now > peak )) && peak=$now
    sleep 0.5
  done
  wait "$pid"
  local t1; t1=$(date +%s.%N)
  printf '%s: wall %.1f s, peak memory %.2f GiB over the idle level\n' "$name" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "($peak - $base) / 1073741824" | bc -l)" | tee -a "$out/summary.txt"
}

# caches both runs read (expert trajectories): built first, not timed
benchsuite prepare --methods "$methods" --ipc 1 --quiet > "$out/prepare.log" 2>&1
measure serial benchsuite run --methods "$methods" --ipc 1 --results "$out/serial" --quiet --no-report
measure ray benchsuite run --methods "$methods" --ipc 1 --results "$out/ray" --quiet --no-report \
  --executor ray --cpus-per-cell 2
