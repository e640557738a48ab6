"""Each arm of a run.sh output by the N of its steps: mean over its runs of the step of the first evaluation at the
target (paired.py has the training time to it), and, per phase of the regime (steps 0-29, 30-59 and 60 up to that
evaluation: the shifting regimes' phases), how many steps a run took at each N and how long they took (a step: the
record before's `time`, written once that step was applied, to its own; step 0 and the steps right after an
evaluation, whose time counts it, left out of the time). Beside it, how many steps a run were probes, measuring steps
and held climbs (auto's records; none for a static b). Given several outputs (windows of disjoint seeds), each arm
pooled over every run of them, as paired.py pools. Run from the repository root:
.venv/bin/python results/auto-switches/by_n.py OUT [OUT ...] [TARGET]   (TARGET: test accuracy, 0.9 by default:
digits')"""
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

PHASES = ((0, 30), (30, 60), (60, None))
EVAL_EVERY = 10  # run.sh's runs evaluate every 10 steps


def arm_lines(name: str, arms: list[Path], target: float) -> list[str]:
    """The lines of the arm `name`, over the runs of its folders `arms` (one per output)."""
    reached, steps_at, seconds_at, kinds, runs = [], defaultdict(int), defaultdict(list), defaultdict(int), 0
    for run in sorted(run for arm in arms for run in arm.glob("s*/backup-*")):
        if not (run / "summary.json").exists():
            continue  # a run still going, or one that failed (its log says why)
        evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
        hit = next((e for e in evals if e["test_accuracy"] >= target), None)
        if hit is None:
            continue
        runs += 1
        reached.append(hit["step"])
        records = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
        times = {r["step"]: r["time"] for r in records}
        for r in records[: hit["step"]]:
            phase = next(i for i, (a, b) in enumerate(PHASES) if r["step"] >= a and (b is None or r["step"] < b))
            n = len(r["members"])
            steps_at[phase, n] += 1
            if r["step"] - 1 in times and r["step"] % EVAL_EVERY != 0:
                seconds_at[phase, n].append(r["time"] - times[r["step"] - 1])
            for flag in ("probe", "measuring", "held"):
                kinds[flag] += bool(r.get("auto", {}).get(flag))
    if not runs:
        return [f"{name}: no run reached {target}"]
    per_run = {flag: count / runs for flag, count in kinds.items()}
    lines = [f"{name}: {runs} runs reached {target} at step {np.mean(reached):.1f}; a run's probes "
             f"{per_run['probe']:.1f}, measuring steps {per_run['measuring']:.1f}, held {per_run['held']:.1f}"]
    for phase, (a, b) in enumerate(PHASES):
        cells = [f"N = {n}: {steps_at[phase, n] / runs:4.1f} steps at {1e3 * np.mean(seconds_at[phase, n]):5.2f} ms"
                 for n in sorted(n for p, n in steps_at if p == phase)]
        lines.append(f"  steps {a}-{'target' if b is None else b - 1}: " + "; ".join(cells))
    return lines


if __name__ == "__main__":
    args = sys.argv[1:]
    target = float(args.pop()) if args and not Path(args[-1]).is_dir() else 0.9
    outs = [Path(a) for a in args]
    for name in sorted({d.name for out in outs for d in out.iterdir() if d.is_dir()}):
        print("\n".join(arm_lines(name, [out / name for out in outs if (out / name).is_dir()], target)))
