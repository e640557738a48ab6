"""Auto against static b pooled over sweeps of disjoint seeds, each with its own name for auto's arm (the same
policy under another spec string, e.g. `fast=5` spelt out before it was the default): the paired A/B scripts'
statistic (paired_log_ratio) over every seed of every window. Run from the repository root:
.venv/bin/python results/auto-lean/pooled.py [--interpolate] --static B[,B...] RUNS=AUTO_CONFIG [RUNS=AUTO_CONFIG ...]
Each window's runs must be of one straggler spec (the panels are not told apart)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("windows", nargs="+", help="RUNS=AUTO_CONFIG: a sweep's output and its auto arm's backups")
parser.add_argument("--static", required=True, help="the static b to pair auto with, comma-separated")
parser.add_argument("--interpolate", action="store_true", help="time to target at the crossing between evaluations")
args = parser.parse_args()

auto: dict = {}
static: dict = {b: {} for b in args.static.split(",")}
for window in args.windows:
    path, _, config = window.partition("=")
    runs, _ = load_runs(Path(path), True, args.interpolate)
    if len({run.straggler for run in runs}) != 1:
        sys.exit(f"{path}: runs of more than one straggler spec; pool one regime at a time")
    target = default_target(runs[0].dataset)
    arms = {str(run.backups) for run in runs}
    for name in [config, *static]:
        if name not in arms:
            sys.exit(f"{path}: no arm {name!r} (it has {sorted(arms)})")
    found = seed_times([run for run in runs if str(run.backups) == config], target)
    if set(found) & set(auto):
        sys.exit(f"{path}: seeds {sorted(set(found) & set(auto))} are in an earlier window too")
    auto |= found
    for b in static:
        static[b] |= seed_times([run for run in runs if str(run.backups) == b], target)
    print(f"{path}: {runs[0].straggler}, seeds {min(found)}-{max(found)}")
for b, times in static.items():
    print(paired_ratio_line(auto, times, f"auto / b = {b}"))
