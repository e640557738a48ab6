"""How well auto's policy foresaw the steps it chose: for each auto configuration and straggler panel of a sweep,
each step's time as lived (from the step before's time; steps after an evaluation, paused, left out) against what
the policy predicted for that step's N when it decided it (the step before's `auto.times_s`), summed over the runs
and grouped by how the N came about: `same` (the rule kept the N), `up`/`down` (the rule moved to a larger/smaller
N), `probe` (a forced wider step, chosen by no estimate: a probe or a measuring step). Sum lived / sum predicted is
what the time to target feels; the median ratio is the typical step's. Transitions seen fewer than 5 times are not
printed:
.venv/bin/python results/auto-digits-estimates/predicted.py RUNS"""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402


def transitions(run) -> list[tuple[str, int, int, float, float]]:
    """(kind, rule's N before, N, lived s, predicted s) of each step whose N was predicted, not paused."""
    out = []
    before, previous, start = None, None, 0.0
    for record in run.steps:
        auto = record.get("auto") or {}
        took, start, n = record["time"] - start, record["time"], record["quorum"]
        predicted = ((previous or {}).get("auto") or {}).get("times_s")
        if before is not None and not auto.get("paused") and predicted and predicted[n - 1] is not None:
            kind = "probe" if auto.get("probe") else "same" if n == before else "up" if n > before else "down"
            out.append((kind, before, n, took, predicted[n - 1]))
        previous = record
        if not auto.get("probe"):
            before = n
    return out


runs, _ = load_runs(Path(sys.argv[1]))
groups: dict = defaultdict(list)
for run in runs:
    if isinstance(run.backups, str):
        groups[(run.straggler, run.backups)].append(run)
for (straggler, backups), group in sorted(groups.items()):
    steps = [t for run in group for t in transitions(run)]
    print(f"{straggler} {backups}: {len(group)} runs")
    by_n: dict = defaultdict(list)
    by_kind: dict = defaultdict(list)
    for kind, before, n, lived, predicted in steps:
        by_n[n].append((lived, predicted))
        by_kind[(kind, before, n)].append((lived, predicted))
    rows = [(f"N={n}", pairs) for n, pairs in sorted(by_n.items())]
    rows += [(f"{kind:5s} {before}->{n}", pairs) for (kind, before, n), pairs in sorted(by_kind.items())]
    for name, pairs in rows:
        lived, predicted = np.array(pairs).T
        if len(lived) < 5:
            continue
        print(f"  {name:12s} {len(lived):5d} steps  predicted {1e3 * predicted.mean():7.1f} ms, lived "
              f"{1e3 * lived.mean():7.1f}  sum lived / sum predicted {lived.sum() / predicted.sum():.3f}  median ratio "
              f"{np.median(lived / predicted):.3f}")
