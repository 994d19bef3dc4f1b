#!/usr/bin/env bash
# On a machine with one GPU: the paper-budget CIFAR-10 cells that fit in a time budget (default
# 10 minutes), with their records in results/fidelity-cifar10/gpu/ (docs/results.md, fidelity).
#
#   BENCHSUITE_DATA=../shared/data bash tools/gpu_fidelity.sh            # BUDGET_S=600 DEVICE=cuda
#
# 1. Times DM with its published hyperparameters on CIFAR-10 at IPC 1 and 10 for a few hundred
#    iterations (`benchsuite probe`, no record), and one evaluation model's 1000-epoch DSA training.
# 2. Runs each IPC at the published 20,000 iterations (results/fidelity-cifar10/dm_recipe.toml,
#    2 evaluation models) when its estimate fits what is left of the budget; says so otherwise.
# Resumable like every run: a second call skips the cells that have records.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${BUDGET_S:-600}
device=${DEVICE:-cuda}
out=${OUT:-results/fidelity-cifar10/gpu}
protocol=results/fidelity-cifar10/dm_recipe.toml
probe_iterations=${PROBE_ITERATIONS:-300}
published_iterations=20000
start=$(date +%s)

seconds_of() {  # the "distilled in Xs" / "(train Xs" figure of a probe's output
  sed -n "s/.*$1 \([0-9.]*\)s.*/\1/p" | head -1
}

for ipc in 1 10; do
  probe=$(benchsuite probe dm --dataset cifar10 --ipc "$ipc" --protocol "$protocol" --device "$device" \
          --set iterations="$probe_iterations" --eval models=1 --quiet)
  echo "$probe"
  distill=$(echo "$probe" | seconds_of "distilled in")
  train=$(echo "$probe" | sed -n 's/.*(train \([0-9.]*\)s, test \([0-9.]*\)s).*/\1 \2/p')
  read -r train_s test_s <<< "$train"
  estimate=$(python3 -c "print(round($distill / $probe_iterations * $published_iterations + 2 * ($train_s + $test_s)))")
  left=$(( budget - ($(date +%s) - start) ))
  echo "dm cifar10 ipc$ipc: ${distill}s for $probe_iterations iterations; the published cell needs about ${estimate}s, ${left}s left"
  if (( estimate < left )); then
    benchsuite run --methods dm --datasets cifar10 --ipc "$ipc" --protocol "$protocol" --device "$device" \
      --results "$out" --quiet
  else
    echo "dm cifar10 ipc$ipc at $published_iterations iterations does not fit; run it with a larger BUDGET_S"
  fi
done
if [ -s "$out/records.jsonl" ]; then benchsuite report --results "$out" --no-site; fi
