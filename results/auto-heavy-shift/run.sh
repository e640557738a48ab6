#!/usr/bin/env bash
# `--backups auto` in the simulator under a shift that moves the best N further than section 7's `shift` does:
# exponential delays of mean 5 ms (a tenth of the 50 ms compute) for steps 0-150 and 300-450, and of mean 200 ms
# (four times the compute: a noisy neighbourhood) for steps 150-300; auto and the DBW-style rule against a static
# grid in steps of 5% of P up to 80% (section 7's stops at 50%, below the best static b here at 1,000 workers; at
# P = 16 this is every b up to 13). Everything else as results/auto/run.sh (results/auto/simulate.sh). A few seconds.
# Run from the repository root:
#   bash results/auto-heavy-shift/run.sh     # writes results/auto-heavy-shift/*.json and summary.md
set -euo pipefail
out=results/auto-heavy-shift
py=${PYTHON:-python}
source results/auto/simulate.sh
simulate "$out" heavyshift "phases:exp:mean=0.005@0-150;exp:mean=0.2@150-300;exp:mean=0.005@300-" \
  "(.01, .02, .05, .1, .15, .2, .25, .3, .35, .4, .45, .5, .55, .6, .65, .7, .75, .8)"
$py results/auto/summarize.py "$out" > "$out/summary.md"
cat "$out/summary.md"
