#!/usr/bin/env bash
# `--backups auto` against every static b and the DBW-style rule, in the simulator (no MPI).
# Run from the repository root:  bash results/auto/run.sh   (writes results/auto/*.json and summary.md)
set -euo pipefail
out=results/auto
py=${PYTHON:-python}
declare -A regimes=(
  [exp]="exp:mean=0.02"
  [pareto]="pareto:scale=0.01,alpha=1.5"
  [shift]="phases:exp:mean=0.005@0-150;pareto:scale=0.02,alpha=1.2@150-300;exp:mean=0.005@300-"
)
for p in 16 100 1000; do
  # static b: 0 and 1%, 2%, 5%, 10%, 20%, 30%, 50% of P (distinct, below P)
  bs=$($py -c "print(','.join(str(b) for b in sorted({0, *(max(1, round(f * $p)) for f in (.01, .02, .05, .1, .2, .3, .5))})))")
  for name in exp pareto shift; do
    for seed in 0 1 2 3 4; do
      $py -m backupsgd simulate --workers "$p" --backups "auto,auto-dbw,$bs" --modes backup \
        --straggler "${regimes[$name]}" --steps 450 --seed "$seed" --compute-s 0.05 \
        --noise-scale 2048 --batch-size 32 --json "$out/$name-P$p-s$seed.json" > /dev/null
    done
  done
done
$py results/auto/summarize.py "$out" > "$out/summary.md"
cat "$out/summary.md"
