"""Multi-rank check of the engine alone: applied buffer == mean of the members' buffers.

Run under mpirun: python tests/mpi/engine_oracle.py STEPS BACKUPS SLOW_RANK LENGTH
Every rank's buffer for a step is a known function of (rank, step), so each rank can compute
the oracle for any member set. Exits non-zero (MPI_Abort) on any mismatch.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.reducers import DenseReducer


def buffer(rank: int, step: int, length: int) -> np.ndarray:
    return np.random.default_rng((rank, step)).standard_normal(length).astype(np.float32)


def main() -> None:
    steps, backups, slow, length = (int(a) for a in sys.argv[1:5])
    world = MPI.COMM_WORLD
    rank, size = world.rank, world.size
    quorum = size - backups
    log = []
    with GradientEngine(world.Dup(), DenseReducer(world.Dup(), length), quorum) as engine:
        step = 0
        while step < steps:
            while (d := engine.decided(step)) is not None:  # missed steps: apply in order, no compute
                log.append(d)
                step += 1
            if step >= steps:
                break
            if rank == slow:
                time.sleep(0.1)  # well past any start-up skew between ranks on a loaded machine
            d = engine.submit(step, buffer(rank, step, length)).wait(timeout=60)
            log.append(d)
            step += 1
    errors = []
    for d in log:
        oracle = np.mean([buffer(m, d.step, length) for m in d.members], axis=0, dtype=np.float64)
        if len(d.members) != quorum:
            errors.append(f"step {d.step}: {len(d.members)} members, expected {quorum}")
        if slow >= 0 and backups > 0 and slow in d.members:
            errors.append(f"step {d.step}: slow rank {slow} is a member")
        if not np.allclose(d.grad, oracle, rtol=1e-5, atol=1e-6):
            errors.append(f"step {d.step}: applied buffer differs from the members' mean")
    mine = [(d.step, d.members, d.grad.tobytes()) for d in log]
    everyone = world.allgather(mine)
    if any(other != mine for other in everyone):
        errors.append("members or applied buffers differ between ranks")
    all_errors = world.allgather(errors)
    if rank == 0:
        bad = [f"rank {r}: {e}" for r, errs in enumerate(all_errors) for e in errs]
        print("\n".join(bad[:20]) if bad else f"OK {steps} steps, quorum {quorum} of {size}", flush=True)
    if any(all_errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
