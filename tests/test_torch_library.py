"""`import backupsgd.torch as hvd` in a user's own script: Horovod as the oracle at b = 0, bit-identical replicas
with backup workers, and the engine's fault guarantees, each run of the examples under a timeout."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mpirun import BIN, REPO, launch, mpi_env

from backupsgd.hvd.runtime import available as horovod_available
from backupsgd.jobs import kill_session, launcher_tmpdir, session_processes

DIGITS = str(REPO / "examples" / "pytorch_digits.py")
SYNTHETIC = str(REPO / "examples" / "pytorch_synthetic_benchmark.py")
SMALL_BENCH = ["--batch-size", "8", "--image-size", "16", "--width", "8", "--num-warmup-batches", "2"]
needs_horovod = pytest.mark.skipif(not horovod_available(), reason="Horovod is not built here (make horovod)")


def run_script(ranks: int, script: str, *args: str, env: dict | None = None, timeout: float = 240):
    """`mpirun -n ranks python script args` with BACKUPSGD_* settings from `env` passed to every rank."""
    exports = [x for name in (env or {}) for x in ("-x", name)]
    return launch([str(BIN / "mpirun"), "--oversubscribe", *exports, "-n", str(ranks), sys.executable, script, *args],
                  timeout, env=env)


def saved(out: Path, ranks: int) -> tuple[list[np.ndarray], list[dict]]:
    return ([np.load(out / f"params-{r}.npy") for r in range(ranks)],
            [json.loads((out / f"rank-{r}.json").read_text()) for r in range(ranks)])


def assert_identical(params: list[np.ndarray], infos: list[dict]) -> None:
    assert all(np.array_equal(p, params[0]) for p in params), "replicas differ"
    assert len({i["optimizer_state"] for i in infos}) == 1, "optimizer states differ"


def test_single_rank_equals_plain_torch_and_refuses_what_cannot_work():
    result = launch([sys.executable, str(REPO / "tests" / "mpi" / "library_single.py")], timeout=120)
    assert result.returncode == 0 and "library checks passed" in result.stdout, result.stderr[-4000:]


@pytest.mark.parametrize("setting,value,words", [("BACKUPSGD_BACKUPS", "2", "0 <= b < 2"),
                                                 ("BACKUPSGD_REDUCER", "ring", "unknown reducer 'ring'"),
                                                 ("BACKUPSGD_MEMBER_TIMEOUT", "-1", "BACKUPSGD_MEMBER_TIMEOUT = '-1': "
                                                  "the member timeout must be a number of seconds > 0")])
def test_bad_settings_raise_at_init_on_every_rank(setting, value, words):
    result = run_script(2, SYNTHETIC, "--num-iters", "1", env={setting: value}, timeout=120)
    assert result.returncode != 0
    assert result.stderr.count(words) >= 2, result.stderr[-3000:]  # every rank says it, none is left waiting


def test_member_timeout_setting_reads_seconds_or_auto_and_names_the_fix(monkeypatch):
    """Function level: init()'s argument wins over the environment; "auto" is the engine's 0 (scaled with the
    buffer); anything but seconds > 0 raises naming both ways to set it."""
    from backupsgd.errors import ConfigError
    from backupsgd.torch.runtime import ENV_MEMBER_TIMEOUT, _member_timeout

    monkeypatch.delenv(ENV_MEMBER_TIMEOUT, raising=False)
    assert _member_timeout(None) == 0.0
    monkeypatch.setenv(ENV_MEMBER_TIMEOUT, "0.25")
    assert (_member_timeout(None), _member_timeout(1.5), _member_timeout("auto"), _member_timeout(" AUTO ")) == \
        (0.25, 1.5, 0.0, 0.0)
    for bad in (0, -1, "soon", float("inf"), True):
        with pytest.raises(ConfigError, match=r"init\(member_timeout=...\) = .*or 'auto'"):
            _member_timeout(bad)
    monkeypatch.setenv(ENV_MEMBER_TIMEOUT, "0")
    with pytest.raises(ConfigError, match=f"{ENV_MEMBER_TIMEOUT} = '0': the member timeout must be"):
        _member_timeout(None)


def test_member_timeout_from_the_environment_bounds_a_frozen_member(tmp_path):
    """BACKUPSGD_MEMBER_TIMEOUT=1.5 reaches the engine: rank 2 (a member: rank 3 is slow) stops inside step 5's
    reduction for 8 s. Step 5 is decided again without it no sooner than 1.5 s (the automatic deadline, 0.5 s,
    re-decides after about 1 s) and well before the 8 s are over; every replica ends identical."""
    env = {"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_REDUCER": "members", "BACKUPSGD_LAG_LIMIT": "5",
           "BACKUPSGD_MEMBER_TIMEOUT": "1.5", "BACKUPSGD_FAULT": "freeze:rank=2,step=5,phase=reduce,seconds=8",
           "BACKUPSGD_RUN_DIR": str(tmp_path / "run")}
    result = run_script(4, DIGITS, "--epochs", "2", "--slow-rank", "3", "--slow-sleep", "0.2",
                        "--save", str(tmp_path / "saved"), env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_identical(*saved(tmp_path / "saved", 4))
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(len(steps))), "each step recorded once"
    (record,) = steps[5]["redecided"]
    assert record["timed_out"] == [2] and 2 not in steps[5]["members"], steps[5]
    assert 1.5 <= record["waited_s"] < 8.0, record


def test_batch_size_records_the_noise_scale_in_its_closed_form(tmp_path):
    """DistributedOptimizer(batch_size=8): rank 0's steps.jsonl carries each step's |G|^2 and tr(Sigma) estimates
    and the smoothed noise scale. Each rank's gradient is a fixed known vector, so the oracle is noise.estimate's
    closed form on the recorded members' vectors, and NoiseScale folded over those estimates."""
    sys.path.insert(0, str(REPO / "tests" / "mpi"))
    from library_noise import BATCH, STEPS, direction

    from backupsgd.noise import NoiseScale, estimate

    run = tmp_path / "run"
    result = run_script(4, str(REPO / "tests" / "mpi" / "library_noise.py"), timeout=180,
                        env={"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_STRAGGLER": "exp:mean=0.01",
                             "BACKUPSGD_RUN_DIR": str(run)})
    assert result.returncode == 0, result.stderr[-4000:]
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(STEPS))
    smoother = NoiseScale()
    for s in steps:
        grads = np.array([direction(r) for r in s["members"]], dtype=np.float64)
        expected = estimate(float((grads ** 2).sum()), len(grads), BATCH, float((grads.mean(0) ** 2).sum()))
        assert s["grad_sq"] == pytest.approx(expected.grad_sq, rel=1e-4, abs=1e-4), s
        assert s["trace_cov"] == pytest.approx(expected.trace_cov, rel=1e-4, abs=1e-4), s
        smoothed = smoother.update(expected, s["step"]).b_simple  # nan (written as null) while the smoothed |G|^2 <= 0
        assert s["noise_scale"] is None if math.isnan(smoothed) else s["noise_scale"] == pytest.approx(smoothed,
                                                                                                      rel=1e-3), s
    assert len({tuple(s["members"]) for s in steps}) > 1, "random stragglers should vary the members"
    assert steps[-1]["noise_scale"] > 0, steps[-1]


