#!/usr/bin/env bash
# What isolating the method under test costs: the wall time of the whole smoke sweep (twice,
# alternating) and of one quick cell (dm, Fashion-MNIST, IPC 1), for the code before isolation and
# after it, in one run. Nothing else may run on the machine meanwhile.
#   git worktree add /tmp/before 54ef2f2      # the code before isolation
#   BENCHSUITE_DATA=../shared/data bash tools/isolation_overhead.sh /tmp/before .
#   python tools/compare_sweeps.py /tmp/isolation/before/smoke1 /tmp/isolation/after/smoke1
set -u
BEFORE=$(cd "${1:?the tree of the code before}" && pwd)
AFTER=$(cd "${2:-.}" && pwd)
export BENCHSUITE_DATA=$(cd "${BENCHSUITE_DATA:-../shared/data}" && pwd)
PY=$(command -v python)
OUT=/tmp/isolation
rm -rf $OUT; mkdir -p $OUT
tree_of() { case $1 in before) echo "$BEFORE" ;; after) echo "$AFTER" ;; esac; }
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>>$OUT/stderr; local rc=$?; local e=$(date +%s.%N); echo "$(echo "$e - $s" | bc) rc=$rc"; }
for label in before after; do
  cd $(tree_of $label)
  # warm the dataset cache (untimed)
  $PY -m benchsuite --no-entry-points run --methods random --ipc 1 --eval epochs=1 --eval models=1 --results $OUT/$label/warm --cache-dir $OUT/$label/cache --quiet --no-report >/dev/null 2>&1
done
for round in 1 2; do
  for label in before after; do
    cd $(tree_of $label)
    echo "smoke $label round$round $(t $PY -m benchsuite --no-entry-points run --methods all --protocol smoke --results $OUT/$label/smoke$round --cache-dir $OUT/$label/smokecache$round --quiet --no-report)"
  done
done
for label in before after; do
  cd $(tree_of $label)
  echo "quick-dm-ipc1 $label $(t $PY -m benchsuite --no-entry-points run --methods dm --ipc 1 --results $OUT/$label/quick --cache-dir $OUT/$label/cache --quiet --no-report)"
done
