"""Where rank 0's time goes, from runs made with instrumented-scratch.patch applied (they write scratch_r0.json, rank
0's training thread per step, and under auto a `scratch` dict into each step's record: the coordinator's engine thread,
some fields from the later form of the patch only):
medians and means in ms over steps 3 on. Run from the repository root:
.venv/bin/python results/auto-fast/rank0_phases.py RUNS..."""
import json
import sys
from pathlib import Path

import numpy as np

for runs in map(Path, sys.argv[1:]):
    for run in sorted(p for p in runs.iterdir() if (p / "steps.jsonl").exists()):
        print(run.name)
        training = json.loads((run / "scratch_r0.json").read_text()) if (run / "scratch_r0.json").exists() else {}
        steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()][3:]
        engine: dict = {}
        for record in steps:
            for key, value in record.get("scratch", {}).items():
                engine.setdefault(key, []).append(value)
        for side, table in (("  training thread", training), ("  engine thread", engine)):
            for key, values in sorted(table.items()):
                x = np.array([v[1] if isinstance(v, list) else v for v in values][3:], dtype=float) * 1e3
                if key not in ("learnt", "writer_learnt"):
                    print(f"{side}: {key} {np.median(x):.3f} median, {x.mean():.3f} mean")
