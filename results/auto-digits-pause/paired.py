"""Paired ratios of time to 90% (training time, as the report counts it) over the seeds both folders hold, and what
the runs at N = 4 did at the slow node's onset (steps 30-32: N and milliseconds):
python results/auto-digits-pause/paired.py results/auto-digits-pause   (folders {slow,exp}-{dev,dev3,static})"""
import json
import math
import statistics as st
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

TARGET = DEFAULT_TARGETS["digits"]
T_975 = {5: 2.571, 9: 2.262, 29: 2.045}  # t quantiles by degrees of freedom
root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/auto-digits-pause")


def times(folder: str) -> dict:
    runs, _ = load_runs(root / folder, True)
    return {r.config.get("workload.seed", r.config.get("seed")): r.time_to(TARGET) for r in runs}


def ratio(num: dict, den: dict, label: str) -> None:
    seeds = sorted(s for s in set(num) & set(den) if num[s] and den[s])
    logs = [math.log(num[s] / den[s]) for s in seeds]
    m, h = st.mean(logs), T_975[len(logs) - 1] * st.stdev(logs) / math.sqrt(len(logs))
    means = f"{st.mean(num[s] for s in seeds):.3f} s / {st.mean(den[s] for s in seeds):.3f} s"
    print(f"{label}: {len(seeds)} seeds, {means}, ratio {math.exp(m):.3f} [{math.exp(m - h):.3f}, {math.exp(m + h):.3f}]")


for regime, b in (("slow", "b=2"), ("exp", "b=4")):
    probe, pause, static = times(f"{regime}-dev"), times(f"{regime}-dev3"), times(f"{regime}-static")
    ratio(pause, probe, f"{regime}: pause learnt / probe change")
    ratio(probe, static, f"{regime}: probe change / {b}")
    ratio(pause, static, f"{regime}: pause learnt / {b}")
for arm in ("dev", "dev3"):
    onset = []
    for run in sorted((root / f"slow-{arm}").glob("backup*")):
        recs = {r["step"]: r for r in map(json.loads, (run / "steps.jsonl").read_text().splitlines())}
        onset.append(" ".join(f"N{len(recs[s]['members'])}:{1000 * (recs[s]['time'] - recs[s - 1]['time']):.0f}"
                              for s in (30, 31, 32)))
    print(f"slow-{arm} steps 30-32:", " | ".join(onset))
