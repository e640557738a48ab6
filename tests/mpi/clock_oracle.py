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
    clock = lambda: time.perf_counter() + shift_of(comm.rank)  # noqa: E731
    shifted = offset_to_root(comm, clock=clock)
    # a rank that started its run about 0.7 s * rank later than rank 0 (on the same clock): a time since
    # its start, plus the offset, is a time since rank 0's start, so the offset is the starts' difference
    start = time.perf_counter() + 0.7 * comm.rank
    since_start = run_clock_offset(comm, start)
    # the same through the shifted clocks: the shift cancels, as the offset to rank 0's clock absorbs it
    start_shifted = clock()
    since_shifted = run_clock_offset(comm, start_shifted, clock=clock)
    results = comm.gather((comm.rank, plain, shifted, since_start, start, since_shifted, start_shifted), root=0)
    if comm.rank != 0:
        return 0
    failures = []
    root_start, root_shifted = results[0][4], results[0][6]
    for rank, plain, shifted, since_start, start, since_shifted, start_shifted in results:
        checks = (("plain", plain, 0.0), ("shifted", shifted, -shift_of(rank)),
                  ("since start", since_start, start - root_start),
                  ("since start, shifted", since_shifted, start_shifted - shift_of(rank) - root_shifted))
        for name, got, want in checks:
            if abs(got - want) > TOLERANCE_S:
                failures.append(f"rank {rank} {name}: offset {got:.6f} s, want {want:.6f} s +- {TOLERANCE_S} s")
    for line in failures:
        print(line, flush=True)
    if not failures:
        print("ok " + " ".join(f"{r}:{p * 1e6:.1f}us" for r, p, *_ in results), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    code = main()
    MPI.COMM_WORLD.Barrier()
    sys.exit(code)
