"""Auto against b = 2 evaluation by evaluation, paired over seeds: the difference in the metric, and the ratio of the
training times to that step (evaluations' pauses left out).

    .venv/bin/python results/auto-fast-pydocs/by_step.py RUNS [CONFIG] [--other B]

Where a seed's two runs drift apart (on the Python manual the same seed's arms differ by ~0.2 bits per byte at step
150, where the arms' means differ by ~0.01), a seed's time to the target is mostly that drift, and a seed that one
arm never brought to the target leaves the paired ratio. This reads the two arms where every seed has both: at the
same step, how far apart in the metric (mean over seeds, and its standard error) and in time (mean of the per-seed
ratios). Level in the metric at a time ratio r is r in time to any target those steps reach.
RUNS: a sweep's output; CONFIG: the auto `backups` value (default: the first auto:); --other: the static b (default 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402


def by_seed(runs: list, metric: str) -> dict[int, dict[int, tuple[float, float]]]:
    """seed -> evaluation step -> (metric, training time to it)."""
    return {r.seed: {int(e["step"]): (float(e[metric]), r.time_of(e)) for e in r.evals if metric in e} for r in runs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs")
    parser.add_argument("config", nargs="?")
    parser.add_argument("--other", default="2")
    args = parser.parse_args()
    runs, _ = load_runs(Path(args.runs), training_time=True)
    panels: dict = {}
    for run in runs:
        panels.setdefault(run.straggler, {}).setdefault(str(run.backups), []).append(run)
    for straggler, panel in sorted(panels.items()):
        metric = default_target(next(iter(panel.values()))[0].dataset).metric
        chosen = args.config or min(k for k in panel if k.startswith("auto"))
        mine, theirs = by_seed(panel[chosen], metric), by_seed(panel[args.other], metric)
        seeds = sorted(set(mine) & set(theirs))
        steps = sorted(set.intersection(*(set(mine[s]) & set(theirs[s]) for s in seeds)))
        print(f"{straggler}: {chosen} against b = {args.other}, {len(seeds)} seeds, {metric}")
        print("  step   b mean   difference [standard error]   time ratio [standard error]")
        for step in steps:
            diff = np.array([mine[s][step][0] - theirs[s][step][0] for s in seeds])
            ratio = np.array([mine[s][step][1] / theirs[s][step][1] for s in seeds])
            base = np.mean([theirs[s][step][0] for s in seeds])
            se = np.sqrt(len(seeds))
            print(f"  {step:4d}  {base:7.3f}   {diff.mean():+.3f} [{diff.std(ddof=1) / se:.3f}]"
                  f"                {ratio.mean():.3f} [{ratio.std(ddof=1) / se:.3f}]")


if __name__ == "__main__":
    main()
