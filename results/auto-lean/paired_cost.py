"""The lean sweep's per-seed mean steps (step_cost.py --by-folder --seeds, saved as lean-steps.txt) paired three ways:
the new code's auto less the old's, the new b = 3 less the old, and auto's excess over b = 3 new less old; mean of
the 30 seeds' differences +- standard error, and the median. Run from the repository root:
.venv/bin/python results/auto-lean/paired_cost.py results/auto-lean/lean-steps.txt"""
import re
import sys

import numpy as np

header = next(line for line in open(sys.argv[1]) if line.startswith("seed | "))
names = [name.strip() for name in header.split("|")[1:]]
rows = [[float(cell.split()[0]) for cell in line.split("|")[1:]]
        for line in open(sys.argv[1]) if re.match(r"^\d+ \|", line)]
ms = dict(zip(names, np.array(rows).T))
new_auto, old_auto = ms["new: auto:min=3,max=3,noise=0.13"], ms["old: auto:min=3,max=3,noise=0.13"]
new_static, old_static = ms["new: 3"], ms["old: 3"]
for name, x in [("new auto - old auto", new_auto - old_auto), ("new b = 3 - old b = 3", new_static - old_static),
                ("(new auto - new b = 3) - (old auto - old b = 3)", (new_auto - new_static) - (old_auto - old_static))]:
    print(f"{name}: {x.mean():+.3f} +- {x.std(ddof=1) / np.sqrt(len(x)):.3f} ms a step, median {np.median(x):+.3f} "
          f"({len(x)} seeds)")
