"""`backupsgd sweep`: grid expansion, bad grid files, resuming an interrupted sweep, one real sweep of 2 runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from backupsgd.errors import ConfigError
from backupsgd.report.build import build_report
from backupsgd.sweep import MpiLauncher, Outcome, load_grid, run_sweep
from backupsgd.sweep import cli as sweep_cli
from backupsgd.sweep.grid import RunSpec

BIN = Path(sys.executable).parent


def grid_file(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GRID = """
[sweep]
ranks = 4
timeout_s = 30
mode = ["sync", "backup"]
backups = [0, 1, 2]
seed = [0, 1]
steps = 5
straggler = "exp:mean=0.001"
"""


def test_grid_product_collapses_full_modes_and_is_seed_major(tmp_path):
    listed = GRID + 'order = "listed"\n'
    grid = load_grid(grid_file(tmp_path, listed))
    points = [(s.options["seed"], s.options["mode"], s.options["backups"]) for s in grid.runs]
    # mode x backups x seed = 12 points; sync's b = 1, 2 collapse onto b = 0: 8 runs, seed 0 first
    assert points == [(0, "sync", 0), (0, "backup", 0), (0, "backup", 1), (0, "backup", 2),
                      (1, "sync", 0), (1, "backup", 0), (1, "backup", 1), (1, "backup", 2)]
    assert grid.collapsed == 4 and grid.timeout_s == 30
    assert all(s.ranks == 4 and s.options["steps"] == 5 for s in grid.runs)
    names = [s.name for s in grid.runs]
    assert len(set(names)) == len(names)
    assert names[2].startswith("backup-b1-n4-exp_mean=0.001-s0-")
    assert names == [s.name for s in load_grid(grid_file(tmp_path, listed, "again.toml")).runs]  # deterministic


def test_default_order_shuffles_each_seed_so_no_configuration_always_runs_first(tmp_path):
    text = GRID.replace("seed = [0, 1]", "seed = [0, 1, 2, 3, 4, 5, 6, 7]")
    listed = load_grid(grid_file(tmp_path, text + 'order = "listed"\n', "listed.toml")).runs
    shuffled = load_grid(grid_file(tmp_path, text)).runs
    assert [s.options["seed"] for s in shuffled] == [s.options["seed"] for s in listed]  # still seed by seed
    assert sorted(s.name for s in shuffled) == sorted(s.name for s in listed)  # the same runs
    blocks = [[s.name for s in shuffled[i:i + 4]] for i in range(0, 32, 4)]
    firsts = {block[0].split("-s")[0] for block in blocks}  # the configuration that ran first, per seed
    assert len(firsts) > 1 and len({tuple(b) for b in blocks}) > 1  # not one order for every seed
    assert [s.name for s in load_grid(grid_file(tmp_path, text, "again.toml")).runs] == \
        [s.name for s in shuffled]  # drawn from the seeds: the same every load, so a sweep resumes in place
    with pytest.raises(ConfigError, match='order = "listed"'):
        load_grid(grid_file(tmp_path, text + 'order = "random"\n', "bad.toml"))


def test_variants_override_and_union(tmp_path):
    grid = load_grid(grid_file(tmp_path, """
