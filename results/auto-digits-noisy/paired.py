"""One configuration of a sweep against each other one, seed by seed within each straggler panel, in time to the
runs' dataset's default target (the paired A/B scripts' statistic; the report's own judgment against the best
static b is its bootstrap):
.venv/bin/python results/auto-digits-noisy/paired.py [RUNS] [CONFIG] [--interpolate] [--by KEY]
RUNS: a sweep's output (default results/auto-digits-noisy); CONFIG: its `backups` value (default: the first auto:);
--interpolate: each time to target where the metric crossed it between evaluations (Run.crossing_time); --by KEY:
tell configurations apart by that config.json key too (CONFIG then reads e.g. "auto:max=4 lag_limit=29"; the scratch
patches of results/auto-fast switch on lag_limit, which does nothing with the dense reducer)."""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

interpolate = "--interpolate" in sys.argv
args = [a for a in sys.argv[1:] if a != "--interpolate"]
by = args.pop(args.index("--by") + 1) if "--by" in args else None
args = [a for a in args if a != "--by"]
runs, _ = load_runs(Path(args[0] if args else "results/auto-digits-noisy"), True, interpolate)


def configuration(run) -> str:
    return f"{run.backups} {by}={run.config[by]}" if by else str(run.backups)


groups: dict = {}  # straggler -> configuration -> its runs
for run in runs:
    groups.setdefault(run.straggler, {}).setdefault(configuration(run), []).append(run)
times = {straggler: {backups: seed_times(group, default_target(group[0].dataset)) for backups, group in panel.items()}
         for straggler, panel in groups.items()}
for straggler, panel in sorted(times.items()):
    chosen = args[1] if len(args) > 1 else min(k for k in panel if k.startswith("auto:"))
    print(straggler)
    for other in sorted(set(panel) - {chosen}):
        print("  " + paired_ratio_line(panel[chosen], panel[other], f"{chosen} / {other}"))
