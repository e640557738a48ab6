"""Paired A/B: time to 90% (training time, as the report) per seed, pin6 (floors) over pin7 (common floor), the
scratch folders paired.sh wrote: `python results/auto-digits-exp60-floors/paired.py [NEW OLD]`."""
import sys

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, times_by_seed  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

new, old = sys.argv[1:3] if len(sys.argv) > 2 else ("/work/meas/ab/pin6", "/work/meas/ab/pin7")
target = DEFAULT_TARGETS["digits"]
print(paired_ratio_line(times_by_seed(new, target), times_by_seed(old, target), "new / old"))