@needs_horovod
def test_b0_ends_with_horovods_parameters(tmp_path):
    """The same Horovod script, on horovod.torch and on backupsgd.torch with b = 0: the same parameters."""
    common = ["--epochs", "2", "--optimizer", "sgd"]
    theirs = run_script(4, DIGITS, *common, "--horovod", "--save", str(tmp_path / "horovod"))
    ours = run_script(4, DIGITS, *common, "--save", str(tmp_path / "backupsgd"), env={"BACKUPSGD_BACKUPS": "0"})
    assert theirs.returncode == 0, theirs.stderr[-4000:]
    assert ours.returncode == 0, ours.stderr[-4000:]
    horovod_params, _ = saved(tmp_path / "horovod", 4)
    params, infos = saved(tmp_path / "backupsgd", 4)
    assert_identical(params, infos)
    np.testing.assert_allclose(params[0], horovod_params[0], rtol=1e-5, atol=1e-6)
    assert all(i["used_steps"] == list(range(i["global_step"])) for i in infos), "b = 0: every gradient is used"


def test_slow_rank_with_one_backup_finishes_every_epoch_identical(tmp_path):
    """Rank 3 sleeps 0.2 s per batch (no injected delay): with b = 1 the epoch loop and its test-time allreduce
    finish, rank 3 computes a fraction of the batches, and every rank ends bit-identical (Adam, two backward
    passes per step, max_grad_norm), also rank 1 whose step-3 gradient was NaN and dropped."""
    env = {"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_FAULT": "nan:ranks=1,steps=3"}
    result = run_script(4, DIGITS, "--epochs", "2", "--optimizer", "adam", "--backward-passes-per-step", "2",
                        "--max-grad-norm", "1.0", "--slow-rank", "3", "--slow-sleep", "0.2",
                        "--save", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    params, infos = saved(tmp_path, 4)
    assert_identical(params, infos)
    steps = 2 * infos[0]["batches_per_epoch"]
    assert all(i["global_step"] == steps for i in infos), "every rank ends every epoch on the same global step"
    fast = [i["computed"] for i in infos[:3]]
    assert fast == [steps] * 3 and infos[3]["computed"] < steps / 3, [i["computed"] for i in infos]
    assert 3 not in infos[1]["used_steps"] and len(infos[1]["used_steps"]) > steps / 2, infos[1]["used_steps"]


def test_clipping_in_user_code_is_refused_with_backups(tmp_path):
    result = run_script(3, DIGITS, "--epochs", "1", "--clip-in-script", "1.0", env={"BACKUPSGD_BACKUPS": "1"})
    assert result.returncode != 0
    assert "Pass max_grad_norm= to hvd.DistributedOptimizer" in result.stderr, result.stderr[-3000:]


def test_frozen_rank_with_members_reducer_stops_nobody(tmp_path):
    """Rank 2 SIGSTOPs itself at step 8: the others go on past it (rank 0 prints iterations); after SIGCONT it
    is brought back with rank 0's state and the benchmark ends with identical replicas."""
    log = tmp_path / "out.txt"
    env = {"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_REDUCER": "members", "BACKUPSGD_LAG_LIMIT": "5",
           "BACKUPSGD_FAULT": "hang:rank=2,step=8"}
    cmd = [str(BIN / "mpirun"), "--oversubscribe", *[x for n in env for x in ("-x", n)], "-n", "4", sys.executable,
           SYNTHETIC, *SMALL_BENCH, "--num-batches-per-iter", "10", "--num-iters", "8"]
    with launcher_tmpdir() as tmp_env, log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                env={**mpi_env(), **tmp_env, **env}, start_new_session=True)
        try:
            deadline, stopped, went_on = time.monotonic() + 180, [], False
            while time.monotonic() < deadline and proc.poll() is None and not went_on:
                time.sleep(0.5)
                stopped = [pid for pid, state in session_processes(proc.pid).items() if state == "T"]
                went_on = bool(stopped) and log.read_text().count("Iter #") >= 3
            assert stopped and went_on, f"the others did not go on without the stopped rank ({stopped})"
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            _, stderr = proc.communicate(timeout=120)
        finally:
            kill_session(proc.pid)
            if proc.poll() is None:
                proc.communicate()
    assert proc.returncode == 0, stderr[-4000:]
    assert "replicas identical: yes" in log.read_text(), log.read_text()


