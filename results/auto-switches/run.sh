#!/bin/bash
# results/README section 10, "A climb that needs a busy worker": digits under one straggler regime, auto at its judged
# spec from a worktree of the code before the hold (OLD) and of the code with it (NEW), against the static b that
# judge it (from OLD: a static b runs no policy), each seed's runs back to back in a rotating order; nothing else
# running. REGIME: pareto, exp or noisy (the noisy neighbourhood, judged against b = 3 and b = 4), noisy-rest (the
# noisy neighbourhood against the rest of what judges it: b = 2 and the DBW-style rule at the same spec), or
# fashion-pareto, fashion-exp, fashion-slow or fashion-noisy (Fashion-MNIST at results/auto-fast-fashion/steady.toml's
# settings under its Pareto or exponential delays, judged against b = 3, or under results/auto-lean/fashion-slow.toml's
# slow node or launch/experiments/auto-fashion.toml's noisy neighbourhood, against b = 3 and 4; ~42 s a run), or
# fashion-slow3 (three of the five ranks slow in steps 30-59, so N = 3 waits for one there: the best N differs by
# phase, which the two-rank slow node's does not; against b = 2 and 3), or fashion-slow4 (every rank but rank 0 slow in
# steps 30-59, so any N >= 2 waits for a slow rank there and N = 1 trains on one gradient a step: no static b is right
# in every phase; against b = 2, 3 and 4).
# OLDTREE '-': no old auto arm, the static b from NEWTREE (more seeds of one code against the static b). NO_AUTO=1 in
# the environment runs the static b alone (more static b on seeds an earlier output has auto's runs of); STATICS="..."
# replaces the REGIME's static arms (STATICS=dbw: auto against the DBW-style rule alone); SPEC="auto:..." replaces the
# auto arms' judged spec.
#   git worktree add --detach /work/w49 15efe8c && git worktree add --detach /work/w49r 33ec185
#   bash results/auto-switches/run.sh pareto /tmp/s49/ab2/pareto 600 619 /work/w49 /work/w49r
#   .venv/bin/python results/auto-switches/paired.py /tmp/s49/ab2/pareto   (results/README section 10 names the rest)
regime=$1; out=$2; first=$3; last=$4; old=$5; new=$6
source "$(dirname "$0")/../digits_one_run.sh"
spec='"auto:max=4,noise=0.13"'; one_run=digits_one_run
dbw_spec='"auto-dbw:max=4,noise=0.13"'  # the arm `dbw` (noisy-rest, STATICS)
# Fashion-MNIST's one run: TREE TOML OUT BACKUPS STRAGGLER SEED, as digits_one_run takes them
fashion_one_run() {
  cat > "$2" <<T
[sweep]
ranks = 5
timeout_s = 900
mode = "backup"
model = "cnn"
dataset = "fashion-mnist"
batch_size = 64
lr = 0.05
momentum = 0.9
steps = 150
eval_every = 10
backups = [$4]
straggler = ["$5"]
seed = [$6]
T
  sweep_one_run "$1" "$2" "$3" 1200
}
case $regime in
  fashion-pareto) straggler="pareto:scale=0.01,alpha=1.5"; statics=(3) ;;
  fashion-exp) straggler="exp:mean=0.02"; statics=(3) ;;
  fashion-slow) straggler="phases:none@0-30;slow:ranks=3+4,delay=0.06@30-60;none@60-"; statics=(3 4) ;;
  fashion-noisy) straggler="phases:none@0-30;exp:mean=0.04@30-60;none@60-"; statics=(3 4) ;;
  fashion-slow3) straggler="phases:none@0-30;slow:ranks=2+3+4,delay=0.06@30-60;none@60-"; statics=(2 3) ;;
  fashion-slow4) straggler="phases:none@0-30;slow:ranks=1+2+3+4,delay=0.06@30-60;none@60-"; statics=(2 3 4) ;;
  pareto) straggler="pareto:scale=0.005,alpha=1.5"; statics=(4) ;;
  exp) straggler=${DIGITS_STRAGGLER[exp]}; statics=(4) ;;
  noisy) straggler=${DIGITS_STRAGGLER[noisy]}; statics=(3 4) ;;
  noisy-rest) straggler=${DIGITS_STRAGGLER[noisy]}; statics=(2 dbw) ;;
  *) echo "REGIME must be pareto, exp, noisy, noisy-rest, fashion-pareto, fashion-exp, fashion-slow, fashion-slow3," \
       "fashion-slow4 or fashion-noisy," \
       "not '$regime'" >&2; exit 2 ;;
esac
case $regime in fashion-*) spec='"auto:max=4,noise=1.1"'; one_run=fashion_one_run ;; esac  # its judged spec
[ -n "${SPEC:-}" ] && spec="\"$SPEC\""  # another auto spec for the auto arms (a screen, not the judged spec)
[ -n "${STATICS:-}" ] && read -ra statics <<< "$STATICS"
arms=("new auto")
static_tree=new
if [ "$old" != - ]; then arms=("old auto" "new auto"); static_tree=old; fi
[ "${NO_AUTO:-0}" = 1 ] && arms=()  # after the old tree's arms, which it drops too
for b in "${statics[@]}"; do arms+=("$static_tree $b"); done
for seed in $(seq "$first" "$last"); do
  for i in $(seq 0 $(( ${#arms[@]} - 1 ))); do
    arm=${arms[$(( (i + seed) % ${#arms[@]} ))]}; tree=${arm%% *}; what=${arm#* }
    code=$([ "$tree" = old ] && echo "$old" || echo "$new")
    case $what in
      auto) backups=$spec; tag=$tree-auto ;;
      dbw) backups=$dbw_spec; tag=dbw ;;
      *) backups=$what; tag=b$what ;;
    esac
    mkdir -p "$out/$tag"
    $one_run "$code" "$out/$tag/s$seed.toml" "$out/$tag/s$seed" "$backups" "$straggler" "$seed" \
      > "$out/$tag/s$seed.log" 2>&1
    rc=$?
    echo "$(date +%T) seed $seed $tag rc=$rc"
  done
done
