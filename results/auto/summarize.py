"""Summarise results/auto/*.json: per regime and P, progress per second of auto, auto-dbw and the best
static b, mean over seeds, and auto's time to a fixed amount of progress relative to the best static b."""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

runs = defaultdict(list)  # (regime, P) -> list of {label: row}
for path in sorted(Path(sys.argv[1]).glob("*-P*-s*.json")):
    regime, p, _ = path.stem.split("-")
    rows = json.loads(path.read_text())["rows"]
    runs[(regime, int(p[1:]))].append({str(r["backups"]): r for r in rows})

print("| regime | P | best static b (progress/s) | auto: mean N, progress/s | auto-dbw: mean N, progress/s "
      "| auto time / best static b's | worst seed | auto-dbw time / best static b's |")
print("|---|---|---|---|---|---|---|---|")
ORDER = ["exp", "pareto", "shift"]  # section 7's regimes first, in this order; any other (auto-heavy-shift) after
for (regime, p), seeds in sorted(runs.items(), key=lambda kv: (
        ORDER.index(kv[0][0]) if kv[0][0] in ORDER else len(ORDER), kv[0][0], kv[0][1])):
    static = [k for k in seeds[0] if not k.startswith("auto")]
    mean = {k: np.mean([s[k]["progress_per_s"] for s in seeds]) for k in seeds[0]}
    best = max(static, key=lambda k: mean[k])  # the b a tuner would pick knowing all seeds' outcomes
    # time to a fixed amount of progress is 1 / progress_per_s: the ratio per seed, against that one b
    ratio = [s[best]["progress_per_s"] / s["auto"]["progress_per_s"] for s in seeds]
    ratio_dbw = np.mean([s[best]["progress_per_s"] / s["auto-dbw"]["progress_per_s"] for s in seeds])
    n = {k: np.mean([s[k]["N"] for s in seeds]) for k in ("auto", "auto-dbw")}
    print(f"| {regime} | {p} | b={best} ({mean[best]:.2f}) | {n['auto']:.1f}, {mean['auto']:.2f} "
          f"| {n['auto-dbw']:.1f}, {mean['auto-dbw']:.2f} | {np.mean(ratio):.3f} | {max(ratio):.3f} "
          f"| {ratio_dbw:.3f} |")
