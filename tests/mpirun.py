"""Launch backupsgd (or a script) under mpirun with a hard timeout that kills every rank."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from backupsgd.jobs import LauncherTimeout, run_launcher

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=str(REPO),
               PYTHONUNBUFFERED="1")
    return env


def launch(cmd: list[str], timeout: float = 180, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """Run a launcher command (mpirun, horovodrun); on timeout every process of the job is killed and the test fails."""
    try:
        done = run_launcher(cmd, {**mpi_env(), **(env or {})}, timeout, cwd=cwd or REPO)
    except LauncherTimeout as hung:
        raise AssertionError(f"{hung}\n{hung.stdout[-2000:]}\n{hung.stderr[-4000:]}") from None
    return Result(done.returncode, done.stdout, done.stderr)


# A fault-tolerant launch: a dead rank fails the MPI calls that involve it instead of ending the job.
# The launcher reports a process that exits; the heartbeat detector (--mca mpi_ft_detector true) is
# left out, since on 2 loaded cores a rank importing torch misses heartbeats and is declared dead.
ULFM = ("--with-ft", "ulfm")


def mpirun(ranks: int, argv: list[str], timeout: float = 180, cwd: Path | None = None,
           launcher: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Result:
    """Run `python argv...` on `ranks` ranks under a timeout (`launcher`: more mpirun options; `env`: variables
    exported to every rank, such as a script's BACKUPSGD_* settings)."""
    exports = [x for name in (env or {}) for x in ("-x", name)]
    return launch([str(BIN / "mpirun"), "--oversubscribe", *launcher, *exports, "-n", str(ranks), sys.executable,
                   *argv], timeout, env=env, cwd=cwd)


def train(ranks: int, out: Path, *options: str, timeout: float = 180) -> dict:
    """Run `backupsgd train` and return its summary.json; fails the test with the output if it did not finish."""
    result = mpirun(ranks, ["-m", "backupsgd", "train", "--no-progress", "--out", str(out), *options], timeout)
    assert result.returncode == 0, f"train failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}"
    return json.loads((out / "summary.json").read_text())


def read_steps(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
