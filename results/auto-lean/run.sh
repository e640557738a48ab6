#!/bin/bash
# results/README section 10, "A leaner coordinator and writer": what a quiet digits step costs before and after
# orjson for the run records and the policy's cheaper scalar updates, each seed's four runs back to back in a
# rotating order: b = 3 and auto pinned at N = 2 (`auto:min=3,max=3`, so the policy runs and cannot move N), from a
# worktree of the code before (OLD) and of the code after (NEW); no stragglers; nothing else running.
#   git worktree add --detach /work/wold <before> && git worktree add --detach /work/wnew <after>
#   bash results/auto-lean/run.sh /tmp/lean/runs 400 429 /work/wold /work/wnew
#   .venv/bin/python results/auto-fast/step_cost.py /tmp/lean/runs --by-folder --seeds --against "old: 3"
out=$1; first=$2; last=$3; old=$4; new=$5
source "$(dirname "$0")/../digits_one_run.sh"
arms=("old 3" "old \"auto:min=3,max=3,noise=0.13\"" "new 3" "new \"auto:min=3,max=3,noise=0.13\"")
for seed in $(seq "$first" "$last"); do
  for i in 0 1 2 3; do
    arm=${arms[$(( (i + seed) % 4 ))]}; tree=${arm%% *}; backups=${arm#* }
    tag=$([ "$backups" = 3 ] && echo b3 || echo auto)
    code=$([ "$tree" = old ] && echo "$old" || echo "$new")
    mkdir -p "$out/$tree"
    digits_one_run "$code" "$out/$tree/$tag-s$seed.toml" "$out/$tree/$tag-s$seed" "$backups" none "$seed" \
      > "$out/$tree/$tag-s$seed.log" 2>&1
    rc=$?
    echo "$(date +%T) seed $seed $tree $tag rc=$rc"
  done
done
