"""How a run.sh output's paired ratios depend on what an evaluation is charged (results/README.md section 10, "A settle
window at N = 1"). Every rank evaluates after the same step, but not at the same moment: on Fashion-MNIST (an
evaluation ~2 s against ~0.1 s steps, 5 ranks on 2 cores) the other ranks finish theirs before rank 0 does and go on
training while rank 0 still evaluates, and rank 0 applies those steps in a burst once it is done. paired.py's training
time leaves out each run's own pause as rank 0 lived it (backupsgd.report.runs.Run.evaluation_pauses), so the steps
trained inside it cost nothing there; an arm whose steps need one arrival trains more of them so. Printed per arm: the
mean pause, how many steps rank 0 applied within 30 ms of each other right after it, and how long it took from the
evaluation to the fifth step after it; then each auto arm's paired ratios (paired.py's statistic at the crossing) with
each run's own pauses left out, and with every evaluation charged the same: the window's pooled mean pause.
Neither is the time a run without evaluations would take; they bracket what the accounting can move. Runs made with
the evaluation fence (config.json's evaluation_fence, b4522e5) show no burst, and their "own pauses" are the fenced
charge (Run.evaluation_pauses: the stretch from the step before an evaluation to the step after it, less an ordinary
step). The burst count means something only where a step takes well over BURST_S (Fashion-MNIST's ~0.1 s; not
digits' ~15 ms, whose evaluations pause ~2 ms).
Run from the repository root: .venv/bin/python results/auto-switches/eval_charge.py OUT [OUT ...]"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

BURST_S = 0.03  # steps applied closer together than this after an evaluation were decided while rank 0 evaluated


def after_evaluations(run) -> tuple[list[int], list[float]]:
    """For each evaluation with ten steps after it: how many steps rank 0 applied in a burst right after it, and the
    seconds from the evaluation to the fifth step after it."""
    times = {int(s["step"]): float(s["time"]) for s in run.steps if s.get("time") is not None}
    bursts, five = [], []
    for e in run.evals:
        step = int(e["step"])
        if step - 1 not in times or step + 10 not in times:
            continue
        k = 0
        while step + k + 1 in times and times[step + k + 1] - times[step + k] < BURST_S:
            k += 1
        bursts.append(k)
        five.append(times[step + 5] - float(e["time"]))
    return bursts, five


outs = [Path(a) for a in sys.argv[1:]]
arms = sorted({d.name for out in outs for d in out.iterdir() if d.is_dir()})
runs = {arm: [r for out in outs if (out / arm).is_dir() for r in load_runs(out / arm, True, True)[0]] for arm in arms}
pooled = float(np.mean([p for arm in arms for r in runs[arm] for _, p in r.evaluation_pauses]))
for arm in arms:
    pauses = [p for r in runs[arm] for _, p in r.evaluation_pauses]
    bursts, five = zip(*(after_evaluations(r) for r in runs[arm]))
    print(f"{arm}: {len(pauses)} evaluations, pause {np.mean(pauses):.3f} s; after each, "
          f"{np.mean(sum(bursts, [])):.2f} steps applied in a burst, the fifth step {np.mean(sum(five, [])):.3f} s on")
autos = [a for a in arms if a.endswith("auto")]
for label, charged in (("each run's own pauses left out (paired.py)", False),
                       (f"every evaluation charged the pooled mean pause, {pooled:.3f} s", True)):
    times = {}
    for arm in arms:
        for r in runs[arm]:
            if charged:  # the cached property, replaced: Run.time_of sums it
                r.__dict__["evaluation_pauses"] = [(step, pooled) for step, _ in r.evaluation_pauses]
        times[arm] = seed_times(runs[arm], default_target(runs[arm][0].dataset))
    print(label)
    for a in autos:
        for b in arms:
            if b != a:
                print("  " + paired_ratio_line(times[a], times[b], f"{a} / {b}"))
