#!/usr/bin/env bash
# launch/reproduce.sh: regenerate every number of results/README.md on this machine.
#
#   launch/reproduce.sh            # the full reproduction: ~20-25 min on a quiet 2-core machine
#   launch/reproduce.sh --quick    # the pipeline check: reduced grid (2 seeds, 100 steps), ~5 min;
#                                  # writes results/paper-quick, whose numbers are NOT the report's
#
# Timings are the result: run it on a quiet machine (nothing else using the cores).
# It resumes: rerun it after an interruption and finished runs are kept (summary.json present).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # Open MPI as root (harmless otherwise)

grid=launch/experiments/paper.toml
out=results/paper
if [[ "${1:-}" == "--quick" ]]; then
    grid=launch/experiments/paper-quick.toml
    out=results/paper-quick
fi

# (1) The parameter server's bottleneck: see results/ps-bottleneck/README.md for its own command.

# (2)-(4) Every comparison over 5 seeds, N and b measured here, drop versus wait, the paper's claim.
# A failed run is reported and the rest go on; the report is built from whatever finished.
status=0
"$BIN/backupsgd" sweep "$grid" --out "$out" || status=$?

# Tables, plots, the claim's verdict, the simulator's calibration against these runs and its
# projection to 100-1,000 workers (with the exact `backupsgd simulate` lines) -> $out/report.md
"$BIN/backupsgd" report "$out"

echo "report: $out/report.md"
if [[ $status -ne 0 ]]; then
    echo "some runs failed (see above); rerun launch/reproduce.sh ${1:-} to retry them" >&2
fi
exit $status
