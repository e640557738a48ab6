"""A 2-node cluster on this machine (network namespaces, shaped links): a backup run across it against
the single-process replay of its recorded members, and the cluster's set-up and removal."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mpirun import REPO, ULFM, launch, mpi_env, read_steps
from reference import replay

from backupsgd.cluster import ClusterSpec, existing_namespaces, mpirun_command, running_cluster
from backupsgd.cluster.topology import NETNS_ETC, state_dir

NOT_ROOT = os.geteuid() != 0
needs_root = pytest.mark.skipif(NOT_ROOT, reason="network namespaces need root (CAP_NET_ADMIN); this process is "
                                                 "not root, so the cluster tests cannot run here")
NAME = f"bsgdt{os.getpid() % 100000}"  # a name of the test's own: a cluster someone else has up is left alone


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backupsgd", "cluster", *args], capture_output=True, text=True,
                          env=mpi_env(), cwd=REPO, timeout=60)


def _assert_gone(name: str) -> None:
    left = sorted(ns for ns in existing_namespaces() if ns.startswith(f"{name}-"))
    assert left == [], f"namespaces left behind: {left}"
    assert not NETNS_ETC.exists() or not list(NETNS_ETC.glob(f"{name}-*")), "an /etc/netns entry left behind"
    assert not state_dir(name).exists()


@pytest.fixture
def cluster():
    spec = ClusterSpec(nodes=2, slots=2, bandwidth="1gbit", name=NAME)
    try:
        with running_cluster(spec):
            yield spec
    finally:
        _assert_gone(NAME)


@needs_root
# shm: within a node in shared memory, across nodes over the link (hierarchical); it stalled for tens of
# seconds per step when each node's daemon bound its ranks to the same cores (launch.NO_BINDING).
@pytest.mark.parametrize("reducer", ["dense", "shm"])
def test_backup_run_across_two_nodes_equals_replay_of_its_members(cluster, tmp_path, reducer):
    out = tmp_path / "run"
    # exp:mean=0.01: a random straggler each step, so membership changes; 4 ranks on 2 nodes x 2 slots.
    cmd = mpirun_command(cluster, ["-n", "4", sys.executable, "-m", "backupsgd", "train", "--no-progress",
                                   "--out", str(out), "--mode", "backup", "--backups", "1", "--steps", "30",
                                   "--model", "mlp", "--straggler", "exp:mean=0.01", "--eval-every", "0",
                                   "--reducer", reducer])
    result = launch(cmd, timeout=240)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    summary = json.loads((out / "summary.json").read_text())
    # mpirun fills n0's two slots, then n1's: each rank reports the host name of its node's namespace
    assert summary["hosts"] == ["n0", "n0", "n1", "n1"], summary["hosts"]
    assert summary["reducer"] == reducer
    assert len(set(summary["param_digests"])) == 1
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(30))
    assert all(len(s["members"]) == 3 for s in steps)
    assert len({tuple(s["members"]) for s in steps}) > 1, "random stragglers should vary the members"
    # Oracle: one process re-running the 30 steps with exactly the recorded members.
    cfg = json.loads((out / "config.json").read_text())["workload"]
    np.testing.assert_allclose(np.load(out / "params.npy"), replay(cfg, [s["members"] for s in steps]),
                               rtol=1e-4, atol=1e-5)


@needs_root
@pytest.mark.parametrize("seed", [1, 2])
def test_a_dense_reduction_a_rank_dies_in_across_nodes_fails_or_sums_never_partial_sums(tmp_path, seed):
    """Under ULFM Open MPI's hierarchical allreduce (coll/han, chosen for a communicator spanning nodes)
    returned success with partial sums on every survivor when a rank died in it; backupsgd leaves it out
    under a fault-tolerant launch, so each survivor's reduction fails (or, before the death, sums exactly)."""
    spec = ClusterSpec(nodes=2, slots=3, bandwidth="1gbit", name=NAME)
    try:
        with running_cluster(spec):
            cmd = mpirun_command(spec, [*ULFM, "-n", "5", sys.executable, "tests/mpi/interrupted_allreduce.py",
                                        "17226", str(seed)])  # the fused buffer of the mlp on digits
            result = launch(cmd, timeout=120)
    finally:
        _assert_gone(NAME)
    reports = sorted((json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")),
                     key=lambda r: r["rank"])
    assert [r["rank"] for r in reports] == [0, 1, 2, 3], f"{result.stdout}\n{result.stderr[-3000:]}"
    assert [r["host"] for r in reports] == ["n0", "n0", "n0", "n1"]
    assert all(r["steps"] > 0 for r in reports), reports  # the victim died while reductions went on
    assert [r["outcome"] for r in reports] == ["failed"] * 4, reports


@needs_root
# shm on 2 nodes x 3 ranks: rank 4 dies in the middle of n1, so its n0 partner's cross-node allreduce fails
# while n0's other ranks wait in a node barrier that only the revocation can end; the survivors then sit 3
# and 2 to a node, and the shm reducer is rebuilt over nodes of unequal size.
# dense: 2 nodes x 3 slots, rank 4 alone with rank 3 on n1; it ended up to 0.016 off the replay of its
# members in one run of four while coll/han ran under ULFM (see the test above).
@pytest.mark.parametrize("reducer,ranks,hosts", [
    ("dense", 5, ["n0", "n0", "n0", "n1"]),
    ("shm", 6, ["n0", "n0", "n0", "n1", "n1"]),
])
def test_rank_killed_on_one_node_under_ulfm_is_shrunk_away_across_nodes(tmp_path, reducer, ranks, hosts):
    """Rank 4, on node n1, dies at step 9 (b = 2): the survivors on both nodes shrink the communicator and
    finish, and the result is the replay of the recorded members."""
    out = tmp_path / "run"
    spec = ClusterSpec(nodes=2, slots=3, bandwidth="1gbit", name=NAME)
    try:
        with running_cluster(spec):
            cmd = mpirun_command(spec, [*ULFM, "-n", str(ranks), sys.executable, "-m", "backupsgd", "train",
                                        "--no-progress", "--out", str(out), "--mode", "backup", "--backups", "2",
                                        "--steps", "30", "--eval-every", "0", "--straggler", "exp:mean=0.004",
                                        "--check-every", "5", "--fault", "crash:rank=4,step=9",
                                        "--reducer", reducer])
            result = launch(cmd, timeout=240)
    finally:
        _assert_gone(NAME)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert "rank 4 died; going on from step" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    living = [r for r in range(ranks) if r != 4]
    assert summary["hosts"] == hosts, summary["hosts"]  # the living ranks' nodes
    assert summary["living"] == living and summary["shrinks"][0]["dead"] == [4], summary["shrinks"]
    assert summary["reducer"] == reducer
    assert len(set(summary["param_digests"])) == 1
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(30)), "each step recorded once"
    cfg = json.loads((out / "config.json").read_text())["workload"]
    np.testing.assert_allclose(np.load(out / "params.npy"), replay(cfg, [s["members"] for s in steps]),
                               rtol=1e-4, atol=1e-5)


