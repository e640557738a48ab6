"""Multi-rank check: a gradient submitted after its step's decision, while its rank's engine thread reduces that
step, reaches the coordinator's `--backups auto` bookkeeping as a late READY (rank 0's own, here).

Run under mpirun with 3 ranks: python tests/mpi/coordinator_late.py
N = 2 of 3 every step. At step 2 rank 0 (the coordinator) computes 0.1 s longer than the others, so the step is
decided without it; its engine thread then stops 0.4 s before its part of that step's reduction (an injected
freeze), and its gradient is submitted meanwhile. The coordinator's policy (a recorder) must be handed that
gradient as a late arrival with step 3's decision, and no floor for rank 0. Exits non-zero otherwise.
"""

import math
import sys
import time

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up in mpi4py
import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.reducers import DenseReducer

LATE_STEP, SLOW_S, FREEZE_S, STEPS, LENGTH = 2, 0.1, 0.4, 5, 16


class Recorder:
    """A QuorumPolicy that always chooses N = 2 and keeps what each decision hands it."""

    def __init__(self) -> None:
        self.handed: dict[int, tuple[list, list]] = {}

    def choose(self, step, size, busy, deep, started):
        return 2

    def deep_after_s(self):
        return math.nan

    def decided(self, step, arrivals, late, floors):
        self.handed[step] = (list(late), list(floors))

    def catch_up(self):
        pass


def main() -> None:
    world = MPI.COMM_WORLD
    policy = Recorder() if world.rank == 0 else None
    freeze = (lambda step, round_: FREEZE_S if world.rank == 0 and step == LATE_STEP else 0.0)
    with GradientEngine(world.Dup(), DenseReducer(world.Dup(), LENGTH), 2, quorum_policy=policy, freeze=freeze,
                        report_late=True) as engine:
        step = 0
        while step < STEPS:
            if world.rank == 0 and step == LATE_STEP:
                time.sleep(SLOW_S)
            decision = engine.submit(step, np.full(LENGTH, world.rank, np.float32)).wait(timeout=60)
            assert decision.step == step
            engine.pop(step)
            step += 1
    if world.rank == 0:
        late, floors = policy.handed[LATE_STEP + 1]
        ok = len(late) == 1 and late[0] >= SLOW_S and not floors
        print(f"{'OK' if ok else 'FAILED'} step {LATE_STEP + 1}'s decision handed late {late}, floors {floors}",
              flush=True)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
