"""Parameter-server modes: decision rules without MPI, then multi-rank runs checked against oracles
(the allreduce `sync` run, a single-process replay of the recorded members, closed-form byte counts)."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mpirun import REPO, mpi_env, mpirun, read_steps, train
from reference import replay

from backupsgd.config import build_config
from backupsgd.errors import ConfigError
from backupsgd.ps.layout import Layout
from backupsgd.ps.policy import APPLY, DROP, STOP, AsyncPolicy, Event, FollowPolicy, Push, QuorumPolicy

RUN_FILES = {"config.json", "steps.jsonl", "evals.jsonl", "ranks.jsonl", "summary.json", "params.npy"}


def _workload(run_dir):
    return json.loads((run_dir / "config.json").read_text())["workload"]


# --- without MPI ------------------------------------------------------------------------------

@given(st.integers(2, 40), st.integers(1, 12), st.integers(0, 5000))
def test_shards_are_contiguous_size_balanced_and_cover_the_vector(size, servers, length):
    if servers >= size:
        with pytest.raises(ValueError):
            Layout(size, servers, length)
        return
    layout = Layout(size, servers, length)
    bounds = [layout.bounds(s) for s in range(servers)]
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(hi == lo for (_, hi), (lo, _) in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert layout.workers == size - servers and layout.worker_rank(0) == servers


def test_quorum_policy_applies_the_first_n_and_drops_late_pushes():
    policy = QuorumPolicy(quorum=2)
    assert policy.decide(5, [Push(3, 5)], final=False) is None
    assert policy.decide(5, [Push(3, 5), Push(0, 5), Push(1, 5)], final=False) == Event(APPLY, 5, (0, 3))
    assert policy.decide(5, [Push(2, 4), Push(0, 5)], final=False) == Event(DROP, 5, (2,))  # step 4 was applied
    assert policy.decide(9, [Push(1, 9)], final=True) == Event(DROP, 9, (1,))
    with pytest.raises(RuntimeError, match="ahead"):
        policy.decide(5, [Push(1, 6)], final=False)


def test_async_policy_applies_in_arrival_order_and_measures_staleness():
    policy = AsyncPolicy()
    assert policy.decide(7, [], final=False) is None
    assert policy.decide(7, [Push(2, 4), Push(0, 7)], final=False) == Event(APPLY, 7, (2,), staleness=3)
    assert policy.decide(7, [Push(0, 7)], final=True) == Event(DROP, 7, (0,))


def test_follower_replays_events_in_order_once_their_pushes_are_here():
    follow = FollowPolicy()
    follow.inbox.extend([Event(APPLY, 0, (0, 2)), Event(DROP, 1, (1,)), Event(STOP, 1)])
    assert follow.decide(0, [Push(0, 0)], final=False) is None  # worker 2's push still in flight
    assert follow.decide(0, [Push(0, 0), Push(2, 0)], final=False) == Event(APPLY, 0, (0, 2))
    assert follow.decide(1, [Push(1, 0)], final=False) == Event(DROP, 1, (1,))
    assert follow.decide(1, [], final=True) is None and follow.stopped
    follow.inbox.append(Event(APPLY, 4, (0,)))
    with pytest.raises(RuntimeError, match="version 4"):
        follow.decide(3, [Push(0, 3)], final=False)


def test_events_round_trip_through_their_wire_format():
    for event in (Event(APPLY, 12, (0, 3, 4), 0), Event(DROP, 3, (2,)), Event(APPLY, 9, (1,), 5), Event(STOP, 40)):
        assert Event.decode(event.encode(workers=5)) == event


@pytest.mark.parametrize("values,fix", [
    ({"mode": "sync", "servers": 2}, "drop --servers, or use --mode with one of ps-sync"),
    ({"mode": "ps-sync", "servers": 0}, "set --servers 1 or more"),
    ({"mode": "ps-sync", "backups": 1}, "use --backups 0, or --mode ps-backup"),
    ({"mode": "ps-async", "backups": 1}, "use --backups 0, or --mode ps-backup"),
])
def test_bad_ps_values_name_the_fix(values, fix):
    with pytest.raises(ConfigError, match=fix):
        build_config(values)


def test_ps_world_checks_count_workers_not_ranks():
    assert build_config({"mode": "ps-sync"}).mode.servers == 1
    with pytest.raises(ConfigError, match="fewer than 1 \\+ b = 3"):
        build_config({"mode": "ps-backup", "backups": 2, "servers": 2}).check_world(4)
    build_config({"mode": "ps-backup", "backups": 2, "servers": 2}).check_world(5)
    with pytest.raises(ConfigError, match="outside the world of 3 workers"):
        build_config({"mode": "ps-sync", "servers": 2, "straggler": "slow:ranks=3,delay=1"}).check_world(5)


# --- under mpirun ---------------------------------------------------------------------------

ORACLE_ARGS = ["--steps", "25", "--model", "mlp", "--optimizer", "adam", "--lr", "0.01", "--eval-every", "10",
               "--straggler", "exp:mean=0.002"]


@pytest.fixture(scope="module")
def sync_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sync") / "run"
    train(3, out, "--mode", "sync", *ORACLE_ARGS)
    return out


@pytest.mark.parametrize("servers", [1, 2])
def test_ps_sync_reaches_the_same_parameters_as_sync(tmp_path, sync_run, servers):
    out = tmp_path / "run"
    summary = train(3 + servers, out, "--mode", "ps-sync", "--servers", str(servers), *ORACLE_ARGS)
    assert {p.name for p in out.iterdir()} == {p.name for p in sync_run.iterdir()} == RUN_FILES
    assert (summary["workers"], summary["servers"], summary["quorum"]) == (3, servers, 3)
    np.testing.assert_allclose(np.load(out / "params.npy"), np.load(sync_run / "params.npy"), rtol=1e-5, atol=1e-6)
    # Every worker's copy after its final pull is the vector the servers hold, bit for bit.
    assert summary["param_digests"] == [hashlib.sha256(np.load(out / "params.npy").tobytes()).hexdigest()] * 3
    assert all(s["members"] == [0, 1, 2] and s["dropped"] == [] for s in read_steps(out))  # worker indices
    evals = [json.loads(line)["step"] for line in (out / "evals.jsonl").read_text().splitlines()]
    assert evals == [10, 20, 25]


def test_ps_backup_drops_the_slow_worker_and_counts_its_late_pushes(tmp_path):
    out, servers, workers, slow = tmp_path / "run", 2, 3, 1  # worker 1 is MPI rank 3; N = 2 of 3
    # The run directory names workers as the straggler spec does: worker 1 is `1`, never its MPI rank 3.
    summary = train(servers + workers, out, "--mode", "ps-backup", "--backups", "1", "--servers", str(servers),
                    "--steps", "30", "--model", "mlp", "--straggler", f"slow:ranks={slow},delay=0.1",
                    "--eval-every", "0")
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(30))
    for s in steps:
        assert len(s["members"]) == 2 and slow not in s["members"] and slow in s["dropped"], s
        assert sorted(s["members"] + s["dropped"]) == list(range(workers)), s
        assert set(s["late"]) <= {slow} and set(s["arrivals"]) <= {"0", "2"}, s
    late = sum(len(s["late"]) for s in steps) + summary["late_after_final"]
    assert summary["dropped_gradients"] == late > 0
    assert summary["pushes"] == 2 * 30 + summary["dropped_gradients"], "every push is applied once or dropped"
    assert len(set(summary["param_digests"])) == 1 and len(summary["param_digests"]) == workers
    ranks = [json.loads(line) for line in (out / "ranks.jsonl").read_text().splitlines()]
    assert [(r["rank"], r["worker"]) for r in ranks if r["role"] == "worker"] == [(2, 0), (3, 1), (4, 2)]
    # Oracle: one process averaging exactly the recorded members' gradients each step.
    expected = replay(_workload(out), [s["members"] for s in steps])
    np.testing.assert_allclose(np.load(out / "params.npy"), expected, rtol=1e-4, atol=1e-5)


def test_ps_async_records_staleness_and_converges(tmp_path):
    out = tmp_path / "run"
    summary = train(5, out, "--mode", "ps-async", "--servers", "2", "--model", "logreg", "--steps", "200",
                    "--lr", "0.05", "--straggler", "exp:mean=0.003", "--eval-every", "50")
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(200))
    assert all(len(s["members"]) == 1 and 0 <= s["members"][0] < 3 and s["staleness"] >= 0 for s in steps)
    assert any(s["staleness"] > 0 for s in steps), "random stragglers must make some pushes stale"
    assert summary["staleness_max"] == max(s["staleness"] for s in steps)
    assert summary["pushes"] == 200 + summary["dropped_gradients"]
    assert len(set(summary["param_digests"])) == 1
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert summary["test_accuracy"] > 0.85, evals  # the Bayes-optimal classifier scores 0.92, the init 0.51
    assert evals[-1]["test_loss"] < 0.4 < 0.69  # log 2 = 0.69: the loss of a coin flip


@pytest.mark.parametrize("args,message", [
    (["--mode", "sync", "--servers", "1"], "drop --servers"),
    (["--mode", "ps-backup", "--backups", "1", "--servers", "2"], "use fewer --servers or launch more ranks"),
])
def test_bad_ps_input_exits_2_on_every_rank(tmp_path, args, message):
    result = mpirun(3, ["-m", "backupsgd", "train", "--out", str(tmp_path / "run"), *args], timeout=180)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("backupsgd: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "steps.jsonl").exists()


def test_bench_ps_measures_server_ingress_of_workers_times_m_over_k(tmp_path):
    path = tmp_path / "ps.json"
    cmd = [sys.executable, "-m", "backupsgd", "bench", "ps", "--workers", "2,3", "--servers", "1,2",
           "--size-mb", "0.0625", "--steps", "3", "--repeats", "1", "--timeout", "150", "--json", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = json.loads(path.read_text())["rows"]
    assert sorted((r["workers"], r["servers"]) for r in rows) == [(2, 1), (2, 2), (3, 1), (3, 2)]
    for r in rows:
        # Each push carries a 16-byte header besides its M/k bytes of gradient: 0.05% here.
        assert r["bytes_in_per_server_mib"] == pytest.approx(r["workers"] * 0.0625 / r["servers"], rel=1e-3), r
        assert all(b == pytest.approx(r["bytes_in_per_server_mib"], rel=1e-3) for b in r["bytes_in_by_server_mib"])
        assert r["ps_step_ms"] > 0 and r["allreduce_step_ms"] > 0
    assert path.with_suffix(".png").stat().st_size > 10_000
