"""Where auto's time to target goes, step by step, beside a static b's: each step before the target (training time:
evaluation pauses left out) by why it waited for its N (a paused step: the warm-up or the one after an evaluation;
a probe; a measuring step, N = 2 above the rule's choice to measure the noise scale; else the rule's own choice),
with steps and milliseconds a run in each, mean over the seeds that reached the target, and what each kind cost above
STATIC's mean step:
.venv/bin/python results/auto-digits-estimates/where.py RUNS AUTO STATIC
RUNS: a sweep's output; AUTO, STATIC: two of its `backups` values (e.g. auto:max=4,noise=0.15 and 4)."""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402


def step_seconds(run) -> np.ndarray:
    """Each step's duration from the one before (step 0 from the run's start), less an evaluation's pause before it."""
    times = np.array([0.0] + [float(s["time"]) for s in run.steps])
    seconds = np.diff(times)
    for step, pause in run.evaluation_pauses:  # evaluated after `step` updates: before step index `step`
        if step < len(seconds):
            seconds[step] -= pause
    return seconds


def why(record: dict, choice_before: int) -> str:
    auto = record.get("auto")
    if auto is None:
        return "static"
    n = record["quorum"]
    if auto.get("paused"):
        return f"paused N={n}"
    if auto.get("measuring"):  # recorded since 691cdb3; such a step is flagged `probe` too (above the rule's choice)
        return f"measuring N={n}"
    if auto.get("probe"):
        return f"probe N={n}"
    return f"measuring N={n}" if n > choice_before else f"rule N={n}"


def breakdown(runs) -> tuple[int, dict]:
    """(runs that reached the target, {why: (steps, seconds) summed over them})."""
    sums: dict = defaultdict(lambda: np.zeros(2))
    reached = 0
    for run in runs:
        k = run.steps_to(default_target(run.dataset))
        if k is None:
            continue
        reached += 1
        seconds = step_seconds(run)
        choice = 1  # the rule's choice the step before (the record's `next`), before any probe
        for record, took in zip(run.steps[:k], seconds[:k]):
            sums[why(record, choice)] += (1, took)
            choice = (record.get("auto") or {}).get("next") or choice
    return reached, sums


runs, _ = load_runs(Path(sys.argv[1]), True)
arms = sys.argv[2:4]
panels: dict = defaultdict(dict)
for run in runs:
    if str(run.backups) in arms:
        panels[run.straggler].setdefault(str(run.backups), []).append(run)
for straggler, panel in sorted(panels.items()):
    print(straggler)
    static_reached, static_sums = breakdown(panel.get(arms[1], []))
    if not static_reached:
        print(f"  {arms[1]}: no run reached the target; nothing to weigh steps against")
        continue
    static_step = sum(v[1] for v in static_sums.values()) / sum(v[0] for v in static_sums.values())
    for arm in arms:
        reached, sums = breakdown(panel.get(arm, []))
        if not reached:
            print(f"  {arm}: no run reached the target")
            continue
        steps_a_run, seconds_a_run = (sum(v[i] for v in sums.values()) / reached for i in (0, 1))
        print(f"  {arm}: {reached} runs, {steps_a_run:.1f} steps and {seconds_a_run:.3f} s a run to the target; "
              f"'over': ms a run above {arms[1]}'s {1000 * static_step:.2f} ms a step")
        for kind, (steps, seconds) in sorted(sums.items()):
            over = 1000 * (seconds - steps * static_step) / reached
            print(f"    {kind:16s} {steps / reached:6.2f} steps a run, {1000 * seconds / steps:6.2f} ms a step, "
                  f"{1000 * seconds / reached:6.1f} ms a run, over {over:+6.1f}")
