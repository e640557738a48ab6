"""Other `--backups auto` specs screened on the recorded runs' replay: every auto run of run.sh outputs replayed through
a fresh policy (backupsgd.auto_quorum.replay_choices) under each SPEC, and the N it chooses counted by phase (steps
0-29, 30-59 and 60-99: the shifting regimes' phases), a run's steps at each N. First order only: each spec is fed the
arrivals the recorded choices saw, so a spec that would have waited for more workers sees no more than they did, and
what its choices would have bought in steps is not known without timed runs. The first line replays each run under
its own spec (from its config.json), which must make the recorded choices (the share that match is printed). Run from
the repository root: .venv/bin/python results/auto-switches/spec_screen.py OUT [OUT ...] --spec SPEC [--spec SPEC ...]
(e.g. --spec auto:max=4,noise=2 --spec auto:max=4,noise=1.1,settle=0)"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.auto_quorum import replay_choices  # noqa: E402
from backupsgd.auto_spec import parse_auto  # noqa: E402
from backupsgd.errors import ConfigError  # noqa: E402

PHASES = ((0, 30), (30, 60), (60, 100))
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("outs", nargs="+", type=Path)
parser.add_argument("--spec", action="append", default=[], help="an auto spec to screen (repeatable)")
args = parser.parse_args()
runs = sorted(run for out in args.outs for run in (out / "new-auto").glob("s*/backup-*")
              if (run / "summary.json").exists())
if not runs:
    parser.error(f"no finished run under {', '.join(f'{out}/new-auto' for out in args.outs)}: give a run.sh output")
try:
    specs = {text: parse_auto(text) for text in args.spec}
except ConfigError as error:
    parser.error(str(error))
# each run read once, replayed under every spec
recorded = [(json.loads((run / "config.json").read_text()),
             [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]) for run in runs]
for spec_text in [None] + args.spec:
    counts, matched, total = [Counter() for _ in PHASES], 0, 0
    for config, records in recorded:
        spec = specs[spec_text] if spec_text else parse_auto(config["mode"]["backups"])
        chosen = replay_choices(spec, config["workers"], config["workload"]["batch_size"], records)
        for record, n in zip(records, chosen):
            matched, total = matched + (n == record["quorum"]), total + 1
            phase = next((i for i, (a, b) in enumerate(PHASES) if a <= record["step"] < b), None)
            if phase is not None:
                counts[phase][n] += 1
    label = spec_text or "each run's own spec"
    cells = [f"steps {a}-{b - 1}: " + ", ".join(f"N = {n} {c / len(runs):.1f}" for n, c in sorted(counts[i].items()))
             for i, (a, b) in enumerate(PHASES)]
    print(f"{label} ({len(runs)} runs; the recorded choice on {matched / total:.1%} of steps)")
    print("  " + "; ".join(cells))
