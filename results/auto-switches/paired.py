"""Each auto arm of a run.sh output (its folders old-auto, new-auto) against the other and against each other arm (b2,
b3, b4: a static b; dbw: the DBW-style rule), seed by seed, in time to the workload's target: at the first evaluation
at it and at the crossing between evaluations (the paired A/B scripts' statistic,
backupsgd.report.auto.paired_ratio_line). Given several outputs (windows of disjoint seeds), each pair
pooled over every seed of them. `--looks K`: the outputs are the K-th look at a row whose earlier looks were judged
too (more seeds run because an earlier window fell short), so each pair gets a second interval at Pocock's nominal
level for K equally spaced looks, which keeps the chance of a false "shown" at 5% over all K (a 95% interval at
every look would not: ~8% at 2 looks, ~11% at 3). Run from the repository root:
.venv/bin/python results/auto-switches/paired.py [--looks K] OUT [OUT ...]"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_log_ratio, paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

# Pocock (1977), two-sided 5% overall: the nominal two-sided level of each of K equally spaced looks
POCOCK_ALPHA = {1: 0.05, 2: 0.0294, 3: 0.0221, 4: 0.0182, 5: 0.0158}
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--looks", type=int, default=1, choices=sorted(POCOCK_ALPHA))
parser.add_argument("outs", nargs="+", type=Path)
args = parser.parse_args()
outs, level = args.outs, 1 - POCOCK_ALPHA[args.looks]
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
            if args.looks > 1:
                _, ratio, low, high = paired_log_ratio(times[a], times[b], level)
                print(f"    at look {args.looks} (Pocock, {100 * level:.2f}%): {ratio:.3f} [{low:.3f}, {high:.3f}]")
