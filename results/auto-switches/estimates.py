"""What auto's own records say it believed, per phase of a run.sh output's auto arms (old-auto, new-auto): the median
noise scale it chose by, the median step time it foresaw at each N (`auto.times_s`, the steps where every N had one),
the mean count of workers it held busy, and its held climbs a run; over steps 0-29, 30-59 (the shifting regimes'
phases) and 60-99. Given several outputs (windows of disjoint seeds), each arm pooled over every run of them.
Run from the repository root: .venv/bin/python results/auto-switches/estimates.py OUT [OUT ...]"""
import json
import sys
from pathlib import Path

import numpy as np

PHASES = ((0, 30), (30, 60), (60, 100))


def arm_lines(name: str, arms: list[Path]) -> list[str]:
    runs = sorted(run for arm in arms for run in arm.glob("s*/backup-*") if (run / "summary.json").exists())
    scales, foreseen, busy, held = ([[] for _ in PHASES] for _ in range(4))
    for run in runs:
        for line in (run / "steps.jsonl").read_text().splitlines():
            record = json.loads(line)
            phase = next((i for i, (a, b) in enumerate(PHASES) if a <= record["step"] < b), None)
            auto = record.get("auto")
            if phase is None or not auto:
                continue
            if auto["noise_scale"] is not None:
                scales[phase].append(auto["noise_scale"])
            if None not in auto["times_s"]:
                foreseen[phase].append(auto["times_s"])
            busy[phase].append(auto["busy"])
            held[phase].append(auto["held"])
    lines = [f"{name}: {len(runs)} runs"]
    for i, (a, b) in enumerate(PHASES):
        times = " ".join(f"{1e3 * t:.0f}" for t in np.median(foreseen[i], axis=0)) if foreseen[i] else "-"
        lines.append(f"  steps {a}-{b - 1}: noise scale {np.median(scales[i]):6.1f}; a step foreseen at N = 1.. (ms) "
                     f"{times}; busy {np.mean(busy[i]):.2f}; held {sum(held[i]) / len(runs):.1f} a run")
    return lines


if __name__ == "__main__":
    outs = [Path(a) for a in sys.argv[1:]]
    for name in ("new-auto", "old-auto"):
        arms = [out / name for out in outs if (out / name).is_dir()]
        if arms:
            print("\n".join(arm_lines(name, arms)))
