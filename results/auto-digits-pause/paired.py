"""Paired ratios of time to 90% (training time, as the report counts it) over the seeds both folders hold, and what
the runs at N = 4 did at the slow node's onset (steps 30-32: N and milliseconds):
python results/auto-digits-pause/paired.py results/auto-digits-pause   (folders {slow,exp}-{dev,dev3,static})"""
import json
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, times_by_seed  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

TARGET = DEFAULT_TARGETS["digits"]
root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/auto-digits-pause")


def times(folder: str) -> dict:
    return times_by_seed(root / folder, TARGET)


for regime, b in (("slow", "b=2"), ("exp", "b=4")):
    probe, pause, static = times(f"{regime}-dev"), times(f"{regime}-dev3"), times(f"{regime}-static")
    print(paired_ratio_line(pause, probe, f"{regime}: pause learnt / probe change"))
    print(paired_ratio_line(probe, static, f"{regime}: probe change / {b}"))
    print(paired_ratio_line(pause, static, f"{regime}: pause learnt / {b}"))
for arm in ("dev", "dev3"):
    onset = []
    for run in sorted((root / f"slow-{arm}").glob("backup*")):
        recs = {r["step"]: r for r in map(json.loads, (run / "steps.jsonl").read_text().splitlines())}
        onset.append(" ".join(f"N{len(recs[s]['members'])}:{1000 * (recs[s]['time'] - recs[s - 1]['time']):.0f}"
                              for s in (30, 31, 32)))
    print(f"slow-{arm} steps 30-32:", " | ".join(onset))