@needs_root
def test_cluster_is_removed_when_the_block_fails():
    spec = ClusterSpec(nodes=2, slots=1, bandwidth="100mbit", name=NAME)
    with pytest.raises(RuntimeError, match="a failing test"):
        with running_cluster(spec):
            assert {f"{NAME}-br", f"{NAME}-n0", f"{NAME}-n1"} <= existing_namespaces()
            assert (NETNS_ETC / f"{NAME}-n1" / "hosts").read_text().splitlines()[-1] == "198.18.0.2 n1"
            raise RuntimeError("a failing test")
    _assert_gone(NAME)


@needs_root
def test_cli_up_is_idempotent_and_down_removes_everything():
    try:
        first = _cli("up", "--nodes", "2", "--slots", "1", "--bandwidth", "1gbit", "--name", NAME)
        assert first.returncode == 0 and "cluster up" in first.stdout, first.stderr
        again = _cli("up", "--nodes", "2", "--slots", "1", "--bandwidth", "1gbit", "--name", NAME)
        assert again.returncode == 0 and "already up" in again.stdout, again.stderr
        other = _cli("up", "--nodes", "3", "--name", NAME)
        assert other.returncode == 2 and f"backupsgd cluster down --name {NAME}" in other.stderr, other.stderr
    finally:
        down = _cli("down", "--name", NAME)
    assert down.returncode == 0 and f"{NAME}-n1" in down.stdout, down.stderr
    _assert_gone(NAME)
    nothing = _cli("down", "--name", NAME)
    assert nothing.returncode == 0 and "no cluster was up" in nothing.stdout, nothing.stderr
    idle = _cli("run", "--name", NAME, "--", "-n", "2", "true")
    assert idle.returncode == 2 and "no cluster" in idle.stderr and "cluster up" in idle.stderr, idle.stderr


