"""A script through `backupsgd.torch` goes on without a dead rank under ULFM, as `backupsgd train` does: a worker
or rank 0 (the vote's coordinator and the writer) killed mid-run, the survivors finish the script. Oracles: the
run directory against a single-process replay of its recorded members (tests/reference.py), and every
survivor's parameters, saved by the script, against each other and against the broadcast of the new rank 0's."""

import json
import sys

import numpy as np
import pytest
from mpirun import REPO, ULFM, mpirun, read_steps
from reference import replay

from backupsgd.auto_spec import parse_auto
from backupsgd.auto_quorum import replay_choices, survivors_spec

SCRIPT = str(REPO / "tests" / "mpi" / "library_failover.py")
STEPS = 30  # the script's 3 epochs of 10 steps, an hvd.allreduce of the test loss after each


def _run(ranks: int, tmp_path, backups: int | str, fault: str, **settings: str):
    env = {"BACKUPSGD_BACKUPS": str(backups), "BACKUPSGD_FAULT": fault, "BACKUPSGD_RUN_DIR": str(tmp_path / "run"),
           "BACKUPSGD_STALL_TIMEOUT": "60",  # a stall is reported, naming whom it waits for, and ends the job
           **{f"BACKUPSGD_{name.upper()}": value for name, value in settings.items()}}
    return mpirun(ranks, [SCRIPT, str(tmp_path / "out")], timeout=240, launcher=ULFM, env=env)


TAKES_OVER = "; rank 1 takes over as the vote's coordinator and the writer of the run directory"


@pytest.mark.parametrize("dead,settings,went_on_from,took_over", [
    # a worker, in the step's dense reduction: rank 0 goes on coordinating and writing. 10 is right too, for this
    # rank and for the coordinator below: a rank dropped from step 8 still computes its stale gradient while its
    # engine thread adds zeros to step 9's dense reduction as a non-member; its script reaches step 9 (and the
    # crash) only after that (CI runs under load, once for each)
    (2, {}, (9, 10), ""),
    (0, {}, (9, 10), TAKES_OVER),  # the coordinator and writer
    # a worker never a member (100 ms slow) dies as step 9 starts: the members reducer decides step 9 without
    # it, and the others meet its death in the epoch's test-loss hvd.allreduce, which runs again on the survivors
    # (10 in the runs here; 9 if a survivor's engine meets the death before step 9 is decided)
    (4, {"reducer": "members", "straggler": "slow:ranks=4,delay=0.1"}, (10, 9), ""),
])
def test_script_goes_on_without_a_dead_rank_under_ulfm(tmp_path, dead, settings, went_on_from, took_over):
    """5 ranks, b = 2, rank `dead` killed as step 9 starts: the script finishes on the 4 survivors, which see
    hvd.size() == 4 and ranks renumbered 0..3 in world order; each step is recorded once and the survivors'
    parameters are identical and equal the replay of the recorded members."""
    result = _run(5, tmp_path, 2, f"crash:rank={dead},step=9", **settings)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    step = summary["shrinks"][0]["step"]
    assert step in went_on_from, summary["shrinks"]
    living = [r for r in range(5) if r != dead]
    writer = living[0]
    assert (f"backupsgd: rank {writer}: rank {dead} died{took_over}; going on from step {step} with 4 workers (ranks "
            f"{', '.join(map(str, living))}), N = 3, b = 1") in result.stderr, result.stderr[-4000:]
    assert summary["living"] == living and summary["shrinks"] == [{"step": step, "dead": [dead], "living": living}]
    assert len(summary["param_digests"]) == 4 and len(set(summary["param_digests"])) == 1
    assert len(set(summary["optimizer_digests"])) == 1
    steps = read_steps(run)
    assert [s["step"] for s in steps] == list(range(STEPS)), "each step recorded once"
    assert all(len(s["members"]) == 3 for s in steps) and all(dead not in s["members"] for s in steps[9:])
    assert [json.loads(line)["step"] for line in (run / "evals.jsonl").read_text().splitlines()] == [10, 20, 30]

    sys.path.insert(0, str(REPO / "tests" / "mpi"))
    from library_failover import WORKLOAD

    expected = replay(WORKLOAD, [s["members"] for s in steps])
    np.testing.assert_allclose(np.load(run / "params.npy"), expected, rtol=1e-4, atol=1e-5)
    out = tmp_path / "out"
    params = [np.load(out / f"params-{r}.npy") for r in living]
    assert all(np.array_equal(p, params[0]) for p in params), "survivors' replicas differ"
    np.testing.assert_allclose(params[0], expected, rtol=1e-4, atol=1e-5)
    seen = [json.loads((out / f"rank-{r}.json").read_text()) for r in living]
    assert [(s["rank"], s["size"], s["global_step"]) for s in seen] == [(i, 4, STEPS) for i in range(4)]
    assert all(s["seen"] == [[r, i, 4] for i, r in enumerate(living)] and s["root_params_equal"] for s in seen)
    assert all(s["losses"] == seen[0]["losses"] for s in seen), "the epoch-end hvd.allreduce over the survivors"


def test_fewer_than_n_survivors_stop_with_one_line_naming_the_dead(tmp_path):
    """b = 0 (N = P = 3), rank 1 killed: each survivor says so in one line and the job exits non-zero, no hang."""
    result = _run(3, tmp_path, 0, "crash:rank=1,step=5")
    assert result.returncode != 0
    for rank in (0, 2):
        stopped = (f"backupsgd: rank {rank}: stopping the run: rank 1 died; 2 workers remain, fewer than the N = 3 "
                   "every step needs (BACKUPSGD_BACKUPS sets how many may be lost)")
        assert stopped in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_a_scripts_new_coordinator_under_auto_chooses_n_with_a_policy_of_its_own(tmp_path):
    """BACKUPSGD_BACKUPS=auto, rank 0 killed as step 9 starts: rank 1 takes over the vote with a fresh policy on
    the 4 survivors (as `backupsgd train`'s new coordinator, tests/test_failover.py), so every later decision names
    exactly the N it chose, a fresh policy fed what it recorded makes the same choices, and the summary counts
    the whole run."""
    result = _run(5, tmp_path, "auto", "crash:rank=0,step=9", straggler="slow:ranks=4,delay=0.05")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["living"] == [1, 2, 3, 4] and len(set(summary["param_digests"])) == 1
    steps = read_steps(run)
    assert [s["step"] for s in steps] == list(range(STEPS)), "each step recorded once"
    after = steps[summary["shrinks"][0]["step"]:]
    assert after and all("auto" in s and len(s["members"]) == s["quorum"] for s in after)
    spec = survivors_spec(parse_auto("auto"), 4, summary["quorum_bounds"][0])
    assert replay_choices(spec, 4, 1, after) == [s["quorum"] for s in after]  # the script gives no batch_size
    assert summary["quorum"] == pytest.approx(np.mean([s.get("quorum", len(s["members"])) for s in steps]))
    assert summary["dropped_gradients"] == sum(len(s["dropped"]) for s in steps) > 0

    sys.path.insert(0, str(REPO / "tests" / "mpi"))
    from library_failover import WORKLOAD

    expected = replay(WORKLOAD, [s["members"] for s in steps])
    np.testing.assert_allclose(np.load(run / "params.npy"), expected, rtol=1e-4, atol=1e-5)