def test_stall_names_the_rank_and_a_dead_rank_ends_the_job(tmp_path):
    stalled = run_script(3, SYNTHETIC, *SMALL_BENCH, "--num-iters", "3",
                         env={"BACKUPSGD_FAULT": "hang:rank=1,step=4", "BACKUPSGD_STALL_TIMEOUT": "4"})
    assert stalled.returncode != 0
    assert "backupsgd: rank 0: stalled" in stalled.stderr and "waiting for rank 1" in stalled.stderr, \
        stalled.stderr[-3000:]
    # 50 iterations would take minutes: the job ends long before, or run_script's timeout fails the test
    dead = run_script(3, SYNTHETIC, *SMALL_BENCH, "--num-iters", "50", timeout=120,
                      env={"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_FAULT": "crash:rank=2,step=4"})
    assert dead.returncode != 0 and "injected crash at step 4" in dead.stderr, dead.stderr[-3000:]


def test_a_frozen_coordinator_is_named_as_the_coordinator(tmp_path):
    """b = 1 cannot go on without the vote's coordinator: rank 0 hung at step 4 under a plain mpirun, the other
    ranks' watchdogs say so in one line naming rank 0 as the coordinator (as `backupsgd train`'s do), and the job
    ends non-zero."""
    result = run_script(3, SYNTHETIC, *SMALL_BENCH, "--num-iters", "50", timeout=120,
                        env={"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_FAULT": "hang:rank=0,step=4",
                             "BACKUPSGD_STALL_TIMEOUT": "4"})
    assert result.returncode != 0
    assert "rank 0: no answer (stopped, hung or dead); it is the vote's coordinator" in result.stderr, \
        result.stderr[-3000:]


