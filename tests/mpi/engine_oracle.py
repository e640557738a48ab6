"""Multi-rank check of the engine with any reducer: applied buffer == mean of the members' buffers.

Run under mpirun (or horovodrun): python tests/mpi/engine_oracle.py STEPS BACKUPS SLOW_RANK LENGTH [REDUCER]
(REDUCER shm:K: the shm reducer with nodes of K consecutive ranks, so the cross-node path runs on one machine)
Every rank's buffer for a step is a known function of (rank, step), so each rank can compute the oracle
for any member set. Checks, gathered so that every rank agrees: N members each step, the slow rank never
one of them (it sleeps far longer than any start-up skew), the mean exact, every step seen once and in
order, and members and sums identical on every rank. With REDUCER=horovod the sums must also equal the
MPI (dense) reducer's on the same member sets. Exits non-zero on any mismatch.
"""

import sys
import time

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up in mpi4py
import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.reducers import REDUCERS, DenseReducer
from backupsgd.shm_reducer import SharedMemoryReducer

SLOW_SLEEP_S = 0.3  # far above the scheduling stalls of a loaded, oversubscribed machine


def buffer(rank: int, step: int, length: int) -> np.ndarray:
    return np.random.default_rng((rank, step)).standard_normal(length).astype(np.float32)


def drive(engine: GradientEngine, rank: int, slow: int, steps: int, length: int) -> list:
    """The training loop's shape: missed steps are applied in order without compute, and a gradient is
    written where training computes it (the reducer's staging buffer, if it has one)."""
    log, step = [], 0
    staging = engine.staging_buffer()
    while step < steps:
        while step < steps and (d := engine.decided(step)) is not None:
            log.append((d.step, d.members, d.total.copy()))
            engine.pop(step)
            step += 1
        if step >= steps:
            break
        if rank == slow:
            time.sleep(SLOW_SLEEP_S)
        offer = buffer(rank, step, length)
        if staging is not None:  # written while other ranks may be reducing steps decided without this one
            np.copyto(staging, offer)
            offer = staging
        d = engine.submit(step, offer).wait(timeout=60)
        log.append((d.step, d.members, d.total.copy()))
        engine.pop(step)
        step += 1
    return log


def check(log: list, quorum: int, slow: int, length: int) -> list[str]:
    errors = []
    if [s for s, _, _ in log] != list(range(len(log))):
        errors.append("steps missing or out of order")
    for step, members, total in log:
        oracle = np.mean([buffer(m, step, length) for m in members], axis=0, dtype=np.float64)
        if len(members) != quorum:
            errors.append(f"step {step}: {len(members)} members, expected {quorum}")
        if slow in members and quorum < MPI.COMM_WORLD.size:
            errors.append(f"step {step}: slow rank {slow} is a member")
        if not np.allclose(total / np.float32(len(members)), oracle, rtol=1e-5, atol=1e-6):
            errors.append(f"step {step}: applied buffer differs from the members' mean")
    return errors


def against_dense(world: MPI.Comm, log: list, length: int) -> list[str]:
    """The dense MPI reducer on the same member sets (members give their buffer) must give the same sums."""
    dense = DenseReducer(world.Dup(), length)
    errors = []
    for step, members, total in log:
        mine = buffer(world.rank, step, length) if world.rank in members else None
        if not np.allclose(total, dense.reduce(members, mine), rtol=1e-6, atol=1e-6):
            errors.append(f"step {step}: the sum differs from the MPI reducer's")
    return errors


def main() -> None:
    steps, backups, slow, length = (int(a) for a in sys.argv[1:5])
    reducer_name = sys.argv[5] if len(sys.argv) > 5 else "dense"
    world = MPI.COMM_WORLD
    quorum = world.size - backups
    if reducer_name.startswith("shm:"):
        reducer = SharedMemoryReducer(world.Dup(), length, ranks_per_node=int(reducer_name[4:]))
    else:
        reducer = REDUCERS[reducer_name](world.Dup(), length)
    with GradientEngine(world.Dup(), reducer, quorum) as engine:
        log = drive(engine, world.rank, slow, steps, length)
    errors = check(log, quorum, slow, length)
    if reducer_name != "dense":
        errors += against_dense(world, log, length)
    mine = [(s, m, t.tobytes()) for s, m, t in log]
    if any(other != mine for other in world.allgather(mine)):
        errors.append("members or applied buffers differ between ranks")
    all_errors = world.allgather(errors)
    copied = world.allreduce(getattr(reducer, "copied_steps", 0), op=MPI.MAX)  # shm: steps with every slot held
    if world.rank == 0:
        bad = [f"rank {r}: {e}" for r, errs in enumerate(all_errors) for e in errs]
        print("\n".join(bad[:20]) if bad else f"OK {steps} steps, quorum {quorum} of {world.size}, "
              f"reducer {reducer_name}, copied steps {copied}", flush=True)
    if any(all_errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
