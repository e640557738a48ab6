"""The plain and the Adam-metric B_simple of measure.py's runs, step by step, in worker batches (4 examples).

    python results/auto-adam-noise/compare.py RUN.jsonl [RUN.jsonl ...]

For each metric: the pooled B_simple at step t (the sums of tr(Sigma) and of |G|^2 over every run and steps t-3..t+3:
many measurements, no memory) and the median over runs of the smoothed one backupsgd.noise.NoiseScale gives (the
engine's smoother, every step measured). Beside them, what N = 4 would need in steps against N = 3 under the noise
model at that B_noise ((1 + b/4) / (1 + b/3), b in worker batches), to read against results/auto-pareto-refit/
curves-pydocs.txt (measured: 0.72-0.82 of b = 2's steps to its losses at steps 20-50, 0.9-1.0 from step 60 on).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backupsgd.noise import NoiseEstimate, NoiseScale  # noqa: E402

BATCH, HALF = 4, 3
SHOWN = (5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120, 140, 160, 180, 199)


def steps_ratio(b: float) -> float:
    """N = 4's steps over N = 3's under the noise model, B_noise = b worker batches."""
    return (1 + b / 4) / (1 + b / 3)


def main() -> None:
    runs = [[json.loads(line) for line in open(path)] for path in sys.argv[1:]]
    length = min(len(r) for r in runs)
    losses = {}
    for r in runs:
        for rec in r:
            if "eval" in rec:
                losses.setdefault(rec["step"] + 1, []).append(rec["eval"]["test_bits_per_byte"])
    print(f"{len(runs)} runs, {length} steps; B_simple in worker batches ({BATCH} examples)")
    print("step  bits/byte at the next evaluation |  plain: pooled smoothed N4/N3 |  adam: pooled smoothed N4/N3")
    smoothed = {m: [] for m in ("plain", "adam")}
    for metric in smoothed:
        for r in runs:
            scale, values = NoiseScale(), []
            for rec in r[:length]:
                if metric in rec:
                    e = rec[metric]
                    scale.update(NoiseEstimate(e["grad_sq"], e["trace_cov"], e["member_sq"]), rec["step"])
                values.append(scale.value.b_simple / BATCH)
            smoothed[metric].append(values)
    for t in SHOWN:
        if t >= length:
            continue
        row = [f"{t:4d}", f"{statistics.mean(losses.get(10 * (t // 10 + 1), [np.nan])):33.3f}"]
        for metric in smoothed:
            window = [rec[metric] for r in runs for rec in r[max(0, t - HALF): t + HALF + 1] if metric in rec]
            grad = sum(e["grad_sq"] for e in window)
            pooled = sum(e["trace_cov"] for e in window) / grad / BATCH if window and grad > 0 else float("nan")
            median = float(np.nanmedian([v[t] for v in smoothed[metric]]))
            row.append(f"| {pooled:8.2f} {median:8.2f} {steps_ratio(median):5.2f}")
        print("  ".join(row))


if __name__ == "__main__":
    main()
