"""Multi-rank check of the members-only reducer: applied buffer == mean of the members' buffers.

Run under mpirun: python tests/mpi/fault_members_oracle.py STEPS BACKUPS SLOW_RANK LENGTH
As tests/mpi/engine_oracle.py, but only the members reduce and the others receive the result by
message; every rank must still see every step's result, in order. Exits non-zero on any mismatch.
(Whether the slow rank is left out depends on scheduling on a loaded machine; tests/test_training.py
checks that on whole runs.)
"""

import sys
import time

import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.reducers import MembersReducer


def buffer(rank: int, step: int, length: int) -> np.ndarray:
    return np.random.default_rng((rank, step)).standard_normal(length).astype(np.float32)


def main() -> None:
    steps, backups, slow, length = (int(a) for a in sys.argv[1:5])
    world = MPI.COMM_WORLD
    rank, size = world.rank, world.size
    quorum = size - backups
    log = []
    reducer = MembersReducer(world.Dup(), length)
    with GradientEngine(world.Dup(), reducer, quorum) as engine:
        step = 0
        while step < steps:
            while (d := engine.decided(step)) is not None:  # missed steps: apply in order, no compute
                log.append((d.step, d.members, d.grad.copy()))
                engine.pop(step)
                step += 1
            if step >= steps:
                break
            if rank == slow:
                time.sleep(0.03)
            d = engine.submit(step, buffer(rank, step, length)).wait(timeout=60)
            log.append((d.step, d.members, d.grad.copy()))
            engine.pop(step)
            step += 1
    errors = []
    for s, members, grad in log:
        oracle = np.mean([buffer(m, s, length) for m in members], axis=0, dtype=np.float64)
        if len(members) != quorum:
            errors.append(f"step {s}: {len(members)} members, expected {quorum}")
        if not np.allclose(grad, oracle, rtol=1e-5, atol=1e-6):
            errors.append(f"step {s}: applied buffer differs from the members' mean")
    if [s for s, _, _ in log] != list(range(steps)):
        errors.append("steps missing or out of order")
    mine = [(s, m, g.tobytes()) for s, m, g in log]
    if any(other != mine for other in world.allgather(mine)):
        errors.append("members or applied buffers differ between ranks")
    created = world.allgather(reducer.created)
    all_errors = world.allgather(errors)
    if rank == 0:
        bad = [f"rank {r}: {e}" for r, errs in enumerate(all_errors) for e in errs]
        print("\n".join(bad[:20]) if bad else f"OK {steps} steps, quorum {quorum} of {size}, "
              f"communicators created per rank {created}", flush=True)
    if any(all_errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
