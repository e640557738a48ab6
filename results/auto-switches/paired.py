"""Each auto arm of a run.sh output (its folders old-auto, new-auto) against the other and against each other arm (b2,
b3, b4: a static b; dbw: the DBW-style rule), seed by seed, in time to the workload's target: at the first evaluation
at it and at the crossing between evaluations (the paired A/B scripts' statistic,
backupsgd.report.auto.paired_ratio_line). Given several outputs (windows of disjoint seeds), each pair
pooled over every seed of them. Run from the repository root:
.venv/bin/python results/auto-switches/paired.py OUT [OUT ...]"""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

outs = [Path(a) for a in sys.argv[1:]]
arms = sorted({d.name for out in outs for d in out.iterdir() if d.is_dir()})
autos = ("new-auto", "old-auto")
pairs = [autos] + [(a, s) for a in autos for s in arms if s not in autos]
for interpolate in (False, True):
    times: dict = {}
    for out in outs:
        for arm in arms:
            if (out / arm).is_dir():
                runs, _ = load_runs(out / arm, True, interpolate)
                if runs:  # an arm whose first run is still going has none yet
                    times.setdefault(arm, {}).update(seed_times(runs, default_target(runs[0].dataset)))
    print("at the crossing" if interpolate else "at the first evaluation at the target")
    for a, b in pairs:
        if a in times and b in times:
            print("  " + paired_ratio_line(times[a], times[b], f"{a} / {b}"))
