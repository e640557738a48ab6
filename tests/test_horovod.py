"""Horovod: the `horovod` mode against `sync` (peer oracle), horovodrun launches, the `horovod` reducer
against the MPI one, and a clear error when Horovod is absent. Every launch runs under a timeout that
kills every process of the job."""

import json
import os
import sys

import numpy as np
import pytest
from mpirun import BIN, REPO, Result, mpirun, read_steps, train
from mpirun import launch as run_job
from reference import replay

RUN_FILES = ("config.json", "steps.jsonl", "evals.jsonl", "ranks.jsonl", "summary.json", "params.npy")


def launch(cmd: list[str], timeout: float = 240, env: dict[str, str] | None = None) -> Result:
    """The venv's bin first on PATH: horovodrun calls whichever mpirun PATH finds."""
    return run_job(cmd, timeout, {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})})


def horovodrun(ranks: int, argv: list[str], timeout: float = 240, gloo: bool = False) -> Result:
    """`horovodrun -np P -H localhost:P backupsgd ...` with the venv's horovodrun, mpirun and entry point."""
    flags = ["--gloo"] if gloo else []
    # -H localhost:P declares P slots, so Open MPI does not see that ranks share cores (as it does under
    # mpirun --oversubscribe) and its idle ranks would spin; Horovod's busy threads then slow runs ~10x.
    return launch([str(BIN / "horovodrun"), *flags, "-np", str(ranks), "-H", f"localhost:{ranks}",
                   str(BIN / "backupsgd"), *argv], timeout, env={"OMPI_MCA_mpi_yield_when_idle": "1"})


def horovodrun_train(ranks: int, out, *options: str) -> dict:
    result = horovodrun(ranks, ["train", "--no-progress", "--out", str(out), *options])
    assert result.returncode == 0, f"train failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}"
    return json.loads((out / "summary.json").read_text())


def _workload(run_dir) -> dict:
    return json.loads((run_dir / "config.json").read_text())["workload"]


def _ranks(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "ranks.jsonl").read_text().splitlines()]


def test_horovod_mode_reaches_the_parameters_of_sync_mode(tmp_path):
    options = ["--steps", "50", "--model", "mlp", "--eval-every", "25", "--straggler", "exp:mean=0.003"]
    hvd = horovodrun_train(4, tmp_path / "horovod", "--mode", "horovod", *options)
    sync = train(4, tmp_path / "sync", "--mode", "sync", *options, timeout=240)
    assert all((tmp_path / "horovod" / name).exists() for name in RUN_FILES)
    for summary in (hvd, sync):
        assert len(summary["param_digests"]) == 4 and len(set(summary["param_digests"])) == 1, summary
        assert len(set(summary["optimizer_digests"])) == 1, summary
    hvd_steps, sync_steps = read_steps(tmp_path / "horovod"), read_steps(tmp_path / "sync")
    assert [s["step"] for s in hvd_steps] == list(range(50))
    assert all(s["members"] == [0, 1, 2, 3] and s["dropped"] == [] for s in hvd_steps)
    # Peer oracle: Horovod's DistributedOptimizer and our allreduce apply the same updates.
    np.testing.assert_allclose([s["loss"] for s in hvd_steps], [s["loss"] for s in sync_steps], rtol=1e-4)
    got, expected = np.load(tmp_path / "horovod" / "params.npy"), np.load(tmp_path / "sync" / "params.npy")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(got - replay(_workload(tmp_path / "sync"), [])).max() > 1e-2, "training must move the parameters"
    # The same straggler delays, rank by rank and step by step.
    assert [r["delay_s"] for r in _ranks(tmp_path / "horovod")] == [r["delay_s"] for r in _ranks(tmp_path / "sync")]


