"""How well the smoothed B_simple follows the noise scale, replayed on recorded static runs (every step measured).

    python results/auto-weighted-noise/tracking.py RUNS_GLOB BEFORE_STEP [--steps T]

RUNS_GLOB: run folders of one static configuration (quoted), e.g. "/tmp/s26/pydocs/backup-b2-*". Each run's
steps.jsonl holds every step's own |G|^2 and tr(Sigma) (grad_sq, trace_cov); they are fed to backupsgd.noise's
NoiseScale twice: weighted (each step by its members' squared norm, grad_sq + trace_cov / B: the code since 51eebb2)
and plain (scale 1 for every step: equal weights, the average before it). The reference at step t ("pooled") is the
ratio of the sums of trace_cov and grad_sq over all runs and steps t-3..t+3 (results/noise-gap/replay.py's truth, which
also loads the runs and refuses any with an unmeasured step): many measurements, so little noise, and nothing carried
from earlier steps. Printed: the pooled B_simple and each smoother's median over the runs at chosen
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "noise-gap"))
from backupsgd.noise import NoiseEstimate, NoiseScale  # noqa: E402
from replay import load, truth  # noqa: E402  (runs x steps x (|G|^2, tr Sigma); the pooled reference)

SHOWN = (5, 10, 15, 20, 30, 40, 60, 80, 100)
SPANS = ((5, 15), (15, 30), (30, 60), (60, None))
HALF = 3  # the pooled reference's half window, in steps


def batch_size(pattern: str) -> int:
    """The per-worker batch of the runs `pattern` matches (one configuration: one batch)."""
    batches = {json.loads((Path(folder) / "config.json").read_text())["workload"]["batch_size"]
               for folder in glob.glob(pattern)}
    if len(batches) != 1:
        sys.exit(f"runs of one configuration expected: batch sizes {batches}")
    return batches.pop()


def smoothed(grad_sq: np.ndarray, trace_cov: np.ndarray, batch: int, weighted: bool) -> np.ndarray:
    out = np.full(grad_sq.shape, math.nan)
    for run in range(grad_sq.shape[0]):
        smoother = NoiseScale()
        for step in range(grad_sq.shape[1]):
            g, s = grad_sq[run, step], trace_cov[run, step]
            smoother.update(NoiseEstimate(g, s, g + s / batch if weighted else 1.0), at=step)
            out[run, step] = smoother.value.b_simple
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs")
    parser.add_argument("before", type=int)
    parser.add_argument("--steps", type=int, default=10**9)
    args = parser.parse_args()
    runs = load(args.runs)[:, :args.steps]
    grad_sq, trace_cov, batch = runs[..., 0], runs[..., 1], batch_size(args.runs)
    steps = grad_sq.shape[1]
    reference = truth(runs, HALF)
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
