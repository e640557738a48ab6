"""Per phase of digits' shifting regimes (quiet steps 1-30, the shift 30-60, quiet 60-90): each configuration's mean
N and mean wall time a step over its seeds, steps followed by an evaluation left out (their time holds it):

    python results/auto-digits-shifts-whole/phases.py results/auto-digits-shifts-whole
"""

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

PHASES = ((1, 30), (30, 60), (60, 90))
EVAL_EVERY = 10

for root in map(Path, sys.argv[1:]):
    rows = defaultdict(list)
    for run in sorted(p for p in root.iterdir() if (p / "summary.json").exists()):
        records = {r["step"]: r for r in map(json.loads, (run / "steps.jsonl").read_text().splitlines())}
        row = []
        for first, end in PHASES:
            steps = [s for s in range(first, end) if (s + 1) % EVAL_EVERY and s + 1 in records]
            row += [statistics.mean(len(records[s]["members"]) for s in steps),
                    statistics.mean(1000 * (records[s + 1]["time"] - records[s]["time"]) for s in steps)]
        regime = "slow node" if "slow" in run.name else "noisy neighbourhood"
        rows[(regime, re.search(r"-b([^-]+)-", run.name).group(1))].append(row)
    for (regime, backups), runs in sorted(rows.items()):
        m = [statistics.mean(column) for column in zip(*runs)]
        print(f"{regime}, b={backups} ({len(runs)} seeds): " +
              " / ".join(f"N {m[i]:.2f}, {m[i + 1]:.2f} ms" for i in (0, 2, 4)))
