"""Per straggler panel and configuration of a sweep: the seeds that reached the dataset's default target, and over
them the mean time to it (training time), steps to it, ms a step before it and mean N before it; with --runs, each
run's steps at each N over the whole run and its last evaluation's value of the target's metric:
.venv/bin/python results/auto-fashion-now/before_target.py RUNS [--runs]"""
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

runs, _ = load_runs(Path(sys.argv[1]), True)
groups: dict = defaultdict(list)
for run in runs:
    groups[(run.straggler, str(run.backups))].append(run)
for (straggler, backups), group in sorted(groups.items()):
    target = default_target(group[0].dataset)
    reached = [(run, run.steps_to(target), run.time_to(target)) for run in group if run.steps_to(target) is not None]
    line = f"{straggler[:28]:28s} {backups:24s} reached {len(reached)}/{len(group)}"
    if reached:
        line += (f" time {np.mean([t for _, _, t in reached]):6.2f} s"
                 f" steps {np.mean([k for _, k, _ in reached]):6.1f}"
                 f" ms/step {np.mean([1000 * t / k for _, k, t in reached]):6.1f}"
                 f" meanN {np.mean([run.chosen_n()[:k].mean() for run, k, _ in reached]):.2f}")
    print(line)
    if "--runs" in sys.argv[2:]:
        for run in sorted(group, key=lambda r: r.seed):
            counts = sorted(Counter(int(n) for n in run.chosen_n()).items())
            print(f"    seed {run.seed}: steps at N {counts}, last {target.metric} {run.final_value(target):.3f}")
