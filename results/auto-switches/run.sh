#!/bin/bash
# results/README section 10, "A climb that needs a busy worker": digits under one straggler regime, auto at its judged
# spec from a worktree of the code before the hold (OLD) and of the code with it (NEW), against the static b that
# judge it (from OLD: a static b runs no policy), each seed's runs back to back in a rotating order; nothing else
# running. REGIME: pareto, exp or noisy (the noisy neighbourhood, judged against b = 3 and b = 4).
#   git worktree add --detach /work/w49 15efe8c && git worktree add --detach /work/w49r 33ec185
#   bash results/auto-switches/run.sh pareto /tmp/s49/ab2/pareto 600 619 /work/w49 /work/w49r
#   .venv/bin/python results/auto-switches/paired.py /tmp/s49/ab2/pareto   (results/README section 10 names the rest)
regime=$1; out=$2; first=$3; last=$4; old=$5; new=$6
source "$(dirname "$0")/../digits_one_run.sh"
case $regime in
  pareto) straggler="pareto:scale=0.005,alpha=1.5"; statics=(4) ;;
  exp) straggler=${DIGITS_STRAGGLER[exp]}; statics=(4) ;;
  noisy) straggler=${DIGITS_STRAGGLER[noisy]}; statics=(3 4) ;;
  *) echo "REGIME must be pareto, exp or noisy, not '$regime'" >&2; exit 2 ;;
esac
arms=("old auto" "new auto")
for b in "${statics[@]}"; do arms+=("old $b"); done
for seed in $(seq "$first" "$last"); do
  for i in $(seq 0 $(( ${#arms[@]} - 1 ))); do
    arm=${arms[$(( (i + seed) % ${#arms[@]} ))]}; tree=${arm%% *}; what=${arm#* }
    code=$([ "$tree" = old ] && echo "$old" || echo "$new")
    backups=$([ "$what" = auto ] && echo '"auto:max=4,noise=0.13"' || echo "$what")
    tag=$([ "$what" = auto ] && echo "$tree-auto" || echo "b$what")
    mkdir -p "$out/$tag"
    digits_one_run "$code" "$out/$tag/s$seed.toml" "$out/$tag/s$seed" "$backups" "$straggler" "$seed" \
      > "$out/$tag/s$seed.log" 2>&1
    echo "$(date +%T) seed $seed $tag rc=$?"
  done
done