@pytest.mark.parametrize("args,fix", [
    (["--nodes", "0"], "--nodes 2 or more"),
    (["--slots", "0"], "--slots 1 or more"),
    (["--bandwidth", "fast"], "1gbit"),
    (["--bandwidth", "1gb"], "1gbit"),
])
def test_cluster_up_refuses_bad_input_naming_the_fix(args, fix):
    result = _cli("up", "--name", NAME, *args)
    assert result.returncode == 2 and fix in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, "one line, no traceback"
    assert not state_dir(NAME).exists()


def test_cluster_needs_root_says_so(monkeypatch):
    from backupsgd.cluster import topology
    from backupsgd.errors import ConfigError

    monkeypatch.setattr(topology.os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="need root"):
        topology.up(ClusterSpec(name=NAME))


def test_rates_parse_in_tc_units():
    from backupsgd.cluster import parse_rate

    assert parse_rate("1gbit") == 1e9 and parse_rate("2.5Gbit") == 2.5e9 and parse_rate("100mbit") == 1e8
    assert parse_rate("unlimited") == 0.0


def test_the_simulators_cluster_network_is_the_shaped_rate_the_pingpong_latency_and_duplex_share():
    from backupsgd.cluster.calibrate import exchange_s, network

    pp = {"bandwidth": "1gbit", "latency_us": 10.0, "duplex": 0.5}
    net = network(pp, model_mb=4.0, servers=2)
    assert (net.bandwidth_gbps, net.latency_us, net.duplex, net.servers) == (1.0, 10.0, 0.5, 2)
    m, a = 4 * 2**20 * 8 / 1e9, 10e-6  # seconds to move M at the shaped rate; one latency
    # closed forms: Open MPI's Rabenseifner of 4 over TCP (sim.openmpi: 2 exchanges each of M/2 and M/4 with one
    # peer, here at half the rate each way), or with allreduce="ring" a ring of 4 at half the rate each way;
    # ps-sync of 4 workers into 2 servers at the full rate
    assert exchange_s("sync", 4, net) == pytest.approx(12 * a + 3 * m, rel=1e-9)
    assert exchange_s("sync", 4, network(pp, 4.0, allreduce="ring")) == pytest.approx(6 * a + 1.5 * m / 0.5, rel=1e-9)
    assert exchange_s("ps-sync", 4, net) == pytest.approx(2 * 4 * m / 2 + 2 * a, rel=1e-9)


def test_each_projection_row_is_what_its_printed_simulate_command_predicts():
    """results/README's 100-1,000-worker rows against the `backupsgd simulate` line printed beside them (a peer:
    the CLI parses its options itself), so the line a reader reruns gives the row, Open MPI's allreduce included."""
    import shlex

    from click.testing import CliRunner

    from backupsgd.cluster.project import project
    from backupsgd.sim.cli import simulate_command

    rows = project({"bandwidth": "1gbit", "latency_us": 6.6, "duplex": 0.96})
    row = next(r for r in rows if r["workers"] == 100 and r["straggler"].startswith("exp"))
    assert "--allreduce openmpi" in row["command"]
    out = CliRunner().invoke(simulate_command, shlex.split(row["command"])[2:]).output
    sync = next(line.split() for line in out.splitlines() if line.split()[:3] == ["sync", "100", "0"])
    assert float(sync[4]) == pytest.approx(row["sync_step_ms"], abs=0.006)  # the table's 2 decimals


