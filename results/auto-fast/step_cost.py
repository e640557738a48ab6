"""What each configuration of a sweep pays a step, seed for seed: steps 3 on, less those right after an evaluation
(their time holds its pause), pooled over the runs: the step's time (from the step before's), its first and second
READY (seconds into the step, as the coordinator timed them), how often rank 0 (the coordinator's rank, the writer)
was a member, and rank 0's own wait from its offer to the decision (`vote_s`). Run from the repository root:
.venv/bin/python results/auto-fast/step_cost.py RUNS [--by KEY] [--by-folder] [--seeds] [--against NAME]
--by KEY: tell configurations apart by that config.json key too (any section's, e.g. lag_limit, which the scratch
patches here use as a switch); --by-folder: and by the folder under RUNS a run directory is in (runs of two
revisions of the code, results/auto-lean/run.sh); --seeds: each seed's mean step (ms) and rank 0's share of
memberships, per configuration (a run settles into one pattern or the other: the pooled figures hide that);
--against NAME: each configuration's mean step less NAME's (a configuration as printed, e.g. "3 lag_limit=20"),
seed by seed: the mean of those paired differences with its standard error, and their median, over the seeds both
ran."""
import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("runs", type=Path)
parser.add_argument("--by")
parser.add_argument("--by-folder", action="store_true")
parser.add_argument("--seeds", action="store_true")
parser.add_argument("--against")
args = parser.parse_args()


def configuration(run) -> str:
    name = f"{run.backups} {args.by}={run.config[args.by]}" if args.by else str(run.backups)
    return f"{run.path.relative_to(args.runs).parts[0]}: {name}" if args.by_folder else name


runs, _ = load_runs(args.runs, True)
rows: dict = defaultdict(list)
per_seed: dict = defaultdict(dict)
for run in runs:
    times = np.array([0.0] + [float(s["time"]) for s in run.steps])
    after_evaluation = {step for step, _ in run.evaluation_pauses}  # the step each evaluation comes before
    mine = []
    for record, took in zip(run.steps, np.diff(times)):
        if record["step"] < 3 or record["step"] in after_evaluation:
            continue
        first, second = sorted(record["arrivals"].values())[:2]
        mine.append((took, first, second, 0 in record["members"], record["vote_s"]))
    rows[configuration(run)] += mine
    per_seed[run.seed][configuration(run)] = np.mean(np.array(mine, dtype=float)[:, [0, 3]], axis=0)
if args.against and args.against not in rows:
    sys.exit(f"--against {args.against!r}: not one of {sorted(rows)}")
for name, values in sorted(rows.items()):
    v = np.array(values, dtype=float)
    ms = v[:, [0, 1, 2, 4]] * 1e3
    print(f"{name}: {len(v)} steps; step {ms[:, 0].mean():.3f} ms mean, {np.median(ms[:, 0]):.3f} median; "
          f"T_(1) {np.median(ms[:, 1]):.3f}, T_(2) {np.median(ms[:, 2]):.3f} ms median; rank 0 a member on "
          f"{v[:, 3].mean():.0%}; rank 0's vote {ms[:, 3].mean():.3f} ms mean")
if args.seeds:
    names = sorted(rows)
    print("seed | " + " | ".join(names))
    for seed in sorted(per_seed):
        cells = [per_seed[seed].get(name) for name in names]
        print(f"{seed} | " + " | ".join("-" if c is None else f"{c[0] * 1e3:.3f} ({c[1]:.0%})" for c in cells))
if args.against:
    for name in sorted(rows):
        if name == args.against:
            continue
        diffs = np.array([(per_seed[s][name][0] - per_seed[s][args.against][0]) * 1e3 for s in per_seed
                          if name in per_seed[s] and args.against in per_seed[s]])
        se = diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        print(f"{name} - {args.against}: {diffs.mean():+.3f} +- {se:.3f} ms a step (mean of {len(diffs)} seeds' "
              f"differences, standard error), median {np.median(diffs):+.3f}")
