"""What auto's steps lived against what its policy foretold for them, by the change of N that led to each step: every
auto run under RUNS replayed through a fresh policy of the code on the path (run it from a checkout of the code that
made the runs: each replayed choice is checked against the recorded one), the policy read just before each choice. A
step's foretold time is the rule's times()[N - 1] for the N chosen; its lived time the whole step as the coordinator
measured it (from its start to the next step's, the next record's `last_step_s`). A climb (N above the step before's)
is split by whether its N-th gradient had to come from a worker still on an older step when it began (N > P - busy).
Steps next to an evaluation (0, 1 and 9 mod 10), probes and measuring steps are left out, and the first 4 steps.
Run from the repository root of that checkout: .venv/bin/python PATH/switches.py RUNS [RUNS ...]"""
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.adaptive import AutoPolicy  # noqa: E402
from backupsgd.auto_quorum import replay_feed  # noqa: E402
from backupsgd.auto_spec import parse_auto  # noqa: E402


def replayed(run: Path) -> tuple[int, list]:
    """P, and each step of an auto run: (step, the rule's N before the choice, the N chosen, the policy's times() and
    values() then (None before the noise scale is known), its long E[T_(1)], the step's record, its lived step)."""
    config = json.loads((run / "config.json").read_text())
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    policy = AutoPolicy(parse_auto(config["mode"]["backups"]), config["workers"], config["workload"]["batch_size"],
                        measured_noise=True)
    out = []
    for i, (record, choice) in enumerate(replay_feed(policy, steps)):
        known = policy.noise_scale == policy.noise_scale  # nan != nan: no value yet
        times = policy.times().tolist() if known else None
        values = policy.values().tolist() if known else None
        rule, mean_1 = policy.n, float(policy.arrivals.mean[0])
        n = policy.choose(**choice)
        if n != record["quorum"]:
            raise SystemExit(f"{run}: step {i} replays N = {n}, recorded {record['quorum']}: not this code's run")
        lived = steps[i + 1]["auto"].get("last_step_s") if i + 1 < len(steps) else None
        out.append((i, rule, n, times, values, mean_1, record, lived))
    return config["workers"], out


def plain(record: dict) -> bool:
    auto = record["auto"]
    return not (auto.get("probe") or auto.get("measuring"))


for runs in map(Path, sys.argv[1:]):
    by_change = defaultdict(list)
    jump = {"switch up from N = 1": [], "stay at N = 1": []}
    ratio, held, count = [], 0, 0
    for run in sorted(runs.glob("**/backup-bauto*")):
        count += 1
        workers, steps = replayed(run)
        held += sum(bool(record["auto"].get("held")) for *_, record, _ in steps)
        for (i, rule, n, times, values, mean_1, record, lived), before in zip(steps[1:], steps):
            _, rule_0, n_0, _, _, mean_1_0, record_0, _ = before
            if times is None or i < 4 or i % 10 in (0, 1, 9) or not (plain(record) and plain(record_0)):
                continue
            if lived is not None:
                busy = record["auto"]["busy"]
                climb = "" if n <= n_0 else " (a busy worker needed)" if n > workers - busy else " (free)"
                by_change[f"{n_0} -> {n}{climb}"].append((times[n - 1], lived, busy))
            if rule_0 == 1:
                jump["switch up from N = 1" if rule >= 2 else "stay at N = 1"].append(mean_1 - mean_1_0)
            if rule == 1 and i >= 50 and values[0] == values[0] and values[1] == values[1]:
                ratio.append(values[1] / values[0])
    print(f"{runs}: {count} auto runs, {held / max(count, 1):.1f} steps a run held back for free workers")
    print("  change of N | steps | foretold ms | lived ms: mean, median | busy at the start")
    for change in sorted(by_change):
        a = np.array(by_change[change])
        print(f"  {change} | {len(a)} | {1e3 * a[:, 0].mean():.2f} | {1e3 * a[:, 1].mean():.2f}, "
              f"{1e3 * np.median(a[:, 1]):.2f} | {a[:, 2].mean():.2f}")
    for what, moves in jump.items():
        moves = 1e3 * np.array(moves)
        print(f"  the long E[T_(1)] over the step before, {what}: {len(moves)} steps, mean {moves.mean():+.2f} ms, "
              f"up by more than 0.3 ms on {np.mean(moves > 0.3):.0%}")
    q = np.percentile(ratio, [10, 25, 50, 75, 90])
    print(f"  value(2) / value(1) at the rule's N = 1, steps 50 on: 10th-90th percentiles {np.round(q, 3).tolist()}")
