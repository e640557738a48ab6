"""Is a digits run's time to target rank 0's own lag? Rank 0 applies, logs and evaluates every step, and under the
straggler models it is a worker with delays of its own: while it sleeps the others go on, and it logs the steps they
decided in a burst when it wakes (seed 512 under Pareto delays: step 14 logged 18.5 s late in both arms, steps 15-23
within 4 ms after it). So each run's time to 90% twice: at rank 0's logging of the first evaluated step at the target
(steps.jsonl `time`, what the paired scripts read, here without leaving the evaluations out), and at the cluster's,
when the first rank began the step after it (ranks.jsonl `step_start_s` + `clock_offset_s`: that rank had applied
the update); auto paired with each static b of the sweep, 95% t intervals of the mean log ratio. Run from the
repository root:  .venv/bin/python results/auto-lean/cluster_clock.py RUNS [RUNS ...]"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import scipy.stats

TARGET = 0.9  # digits' default target (backupsgd.report.target)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def times_to_target(run: Path) -> tuple[float, float] | None:
    """(rank 0's clock, the cluster's) at the first evaluation at the target; None if never reached."""
    steps, ranks = read(run / "steps.jsonl"), read(run / "ranks.jsonl")
    step = next((e["step"] for e in read(run / "evals.jsonl") if e.get("test_accuracy", 0) >= TARGET), None)
    if step is None:
        return None
    began = [r["step_start_s"][step + 1] + r["clock_offset_s"] for r in ranks
             if step + 1 < len(r["step_start_s"]) and r["step_start_s"][step + 1] is not None]
    logged = steps[step]["time"]
    return logged, min(began) if began else logged


for runs in map(Path, sys.argv[1:]):
    arms: dict = {}
    for run in sorted(runs.glob("backup-*")):
        arm, seed = run.name.split("-n5-")[0].removeprefix("backup-"), run.name.rsplit("-s", 1)[1].split("-")[0]
        arms.setdefault(arm, {})[seed] = times_to_target(run)
    auto = next(arm for arm in arms if arm.startswith("bauto"))
    print(runs)
    for arm, by_seed in sorted(arms.items()):
        lag = np.array([t[0] - t[1] for t in by_seed.values() if t])
        print(f"  {arm}: rank 0's lag behind the cluster at the target, median {np.median(lag) * 1e3:.1f} ms, "
              f"mean {lag.mean() * 1e3:.1f}, largest {lag.max():.3f} s")
    for other in sorted(set(arms) - {auto}):
        for clock, name in ((0, "rank 0's clock"), (1, "the cluster's")):
            logs = np.array([math.log(arms[auto][s][clock] / arms[other][s][clock]) for s in arms[auto]
                             if arms[auto][s] and arms[other].get(s)])
            half = scipy.stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
            print(f"  {auto} / {other}, {name}: {len(logs)} seeds, {math.exp(logs.mean()):.3f} "
                  f"[{math.exp(logs.mean() - half):.3f}, {math.exp(logs.mean() + half):.3f}]")
