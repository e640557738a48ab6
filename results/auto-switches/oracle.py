"""What a clairvoyant schedule of N by phase would take to reach the target, priced from its two parts measured apart
(results/README section 10, "A clairvoyant schedule's ceiling on Fashion-MNIST"): its steps to target from replays
(`n_worth.py phases ... --rows ROWS`, every schedule on the same seeds and arrival orders) and the training time a
step takes at each N in each phase from static runs of the regime (a run.sh output whose arms b0, b1, b2, ... each
hold one N throughout: ordinary steps only, as by_n.py reads them; the step after an evaluation is charged an
ordinary step, as the report's training time charges it under the evaluation fence).

A schedule's time to target on a seed is the sum over its steps before the crossing of its N's step time in that
step's phase; each schedule against the first (--base) is a paired ratio over the replay seeds. Checked where it can
be: each run's own training time to target against the same sum over its own steps to target (static runs, and with
--also a timed oracle's, fashion-oracle.patch, whose N changes by phase). It assumes a step at N costs the same
whichever N the steps before it had (a climb from N = 3 to 5 at a phase's end is priced as a steady step at 5).
Run from the repository root:
.venv/bin/python results/auto-switches/oracle.py ROWS STATIC_OUT [--base 3,3,3] [--also ARM ...]"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402

def phase_of(step: int, starts: list[int]) -> int:
    return sum(step >= start for start in starts) - 1


def step_times(runs: list, starts: list[int]) -> dict[tuple[int, int], float]:
    """Mean seconds of an ordinary step (Run.ordinary_durations: the step before it recorded, no evaluation before it,
    as by_n.py measures them) by (phase, N) over `runs`."""
    seconds = defaultdict(list)
    for run in runs:
        members = {record["step"]: len(record["members"]) for record in run.steps}
        for step, took in run.ordinary_durations.items():
            seconds[phase_of(step, starts), members[step]].append(took)
    return {key: float(np.mean(values)) for key, values in seconds.items()}


def priced(keys: list[tuple[int, int]], costs: dict) -> float | None:
    """Seconds of steps at these (phase, N); None where one was never measured."""
    return None if any(key not in costs for key in keys) else sum(costs[key] for key in keys)


def schedule_keys(steps: float, n_by_phase: list[int], starts: list[int]) -> list[tuple[int, int]] | None:
    """(phase, N) of each of a schedule's first `steps` steps; None for a replay that never reached the target."""
    if steps != steps:
        return None
    return [(phase_of(k, starts), n_by_phase[phase_of(k, starts)]) for k in range(int(steps))]


def check_arms(arms: dict[Path, list], starts: list[int], costs: dict) -> dict[int, tuple[str, dict]]:
    """Each arm's own training time to target against the sum priced over its own steps to it (each at the N it had);
    returns each static arm's (one N throughout) own times by seed, by its N, arms of one N pooled (windows of
    disjoint seeds)."""
    by_n: dict[int, tuple[str, dict]] = {}
    for arm, runs in arms.items():
        if not runs:
            continue
        target = default_target(runs[0].dataset)
        own, sums, ns = seed_times(runs, target), {}, set()
        for r in runs:
            steps, n_of = r.steps_to(target), [len(record["members"]) for record in r.steps]
            ns |= set(n_of)
            sums[r.seed] = None if steps is None else priced([(phase_of(k, starts), n_of[k]) for k in range(steps)],
                                                             costs)
        print("  " + paired_ratio_line(own, sums, f"{arm.name}: its own time / priced"))
        if len(ns) == 1:
            by_n.setdefault(ns.pop(), (arm.name, {}))[1].update(own)
    return by_n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", type=Path)
    p.add_argument("static_out", type=Path)
    p.add_argument("--base", default="3,3,3", help="the schedule the others are judged against (b = 2's on 5 ranks)")
    p.add_argument("--also", type=Path, action="append", default=[], help="another arm folder whose runs price steps "
                   "and are checked too, e.g. a timed oracle's (its N may change by phase)")
    a = p.parse_args()
    rows = [json.loads(line) for line in a.rows.read_text().splitlines()]
    starts = rows[0]["phase_starts"]
    folders = sorted(d for d in a.static_out.iterdir() if d.is_dir() and d.name.startswith("b")) + a.also
    arms = {arm: load_runs(arm, True)[0] for arm in folders}  # each run read once: priced and checked
    costs = step_times([run for runs in arms.values() for run in runs], starts)
    print("a step's training time, ms, by phase (from steps " + ", ".join(map(str, starts)) + ") and N:")
    for phase in range(len(starts)):
        print(f"  phase {phase}: " + "; ".join(f"N = {n}: {1e3 * costs[phase, n]:.2f}"
                                              for n in sorted(n for q, n in costs if q == phase)))
    print("each arm's own time to target against its steps priced so:")
    static_times = check_arms(arms, starts, costs)
    base_n = {int(n) for n in a.base.split(",")}
    if len(base_n) == 1 and (base_arm := static_times.get(base_n.pop())) and len(static_times) > 1:
        print(f"each static arm's own time to target against {base_arm[0]}'s (at the first evaluation at it):")
        for name, own in static_times.values():
            if name != base_arm[0]:
                print("  " + paired_ratio_line(own, base_arm[1], f"{name} / {base_arm[0]}"))
    by_schedule: dict[str, dict[str, dict]] = defaultdict(lambda: {"judged": {}, "smoothed": {}})
    steps: dict[str, dict[str, list]] = defaultdict(lambda: {"judged": [], "smoothed": []})
    for row in rows:
        name = ",".join(map(str, row["schedule"]))
        for reading in ("judged", "smoothed"):
            keys = schedule_keys(row[reading], row["schedule"], starts)
            by_schedule[name][reading][row["seed"]] = None if keys is None else priced(keys, costs)
            steps[name][reading].append(row[reading])
    base = by_schedule[a.base]
    for name, got in by_schedule.items():
        print(f"{name}: steps to target judged {np.nanmean(steps[name]['judged']):.1f}, smoothed "
              f"{np.nanmean(steps[name]['smoothed']):.1f}")
        if name != a.base and not any(got["judged"].values()):
            print("  not priced: a (phase, N) of it has no step measured in these arms")
        elif name != a.base:
            for reading in ("judged", "smoothed"):
                print("  " + paired_ratio_line(got[reading], base[reading], f"{name} / {a.base}, {reading} crossing"))


if __name__ == "__main__":
    main()
