"""Paired ratios of time to 90% (training time, as the report counts it) over the seeds both folders hold:
python results/auto-digits-whole-step/paired.py /work/meas/ab2   (folders pin8: auto before, pin9: after, b4)"""
import math
import statistics as st
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

TARGET = DEFAULT_TARGETS["digits"]
root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/meas/ab2")


def times(folder: str) -> dict:
    runs, _ = load_runs(root / folder, True)
    return {r.config.get("workload.seed", r.config.get("seed")): r.time_to(TARGET) for r in runs}


def ratio(num: dict, den: dict, label: str) -> None:
    seeds = sorted(s for s in set(num) & set(den) if num[s] and den[s])
    logs = [math.log(num[s] / den[s]) for s in seeds]
    m, h = st.mean(logs), 2.045 * st.stdev(logs) / math.sqrt(len(logs))  # t(0.975, ~29 dof)
    means = f"{st.mean(num[s] for s in seeds):.3f} s / {st.mean(den[s] for s in seeds):.3f} s"
    print(f"{label}: {len(seeds)} seeds, {means}, ratio {math.exp(m):.3f} [{math.exp(m - h):.3f}, {math.exp(m + h):.3f}]")


old, new, b4 = times("pin8"), times("pin9"), times("b4")
ratio(new, old, "after / before")
ratio(old, b4, "before / b=4")
ratio(new, b4, "after / b=4")
