"""How well the smoothed B_simple follows the noise scale, replayed on recorded static runs (every step measured).

    python results/auto-weighted-noise/tracking.py RUNS_GLOB BEFORE_STEP [--steps T]

RUNS_GLOB: run folders of one static configuration (quoted), e.g. "/tmp/s26/pydocs/backup-b2-*". Each run's
steps.jsonl holds every step's own |G|^2 and tr(Sigma) (grad_sq, trace_cov); they are fed to backupsgd.noise's
NoiseScale twice: weighted (each step by its members' squared norm, grad_sq + trace_cov / B: the code since 51eebb2)
and plain (scale 1 for every step: equal weights, the average before it). The reference at step t ("pooled") is the
ratio of the sums of trace_cov and grad_sq over all runs and steps t-3..t+3: many measurements, so little noise, and
nothing carried from earlier steps. Printed: the pooled B_simple and each smoother's median over the runs at chosen
steps (in worker batches), the median |log(smoothed / pooled)| over steps 10..T-1, the median log ratio over four
spans (its sign: reading high or low), and the median over the runs of each smoother's median before BEFORE_STEP (the
steps `backupsgd report`'s calibration takes, where a run reaches its target about then) and their ratio: how much a
noise factor fitted against the plain average is to be divided by for the weighted one.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backupsgd.noise import NoiseEstimate, NoiseScale  # noqa: E402

SHOWN = (5, 10, 15, 20, 30, 40, 60, 80, 100)
SPANS = ((5, 15), (15, 30), (30, 60), (60, None))
HALF = 3  # the pooled reference's half window, in steps


def load(pattern: str, steps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """grad_sq and trace_cov per run and step (nan where not measured), and the per-worker batch."""
    folders = sorted(glob.glob(pattern))
    if not folders:
        sys.exit(f"no run folders match {pattern!r}")
    grad_sq, trace_cov, batches = [], [], set()
    for folder in folders:
        rows = [json.loads(line) for line in open(Path(folder) / "steps.jsonl")][:steps]
        grad_sq.append([math.nan if r["grad_sq"] is None else r["grad_sq"] for r in rows])
        trace_cov.append([math.nan if r["trace_cov"] is None else r["trace_cov"] for r in rows])
        batches.add(json.loads((Path(folder) / "config.json").read_text())["workload"]["batch_size"])
    if len(batches) != 1 or len({len(g) for g in grad_sq}) != 1:
        sys.exit(f"runs of one configuration expected: batch sizes {batches}, step counts {set(map(len, grad_sq))}")
    return np.array(grad_sq), np.array(trace_cov), batches.pop()


def pooled(grad_sq: np.ndarray, trace_cov: np.ndarray) -> np.ndarray:
    steps = grad_sq.shape[1]
    return np.array([np.nansum(trace_cov[:, max(0, t - HALF):t + HALF + 1]) /
                     np.nansum(grad_sq[:, max(0, t - HALF):t + HALF + 1]) for t in range(steps)])


def smoothed(grad_sq: np.ndarray, trace_cov: np.ndarray, batch: int, weighted: bool) -> np.ndarray:
    out = np.full(grad_sq.shape, math.nan)
    for run in range(grad_sq.shape[0]):
        smoother = NoiseScale()
        for step in range(grad_sq.shape[1]):
            g, s = grad_sq[run, step], trace_cov[run, step]
            if np.isfinite(g):
                smoother.update(NoiseEstimate(g, s, g + s / batch if weighted else 1.0), at=step)
            out[run, step] = smoother.value.b_simple
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs")
    parser.add_argument("before", type=int)
    parser.add_argument("--steps", type=int, default=10**9)
    args = parser.parse_args()
    grad_sq, trace_cov, batch = load(args.runs, args.steps)
    steps = grad_sq.shape[1]
    reference = pooled(grad_sq, trace_cov)
    shown = [t for t in SHOWN if t < steps] + [steps - 1]
    print(f"{args.runs}: {grad_sq.shape[0]} runs, {steps} steps, B = {batch}; B_simple in worker batches")
    print(f"  {'pooled':9s}", " ".join(f"{t}:{reference[t] / batch:.2f}" for t in shown))
    before = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, weighted in (("plain", False), ("weighted", True)):
            values = smoothed(grad_sq, trace_cov, batch, weighted)
            log_ratio = np.log(values / reference)
            spans = [np.nanmedian(log_ratio[:, a:b]) for a, b in SPANS]
            print(f"  {name:9s}", " ".join(f"{t}:{np.nanmedian(values[:, t]) / batch:.2f}" for t in shown),
                  f"| median |log error| from step 10: {np.nanmedian(np.abs(log_ratio[:, 10:])):.2f}; median log"
                  " ratio", " ".join(f"{a}-{b or steps}: {m:+.2f}" for (a, b), m in zip(SPANS, spans)))
            before[name] = np.median([np.nanmedian(run[:args.before]) for run in values])
    plain, weighted = before["plain"], before["weighted"]
    print(f"  median before step {args.before}: plain {plain / batch:.2f}, weighted {weighted / batch:.2f} worker "
          f"batches; weighted / plain {weighted / plain:.2f}")


if __name__ == "__main__":
    main()
