"""Where auto's time over b = 4 goes in a digits sweep, step by step: each auto run paired with the same seed's b = 4
run (both draw the same delays for each rank and step), over the steps before either reached 90% (steps 3 on, less
those next to an evaluation), auto's step time less b = 4's at the same step, summed by what auto's step was: at
N = 1, the rule's own N >= 2, a probe, or a measuring step; `--phases 30,60`: apart for steps 0-29, 30-59 and 60 on
(a shifting regime's phases), with the steps next to an evaluation kept, marked `eval`. Run from the repository root:
.venv/bin/python results/auto-lean/excess.py [--phases A,B,...] RUNS [RUNS ...]"""
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

TARGET = 0.9  # digits' default target (backupsgd.report.target)


def load(run: Path) -> tuple[list[dict], np.ndarray, int]:
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    reached = next((e["step"] for e in evals if e.get("test_accuracy", 0) >= TARGET), len(steps))
    return steps, np.diff([0.0] + [s["time"] for s in steps]), reached


def kind(record: dict) -> str:
    auto = record["auto"]
    if record["quorum"] == 1:
        return "N = 1"
    return "measuring" if auto.get("measuring") else "probe" if auto.get("probe") else "the rule's N >= 2"


args = sys.argv[1:]
bounds = [int(b) for b in args.pop(args.index("--phases") + 1).split(",")] if "--phases" in args else None
args = [a for a in args if a != "--phases"]


def phase(step: int) -> str:
    """`step`'s phase under --phases, e.g. 'steps 30-59 '; '' without it."""
    if bounds is None:
        return ""
    lower = max([0] + [b for b in bounds if b <= step])
    upper = min([b for b in bounds if b > step], default=None)
    return f"steps {lower}-{upper - 1} " if upper is not None else f"steps {lower} on "


for runs in map(Path, args):
    excess, count, reached = defaultdict(float), defaultdict(int), []
    for auto_run in sorted(runs.glob("backup-bauto*")):
        seed = auto_run.name.rsplit("-s", 1)[1].split("-")[0]
        static_run = next(runs.glob(f"backup-b4-*-s{seed}-*"), None)
        if static_run is None:
            continue
        auto_steps, auto_took, auto_reached = load(auto_run)
        _, static_took, static_reached = load(static_run)
        reached.append((auto_reached, static_reached))
        evaluated = set(range(0, len(auto_steps) + 10, 10))  # eval_every = 10 in every digits sweep here
        for i in range(3, min(auto_reached, static_reached)):
            near_eval = bool({i - 1, i, i + 1} & evaluated)
            if near_eval and bounds is None:
                continue
            name = phase(i) + ("eval " if near_eval else "") + kind(auto_steps[i])
            excess[name] += auto_took[i] - static_took[i]
            count[name] += 1
    runs_paired = len(reached)
    print(f"{runs}: {runs_paired} seeds; steps to 90%: auto {np.mean([a for a, _ in reached]):.1f}, "
          f"b = 4 {np.mean([b for _, b in reached]):.1f}")
    for name in sorted(excess):
        per_run = excess[name] / runs_paired * 1e3
        print(f"  {name}: {count[name] / runs_paired:.1f} steps a run, {per_run:+.1f} ms a run over b = 4's same steps "
              f"({excess[name] / count[name] * 1e3:+.2f} ms a step)")
