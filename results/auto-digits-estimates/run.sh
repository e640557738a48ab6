#!/bin/bash
# results/README section 10, "Estimates of different ages, and the warm-up's exchange": digits, 5 ranks, the judged
# sweeps' settings (results/digits_one_run.sh), each seed's arms back to back. An ARM is REGIME:NAME:ENV:BACKUPS;
# ENV is "-" or VAR=VALUE pairs joined by ';' (TREE=DIR runs that worktree's backupsgd, default $KNOBS_TREE), and
# BACKUPS as TOML writes it. Runs already in OUT are skipped.
#   bash results/auto-digits-estimates/run.sh OUT FROM TO ARM...
# The estimates' knobs (knobs.patch, env BSGD_STEP_SPAN / BSGD_STEP_FRESH: the span and the freshness, in steps, of
# each N's measured whole step, both the spec's window by default) on a worktree of 4a11516, and the warm-up fix
# (da3819e, measured as 4a11516 with its diff applied) on another:
#   git worktree add --detach /work/exp 4a11516 && git -C /work/exp apply "$PWD/results/auto-digits-estimates/knobs.patch"
#   git worktree add --detach /work/exp2 da3819e
#   A='"auto:max=4,noise=0.15"'; W='"auto:max=4,noise=0.15,window=10"'; R=/tmp/an/x/est   # 12:35-13:05 UTC 2026-12-04
#   bash results/auto-digits-estimates/run.sh $R 0 9 "noisy:static:-:4" "noisy:base:-:$A" \
#        "noisy:span5:BSGD_STEP_SPAN=5:$A" "exp:base:-:$A" "exp:span5:BSGD_STEP_SPAN=5:$A"
#   bash results/auto-digits-estimates/run.sh $R 0 9 "noisy:w10:-:$W" "noisy:w10span5:BSGD_STEP_SPAN=5:$W" "exp:w10:-:$W"
#   bash results/auto-digits-estimates/run.sh $R 0 14 "noisy:fresh5:BSGD_STEP_FRESH=5:$A" "exp:fresh5:BSGD_STEP_FRESH=5:$A"
#   bash results/auto-digits-estimates/run.sh $R 10 14 "noisy:static:-:4" "noisy:base:-:$A" "exp:base:-:$A"
#   .venv/bin/python results/auto-digits-oracle/paired.py $R noisy=static exp=base       # paired.txt, first part
#   bash results/auto-digits-estimates/run.sh /tmp/an/x/warm 0 14 "noisy:base:-:$A" "noisy:warm:TREE=/work/exp2:$A" \
#        "exp:base:-:$A" "exp:warm:TREE=/work/exp2:$A"                                   # 13:05-13:20 UTC
#   .venv/bin/python results/auto-digits-oracle/paired.py /tmp/an/x/warm noisy=base exp=base   # paired.txt, second part
# A second warm-up step (WARM_UP_STEPS = 2), on a worktree of 6ba3c21 with that change applied, against 6ba3c21:
#   git worktree add --detach /work/judge 6ba3c21 && git worktree add --detach /work/warm2 6ba3c21   # then apply it
#   bash results/auto-digits-estimates/run.sh /tmp/an/warm2 100 114 "noisy:base:TREE=/work/judge:$A" \
#        "noisy:warm2:TREE=/work/warm2:$A" "exp:base:TREE=/work/judge:$A" "exp:warm2:TREE=/work/warm2:$A"   # 16:48-17:08
#   bash results/auto-digits-estimates/run.sh /tmp/an/warm2 115 129 ...the same four arms...           # 17:08-17:27 UTC
#   .venv/bin/python results/auto-digits-oracle/paired.py /tmp/an/warm2 noisy=base exp=base          # = warmup2.txt
out=$1; from=$2; to=$3; shift 3; mkdir -p "$out"
source "$(dirname "$0")/../digits_one_run.sh"
for seed in $(seq "$from" "$to"); do
  for arm in "$@"; do
    IFS=: read -r regime name envs backups <<< "$arm"
    run=$out/$regime-$name-s$seed
    [ -d "$run" ] && continue
    ( if [ "$envs" != "-" ]; then IFS=';' read -ra pairs <<< "$envs"; export "${pairs[@]}"; fi
      digits_one_run "${TREE:-${KNOBS_TREE:-/work/exp}}" "$run.toml" "$run" "$backups" \
        "${DIGITS_STRAGGLER[$regime]}" "$seed" > "$run.log" 2>&1 )
    rc=$?
    echo "$(date +%T) seed $seed $regime $name rc=$rc"
  done
done
