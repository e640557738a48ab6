"""Why auto's rule chose the N it did over a stretch of steps, from its own records: for each N it chose there, how
many choices, the noise scale it read (median and quartiles), and, against a step at N = OTHER, what it foresaw a step
at OTHER would cost (`auto.times_s`, as a ratio to the N chosen) and what OTHER's gradients were worth under its noise
model (N B / (N B + factor x B_noise), as a ratio); the rule took OTHER where the second beat the first. A record's
`next` is the N chosen for the step after it, from the estimates in that record. Given several outputs, each auto arm
pooled over every run of them. Run from the repository root:
.venv/bin/python results/auto-switches/choices.py OUT [OUT ...] [--steps FIRST LAST] [--other N]
(default: steps 30-59, the shifting regimes' stretch, against N = 3)"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.adaptive import progress_fraction  # noqa: E402
from backupsgd.auto_spec import parse_auto  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("outs", nargs="+", type=Path)
parser.add_argument("--steps", nargs=2, type=int, default=(30, 60), metavar=("FIRST", "LAST"))
parser.add_argument("--other", type=int, default=3)
args = parser.parse_args()
if missing := [str(out) for out in args.outs if not any((out / arm).is_dir() for arm in ("old-auto", "new-auto"))]:
    parser.error(f"no auto arm (old-auto, new-auto) in {', '.join(missing)}: give a run.sh output")
first, last = args.steps
k = args.other - 1
for arm in ("old-auto", "new-auto"):
    choices = defaultdict(list)  # N chosen -> (noise scale, foreseen time ratio, progress ratio)
    for run in sorted(r for out in args.outs for r in (out / arm).glob("s*/backup-*")):
        if not (run / "summary.json").exists():
            continue  # a run still going, or one that failed (its log says why)
        config = json.loads((run / "config.json").read_text())
        batch, factor = config["workload"]["batch_size"], parse_auto(config["mode"]["backups"]).noise_factor
        for line in (run / "steps.jsonl").read_text().splitlines():
            record = json.loads(line)
            auto = record.get("auto") or {}
            times, noise, n = auto.get("times_s"), auto.get("noise_scale"), auto.get("next")
            if not first <= record["step"] < last or n is None or noise is None or not times:
                continue
            if times[k] is None or times[n - 1] is None:
                continue
            worth = progress_fraction(args.other, batch, factor * noise) / progress_fraction(n, batch, factor * noise)
            choices[n].append((noise, times[k] / times[n - 1], worth))
    if not choices:
        continue
    print(f"{arm}: steps {first}-{last - 1}, against N = {args.other}")
    for n, rows in sorted(choices.items()):
        noise, time_ratio, worth = np.array(rows).T
        q25, q50, q75 = np.percentile(noise, (25, 50, 75))
        print(f"  chose N = {n}: {len(rows)} times; noise scale {q50:.1f} [{q25:.1f}, {q75:.1f}]; a step at N = "
              f"{args.other} foreseen {np.median(time_ratio):.3f}x, its gradients worth {np.median(worth):.3f}x"
              " (medians)")