[sweep]
ranks = 5
seed = [0, 1, 2]
steps = 5
[[sweep.variant]]
mode = "sync"
[[sweep.variant]]
mode = "backup"
backups = [1, 2]
[[sweep.variant]]
mode = "backup"
backups = 1
ranks = 3
"""))
    points = Counter((s.options["mode"], s.options.get("backups", 0), s.ranks) for s in grid.runs)
    assert points == {("sync", 0, 5): 3, ("backup", 1, 5): 3, ("backup", 2, 5): 3, ("backup", 1, 3): 3}


@pytest.mark.parametrize("text,message", [
    ("not toml = [", "not valid TOML"),
    ("[grid]\nranks = 2\n", "top-level key 'grid'"),
    ("ranks = 2\n", "top-level key 'ranks'"),
    ("[sweep]\nranks = 2\nmodes = ['sync']\n", "unknown key 'modes'"),
    ("[sweep]\nmode = 'sync'\n", "no ranks"),
    ("[sweep]\nranks = 2\nout = 'x'\n", "set by the sweep"),
    ("[sweep]\nranks = 2\nseed = []\n", "sweeps nothing"),
    ("[sweep]\nranks = 0\n", "ranks must be an integer >= 1"),
    ("[sweep]\nranks = 2\ntimeout_s = -1\n", "timeout_s must be"),
    ("[sweep]\nranks = 2\nmode = 'backup'\nbackups = [1, 2]\n", "--backups 2 leaves no worker"),
    ("[sweep]\nranks = 2\nmode = 'warp'\n", "unknown mode 'warp'"),
    ("[sweep]\nranks = 2\n[[sweep.variant]]\ntimeout_s = 3\n", "timeout_s belongs in [sweep]"),
    ("[sweep]\nranks = 2\nseed = [[1]]\n", "scalar or a list of scalars"),
])
def test_bad_grid_files_name_the_fix(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_grid(grid_file(tmp_path, text))


def test_bad_grid_exits_2_with_one_line(tmp_path):
    bad = grid_file(tmp_path, "[sweep]\nranks = 2\nlearning_rate = 0.1\n")
    proc = subprocess.run([str(BIN / "backupsgd"), "sweep", str(bad), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'learning_rate'" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


class FakeLauncher:
    """Stands in for mpirun: writes a finished run, or leaves a partial one and fails / is interrupted."""

    def __init__(self, interrupt_at: int | None = None, fail: set[str] = frozenset()) -> None:
        self.interrupt_at, self.fail = interrupt_at, set(fail)
        self.launched: list[str] = []
        self.finished: Counter[str] = Counter()

    def __call__(self, spec: RunSpec, run_dir: Path, timeout_s: float) -> Outcome:
        assert (run_dir / "run.toml").is_file() and not (run_dir / "steps.jsonl").exists()
        self.launched.append(spec.name)
        (run_dir / "steps.jsonl").write_text('{"step": 0}\n')  # what a run writes as it goes
        if len(self.launched) == self.interrupt_at:
            raise KeyboardInterrupt
        if spec.name in self.fail:
            return Outcome(False, "exit status 1\nboom")
        (run_dir / "summary.json").write_text(json.dumps({"name": spec.name}))
        self.finished[spec.name] += 1
        return Outcome(True)


def test_interrupted_sweep_resumes_and_runs_each_configuration_once(tmp_path):
    grid = load_grid(grid_file(tmp_path, GRID))
    out = tmp_path / "sweep"
    first = FakeLauncher(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, out, first, progress=False, echo=lambda _: None)
    names = [s.name for s in grid.runs]
    assert first.launched == names[:3]
    assert (out / names[2] / "steps.jsonl").exists() and not (out / names[2] / "summary.json").exists()
    second = FakeLauncher()
    result = run_sweep(grid, out, second, progress=False, echo=lambda _: None)
    assert second.launched == names[2:]  # the partial third run is redone, the first two are not
    assert result.skipped == 2 and result.ran == len(names) - 2 and not result.failures
    assert first.finished + second.finished == Counter(names)  # every configuration finished exactly once
    third = FakeLauncher()
    assert run_sweep(grid, out, third, progress=False, echo=lambda _: None).skipped == len(names)
    assert third.launched == []


def test_a_failed_run_is_reported_the_sweep_goes_on_and_exits_nonzero(tmp_path, monkeypatch):
    path = grid_file(tmp_path, GRID)
    names = [s.name for s in load_grid(path).runs]
    fake = FakeLauncher(fail={names[1]})
    monkeypatch.setattr(sweep_cli, "MpiLauncher", lambda: fake)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(sweep_cli.sweep_command, [str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1
    assert fake.launched == names  # it went on past the failure
    assert f"FAILED {names[1]}: exit status 1\nboom" in result.output
    assert f"{len(names)} runs in {out}: 0 already finished, {len(names)} run now, 1 failed" in result.output
    retry = FakeLauncher()
    monkeypatch.setattr(sweep_cli, "MpiLauncher", lambda: retry)
    result = CliRunner().invoke(sweep_cli.sweep_command, [str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0 and retry.launched == [names[1]]


def _alive(marker: str) -> list[str]:
    """Processes whose command line mentions `marker` (read from /proc: no psutil needed)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(cmd)
    return found


@pytest.mark.timeout(240)
def test_real_sweep_of_two_runs_then_timeout_kills_every_rank(tmp_path):
    path = grid_file(tmp_path, """
[sweep]
ranks = 2
timeout_s = 150
mode = ["sync", "backup"]
backups = 1
seed = 0
steps = 8
eval_every = 4
""")
    out = tmp_path / "sweep"
    result = run_sweep(load_grid(path), out, MpiLauncher(), progress=False, echo=lambda _: None)
    assert result.ran == 2 and not result.failures, result.failures
    for spec in load_grid(path).runs:
        summary = json.loads((out / spec.name / "summary.json").read_text())
        assert (summary["mode"], summary["backups"], summary["workers"], summary["steps"]) == \
            (spec.options["mode"], spec.options["backups"], 2, 8)
    report = build_report(out, scale=False)  # the real files read back: one configuration each
    assert report.runs == 2 and report.groups == 2
    # a run that cannot finish in its timeout: its whole process group goes, no rank is left behind
    slow = load_grid(grid_file(tmp_path, "[sweep]\nranks = 2\ntimeout_s = 3\nmode = 'sync'\nsteps = 1000000\n",
                               "slow.toml"))
    result = run_sweep(slow, tmp_path / "slow", MpiLauncher(), progress=False, echo=lambda _: None)
    assert len(result.failures) == 1 and "timed out after 3 s" in result.failures[0][1]
    assert _alive(str(tmp_path / "slow")) == []
