#!/bin/bash
# results/README section 10, "What a clairvoyant schedule of N would gain": digits' two shifting regimes, seeds
# 0-9, each seed's runs back to back: the best static b (b = 2 slow node, b = 4 noisy neighbourhood), an oracle that
# knows the phases (N = 4 in the quiet phases, 3 under the slow node, 1 under the noisy neighbour; ORACLE_N, set by
# oracle.patch in AutoQuorum.choose) and auto, all from one worktree of b89821d with oracle.patch applied:
#   git worktree add --detach /work/oracle b89821d && git -C /work/oracle apply "$PWD/results/auto-digits-oracle/oracle.patch"
#   bash results/auto-digits-oracle/run.sh /tmp/an/or/runs 0 9      # 60 runs, ~13 s each (10:32-10:46 UTC 2026-12-04)
#   .venv/bin/python results/auto-digits-oracle/paired.py /tmp/an/or/runs > results/auto-digits-oracle/paired.txt
out=${1:-results/auto-digits-oracle/runs}; mkdir -p "$out"
code=${ORACLE_TREE:-/work/oracle}
source "$(dirname "$0")/../digits_one_run.sh"
declare -A BEST=( [slow]=2 [noisy]=4 )
declare -A ORACLE=( [slow]="4,3,4" [noisy]="4,1,4" )
for seed in $(seq "${2:-0}" "${3:-9}"); do
  for regime in slow noisy; do
    for arm in static oracle auto; do
      backups='"auto:max=4,noise=0.15"'; [ $arm = static ] && backups=${BEST[$regime]}
      if [ $arm = oracle ]; then export ORACLE_N=${ORACLE[$regime]}; else unset ORACLE_N; fi
      digits_one_run "$code" "$out/$regime-$arm-s$seed.toml" "$out/$regime-$arm-s$seed" "$backups" \
        "${DIGITS_STRAGGLER[$regime]}" "$seed" > "$out/$regime-$arm-s$seed.log" 2>&1
      rc=$?
      echo "$(date +%T) seed $seed $regime $arm rc=$rc"
    done
  done
done
