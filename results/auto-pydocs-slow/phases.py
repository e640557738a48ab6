"""Per phase of the slow-node regime (quiet steps 1-30, ranks 3 and 4 slow for 30-60, quiet 60-200): each
configuration's mean N and wall time per step over its seeds, its final test bits per byte, and how many seeds
reached 4.5 bits per byte. Steps followed by an evaluation are left out of the step times (their wall time holds
it). From the run directories' steps.jsonl, summary.json and evals.jsonl:

    python results/auto-pydocs-slow/phases.py results/auto-pydocs-slow [more sweep folders]
"""

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

PHASES = ((1, 30), (30, 60), (60, 200))
TARGET_BPB = 4.5


def run_row(run: Path, eval_every: int) -> list[float] | None:
    """[N, ms per step] for each phase, then final bits/byte and 1 if the run reached the target; None if unfinished."""
    if not (run / "summary.json").exists():
        return None
    records = {r["step"]: r for r in map(json.loads, (run / "steps.jsonl").read_text().splitlines())}
    row = []
    for first, end in PHASES:
        steps = [s for s in range(first, end) if (s + 1) % eval_every and s + 1 in records]
        row += [statistics.mean(len(records[s]["members"]) for s in steps),
                statistics.mean(1000 * (records[s + 1]["time"] - records[s]["time"]) for s in steps)]
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    reached = any(e.get("test_bits_per_byte", float("inf")) <= TARGET_BPB for e in evals)
    return row + [json.loads((run / "summary.json").read_text())["test_bits_per_byte"], float(reached)]


def main() -> None:
    print("| folder: configuration | seeds | steps 1-30 | steps 30-60 (ranks 3, 4 slow) | steps 60-200 "
          "| final bits/byte | reached 4.5 |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        rows = defaultdict(list)
        for run in sorted(folder.glob("backup-*")):
            config = json.loads((run / "config.json").read_text())
            found = run_row(run, config["workload"]["eval_every"])
            if found is not None:
                rows[re.sub(r"-n\d+-.*", "", run.name.removeprefix("backup-"))].append(found)
        for name, found in sorted(rows.items()):
            mean = [statistics.mean(x) for x in zip(*found)]
            phases = " | ".join(f"N {mean[2 * i]:.2f}, {mean[2 * i + 1]:.0f} ms" for i in range(len(PHASES)))
            reached = sum(r[-1] for r in found)
            print(f"| {folder.name}: {name} | {len(found)} | {phases} | {mean[-2]:.3f} | {reached:.0f} |")


if __name__ == "__main__":
    main()