def test_the_fitted_step_overhead_is_the_gap_on_the_fitting_seeds_and_predicts_the_others():
    from backupsgd.cluster.target import fit_overheads, predicted_step_ms

    pp = {"bandwidth": "1gbit", "latency_us": 7.0, "duplex": 0.5}
    data = {"cluster": {"nodes": 3, "slots": 2}, "workers": 4, "steps": 40, "straggler": "exp:mean=0.01",
            "rows": [{"mode": mode, "seed": seed, "compute_ms": 2.5, "model_mb": 0.066}
                     for mode in ("sync", "backup", "ps-backup") for seed in (0, 1, 2)]}
    truth = {"sync": 3.0, "backup": 8.0, "ps-backup": 0.0}  # ms per step the "runs" took besides the model
    for r in data["rows"]:
        r["step_ms"] = predicted_step_ms(r, data, pp, truth[r["mode"]])
    fitted = fit_overheads(data, pp)
    assert fitted["sync"] == pytest.approx(3.0, abs=1e-9)  # N = P: every step grows by exactly the overhead
    assert fitted["backup"] == pytest.approx(8.0, abs=0.3)  # carry-over makes it nearly, not exactly, additive
    assert fitted["ps-backup"] == pytest.approx(0.0, abs=0.3)
    seed2 = next(r for r in data["rows"] if r["mode"] == "sync" and r["seed"] == 2)
    assert predicted_step_ms(seed2, data, pp, fitted["sync"]) == pytest.approx(seed2["step_ms"], rel=1e-9)
    # a sync step of this network alone: compute, the slowest of 4 delays, a hierarchical allreduce of 2 nodes
    assert predicted_step_ms(seed2, data, pp, 5.0) == pytest.approx(predicted_step_ms(seed2, data, pp) + 5.0, rel=1e-9)


def test_the_exchange_table_has_an_auto_column_only_when_auto_was_measured():
    from backupsgd.bench import format_rows

    row = {"size_mib": 4, "ranks": 4, "backups": 1, "mpi_ms": 2.0, "backup_ms": 2.0, "members_ms": 3.0, "shm_ms": 1.0,
           "sync_ms": 2.0, "backup_over_mpi": 1.0, "members_over_mpi": 1.5, "shm_over_mpi": 0.5, "sync_over_mpi": 1.0,
           "hvd_ms": None, "backup_hvd_ms": None, "backup_over_hvd": None, "shm_over_hvd": None}
    assert "auto" not in format_rows([row], None)
    lines = format_rows([{**row, "auto_ms": 1.0, "auto_over_mpi": 0.5}], None).splitlines()
    assert "backup auto" in lines[1] and lines[2].split()[-2] == "1.00"  # before sync's column
    assert "auto/mpi" in lines[5] and "0.50x" in lines[6]


def test_a_time_to_target_row_reads_a_run_directory(tmp_path):
    """The cluster bench's time-to-target row, from a run directory as train writes it (no cluster needed): seed 0 of
    test_report's fixture reaches 90% at its evaluation of step 8, 2.0 s in, and ends at 93%."""
    from test_report import write_run

    from backupsgd.cluster.target import _row
    from backupsgd.report.runs import load_runs

    write_run(tmp_path, "s0", mode="sync", backups=0, seed=0, evals=[(4, 1.0, 0.80), (8, 2.0, 0.91), (12, 3.0, 0.93)],
              final_acc=0.93, steps_per_s=10.0, step_s=0.006)
    run = load_runs(tmp_path)[0][0]
    row = _row(run, "sync", 0, 0.9)
    assert (row["time_to_target_s"], row["steps_to_target"], row["final_accuracy"]) == (2.0, 8, 0.93)
