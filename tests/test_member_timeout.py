"""The members reducer's bounded member timeout: a worker frozen inside a reduction holds the others up for
one deadline at most, the step is decided again without it, and every replica ends identical. Oracles: the
run directory (each step once, who was re-decided away), every rank's parameter digest, and a single-process
replay of the recorded members."""

import json
from pathlib import Path

import numpy as np
from mpirun import mpirun, read_steps
from reference import replay

TIMEOUT = "0.5"


def _workload(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())["workload"]


def _identical_and_replayed(out: Path, steps: list[dict]) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert len(set(summary["param_digests"])) == 1, summary["param_digests"]
    assert len(set(summary["optimizer_digests"])) == 1, summary["optimizer_digests"]
    expected = replay(_workload(out), [s["members"] for s in steps])
    np.testing.assert_allclose(np.load(out / "params.npy"), expected, rtol=1e-4, atol=1e-5)


def test_a_member_frozen_inside_the_reduction_is_decided_away_within_the_deadline(tmp_path):
    """Rank 2 (a member of every step: rank 3 is slow) stops inside the reduction of step 10 for 4 s. The step
    is decided again without it after the deadline, the others go on while it is stopped (it is marked behind),
    and when it answers it is brought back with the current state."""
    out = tmp_path / "run"
    result = mpirun(4, ["-m", "backupsgd", "train", "--no-progress", "--out", str(out), "--mode", "backup",
                        "--backups", "1", "--reducer", "members", "--member-timeout", TIMEOUT, "--lag-limit", "5",
                        "--steps", "120", "--straggler", "slow:ranks=3,delay=0.02", "--eval-every", "0",
                        "--check-every", "10", "--fault", "freeze:rank=2,step=10,phase=reduce,seconds=4"],
                    timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    steps = read_steps(out)
    assert [s["step"] for s in steps] == list(range(120)), "each step recorded once"
    redecided = steps[10]["redecided"]
    assert redecided and redecided[0]["timed_out"] == [2], steps[10]
    assert 2 not in steps[10]["members"] and steps[10]["members"], steps[10]
    assert redecided[0]["waited_s"] < 4.0, "the step waited for the frozen member's whole freeze"
    assert all(not s["redecided"] for s in steps[:10]), "a step was re-decided before any freeze"
    # The others went on while rank 2 was stopped: it was marked behind at once, not after a stall.
    assert sum(2 in s["behind"] for s in steps[10:]) >= 5, [s["behind"] for s in steps[10:30]]
    _identical_and_replayed(out, steps)
