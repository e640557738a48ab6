"""For each arm of the paired A/B: the share of steps at each N and the mean wall time of a step at each N (steps 2
on, those next to an evaluation left out), and the mean steps to 90%:

    python results/auto-digits-whole-step/steps_by_n.py results/auto-digits-whole-step
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import DEFAULT_TARGETS  # noqa: E402

root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/auto-digits-whole-step")
for arm in ("pin8", "pin9", "b4"):
    times = defaultdict(list)
    for steps in sorted((root / arm).glob("*/steps.jsonl")):
        records = [json.loads(line) for line in steps.read_text().splitlines()]
        for record, after in zip(records[1:], records[2:]):
            if (record["step"] + 1) % 10 and record["step"] % 10:
                times[record["quorum"]].append(1000 * (after["time"] - record["time"]))
    total = sum(len(v) for v in times.values())
    runs, _ = load_runs(root / arm, True)
    to_target = [r.steps_to(DEFAULT_TARGETS["digits"]) for r in runs]
    print(f"{arm}: steps to 90% {statistics.mean(s for s in to_target if s):.1f}; " + ", ".join(
        f"N={n} {len(v) / total:.1%} of steps, {statistics.mean(v):.2f} ms" for n, v in sorted(times.items())))
