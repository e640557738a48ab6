"""What the rule prices N = 1 by while it holds N = 2, in auto runs of digits (P = 5): the policy is replayed over each
run's records (auto_quorum.replay_feed, which makes the recorded choices) and, at every step of 3-59 where the rule's N
is 2 or 1, N = 1's own measured whole step (StepTimeEstimate.known(), what times() takes where it is the longer) and
exchange (overhead(1)) are set against what N = 1's steps of that run lived (their mean `last_step_s`, and the mean
`last_exchange_s` after them, steps 3 on, evaluated ones left out). Then the stretches of the rule's own steps at
N >= 2 (probes and measuring steps left out, steps 3-95): how long, and how many ended within two steps of N = 1's
measured whole step expiring (a window of measurements after its last; fresh_within). SPEC: the runs' auto spec. Run
from the repository root, with the runs' code first on PYTHONPATH where it is not this checkout's (the replay must
make their choices; it reads `step_times`, the whole-step estimate of the code before fba977f, which keeps an excess
over the model instead, as `step_excess`):
.venv/bin/python results/auto-switches/left_behind.py RUNS [SPEC]   (SPEC: auto:max=4,noise=0.13 by default)"""
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from backupsgd.adaptive import AutoPolicy
from backupsgd.auto_quorum import replay_feed
from backupsgd.auto_spec import parse_auto

runs_dir, spec = Path(sys.argv[1]), parse_auto(sys.argv[2] if len(sys.argv) > 2 else "auto:max=4,noise=0.13")
ratios = {("step", 2): [], ("step", 1): [], ("exchange", 2): [], ("exchange", 1): []}
lengths, ended_at_expiry, runs = Counter(), 0, 0
for steps_file in sorted(runs_dir.rglob("steps.jsonl")):
    records = [json.loads(line) for line in steps_file.read_text().splitlines()]
    lived_step, lived_exchange = [], []
    for before, record in zip(records, records[1:]):
        auto = record["auto"]
        if len(before["arrivals"]) == 1 and before["step"] >= 3 and not (before["auto"].get("paused") or
                                                                       auto.get("paused")):
            lived_step.append(auto["last_step_s"])
            lived_exchange.append(auto["last_exchange_s"])
    if not lived_step:
        continue
    runs += 1
    lived = {"step": float(np.mean(lived_step)), "exchange": float(np.mean(lived_exchange))}
    policy = AutoPolicy(spec, 5, 32, measured_noise=True)
    stretch, expired_near = 0, False
    for record, choice in replay_feed(policy, records):
        known, rule_n = float(policy.step_times.known()[0]), policy.n
        age = policy.step_times.measurements - int(policy.step_times.last[0])
        policy.choose(**choice)  # the run's own choice, where this is the run's code: run it with that on PYTHONPATH
        n, step = record["quorum"], record["step"]
        if 3 <= step < 60 and rule_n in (1, 2):
            if not math.isnan(known):
                ratios["step", rule_n].append(known / lived["step"])
            if policy.exchanges.fresh()[0]:
                ratios["exchange", rule_n].append(float(policy.overheads()[0]) / lived["exchange"])
        own = n >= 2 and not (record["auto"].get("probe") or record["auto"].get("measuring")) and 3 <= step < 96
        if own:
            stretch += 1
            expired_near = abs(age - policy.step_times.fresh_within) <= 2
        elif stretch:
            lengths[stretch] += 1
            ended_at_expiry += stretch >= 15 and expired_near
            stretch = 0
    if stretch:
        lengths[stretch] += 1

print(f"{runs_dir}: {runs} runs; N = 1's own estimate over what N = 1's steps lived (median, mean; steps 3-59)")
for (what, rule_n), values in ratios.items():
    print(f"  {what:8s} while the rule's N is {rule_n}: {np.median(values):.3f}, {np.mean(values):.3f} "
          f"({len(values)} steps)")
total = sum(length * count for length, count in lengths.items())
long_steps = sum(length * count for length, count in lengths.items() if length >= 15)
print(f"  the rule's stretches at N >= 2 (steps 3-95): {sum(lengths.values())}, {total} steps; "
      f"{long_steps} ({100 * long_steps / total:.0f}%) in the {sum(c for n, c in lengths.items() if n >= 15)} of "
      f"15 steps or more, {ended_at_expiry} of those ending within 2 steps of N = 1's measured step expiring")
print("  lengths: " + ", ".join(f"{n}: {c}" for n, c in sorted(lengths.items())))
