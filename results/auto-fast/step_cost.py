"""What each configuration of a sweep pays a step, seed for seed: steps 3 on, less those right after an evaluation
(their time holds its pause), pooled over the runs: the step's time (from the step before's), its first and second
READY (seconds into the step, as the coordinator timed them), how often rank 0 (the coordinator's rank, the writer)
was a member, and rank 0's own wait from its offer to the decision (`vote_s`). Run from the repository root:
.venv/bin/python results/auto-fast/step_cost.py RUNS"""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402

runs, _ = load_runs(Path(sys.argv[1]), True)
rows: dict = defaultdict(list)
for run in runs:
    times = np.array([0.0] + [float(s["time"]) for s in run.steps])
    after_evaluation = {step for step, _ in run.evaluation_pauses}  # the step each evaluation comes before
    for record, took in zip(run.steps, np.diff(times)):
        if record["step"] < 3 or record["step"] in after_evaluation:
            continue
        first, second = sorted(record["arrivals"].values())[:2]
        rows[str(run.backups)].append((took, first, second, 0 in record["members"], record["vote_s"]))
for backups, values in sorted(rows.items()):
    v = np.array(values, dtype=float)
    ms = v[:, [0, 1, 2, 4]] * 1e3
    print(f"{backups}: {len(v)} steps; step {ms[:, 0].mean():.3f} ms mean, {np.median(ms[:, 0]):.3f} median; "
          f"T_(1) {np.median(ms[:, 1]):.3f}, T_(2) {np.median(ms[:, 2]):.3f} ms median; rank 0 a member on "
          f"{v[:, 3].mean():.0%}; rank 0's vote {ms[:, 3].mean():.3f} ms mean")
