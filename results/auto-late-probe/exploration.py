"""What auto's steps at N >= 2 were, per run: replay each auto run's records through the policy and sort the steps
before step 100 into probes, measuring steps and the rule's own choices (the warm-up's included).

The records' `probe` marks any step above the rule's choice, measuring steps too (before 691cdb3 they carry no
`measuring`), so the replay tells them apart: a step above the rule's choice is a probe where one was due, else a
measuring step. The replay makes the recorded choices where the policy is the one the runs ran (the share agreeing
is printed); with another policy (--policy REV, the backupsgd/adaptive.py of a git revision) it shows what that policy
would have chosen fed the same inputs, step by step (a counterfactual: its own choices would have led elsewhere).

    .venv/bin/python results/auto-late-probe/exploration.py RUNS [RUNS ...] [--policy REV] [--spec KEY=VALUE,...]

A spec key's default that changed since the runs changes their replay: `--spec fast=0` replays runs made before the
second arrival estimate became the default (AutoSpec.fast, 2026-12-05) as they ran.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from backupsgd.auto_quorum import replay_feed
from backupsgd.auto_spec import is_auto, parse_auto

BEFORE_STEP = 100


def policy_module(rev: str | None):
    """backupsgd.adaptive as it is, or as it was at git revision `rev`."""
    if rev is None:
        import backupsgd.adaptive as module
        return module
    text = subprocess.run(["git", "show", f"{rev}:backupsgd/adaptive.py"], check=True, capture_output=True,
                          text=True).stdout
    path = Path(tempfile.mkdtemp()) / "adaptive_at_rev.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("adaptive_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def classify(run: Path, module, extra: str = "") -> tuple[collections.Counter, int, int]:
    """(kinds of the steps before BEFORE_STEP at N >= 2, steps whose replayed N is the recorded one, steps);
    `extra`: spec keys added to the run's own where it does not give them (`fast=0`)."""
    config = json.loads((run / "config.json").read_text())
    backups = config["mode"]["backups"]
    given = {item.partition("=")[0] for item in backups.partition(":")[2].split(",")}
    added = [item for item in extra.split(",") if item and item.partition("=")[0] not in given]
    spec = parse_auto(f"{backups}{',' if ':' in backups else ':'}{','.join(added)}" if added else backups)
    records = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    workers = len(records[0]["members"]) + len(records[0]["dropped"])
    policy = module.AutoPolicy(spec, workers, config["workload"]["batch_size"], measured_noise=True)
    kinds, agree, seen = collections.Counter(), 0, 0
    for record, choice in replay_feed(policy, records):
        due = bool(spec.probe_every) and policy.steps == policy._next_probe and not choice["paused"]
        ruled = policy.n
        n = policy.choose(**choice)
        if record["step"] < BEFORE_STEP:
            seen += 1
            agree += n == record["quorum"]
            if n > ruled:
                kinds["probe" if due else "measuring"] += 1
            elif n >= 2:
                kinds["warm-up" if record["step"] < 3 else "rule"] += 1
    return kinds, agree, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="sweep output folders")
    parser.add_argument("--policy", help="replay with backupsgd/adaptive.py at this git revision")
    parser.add_argument("--spec", default="", help="spec keys to add to each run's own, e.g. fast=0")
    args = parser.parse_args()
    module = policy_module(args.policy)
    for root in args.roots:
        by_label: dict[str, list] = collections.defaultdict(list)
        for run in sorted(root.iterdir()):
            if not (run / "summary.json").exists():
                continue
            backups = json.loads((run / "config.json").read_text())["mode"]["backups"]
            if isinstance(backups, str) and is_auto(backups):
                by_label[backups].append(classify(run, module, args.spec))
        for label, rows in sorted(by_label.items()):
            total = sum((kinds for kinds, _, _ in rows), collections.Counter())
            agree, seen = sum(r[1] for r in rows), sum(r[2] for r in rows)
            per_run = ", ".join(f"{k} {total[k] / len(rows):.2f}" for k in ("warm-up", "probe", "measuring", "rule"))
            print(f"{root.name} {label}: {len(rows)} runs; steps 0-{BEFORE_STEP - 1} at N >= 2 per run: {per_run}; "
                  f"replay makes the recorded N on {agree / seen:.4f} of them")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
