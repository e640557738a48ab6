"""Multi-rank check of the members reducer's point-to-point ring: every subset of the ranks, sizes 1..P,
lengths shorter than, equal to and longer than the subset, against numpy's sum of the same buffers; the
members' results bit-identical (each slice is summed on one rank only). Also the up-front communicators:
prepare(N) makes one per set of N ranks, and a reduction over such a set goes through it.

Run under mpirun: python tests/mpi/ring_oracle.py. Prints OK and exits 0, else raises (the job aborts).
"""

import itertools

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up in mpi4py
import numpy as np
from mpi4py import MPI

from backupsgd.members_reducer import MembersReducer, ring_allreduce


def buffer(rank: int, length: int) -> np.ndarray:
    return np.random.default_rng((rank, length)).standard_normal(length).astype(np.float32)


def main() -> None:
    comm = MPI.COMM_WORLD.Dup()
    rank, size = comm.Get_rank(), comm.Get_size()
    checked = 0
    for n in range(1, size + 1):
        for tag, members in enumerate(itertools.combinations(range(size), n)):
            for length in (0, n - 1, n, 1000, 4099):
                got = np.full(length, np.nan, dtype=np.float32)
                if rank in members:
                    ring_allreduce(comm, members, rank, buffer(rank, length), got, tag)
                    expected = np.sum([buffer(r, length) for r in members], axis=0, dtype=np.float64)
                    np.testing.assert_allclose(got, expected.reshape(length), rtol=1e-5, atol=1e-5)
                digests = comm.allgather(got.tobytes() if rank in members else None)
                assert len({d for d in digests if d is not None}) == 1, (members, length)
                checked += 1
    reducer = MembersReducer(comm.Dup(), 1000, partial=True)
    reducer.prepare(size - 1)
    mine = [m for m in itertools.combinations(range(size), size - 1) if rank in m]
    assert sorted(reducer._sets) == mine, (sorted(reducer._sets), mine)
    for step, members in enumerate(itertools.combinations(range(size), size - 1)):
        local = buffer(rank, 1000) if rank in members else None
        total = reducer.reduce(members, local, step=step)
        np.testing.assert_allclose(total, np.sum([buffer(r, 1000) for r in members], axis=0), rtol=1e-5, atol=1e-5)
        reducer.release(total)
    reducer.close()
    if rank == 0:
        print(f"OK {checked} ring reductions on {size} ranks", flush=True)


if __name__ == "__main__":
    main()
