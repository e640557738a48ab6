"""What writing one steps.jsonl record costs rank 0's writer: the json module as the writer used it before bc9b42a
(json.dumps of the record cleaned by `_clean`, copied here from that revision's rundir.py) against rundir.json_line
(orjson), over the records of recorded runs, each read back and written again; microseconds a record, best of
--repeat, on whatever core runs it (state the load beside the numbers). Run from the repository root:
.venv/bin/python results/auto-lean/record_cost.py RUN_DIR [RUN_DIR ...] [--repeat R]"""
import argparse
import json
import math
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.rundir import json_line  # noqa: E402


def _clean(value):
    """JSON has no NaN/Inf: write them as null so every reader can parse the file (rundir.py before bc9b42a)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


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
