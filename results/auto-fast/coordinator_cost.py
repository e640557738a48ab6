"""The CPU auto's coordinator spends a step, replayed: every auto run under RUNS (steps.jsonl with the estimates'
records) fed through a fresh AutoQuorum in the engine's order (catch_up, deep_after_s, choose, decided, then the
writer's record(), which learns the step when it asks first, as on rank 0), each phase timed. Microseconds a step,
on whatever core runs it (state the load beside the numbers). Run from the repository root:
.venv/bin/python results/auto-fast/coordinator_cost.py RUNS [--runs N] [--repeat R]"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.auto_quorum import AutoQuorum  # noqa: E402
from backupsgd.auto_spec import parse_auto  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("runs", type=Path)
parser.add_argument("--runs", type=int, default=80, dest="limit", help="at most this many runs (sorted by path)")
parser.add_argument("--repeat", type=int, default=3, help="replay this many times, report the fastest")
args = parser.parse_args()

recorded = []
for path in sorted(args.runs.glob("**/steps.jsonl")):
    config = json.loads((path.parent / "config.json").read_text())
    backups = config["mode"]["backups"]
    steps = [json.loads(line) for line in path.read_text().splitlines()]
    if isinstance(backups, str) and backups.startswith("auto") and steps \
            and all("noise_scale" in s.get("auto", {}) for s in steps):
        recorded.append((parse_auto(backups), config["workers"], config["workload"]["batch_size"], steps))
recorded = recorded[: args.limit]
if not recorded:
    sys.exit(f"{args.runs}: no auto run with the estimates' records under it")

best = None
for _ in range(args.repeat):
    took = dict(learn=0.0, deep_after_s=0.0, choose=0.0, decided=0.0)
    count = 0
    clock = time.perf_counter
    for spec, workers, batch, steps in recorded:
        quorum = AutoQuorum(spec, workers, batch)
        for record in steps:
            auto, step = record["auto"], record["step"]
            t0 = clock()
            quorum.catch_up()
            t1 = clock()
            quorum.deep_after_s()
            t2 = clock()
            quorum.choose(step, workers, auto.get("busy", 0), auto.get("deep", 0))
            t3 = clock()
            quorum.decided(step, record["arrivals"].values(), auto.get("late", ()), auto.get("floors", ()))
            t4 = clock()
            quorum.post_noise(auto["noise_scale"])
            quorum.record(step)
            t5 = clock()
            took["learn"] += (t1 - t0) + (t5 - t4)
            took["deep_after_s"] += t2 - t1
            took["choose"] += t3 - t2
            took["decided"] += t4 - t3
            count += 1
    total = sum(took.values())
    if best is None or total < best[0]:
        best = (total, took, count)
total, took, count = best
print(f"{len(recorded)} runs, {count} steps: {total / count * 1e6:.1f} us a step (fastest of {args.repeat}): "
      + ", ".join(f"{name} {seconds / count * 1e6:.1f}" for name, seconds in took.items()))
