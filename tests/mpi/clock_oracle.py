"""Multi-rank check of backupsgd.clock: python tests/mpi/clock_oracle.py (under mpirun, 2+ ranks on one machine).

Oracle: all ranks run on this machine, where time.perf_counter() is the system-wide CLOCK_MONOTONIC,
so the true offset between two ranks' perf_counter is 0; a rank whose clock is shifted by a known
amount must get minus that shift back. Every rank's results are gathered and checked on rank 0,
which prints one line per failure and exits 1 (the others exit with it).
"""

import sys
import time

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up
from mpi4py import MPI

from backupsgd.clock import offset_to_root, run_clock_offset

TOLERANCE_S = 0.005  # half the best of 16 round trips is microseconds; a loaded 2-core machine needs slack


def shift_of(rank: int) -> float:
    return 3.25 * rank  # seconds: large against any scheduling noise, a different one per rank


def main() -> int:
    comm = MPI.COMM_WORLD
    plain = offset_to_root(comm)
    shifted = offset_to_root(comm, clock=lambda: time.perf_counter() + shift_of(comm.rank))
    # a rank that started its run 0.7 s * rank later than rank 0 (on the same clock)
    start = time.perf_counter() + 0.7 * comm.rank
    since_start = run_clock_offset(comm, start)
    results = comm.gather((comm.rank, plain, shifted, since_start), root=0)
    if comm.rank != 0:
        return 0
    failures = []
    for rank, plain, shifted, since_start in results:
        checks = (("plain", plain, 0.0), ("shifted", shifted, -shift_of(rank)),
                  ("since start", since_start, 0.7 * rank))
        for name, got, want in checks:
            if abs(got - want) > TOLERANCE_S:
                failures.append(f"rank {rank} {name}: offset {got:.6f} s, want {want:.6f} s +- {TOLERANCE_S} s")
    for line in failures:
        print(line, flush=True)
    if not failures:
        print("ok " + " ".join(f"{r}:{p * 1e6:.1f}us" for r, p, _, _ in results), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    code = main()
    MPI.COMM_WORLD.Barrier()
    sys.exit(code)
