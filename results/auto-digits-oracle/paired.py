"""Paired ratios of time to 90% (training time, as the report counts it) between the arms run.sh ran, over the seeds
both reached, and each arm's N and milliseconds a step by phase (steps 0-29 quiet, 30-59 the shift, 60-89 quiet):
.venv/bin/python results/auto-digits-oracle/paired.py RUNS [REGIME=ARM ...]
RUNS holds folders REGIME-ARM-sSEED; each REGIME given is judged against its ARM (default: slow=static noisy=static,
this folder's run.sh). Other folders' scripts use it too (results/auto-digits-estimates)."""
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, times_by_seed  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

TARGET = DEFAULT_TARGETS["digits"]
PHASES = ((0, 30), (30, 60), (60, 90))
root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/auto-digits-oracle/runs")
REFERENCES = [arg.split("=", 1) for arg in sys.argv[2:]] or [["slow", "static"], ["noisy", "static"]]
STATIC_B = {"slow": "b=2", "noisy": "b=4"}  # the best static b of each shifting regime (run.sh's BEST)


def folders(regime: str, arm: str) -> list[Path]:
    return [d for d in sorted(root.glob(f"{regime}-{arm}-s*")) if d.is_dir()]


def times(regime: str, arm: str) -> dict:
    out = {}
    for d in folders(regime, arm):
        out |= times_by_seed(d, TARGET)
    return out


def phases(regime: str, arm: str) -> str:
    """Each phase's N (mean, and steps at each N over the runs) and milliseconds a step (mean over runs)."""
    n, ms, steps_to = {p: [] for p in PHASES}, {p: [] for p in PHASES}, []
    for d in folders(regime, arm):
        for run in load_runs(d, True)[0]:
            steps_to.append(run.steps_to(TARGET))
            recs = [json.loads(line) for line in (run.path / "steps.jsonl").read_text().splitlines()]
            at = {r["step"]: r["time"] for r in recs}
            for lo, hi in PHASES:
                n[lo, hi] += [len(r["members"]) for r in recs if lo <= r["step"] < hi]
                first = max(lo, 1)  # step 0's time counts start-up
                ms[lo, hi].append(1000 * (at[hi - 1] - at[first]) / (hi - 1 - first))
    cells = [f"{lo}-{hi - 1}: N {np.mean(n[lo, hi]):.2f} {dict(sorted(Counter(n[lo, hi]).items()))}, "
             f"{np.mean(ms[lo, hi]):.2f} ms" for lo, hi in PHASES]
    reached = [s for s in steps_to if s is not None]
    return f"  {arm:7s} steps to 90% {np.mean(reached):.1f} ({len(reached)} runs) | " + " | ".join(cells)


for regime, reference in REFERENCES:
    arms = sorted({d.name.split("-")[1] for d in root.glob(f"{regime}-*-s*") if d.is_dir()} - {reference})
    against = times(regime, reference)
    label = STATIC_B.get(regime, "static") if reference == "static" else reference
    print(f"{regime} ({label} is the static arm)" if reference == "static" else f"{regime} (against {label})")
    for arm in arms:
        print("  " + paired_ratio_line(times(regime, arm), against, f"{arm} / {label}"))
    if {"auto", "oracle"} <= set(arms):
        print("  " + paired_ratio_line(times(regime, "auto"), times(regime, "oracle"), "auto / oracle"))
    for arm in [reference, *arms]:
        print(phases(regime, arm))
