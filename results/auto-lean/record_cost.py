"""What writing one steps.jsonl record costs rank 0's writer: the json module as the writer used it before
(json.dumps of rundir._clean) against rundir.json_line (orjson), over the records of recorded runs, each read back
and written again; microseconds a record, best of --repeat, on whatever core runs it (state the load beside the
numbers). Run from the repository root:
.venv/bin/python results/auto-lean/record_cost.py RUN_DIR [RUN_DIR ...] [--repeat R]"""
import argparse
import json
import sys
import timeit
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.rundir import _clean, json_line  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("runs", type=Path, nargs="+")
parser.add_argument("--repeat", type=int, default=5)
args = parser.parse_args()

for run in args.runs:
    backups = json.loads((run / "config.json").read_text())["mode"]["backups"]
    records = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    costs = {}
    for name, write in (("json", lambda r: json.dumps(_clean(r)) + "\n"), ("orjson", json_line)):
        best = min(timeit.repeat(lambda: [write(r) for r in records], number=1, repeat=args.repeat))
        costs[name] = best / len(records) * 1e6
    print(f"b = {backups}: {len(records)} records; json {costs['json']:.1f} us a record, orjson {costs['orjson']:.1f} "
          f"({run.name})")
