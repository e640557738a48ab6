"""Auto's runs at two revisions of the code on the same seeds, paired with each other and with the first sweep's
b = 4, at the first evaluation at the target and at the crossing. Run from the repository root:
.venv/bin/python results/auto-lean/old_new.py NEW_RUNS OLD_RUNS   (NEW_RUNS holds auto and b = 4, OLD_RUNS auto)"""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

for interpolate in (False, True):
    new, _ = load_runs(Path(sys.argv[1]), True, interpolate)
    old, _ = load_runs(Path(sys.argv[2]), True, interpolate)
    target = default_target(new[0].dataset)
    new_auto = seed_times([r for r in new if str(r.backups).startswith("auto")], target)
    static = seed_times([r for r in new if str(r.backups) == "4"], target)
    old_auto = seed_times([r for r in old if str(r.backups).startswith("auto")], target)
    print("at the crossing" if interpolate else "at the first evaluation at the target")
    print("  " + paired_ratio_line(new_auto, old_auto, "new auto / old auto"))
    print("  " + paired_ratio_line(old_auto, static, "old auto / b = 4"))
    print("  " + paired_ratio_line(new_auto, static, "new auto / b = 4"))
