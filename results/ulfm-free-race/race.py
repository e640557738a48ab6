"""Open MPI 5.0 (ULFM): does MPI_Comm_free on one thread race the process-failure handling on another?

Rank 0 kills itself 0.3 s after a barrier. Every other rank blocks one thread in an Allreduce that rank 0 never
joins (its MPI progress is what handles rank 0's failure), while the main thread frees, from `delay` s on, the
COUNT - 1 other duplicates of the world (each holds rank 0), or frees nothing (`keep`). Usage (under
`mpirun --with-ft ulfm -n 4`): race.py COUNT free|keep DELAY_S. Each rank prints when its Allreduce failed and
when it freed; a crash shows as Open MPI's "Segmentation fault" report.
"""

import os
import signal
import sys
import threading
import time

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
count, free, delay = int(sys.argv[1]), sys.argv[2] == "free", float(sys.argv[3])
dups = [world.Dup() for _ in range(count)]
for dup in dups:
    dup.Set_errhandler(MPI.ERRORS_RETURN)
world.Barrier()
start = time.monotonic()
if world.rank == 0:
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)


def blocked() -> None:
    try:
        dups[-1].Allreduce(MPI.IN_PLACE, np.ones(4))  # a numpy buffer: mpi4py releases the GIL while it waits
    except MPI.Exception as exc:
        print(f"rank {world.rank}: Allreduce failed at {time.monotonic() - start:.3f} s: {exc}", flush=True)


thread = threading.Thread(target=blocked, daemon=True)
thread.start()
time.sleep(delay)
if free:
    began = time.monotonic() - start
    for dup in reversed(dups[:-1]):
        dup.Free()
    print(f"rank {world.rank}: freed {count - 1} from {began:.3f} to {time.monotonic() - start:.3f} s", flush=True)
thread.join(10)
os._exit(0)  # a survivor of a death does not finalize (backupsgd.survivors.leave_if_shrunk says why)
