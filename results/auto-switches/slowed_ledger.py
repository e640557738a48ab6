"""Two readings of a run.sh output that paired.py and by_n.py do not give (results/README.md section 10, "Fashion-MNIST
with every rank but one slowed"): (1) the auto arm's steps above N = 1 inside a stretch of steps (the slowed phase), a
run's mean by kind (`probe`, `measuring`, else the rule's own choice) and how many fell in the stretch's first five
steps, priced over N = 1 at the step times oracle.py measures from the output's arms; (2) auto against each static
arm with every seed the static arm never reached the target on counted at its whole run's training time (a floor on
its time to target; paired.py leaves such seeds out). Run from the repository root:
.venv/bin/python results/auto-switches/slowed_ledger.py OUT [--steps FIRST LAST]   (default: steps 30-59)"""
import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, ".")
sys.path.insert(0, str(Path(__file__).parent))
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402
from oracle import phase_of, step_times  # noqa: E402

STARTS = [0, 30, 60]  # run.sh's phases, as n_worth.py phases writes them

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("out", type=Path)
p.add_argument("--steps", nargs=2, type=int, default=(30, 59), metavar=("FIRST", "LAST"))
a = p.parse_args()
first, last = a.steps
arms = {d.name: load_runs(d, True, True)[0] for d in sorted(a.out.iterdir()) if d.is_dir()}
if "new-auto" not in arms:
    p.error(f"no new-auto arm in {a.out}: give a run.sh output")
costs = step_times([run for name, runs in arms.items() if name != "new-auto" for run in runs], STARTS)
autos = arms["new-auto"]
kinds, early, extra = Counter(), Counter(), 0.0
for run in autos:
    for record in run.steps:
        step, n = record["step"], len(record["members"])
        if first <= step <= last and n > 1:
            auto = record.get("auto", {})
            kind = "measuring" if auto.get("measuring") else "probe" if auto.get("probe") else "rule"
            kinds[kind] += 1
            early[kind] += step < first + 5
            phase = phase_of(step, STARTS)
            extra += costs[phase, n] - costs[phase, 1]
runs = len(autos)
print(f"new-auto, steps {first}-{last}, a run's steps at N >= 2 by kind: "
      + ", ".join(f"{k} {v / runs:.2f} ({early[k] / runs:.2f} in the first five)" for k, v in sorted(kinds.items()))
      + f"; over N = 1 at the static arms' step times: {extra / runs:.3f} s a run")
print("at the crossing, a static arm's unreached seeds at its whole run's training time (a floor):")
target = default_target(autos[0].dataset)
auto_times = seed_times(autos, target)
for name, runs in arms.items():
    if name != "new-auto":
        times = seed_times(runs, target)
        floors = {r.seed: r.time_of(r.evals[-1]) for r in runs if times[r.seed] is None}
        print(f"  {len(floors)} unreached" + "".join(f", seed {s} {t:.2f} s" for s, t in floors.items()) + "; "
              + paired_ratio_line(auto_times, times | floors, f"new-auto / {name}"))
