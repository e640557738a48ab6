"""Multi-rank check under ULFM: a dense reduction that a rank's death interrupts either fails on a survivor or
gives it the exact sum of the members, never partial sums (which a survivor would apply as a step).

Run under `mpirun --with-ft ulfm`: python tests/mpi/interrupted_allreduce.py LENGTH SEED
The last rank is the victim: a non-member (it contributes zeros, as a dropped straggler's engine does) that
kills itself at a seeded moment while every rank reduces step after step. Each survivor prints one JSON line:
{"rank", "host", "steps" (reductions it checked), "outcome": "failed" | "partial" | "no failure"}.
"""

import json
import os
import random
import signal
import sys
import threading
import time

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up in mpi4py
import numpy as np
from mpi4py import MPI

from backupsgd.reducers import DenseReducer
from backupsgd.survivors import is_process_failure, revoke

DEADLINE_S = 60.0  # the victim dies within a few seconds; a survivor that never notices reports it


def main() -> None:
    length, seed = int(sys.argv[1]), int(sys.argv[2])
    comm = MPI.COMM_WORLD.Dup()
    comm.Set_errhandler(MPI.ERRORS_RETURN)
    rank, victim = comm.rank, comm.size - 1
    members = tuple(range(victim))
    expected = float(sum(r + 1 for r in members))
    reducer = DenseReducer(comm, length, partial=True)
    if rank == victim:
        delay = random.Random(seed).uniform(0.3, 1.5)
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
    buf = np.empty(length, dtype=np.float32)
    steps, outcome, start = 0, "no failure", time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        buf.fill(rank + 1)
        try:
            total = reducer.reduce(members, buf if rank in members else None)
        except MPI.Exception as exc:
            if not is_process_failure(exc):
                raise
            outcome = "failed"
            break
        if not np.all(total == expected):
            outcome = "partial"
            break
        reducer.release(total)
        steps += 1
    revoke(comm)  # a survivor still inside a reduction fails too, and reports
    print(json.dumps({"rank": rank, "host": MPI.Get_processor_name(), "steps": steps, "outcome": outcome}),
          flush=True)
    os._exit(0)  # MPI_Finalize with a dead rank is not what this checks


if __name__ == "__main__":
    main()
