"""The `shm` reducer: the members' sum through a node's shared memory, checked against exact sums
(engine oracle), the dense MPI reducer on the same member sets, and a single-process replay of training."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mpirun import mpirun, read_steps
from reference import replay

from backupsgd.rundir import choose_run_dir


@pytest.mark.parametrize("ranks,backups,slow,reducer", [
    (5, 2, 4, "shm"),  # one node; the slow rank is a straggler that takes copies once it holds 2 slots
    (4, 0, -1, "shm"),  # sync: every rank a member of every step
    (4, 1, 3, "shm:2"),  # two "nodes" of 2 ranks: each slice is allreduced between nodes
    (6, 2, 5, "shm:3"),
    (5, 1, 4, "shm:3"),  # nodes of 3 and 2 (as after a rank died and the survivors shrank): 2 cross slices
], ids=["one-node-backup", "one-node-sync", "two-nodes-of-2", "two-nodes-of-3", "nodes-of-3-and-2"])
def test_shm_reducer_delivers_exactly_the_members_mean_to_every_rank(ranks, backups, slow, reducer):
    argv = ["tests/mpi/engine_oracle.py", "30", str(backups), str(slow), "5003", reducer]
    result = mpirun(ranks, argv, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"OK 30 steps, quorum {ranks - backups} of {ranks}, reducer {reducer}" in result.stdout, result.stdout
    assert "OSC UCX" not in result.stderr, "importing backupsgd first must keep Open MPI's UCX window component out"


@pytest.mark.parametrize("ranks", [3, 4])
def test_a_result_handed_out_is_never_overwritten_and_a_laggard_gets_copies(ranks):
    result = mpirun(ranks, ["tests/mpi/shm_slots.py", "10", "3001"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"OK 10 steps on {ranks} ranks" in result.stdout


def test_too_little_dev_shm_stops_training_with_one_line_before_any_step(tmp_path):
    # /dev/shm as a container's default 64 MiB, nearly full: the window would not fit (a SIGBUS, unchecked).
    code = ("import os, sys\n"
            "real = os.statvfs\n"
            "class Small:\n    f_bavail, f_frsize = 16, 4096\n"
            "os.statvfs = lambda path: Small() if path == '/dev/shm' else real(path)\n"
            "from backupsgd.cli import main\n"
            f"main(['train', '--no-progress', '--out', {str(tmp_path / 'run')!r}, '--mode', 'backup', "
            "'--backups', '1', '--reducer', 'shm', '--steps', '5'])\n")
    result = mpirun(3, ["-c", code], timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("backupsgd: error:")]
    assert len(lines) == 1, result.stderr
    assert "MiB of /dev/shm on this node, 0 MiB is free; use --reducer dense" in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "MPI_ABORT" not in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "run" / "steps.jsonl").exists() or not (tmp_path / "run" / "steps.jsonl").read_text()
    assert choose_run_dir(str(tmp_path / "run"), "label") == tmp_path / "run", "the same --out must work once fixed"


def test_backup_training_with_shm_reducer_is_the_replay_of_its_members(tmp_path):
    out = tmp_path / "run"
    result = mpirun(4, ["-m", "backupsgd", "train", "--no-progress", "--out", str(out), "--mode", "backup",
                        "--backups", "1", "--reducer", "shm", "--steps", "40", "--eval-every", "0",
                        "--straggler", "slow:ranks=2,delay=0.05", "--check-every", "10"], timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "OSC UCX" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reducer"] == "shm"
    assert len(set(summary["param_digests"])) == 1 and len(set(summary["optimizer_digests"])) == 1
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(40))
    assert sum(2 in s["members"] for s in steps) < 10, "the slow rank must mostly be dropped"
    workload = json.loads((out / "config.json").read_text())["workload"]
    expected = replay(workload, [s["members"] for s in steps])
    np.testing.assert_allclose(np.load(out / "params.npy"), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected - replay(workload, [])).max() > 1e-2, "training must move the parameters"


@pytest.mark.parametrize("small,per_node", [(False, None), (True, None), (False, 2)],
                         ids=["one-node-takes-shm", "full-dev-shm-takes-dense", "two-nodes-take-dense"])
def test_auto_reducer_takes_shm_on_one_node_with_room_else_dense_and_sums_the_members(small, per_node):
    # Oracle: each rank's buffer is its rank + 1, so members (0, 2) sum to 1 + 3 = 4 in every element.
    code = ("import os\n"
            "real = os.statvfs\n"
            "class Small:\n    f_bavail, f_frsize = 16, 4096\n"
            f"os.statvfs = (lambda path: Small() if path == '/dev/shm' else real(path)) if {small} else real\n"
            "import backupsgd, numpy as np; from mpi4py import MPI\n"
            "from backupsgd.shm_reducer import auto_reducer\n"
            "comm = MPI.COMM_WORLD\n"
            f"r = auto_reducer(comm.Dup(), 1 << 18, partial=True, ranks_per_node={per_node})\n"
            "mine = np.full(1 << 18, comm.rank + 1, dtype=np.float32)\n"
            "total = r.reduce((0, 2), mine if comm.rank in (0, 2) else None)\n"
            "ok = comm.allgather((r.name, bool(np.all(total == 4))))\n"
            "r.release(total); r.close()\n"
            "if comm.rank == 0: print('OK', ok, flush=True)\n")
    result = mpirun(3, ["-c", code], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    dense = small or per_node is not None
    assert f"OK {[('dense' if dense else 'shm', True)] * 3}" in result.stdout, result.stdout + result.stderr[-2000:]
    notes = [line for line in result.stderr.splitlines() if "--reducer auto takes dense" in line]
    assert len(notes) == (1 if dense else 0), result.stderr
    if small:
        assert "MiB of /dev/shm on this node, 0 MiB is free" in notes[0], notes
    elif dense:
        assert "the ranks span nodes" in notes[0], notes
