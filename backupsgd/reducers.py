"""Reducers: turn one step's decision (who the members are) into the averaged fused gradient."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from mpi4py import MPI


class Reducer(Protocol):
    def reduce(self, members: tuple[int, ...], local: np.ndarray | None) -> np.ndarray:
        """Sum of the members' buffers; `local` is this rank's buffer if it is a member, else None.

        Returns `local` itself when reduced in place, else a buffer from the reducer's pool.
        """

    def release(self, buf: np.ndarray) -> None:
        """Hand a returned buffer back once its step is applied (ignored if not the reducer's own)."""

    def close(self) -> None: ...


class BufferPool:
    """Zeroed result buffers for steps this rank does not contribute to.

    A buffer is zeroed when it is given back (after its step was applied), not when taken, so a
    non-member joins the reduction at once: the memset is off the critical path of the other ranks.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self._free: list[np.ndarray] = []
        self._owned: set[int] = set()

    def take(self) -> np.ndarray:
        if self._free:
            return self._free.pop()
        buf = np.zeros(self.length, dtype=np.float32)
        self._owned.add(id(buf))
        return buf

    def give(self, buf: np.ndarray) -> None:
        if id(buf) in self._owned and len(self._free) < 4:
            buf.fill(0.0)
            self._free.append(buf)


class DenseReducer:
    """Allreduce over every rank: members contribute their gradient, the others zeros, at once.

    A non-member calls the collective straight from its engine thread, so its own slow compute
    never delays the members; it needs the straggler's engine thread to be alive, though.
    """

    name = "dense"

    def __init__(self, comm: MPI.Comm, length: int) -> None:
        self._comm = comm
        self._pool = BufferPool(length)

    def reduce(self, members: tuple[int, ...], local: np.ndarray | None) -> np.ndarray:
        if local is not None:
            self._comm.Allreduce(MPI.IN_PLACE, local, op=MPI.SUM)
            return local
        out = self._pool.take()  # already zero: this rank's contribution
        self._comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
        return out

    def release(self, buf: np.ndarray) -> None:
        self._pool.give(buf)

    def close(self) -> None:
        pass


REDUCERS = {"dense": DenseReducer}
