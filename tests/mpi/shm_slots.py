"""Multi-rank check of the shm reducer's result slots, without the engine: nothing handed out is ever overwritten.

Run under mpirun: python tests/mpi/shm_slots.py STEPS LENGTH
Holders (training threads that never get round to applying) keep every result they get: rank r < K/H
from step H*r on (H = HELD_PER_RANK, K = VIEW_SLOTS), so together they pin every slot by step K; the
other ranks release at once. A holder must get slots for its first H held steps and copies after; once
every slot is pinned, every rank must get copies (the scratch slot); once all is released, slots again.
Every buffer ever handed out must still hold its step's exact sum at the end. Needs K/H + 1 ranks.
"""

import sys

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up in mpi4py
import numpy as np
from mpi4py import MPI

from backupsgd.shm_reducer import SharedMemoryReducer


def buffer(rank: int, step: int, length: int) -> np.ndarray:
    return np.random.default_rng((rank, step)).standard_normal(length).astype(np.float32)


def members_of(step: int, size: int) -> tuple[int, ...]:
    return tuple(r for r in range(size) if r != step % size)  # one rank left out, a different one each step


def main() -> None:
    steps, length = int(sys.argv[1]), int(sys.argv[2])
    world = MPI.COMM_WORLD
    reducer = SharedMemoryReducer(world.Dup(), length, partial=True)
    held, slots = SharedMemoryReducer.HELD_PER_RANK, SharedMemoryReducer.VIEW_SLOTS
    holds_from = held * world.rank if world.rank < slots // held else None
    errors, kept, got_slot = [], [], []
    for step in range(steps):
        members = members_of(step, world.size)
        out = reducer.reduce(members, buffer(world.rank, step, length) if world.rank in members else None)
        got_slot.append(any(np.shares_memory(out, r) for r in reducer._results))
        if holds_from is not None and step >= holds_from:
            kept.append((step, members, out))
        else:
            reducer.release(out)
    last_slot = slots if holds_from is None else min(slots, holds_from + held)
    expected = [step < last_slot for step in range(steps)]
    if got_slot != expected:
        errors.append(f"slot (not copy) at steps {got_slot}, expected {expected}")
    for step, members, out in kept:
        oracle = np.sum([buffer(m, step, length) for m in members], axis=0, dtype=np.float32)
        if not np.allclose(out, oracle, rtol=1e-6, atol=1e-6):
            errors.append(f"the result of step {step} changed after it was handed out")
    for _, _, out in kept:
        reducer.release(out)
    again = reducer.reduce(members_of(steps, world.size), buffer(world.rank, steps, length)
                           if world.rank in members_of(steps, world.size) else None)
    if not any(np.shares_memory(again, r) for r in reducer._results):
        errors.append("after releasing everything, a step still got a copy")
    reducer.release(again)
    reducer.close()
    all_errors = world.allgather(errors)
    if world.rank == 0:
        bad = [f"rank {r}: {e}" for r, errs in enumerate(all_errors) for e in errs]
        print("\n".join(bad[:20]) if bad else f"OK {steps} steps on {world.size} ranks", flush=True)
    if any(all_errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
