#!/usr/bin/env bash
# CIFAR-10 fidelity runs on the CPU (docs: fidelity). Every step is a resumable `benchsuite run`:
# rerunning this script skips finished cells, so it can be stopped and started at will.
#   BENCHSUITE_DATA=../shared/data bash tools/fidelity_cifar10.sh [step ...]
# Steps: baselines, dm, dc, quick (default: all, in that order).
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/fidelity-cifar10
steps=("${@:-baselines dm dc quick}")
read -r -a steps <<< "${steps[*]}"

run() { echo "+ benchsuite run $*"; benchsuite run --quiet "$@"; }

for step in "${steps[@]}"; do
  case "$step" in
    baselines)
      # the trained feature extractor of herding/k-center: 10 epochs on the CPU (30 in the paper
      # budget), built once and shared by both
      run --methods random,herding,kcenter --protocol "$out/dc_recipe.toml" --results "$out/dc-recipe" \
        --set herding.extractor_epochs=10 --set kcenter.extractor_epochs=10 ;;
    dm)
      # accuracy vs distillation iterations, published hyperparameters otherwise
      for it in 100 300 1000; do
        run --methods dm --protocol "$out/dm_recipe.toml" --set "dm.iterations=$it" --results "$out/dm-${it}it"
      done ;;
    dc)
      run --methods dc --protocol "$out/dc_recipe.toml" --ipc 1 --results "$out/dc-recipe" ;;
    quick)
      # every method but `full` (the whole train set is IPC 0, not a quick IPC 1 cell), cheapest first
      run --methods random,dm,dc,dsa,mtt,pad,hmn,glad-dm,glad-dc,glad-mtt,hpd-dm,hpd-dc,hpd-mtt,herding,kcenter \
        --protocol quick --datasets cifar10 --ipc 1 --archs convnet --results "$out/quick" ;;
    *) echo "unknown step $step (baselines, dm, dc, quick)" >&2; exit 2 ;;
  esac
done
