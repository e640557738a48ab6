"""Scripts in sweeps: a grid point with `script` runs a user's backupsgd.torch script under mpirun with its
settings in the environment; refusals name the fix; a real interrupted sweep resumes and runs each once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from backupsgd.errors import ConfigError
from backupsgd.report.build import build_report
from backupsgd.sweep import MpiLauncher, load_grid, run_sweep

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "pytorch_digits.py"
GRID = f"""
[sweep]
script = "{SCRIPT}"
script_args = "--epochs 1 --batch-size 64"
ranks = 3
timeout_s = 240
seed = 0
straggler = "slow:ranks=2,delay=0.03"

[[sweep.variant]]
mode = "sync"

[[sweep.variant]]
mode = "backup"
backups = 1
"""


def grid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_script_points_get_their_settings_through_the_environment(tmp_path):
    runs = load_grid(grid(tmp_path, GRID)).runs
    assert [(r.options["mode"], r.options.get("backups", 0)) for r in runs] == [("sync", 0), ("backup", 1)]
    launcher, run_dir = MpiLauncher(), tmp_path / "run"
    command = launcher.command(runs[1], run_dir)
    assert command[-5:] == [str(SCRIPT), "--epochs", "1", "--batch-size", "64"]
    assert command[command.index("-n") + 1] == "3" and sys.executable in command
    exported = {command[i + 1] for i, x in enumerate(command) if x == "-x"}
    assert exported == {"BACKUPSGD_MODE", "BACKUPSGD_BACKUPS", "BACKUPSGD_SEED", "BACKUPSGD_STRAGGLER",
                        "BACKUPSGD_RUN_DIR"}


@pytest.mark.parametrize("line,words", [
    ("lr = 0.1", "lr is a backupsgd train option; a script point takes only"),
    ('mode = "ps-sync"', "a script runs in mode sync, backup, horovod"),
    ("backups = 3", "0 <= b < ranks"),
    ('straggler = "slow:ranks=7,delay=0.1"', "rank 7"),
])
def test_bad_script_points_name_the_fix(tmp_path, line, words):
    mode = "" if line.startswith("mode") else 'mode = "backup"\n'
    text = f'[sweep]\nscript = "{SCRIPT}"\nranks = 3\n{mode}{line}\n'
    with pytest.raises(ConfigError, match=words):
        load_grid(grid(tmp_path, text))


def test_a_missing_script_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_grid(grid(tmp_path, '[sweep]\nscript = "no/such/script.py"\nranks = 3\n'))


class InterruptAfter(MpiLauncher):
    """The real launcher, interrupted (as by Ctrl-C) after `n` runs."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.launched = n, []

    def __call__(self, spec, run_dir, timeout_s):
        if len(self.launched) == self.n:
            raise KeyboardInterrupt
        self.launched.append(spec.name)
        return super().__call__(spec, run_dir, timeout_s)


def test_script_sweep_interrupted_and_resumed_runs_each_configuration_once(tmp_path):
    runs, out = load_grid(grid(tmp_path, GRID)).runs, tmp_path / "sweep"
    first = InterruptAfter(1)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_grid(grid(tmp_path, GRID)), out, first, progress=False, echo=lambda _: None)
    second = InterruptAfter(99)
    result = run_sweep(load_grid(grid(tmp_path, GRID)), out, second, progress=False, echo=lambda _: None)
    assert first.launched + second.launched == [r.name for r in runs], "each configuration ran once"
    assert result.skipped == 1 and not result.failures, result.failures
    summaries = {r.name: json.loads((out / r.name / "summary.json").read_text()) for r in runs}
    for r in runs:
        steps = [json.loads(line) for line in (out / r.name / "steps.jsonl").read_text().splitlines()]
        b = r.options.get("backups", 0)
        assert summaries[r.name]["mode"] == r.options["mode"] and len(steps) == summaries[r.name]["steps"]
        assert all(len(s["members"]) == 3 - b for s in steps)
        if b:  # rank 2 is 30 ms slower every step: a backup step never waits for it
            assert all(2 not in s["members"] for s in steps[1:])
    report = build_report(out)
    assert (report.runs, report.groups) == (2, 2)
