#!/usr/bin/env bash
# Re-distil the saved sets behind the committed quick Fashion-MNIST records (IPC 1, seed 0, the
# set every architecture of the cell was evaluated on), so the leaderboard site has a picture of
# every method. Sets are not kept in git; each is re-made with the record's configuration and seed
# by `benchsuite probe --save` into the path the record names, and the site says that the picture
# is of a re-distilled set. Resumable: a set already on disk is skipped.
#   BENCHSUITE_DATA=../shared/data bash tools/redistil_pictures.sh [method ...]
#   benchsuite report --results results        # draws the pictures into results/site/img/
set -euo pipefail
cd "$(dirname "$0")/.."
sets=results/artifacts/quick-994db6ac7e2e/fashionmnist   # the quick protocol's hash in the records
methods=("${@:-random herding kcenter dm dc dsa mtt glad-dm glad-dc glad-mtt hpd-dm hpd-dc hpd-mtt hmn pad}")
read -r -a methods <<< "${methods[*]}"
for m in "${methods[@]}"; do
  out=$sets/$m/ipc1-seed0.pt
  if [ -f "$out" ]; then echo "have $out"; continue; fi
  extra=()
  # the committed herding/k-center records are method version 1: a random network's features
  case $m in herding|kcenter) extra=(--set embedding=random) ;; esac
  echo "+ benchsuite probe $m --ipc 1 --seed 0 --no-eval ${extra[*]} --save $out"
  benchsuite probe "$m" --dataset fashionmnist --ipc 1 --seed 0 --no-eval --quiet "${extra[@]}" --save "$out"
done
