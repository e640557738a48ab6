"""The rule's climbs in auto runs, read from their records alone (no replay, so any code's runs): steps the hold kept
back (`held`), the rule's climbs of N above the step before (probes and measuring steps left out) and how many of
them needed a worker still on an older step (N > P - busy, `busy` as the choice saw it), over whole runs. RUNS: a
folder of one arm's run folders, at any depth. Run from the repository root:
.venv/bin/python results/auto-switches/climbs.py RUNS [RUNS ...]"""
import json
import sys
from pathlib import Path

for runs in map(Path, sys.argv[1:]):
    count = held = climbs = needing_busy = steps = 0
    for steps_file in sorted(runs.rglob("steps.jsonl")):
        records = [json.loads(line) for line in steps_file.read_text().splitlines()]
        workers = json.loads((steps_file.parent / "summary.json").read_text())["workers"]
        count, steps = count + 1, steps + len(records)
        held += sum(bool(r["auto"].get("held")) for r in records)
        for before, record in zip(records, records[1:]):
            auto = record["auto"]
            if record["quorum"] > before["quorum"] and not auto.get("probe") and not auto.get("measuring"):
                climbs += 1
                needing_busy += record["quorum"] > workers - auto["busy"]
    print(f"{runs}: {count} runs, {steps} steps; held {held}; the rule's climbs {climbs}, "
          f"{needing_busy} of them needing a busy worker")
