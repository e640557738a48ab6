#!/bin/bash
# The paired A/B of results/README section 10 ("A step after an evaluation"): digits' two shifting regimes, seeds
# 0-5, each seed's runs back to back: auto at the probe change (a worktree of 9782a5d at /work/dev), auto with the
# pause learnt (a worktree of a07c9ed at /work/dev3), and the best static b of each regime (b = 2 slow node, b = 4
# noisy neighbourhood; at /work/dev). Make the worktrees with `git worktree add --detach /work/devN <commit>`, then
#   bash results/auto-digits-pause/run.sh /work/meas/pause && python results/auto-digits-pause/paired.py /work/meas/pause
out=${1:-/work/meas/pause}
source "$(dirname "$0")/../digits_one_run.sh"
mkdir -p "$out"
for s in $(seq 0 5); do
  for regime in slow exp; do
    if [ $regime = slow ]; then st=${DIGITS_STRAGGLER[slow]}; b=2; else st=${DIGITS_STRAGGLER[noisy]}; b=4; fi
    for v in dev dev3 static; do
      bk='"auto:max=4,noise=0.15"'; pin=$v; [ $v = static ] && { bk=$b; pin=dev; }
      digits_one_run "/work/$pin" "$out/$regime-$v-s$s.toml" "$out/$regime-$v" "$bk" "$st" "$s" > /dev/null 2>&1
    done
  done
  echo seed $s $(date +%T)
done
