#!/usr/bin/env bash
# `--backups auto` against every static b and the DBW-style rule, in the simulator (no MPI).
# Run from the repository root:  bash results/auto/run.sh   (writes results/auto/*.json and summary.md)
set -euo pipefail
out=results/auto
py=${PYTHON:-python}
source results/auto/simulate.sh
# static b: 0 and 1%, 2%, 5%, 10%, 20%, 30%, 50% of P
grid="(.01, .02, .05, .1, .2, .3, .5)"
simulate "$out" exp "exp:mean=0.02" "$grid"
simulate "$out" pareto "pareto:scale=0.01,alpha=1.5" "$grid"
simulate "$out" shift "phases:exp:mean=0.005@0-150;pareto:scale=0.02,alpha=1.2@150-300;exp:mean=0.005@300-" "$grid"
$py results/auto/summarize.py "$out" > "$out/summary.md"
cat "$out/summary.md"
