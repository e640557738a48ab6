"""How many steps each static b needs to reach the mean test loss a reference b reaches at each evaluation: over all
of a sweep's runs of each b (every straggler panel pooled: a static b's delays change its trajectory only through
which workers a step drops), the mean test loss at every evaluation; then for each evaluation
step s of REF, the step at which the other b's mean curve (its running best) first gets as low, by linear
interpolation, over s. A ratio growing with s says the larger N's benefit grows as training goes on (as the
measured B_simple does):
.venv/bin/python results/auto-pareto-refit/curves.py RUNS REF OTHER..."""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402

METRIC = "test_loss"
runs, _ = load_runs(Path(sys.argv[1]))
reference, others = sys.argv[2], sys.argv[3:]
losses: dict = defaultdict(list)  # backups -> each run's {step: test loss}
for run in runs:
    losses[str(run.backups)].append({r["step"]: r[METRIC] for r in run.evals if METRIC in r})


def mean_curve(backups: str) -> tuple[np.ndarray, np.ndarray]:
    curves = losses[backups]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return np.array(steps), np.array([[c[s] for s in steps] for c in curves]).mean(axis=0)


def steps_to(level: float, steps: np.ndarray, curve: np.ndarray) -> float:
    """The first step at which the curve's running best is at or below `level` (interpolated); nan if never; a level
    already reached at the first evaluation reads as that evaluation's step (no earlier point to interpolate from)."""
    best = np.minimum.accumulate(curve)
    i = int(np.argmax(best <= level))
    if best[i] > level:
        return float("nan")
    if i == 0:
        return float(steps[0])
    return float(steps[i - 1] + (best[i - 1] - level) / (best[i - 1] - best[i]) * (steps[i] - steps[i - 1]))


ref_steps, ref_curve = mean_curve(reference)
print(f"b = {reference}: {len(losses[reference])} runs, mean {METRIC} at steps {ref_steps.tolist()}:")
print("  " + " ".join(f"{v:.3f}" for v in ref_curve))
for other in others:
    steps, curve = mean_curve(other)
    ratios = [steps_to(level, steps, curve) / s for s, level in zip(ref_steps, ref_curve)]
    print(f"b = {other} ({len(losses[other])} runs): steps to b = {reference}'s loss at each of its evaluations, "
          "over its steps:")
    print("  " + " ".join(f"{s}:{r:.2f}" for s, r in zip(ref_steps, ratios) if r == r))
