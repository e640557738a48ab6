"""The `horovod` reducer: backup mode's vote stays ours, the sum of the fused buffer goes through Horovod."""

from __future__ import annotations

import numpy as np
import torch
from mpi4py import MPI

from backupsgd.hvd import runtime
from backupsgd.polling import Backoff
from backupsgd.reducers import BufferPool

# One name for every step: steps are reduced one after another, so the name is never pending twice,
# and a repeated name lets Horovod's response cache skip the negotiation after the first step.
TENSOR_NAME = "backupsgd.fused"


class HorovodReducer:
    """Dense allreduce (Sum) through Horovod: members contribute their buffer, the others zeros, at once.

    On a GPU cluster this is Horovod's NCCL path. The engine thread calls it; Horovod's enqueue and
    handle table are mutex-guarded, so any thread may, while Horovod's background thread does the work.
    """

    name = "horovod"

    def __init__(self, comm: MPI.Comm, length: int, partial: bool = False) -> None:
        self._hvd = runtime.init(comm)
        self._pool = BufferPool.for_exchange(length, partial)

    def reduce(self, members: tuple[int, ...], local: np.ndarray | None) -> np.ndarray:
        buf = local if local is not None else self._pool.take()  # the pool's buffers are already zero
        handle = self._hvd.allreduce_async_(torch.from_numpy(buf), name=TENSOR_NAME, op=self._hvd.Sum)
        # hvd.synchronize alone spins (yield in a loop, taking the GIL each turn), which starves the
        # training thread on a shared core; poll politely, then collect the finished handle.
        backoff = Backoff()
        while not self._hvd.poll(handle):
            backoff.pause()
        self._hvd.synchronize(handle)  # in place: `buf` (shared with the tensor) now holds the sum
        return buf

    def release(self, buf: np.ndarray) -> None:
        self._pool.give(buf)

    def close(self) -> None:
        pass  # Horovod stays up for the process (it may serve later exchanges) and stops at exit
