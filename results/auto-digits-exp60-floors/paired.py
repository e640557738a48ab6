# paired A/B: time to 90% (training time, as the report) per seed, pin6 (floors) over pin7 (common floor)
import sys, glob, math, statistics as st
from pathlib import Path
sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs
from backupsgd.report.target import DEFAULT_TARGETS
t = DEFAULT_TARGETS["digits"]
def times(root):
    runs, _ = load_runs(Path(root), True)
    return {r.config.get("workload.seed", r.config.get("seed")): r.time_to(t) for r in runs}
old, new = times("/work/meas/ab/pin7"), times("/work/meas/ab/pin6")
seeds = sorted(set(old) & set(new))
logs = [math.log(new[s] / old[s]) for s in seeds if new[s] and old[s]]
m, sd = st.mean(logs), st.stdev(logs)
h = 2.045 * sd / math.sqrt(len(logs))
print(f"{len(logs)} seeds: old {st.mean(old[s] for s in seeds):.3f} s, new {st.mean(new[s] for s in seeds):.3f} s, "
      f"new/old {math.exp(m):.3f} [{math.exp(m - h):.3f}, {math.exp(m + h):.3f}]")
