"""The hold's effect over digits' three rows at once: new auto / old auto, seed by seed, pooled over run.sh outputs of
disjoint seeds (each row's paired statistic of paired.py, over every seed of every row). Run from the repository root:
.venv/bin/python results/auto-switches/pooled_rows.py OUT [OUT ...]"""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

for interpolate in (False, True):
    arms: dict = {"new-auto": {}, "old-auto": {}}
    for out in map(Path, sys.argv[1:]):
        for arm, times in arms.items():
            runs, _ = load_runs(out / arm, True, interpolate)
            times.update(seed_times(runs, default_target(runs[0].dataset)))
    print("at the crossing" if interpolate else "at the first evaluation at the target")
    print("  " + paired_ratio_line(arms["new-auto"], arms["old-auto"], "new-auto / old-auto"))
