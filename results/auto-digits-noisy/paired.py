"""Auto against each other configuration of this sweep, seed by seed (the paired A/B scripts' statistic; the report's
own judgment against the best static b is its bootstrap): .venv/bin/python results/auto-digits-noisy/paired.py"""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

runs, _ = load_runs(Path(sys.argv[1] if len(sys.argv) > 1 else "results/auto-digits-noisy"), True)
times: dict = {}
for run in runs:
    times.setdefault(str(run.config["backups"]), {})[run.config["seed"]] = run.time_to(DEFAULT_TARGETS["digits"])
auto = next(k for k in times if k.startswith("auto:"))
for other in sorted(set(times) - {auto}):
    print(paired_ratio_line(times[auto], times[other], f"auto / {other}"))
