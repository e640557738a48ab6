"""Multi-rank check of the fence after an evaluation (backupsgd/evaluation_fence.py).

Run under mpirun with 3 ranks: python tests/mpi/evaluation_fence.py [--no-fence]
N = 1 of 3 every step, so without a fence whichever rank is first decides each step alone. Steps 2 and 5 follow
an "evaluation" (every rank sleeps before computing them; rank 0's is the longest, as on a real run):
- step 2: rank 0 evaluates 0.4 s, the others 0.05 s. The step must still be undecided when rank 0 offers it (no
  rank trained through rank 0's evaluation), and its member is the first rank in (not rank 0): the fence delays
  the decision, not what it averages.
- step 5: rank 0 evaluates 0.3 s and rank 2 is frozen for 4 s. The fence waits for rank 2 at most rank 0's
  evaluation's length past rank 0's own READY: step 5 must be decided at least 0.3 s after rank 0 offered it
  and before rank 2 wakes; and while it waits, rank 0's engine.describe() (the stall watchdog's line) must say
  that the fence holds the step, which has more READYs in than its N.
Prints one line per check (OK or FAILED) and exits non-zero if any failed (tests/test_training.py). With
--no-fence (no fence) the first, the third and the fourth check fail, which shows they can.
"""

import sys
import threading
import time

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up in mpi4py
import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.evaluation_fence import EvaluationFence
from backupsgd.reducers import DenseReducer

STEPS, LENGTH = 8, 16
EVALUATION_S = {2: {0: 0.4}, 5: {0: 0.3, 2: 4.0}}  # step -> rank -> seconds before computing it
OTHERS_S = 0.05  # every other rank's evaluation


def main() -> None:
    world = MPI.COMM_WORLD
    fence = None if "--no-fence" in sys.argv else EvaluationFence(lambda step: step in EVALUATION_S)
    checks: list[tuple[bool, str]] = []
    with GradientEngine(world.Dup(), DenseReducer(world.Dup(), LENGTH), 1, fence=fence) as engine:
        for step in range(STEPS):
            if step in EVALUATION_S:
                seconds = EVALUATION_S[step].get(world.rank, OTHERS_S)
                time.sleep(seconds)
                if fence is not None:
                    fence.evaluated(seconds)
            undecided = engine.decided(step) is None
            offered = time.perf_counter()
            watchdog_line: list[str] = []  # what the stall watchdog would print halfway through the fence's wait
            if world.rank == 0 and step == 5:
                looker = threading.Timer(0.15, lambda: watchdog_line.append(engine.describe()))
                looker.start()
            decision = engine.submit(step, np.full(LENGTH, world.rank, np.float32)).wait(timeout=60)
            waited = time.perf_counter() - offered
            assert decision.step == step
            if world.rank == 0 and step == 2:
                checks.append((undecided, f"step 2 undecided when rank 0 offered it: {undecided}"))
                checks.append((decision.members in ((1,), (2,)), f"step 2's members {decision.members}"))
            if world.rank == 0 and step == 5:
                checks.append((waited >= 0.3, f"step 5 decided {waited:.2f} s after rank 0 offered it"))
                looker.join()
                checks.append(("fence waits for every rank" in watchdog_line[0], f"while held: {watchdog_line[0]}"))
            if world.rank == 2 and step == 5:
                checks.append((not undecided, f"step 5 decided before frozen rank 2 offered it: {not undecided}"))
            engine.pop(step)
    checks = [c for part in world.gather(checks) or [] for c in part]
    if world.rank == 0:
        for ok, text in checks:
            print(f"{'OK' if ok else 'FAILED'} {text}", flush=True)
        sys.exit(0 if all(ok for ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