@needs_horovod
def test_examples_run_under_horovodrun(tmp_path):
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "OMPI_MCA_mpi_yield_when_idle": "1", "BACKUPSGD_BACKUPS": "1"}
    for script, args in [(SYNTHETIC, [*SMALL_BENCH, "--num-iters", "2"]), (DIGITS, ["--epochs", "1"])]:
        result = launch([str(BIN / "horovodrun"), "-np", "2", "-H", "localhost:2", sys.executable, script, *args],
                        timeout=240, env=env)
        assert result.returncode == 0, result.stderr[-4000:]
        assert ("replicas identical: yes" in result.stdout) or ("accuracy" in result.stdout), result.stdout[-2000:]


def test_script_run_under_a_straggler_spec_writes_a_run_directory_report_reads(tmp_path):
    """BACKUPSGD_STRAGGLER delays rank 2 by 50 ms per step (the CLI's seeded spec): it is dropped every step,
    and BACKUPSGD_RUN_DIR gets what `backupsgd train` writes, which report and timeline read unchanged."""
    run = tmp_path / "runs" / "script"
    env = {"BACKUPSGD_BACKUPS": "1", "BACKUPSGD_STRAGGLER": "slow:ranks=2,delay=0.05", "BACKUPSGD_RUN_DIR": str(run)}
    result = run_script(3, DIGITS, "--epochs", "1", env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    summary = json.loads((run / "summary.json").read_text())
    assert [s["step"] for s in steps] == list(range(summary["steps"])) and summary["steps"] > 10
    assert all(s["members"] == [0, 1] and s["dropped"] == [2] for s in steps), "the delayed rank is never a member"
    assert len(set(summary["param_digests"])) == 1 and summary["test_accuracy"] > 0.3
    # the run's time ends at the script's close; the closing, which waits for rank 2's last delay, only in ended_s
    assert steps[-1]["time"] <= summary["wall_s"] <= summary["ended_s"]
    assert summary["steps_per_s"] == pytest.approx(summary["steps"] / summary["wall_s"])
    ranks = [json.loads(line) for line in (run / "ranks.jsonl").read_text().splitlines()]
    assert all(d == 0.05 for d in ranks[2]["delay_s"] if d is not None) and ranks[0]["delay_s"][0] == 0.0
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["step"] == summary["steps"] and "test_loss" in evals[-1]
    from click.testing import CliRunner

    from backupsgd.cli import main

    for args in (["report", str(tmp_path / "runs")], ["timeline", str(run)]):
        outcome = CliRunner().invoke(main, args)
        assert outcome.exit_code == 0, outcome.output
    assert "1 runs in 1 configurations" in CliRunner().invoke(main, ["report", str(tmp_path / "runs")]).output
    assert json.loads((run / "timeline.json").read_text())["otherData"]["layout"] == "measured"
