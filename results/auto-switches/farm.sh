#!/bin/bash
# Used for excess.py and cluster_clock.py, which read one folder of auto and b = 4 runs side by side:
#   bash results/auto-switches/farm.sh /tmp/s49/ab2/pareto new-auto b4   # -> /tmp/s49/ab2/pareto-new-auto
# farm OUT ARM STATIC -> OUT-ARM: symlinks of ARM's auto runs and STATIC's runs side by side (excess.py's layout)
out=$1; arm=$2; static=$3
dest=$out-$arm; rm -rf "$dest"; mkdir -p "$dest"
for d in "$out/$arm"/s*/backup-*; do ln -s "$d" "$dest/"; done
for d in "$out/$static"/s*/backup-*; do ln -s "$d" "$dest/"; done
