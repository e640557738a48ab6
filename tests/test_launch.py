"""Launching: a launcher killed earlier (by a timeout, a test, a sweep) must not break a later launch."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mpirun import mpirun

STALE_SPAN = 400  # pids after the last one given out, among which the next launcher's will most likely be


def _last_pid() -> int:
    proc = subprocess.Popen(["true"])  # only its number is wanted
    proc.wait()
    return proc.pid


def _stale_session_dirs(base: Path, first_pid: int) -> list[Path]:
    """What a SIGKILLed prterun leaves: /tmp/ompi.<pid> with its PMIx tool rendezvous files."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    made = []
    for pid in (p % pid_max for p in range(first_pid + 1, first_pid + STALE_SPAN)):
        path = base / f"ompi.{pid}"
        if pid < 300 or path.exists():
            continue
        path.mkdir()
        made.append(path)
        for name in ("pmix.vm.tool", f"pmix.vm.tool.{pid}", f"pmix.vm.tool.prterun-vm-{pid}@0"):
            (path / name).write_text(f"prterun-vm-{pid}@0.0;tcp4://127.0.0.1:1\n5.0.11\n{pid}\n0:0\n")
    return made


def test_a_stale_session_directory_with_the_launchers_pid_does_not_break_the_launch():
    # Without a TMPDIR of its own per launch, prterun finds the stale files and exits 213 ("The PMIx
    # server's listener thread failed to start"): with pid_max 32768, pids come round within a suite.
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    for _ in range(3):
        made = _stale_session_dirs(base, _last_pid())
        try:
            result = mpirun(1, ["-c", "import os; print('launcher', os.getppid())"], timeout=120)
        finally:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
        assert result.returncode == 0, result.stdout + result.stderr[-2000:]
        launcher = int(result.stdout.split("launcher", 1)[1].split()[0])
        if base / f"ompi.{launcher}" in made:
            return  # the launcher had a stale directory under its pid, and started anyway
    pytest.skip("the launcher's pid never fell in the stale range (the machine was spawning many processes)")
