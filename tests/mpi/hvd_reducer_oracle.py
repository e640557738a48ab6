"""Multi-rank check of the Horovod reducer against the MPI one, under our own vote.

Run under mpirun (or horovodrun): python tests/mpi/hvd_reducer_oracle.py STEPS BACKUPS SLOW_RANK LENGTH
The engine runs backup mode with the Horovod reducer; every rank's buffer for a step is a known function
of (rank, step). Afterwards every step's members are reduced again by the MPI (dense) reducer, and both
sums must agree, equal the mean of the members' buffers, and be the same on every rank. Exits non-zero
on any mismatch.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.reducers import REDUCERS, DenseReducer


def buffer(rank: int, step: int, length: int) -> np.ndarray:
    return np.random.default_rng((rank, step)).standard_normal(length).astype(np.float32)


def main() -> None:
    steps, backups, slow, length = (int(a) for a in sys.argv[1:5])
    world = MPI.COMM_WORLD
    rank, size = world.rank, world.size
    quorum = size - backups
    log = []
    with GradientEngine(world.Dup(), REDUCERS["horovod"](world.Dup(), length), quorum) as engine:
        step = 0
        while step < steps:
            while (d := engine.decided(step)) is not None:  # missed steps: applied in order, no compute
                log.append(d)
                step += 1
            if step >= steps:
                break
            if rank == slow:
                time.sleep(0.5)  # far above the scheduling stalls of a loaded, oversubscribed machine
            log.append(engine.submit(step, buffer(rank, step, length)).wait(timeout=60))
            step += 1
    # The MPI reducer on the same member sets, step by step on every rank (members give their buffer).
    dense = DenseReducer(world.Dup(), length)
    errors, bitwise = [], True
    for d in log:
        mpi_total = dense.reduce(d.members, buffer(rank, d.step, length) if rank in d.members else None).copy()
        oracle = np.mean([buffer(m, d.step, length) for m in d.members], axis=0, dtype=np.float64)
        if len(d.members) != quorum:
            errors.append(f"step {d.step}: {len(d.members)} members, expected {quorum}")
        if slow >= 0 and backups > 0 and slow in d.members:
            errors.append(f"step {d.step}: slow rank {slow} is a member")
        if not np.allclose(d.total, mpi_total, rtol=1e-6, atol=1e-6):
            errors.append(f"step {d.step}: Horovod's sum differs from the MPI reducer's")
        bitwise = bitwise and np.array_equal(d.total, mpi_total)
        if not np.allclose(d.grad, oracle, rtol=1e-5, atol=1e-6):
            errors.append(f"step {d.step}: applied buffer differs from the members' mean")
    mine = [(d.step, d.members, d.total.tobytes()) for d in log]
    if any(other != mine for other in world.allgather(mine)):
        errors.append("members or applied buffers differ between ranks")
    all_errors = world.allgather(errors)
    if rank == 0:
        bad = [f"rank {r}: {e}" for r, errs in enumerate(all_errors) for e in errs]
        print("\n".join(bad[:20]) if bad else f"OK {steps} steps, quorum {quorum} of {size}, "
              f"{'bitwise' if bitwise else 'float-close'} to the MPI reducer", flush=True)
    if any(all_errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
