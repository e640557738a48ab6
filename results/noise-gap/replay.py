"""Replay backupsgd.noise.NoiseScale on recorded runs as if only every g-th step had measured the noise scale.

Under `--backups auto` at N = 1 only the steps of two or more members measure B_simple, a few in every 20-80
steps. Static runs with b <= P - 2 measure it on every step, so their steps.jsonl holds each step's own |G|^2 and
tr(Sigma) estimates: this keeps every g-th of them (and the first 10, as auto's start measures them), folds them
into NoiseScale with and without the cap on a measurement's weight after a gap, and compares each step's smoothed
B_simple with the truth of that step: the ratio of tr(Sigma) to |G|^2, each summed over every seed's run and over
the 21 steps around it (every step measured, so the best estimate these runs hold).

    python results/noise-gap/replay.py 'results/auto-digits-pooled/backup-b3-n5-*' \\
        'results/auto-fashion-steady/backup-b3-n5-*' > results/noise-gap/table.md

The run directories come from `make reproduce-auto-digits` + `make reproduce-auto-digits-seeds` (pooled as
results/README.md section 10 says) and `make reproduce-auto-fashion-steady`.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import numpy as np

from backupsgd.noise import MAX_GAP_WEIGHT, NoiseEstimate, NoiseScale

EVERY = (10, 20, 40, 80)  # steps between measurements
CAPS = (1.0, MAX_GAP_WEIGHT)  # 1.0: a measurement after g steps weighs 1 - 0.95^g, uncapped
FIRST_MEASURED = 10  # auto's first steps wait for two or more members, so they measure it
TRUTH_HALF_WINDOW = 10
SKIP = 20  # the error is counted from this step on (the first steps are measured in every replay)
OFF_BY = 5.0  # an estimate above this factor of the truth, or below its inverse, counts as off


def load(pattern: str) -> np.ndarray:
    """seeds x steps x (|G|^2, tr Sigma), each run cut to the shortest."""
    runs = []
    for run_dir in sorted(glob.glob(pattern)):
        rows = [json.loads(line) for line in open(Path(run_dir) / "steps.jsonl")]
        if any(r.get("grad_sq") is None for r in rows):
            sys.exit(f"{run_dir}: a step without its own noise estimate; replay runs whose every step has "
                     f"two or more members (static b <= P - 2)")
        runs.append([(r["grad_sq"], r["trace_cov"]) for r in rows])
    if not runs:
        sys.exit(f"no run directories match {pattern!r}")
    steps = min(len(r) for r in runs)
    return np.array([r[:steps] for r in runs])


def truth(runs: np.ndarray, half_window: int = TRUTH_HALF_WINDOW) -> np.ndarray:
    steps = runs.shape[1]
    out = np.empty(steps)
    for s in range(steps):
        window = runs[:, max(0, s - half_window):s + half_window + 1]
        out[s] = window[..., 1].sum() / window[..., 0].sum()
    return out


def replay(run: np.ndarray, every: int, cap: float, phase: int) -> np.ndarray:
    smoother, out = NoiseScale(max_gap_weight=cap), np.full(len(run), np.nan)
    for step, (grad_sq, trace_cov) in enumerate(run):
        if step < FIRST_MEASURED or (step - phase) % every == 0:
            # member_sq 1 for every step: equal weights, the plain average this table was measured with (before
            # NoiseScale weighed each step by its own scale)
            smoother.update(NoiseEstimate(grad_sq, trace_cov, 1.0), at=step)
        out[step] = smoother.value.b_simple
    return out


def errors(runs: np.ndarray, exact: np.ndarray, every: int, cap: float) -> tuple[float, float, float, float]:
    """Median |log(estimate / truth)| over the steps with a positive estimate, and the shares of steps whose
    estimate is more than OFF_BY times the truth (auto waits for more members than it should), less than 1/OFF_BY
    of it, and undefined (|G|^2 averaged to <= 0: auto keeps the B_simple it had); `exact`: truth(runs)[SKIP:]."""
    logs, high, low, undefined, count = [], 0, 0, 0, 0
    for run in runs:
        for phase in range(0, every, max(1, every // 4)):  # measurements at several offsets
            est = replay(run, every, cap, phase)[SKIP:]
            good = np.isfinite(est) & (est > 0)
            high += int((est[good] > OFF_BY * exact[good]).sum())
            low += int((est[good] < exact[good] / OFF_BY).sum())
            undefined += int((~good).sum())
            count += len(est)
            logs.append(np.abs(np.log(est[good] / exact[good])))
    return float(np.median(np.concatenate(logs))), high / count, low / count, undefined / count


def main(patterns: list[str]) -> None:
    if not patterns:
        sys.exit(__doc__)
    print(f"Each cell: uncapped / capped at {MAX_GAP_WEIGHT} (NoiseScale's default), over steps {SKIP} on.\n")
    print(f"| runs | seeds x steps | measured every | median abs log error | above {OFF_BY:g}x the truth "
          f"| below 1/{OFF_BY:g} of it | undefined |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for pattern in patterns:
        runs = load(pattern)
        exact = truth(runs)[SKIP:]
        for every in EVERY:
            uncapped, capped = (errors(runs, exact, every, cap) for cap in CAPS)
            cells = [f"{u:.2f} / {c:.2f}" if i == 0 else f"{u:.1%} / {c:.1%}"
                     for i, (u, c) in enumerate(zip(uncapped, capped))]
            print(f"| `{pattern}` | {runs.shape[0]} x {runs.shape[1]} | {every} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
