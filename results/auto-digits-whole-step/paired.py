"""Paired ratios of time to 90% (training time, as the report counts it) over the seeds both folders hold:
python results/auto-digits-whole-step/paired.py /work/meas/ab2   (folders pin8: auto before, pin9: after, b4)"""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, times_by_seed  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

TARGET = DEFAULT_TARGETS["digits"]
root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/meas/ab2")


def times(folder: str) -> dict:
    return times_by_seed(root / folder, TARGET)


old, new, b4 = times("pin8"), times("pin9"), times("b4")
print(paired_ratio_line(new, old, "after / before"))
print(paired_ratio_line(old, b4, "before / b=4"))
print(paired_ratio_line(new, b4, "after / b=4"))
