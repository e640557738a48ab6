"""Per seed, the last evaluation's test bits per byte of auto and of b = 2 (step 200 of 200 in both), and the paired
mean difference with its 95% interval (t with n - 1 degrees of freedom):
.venv/bin/python results/auto-fast-pydocs/final_bpb.py RUNS"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

last: dict[int, dict[str, float]] = {}
for run in sorted(path.parent for path in Path(sys.argv[1]).glob("*/config.json")):
    config = json.loads((run / "config.json").read_text())
    arm = "auto" if str(config["mode"]["backups"]).startswith("auto") else f"b = {config['mode']['backups']}"
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    last.setdefault(config["workload"]["seed"], {})[arm] = evals[-1]["test_bits_per_byte"]
seeds = sorted(s for s in last if len(last[s]) == 2)
static = next(arm for arm in last[seeds[0]] if arm != "auto")
diff = np.array([last[s]["auto"] - last[s][static] for s in seeds])
half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
print(f"last test bits per byte over {len(seeds)} seeds: {static} {np.mean([last[s][static] for s in seeds]):.3f}, "
      f"auto {np.mean([last[s]['auto'] for s in seeds]):.3f}; auto - {static} {diff.mean():+.3f} "
      f"[{diff.mean() - half:+.3f}, {diff.mean() + half:+.3f}]")