def test_horovodrun_backup_mode_never_waits_for_the_slow_rank(tmp_path):
    out = tmp_path / "run"
    # 0.5 s: far above the stalls that Horovod's busy background threads add on an oversubscribed machine.
    summary = horovodrun_train(4, out, "--mode", "backup", "--backups", "1", "--reducer", "horovod", "--steps", "30",
                               "--model", "mlp", "--straggler", "slow:ranks=2,delay=0.5", "--eval-every", "0")
    assert summary["workers"] == 4 and summary["quorum"] == 3
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(30))
    for s in steps:
        assert len(s["members"]) == 3 and 2 not in s["members"], s
    assert len(set(summary["param_digests"])) == 1
    # Oracle: one process re-running the steps with exactly the recorded members.
    expected = replay(_workload(out), [s["members"] for s in steps])
    np.testing.assert_allclose(np.load(out / "params.npy"), expected, rtol=1e-4, atol=1e-5)


def test_horovod_reducer_sums_as_the_mpi_reducer_under_our_vote():
    result = mpirun(5, ["tests/mpi/engine_oracle.py", "30", "2", "4", "5000", "horovod"], timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "OK 30 steps, quorum 3 of 5" in result.stdout, result.stdout


@pytest.mark.parametrize("args", [["--mode", "horovod"],
                                  ["--mode", "backup", "--backups", "1", "--reducer", "horovod"]],
                         ids=["mode", "reducer"])
def test_absent_horovod_fails_before_any_step_with_how_to_build_it(tmp_path, args):
    # A `horovod` package that cannot be imported, first on the path: what a venv without the build sees.
    (tmp_path / "hidden" / "horovod").mkdir(parents=True)
    (tmp_path / "hidden" / "horovod" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'horovod'\", name='horovod')\n")
    cmd = [str(BIN / "mpirun"), "--oversubscribe", "-n", "3", sys.executable, "-m", "backupsgd", "train",
           "--out", str(tmp_path / "run"), *args]
    result = launch(cmd, env={"PYTHONPATH": f"{tmp_path / 'hidden'}{os.pathsep}{REPO}"})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("backupsgd: error:")]
    assert len(lines) == 1 and "Horovod is not importable" in lines[0] and "make horovod" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "steps.jsonl").exists(), "no step may run without Horovod"


def test_nothing_imports_horovod_unless_asked():
    code = ("import sys, backupsgd.cli, backupsgd.train, backupsgd.bench, backupsgd.modes, backupsgd.reducers, "
            "backupsgd.hvd.runtime; from backupsgd.config import build_config; build_config({'mode': 'backup'}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'horovod'))")
    result = launch([sys.executable, "-c", code], timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_horovodrun_gloo_launch_is_refused_with_the_fix(tmp_path):
    result = horovodrun(2, ["train", "--mode", "sync", "--out", str(tmp_path / "run")], gloo=True, timeout=180)
    assert result.returncode != 0
    assert "drop --gloo" in result.stdout + result.stderr, result.stdout + result.stderr[-3000:]
    assert not (tmp_path / "run" / "steps.jsonl").exists()


def test_bench_table_has_horovod_columns_or_says_why_not():
    from backupsgd.bench import format_rows

    row = {"size_mib": 1, "ranks": 4, "backups": 1, "mpi_ms": 1.0, "backup_ms": 1.5, "members_ms": 2.0, "shm_ms": 0.8,
           "sync_ms": 1.1, "backup_over_mpi": 1.5, "members_over_mpi": 2.0, "shm_over_mpi": 0.8, "sync_over_mpi": 1.1}
    with_hvd = format_rows([{**row, "hvd_ms": 3.0, "backup_hvd_ms": 2.5, "backup_over_hvd": 0.5,
                             "shm_over_hvd": 0.8 / 3.0}], None).splitlines()
    times_header, times = with_hvd[1], with_hvd[2]
    assert times_header.split()[2:5] == ["mpi", "hvd", "backup"] and "backup hvd" in times_header
    assert times.split()[2:4] == ["1.00", "3.00"]
    ratios_header, ratios = with_hvd[5], with_hvd[6]
    assert ratios_header.split()[-2:] == ["backup/hvd", "shm/hvd"] and ratios.split()[-2:] == ["0.50x", "0.27x"]
    without = format_rows([{**row, "hvd_ms": None, "backup_hvd_ms": None, "backup_over_hvd": None,
                            "shm_over_hvd": None}], None).splitlines()
    assert "hvd" not in without[1] and "hvd" not in without[5]
    assert "make horovod" in without[-1]
