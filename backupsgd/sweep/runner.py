"""Run a grid's points one after another, each as its own MPI job, resuming where a sweep stopped.

A run directory holding summary.json is finished (train writes it last, atomically) and is
skipped; any other directory of a grid point is a leftover of an interrupted or failed run and is
removed and run again. The launcher is injected, so the scheduling is testable without mpirun.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from tqdm import tqdm

from backupsgd.errors import ConfigError
from backupsgd.jobs import launcher_tmpdir, stop_job
from backupsgd.sweep.grid import Grid, RunSpec, run_toml
from backupsgd.sweep.script import script_command, script_env

STDERR_TAIL_LINES = 12  # what a failure report shows of the run's stderr


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str = ""  # why it failed: the exit status and the tail of stderr


# (spec, run_dir holding run.toml, timeout in seconds) -> Outcome
Launcher = Callable[[RunSpec, Path, float], Outcome]


@dataclass
class SweepResult:
    total: int
    skipped: int  # finished before this sweep started
    ran: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run name, detail)


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file()


class MpiLauncher:
    """`mpirun --oversubscribe -n P backupsgd train --config run.toml --out DIR`, output logged in DIR."""

    def __init__(self) -> None:
        bin_dir = Path(sys.executable).parent  # the venv's mpirun and backupsgd, whatever PATH says
        self.mpirun, self.backupsgd = bin_dir / "mpirun", bin_dir / "backupsgd"
        for tool in (self.mpirun, self.backupsgd):
            if not tool.exists():
                raise ConfigError(f"{tool} not found; run backupsgd sweep from the venv that has mpirun (make venv)")

    def command(self, spec: RunSpec, run_dir: Path) -> list[str]:
        if "script" in spec.options:  # the point's settings reach every rank through the environment
            exports = [x for var in script_env(spec.options, run_dir) for x in ("-x", var)]
            return [str(self.mpirun), "--oversubscribe", *exports, "-n", str(spec.ranks), sys.executable,
                    *script_command(spec.options)]
        return [str(self.mpirun), "--oversubscribe", "-n", str(spec.ranks), str(self.backupsgd), "train",
                "--config", str(run_dir / "run.toml"), "--out", str(run_dir)]

    def __call__(self, spec: RunSpec, run_dir: Path, timeout_s: float) -> Outcome:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONUNBUFFERED="1")
        if "script" in spec.options:
            env.update(script_env(spec.options, run_dir))
        err_path = run_dir / "stderr.log"
        with (run_dir / "stdout.log").open("w") as out, err_path.open("w") as err, launcher_tmpdir() as tmp_env:
            # A session of its own: on timeout or Ctrl-C stop_job reaches mpirun and every rank.
            proc = subprocess.Popen(self.command(spec, run_dir), stdout=out, stderr=err, env={**env, **tmp_env},
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                stop_job(proc)
                return Outcome(False, f"timed out after {timeout_s:g} s (raise timeout_s in [sweep])\n"
                                      + _tail(err_path))
            except BaseException:
                stop_job(proc)
                raise
        if code != 0 or not is_finished(run_dir):
            return Outcome(False, f"exit status {code}\n{_tail(err_path)}")
        return Outcome(True)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-STDERR_TAIL_LINES:])


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Two sweeps writing one directory would delete each other's runs in progress: refuse the second."""
    with (out_dir / ".sweep.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another backupsgd sweep is writing {out_dir}; "
                              "wait for it or pass another --out") from None
        yield


def run_sweep(grid: Grid, out_dir: Path, launch: Launcher, progress: bool = True,
              echo: Callable[[str], None] | None = None) -> SweepResult:
    """Run every unfinished point of `grid` under `out_dir`, one at a time, in the grid's order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir):
        todo = [spec for spec in grid.runs if not is_finished(out_dir / spec.name)]
        result = SweepResult(total=len(grid.runs), skipped=len(grid.runs) - len(todo))
        # The bar counts finished runs too, so its ETA is over what is left (tqdm rates only new work).
        bar = tqdm(total=result.total, initial=result.skipped, unit="run", desc="sweep", file=sys.stderr,
                   dynamic_ncols=True, disable=not progress)
        say = echo or (lambda line: bar.write(line, file=sys.stderr))  # with the bar, unbuffered
        try:
            for spec in todo:
                run_dir = out_dir / spec.name
                if run_dir.exists():
                    shutil.rmtree(run_dir)  # an interrupted or failed attempt: never mix two attempts' files
                run_dir.mkdir(parents=True)
                (run_dir / "run.toml").write_text(run_toml(spec))
                bar.set_postfix_str(spec.name, refresh=True)
                started = time.monotonic()
                outcome = launch(spec, run_dir, grid.timeout_s)
                result.ran += 1
                if outcome.ok:
                    say(f"done   {spec.name} ({time.monotonic() - started:.0f} s)")
                else:
                    result.failures.append((spec.name, outcome.detail))
                    say(f"FAILED {spec.name}: {outcome.detail}")
                bar.update(1)
        finally:
            bar.close()
    return result
