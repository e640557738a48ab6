"""Reducers: turn one step's decision (who the members are) into the summed fused gradient."""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

import numpy as np
from mpi4py import MPI

TAG_RESULT = 21


class Reducer(Protocol):
    def reduce(self, members: tuple[int, ...], local: np.ndarray | None) -> np.ndarray:
        """Sum of the members' buffers; `local` is this rank's buffer if it is a member, else None.

        Returns `local` itself when reduced in place, else a buffer the reducer owns (from its pool, or a
        shared result slot) until release().
        """

    def release(self, buf: np.ndarray) -> None:
        """Hand a returned buffer back once its step is applied (ignored if not the reducer's own)."""

    def close(self) -> None: ...

    # A reducer with `point_to_point = True` delivers results to non-members by message, so the engine
    # calls it as reduce(members, local, step=, skip=, stopping=) (`skip`: ranks marked behind, sent
    # nothing) and calls reset() when this rank was resynchronised. Others are called as above.
    # A reducer may also offer staging_buffer(): where the training thread should compute its fused
    # gradient so that reduce() needs no copy of it (the shm reducer's segment of the node's window).


def _zero(buf: np.ndarray) -> None:
    # Through a byte view numpy calls memset, about twice as fast as filling float32 element by element.
    buf.view(np.uint8).fill(0)


def written_through(length: int) -> np.ndarray:
    """A zeroed float32 buffer whose pages are already mapped.

    np.zeros would leave its pages to be faulted in by the first reduction that writes them, while
    every other rank waits. Make these on the training thread (a reducer's constructor): a buffer
    made on the engine thread lands in that thread's malloc arena, and glibc then maps and unmaps a
    heap around Open MPI's temporaries in every reduction (16 MiB, 4 ranks: 1,500-2,000 page faults
    per step on every rank, against none).
    """
    buf = np.empty(length, dtype=np.float32)
    _zero(buf)
    return buf


class BufferPool:
    """Zeroed result buffers for steps this rank does not contribute to.

    A buffer is zeroed when it is given back (after its step was applied), not when taken, so a
    non-member joins the reduction at once: the memset is off the critical path of the other ranks.
    `spares` buffers are made up front (see `written_through`); more only if steps outrun them.
    """

    SPARES = 2  # the steady state: one reduced into while the training thread still applies the previous
    KEPT = 4  # at most this many are kept for reuse

    def __init__(self, length: int, spares: int = 0) -> None:
        self.length = length
        self._owned: set[int] = set()
        self._free = [self._new() for _ in range(spares)]

    @classmethod
    def for_exchange(cls, length: int, partial: bool) -> "BufferPool":
        """The pool of a reducer whose steps may leave ranks out (`partial`: N < P); sync never takes one."""
        return cls(length, cls.SPARES if partial else 0)

    def take(self) -> np.ndarray:
        return self._free.pop() if self._free else self._new()

    def give(self, buf: np.ndarray) -> None:
        if id(buf) not in self._owned:
            return
        if len(self._free) < self.KEPT:
            _zero(buf)
            self._free.append(buf)
        else:  # dropped: a later array may get its id, and must not be mistaken for ours
            self._owned.discard(id(buf))

    def _new(self) -> np.ndarray:
        buf = written_through(self.length)
        self._owned.add(id(buf))
        return buf


class DenseReducer:
    """Allreduce over every rank: members contribute their gradient, the others zeros, at once.

    A non-member calls the collective straight from its engine thread, so its own slow compute
    never delays the members; it needs the straggler's engine thread to be alive, though.
    """

    name = "dense"

    def __init__(self, comm: MPI.Comm, length: int, partial: bool = False) -> None:
        self._comm = comm
        self._pool = BufferPool.for_exchange(length, partial)

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


class SendPool:
    """Result buffers that point-to-point sends may still be reading: one is reused only once its sends completed.

    The training thread gives buffers back (after applying their step) while the engine thread takes
    them, hence the lock.
    """

    def __init__(self, length: int, spares: int = 0) -> None:
        self.length = length
        self._lock = threading.Lock()
        self._owned: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()
        self._sends: dict[int, list[MPI.Request]] = {}
        self._returned: list[np.ndarray] = []
        self._free: list[np.ndarray] = []
        for _ in range(spares):
            self._free.append(self._new())

    def take(self) -> np.ndarray:
        with self._lock:
            busy = []
            for buf in self._returned:
                sends = self._sends.get(id(buf), [])
                if sends and not MPI.Request.Testall(sends):
                    busy.append(buf)
                    continue
                self._sends.pop(id(buf), None)
                if len(self._free) < BufferPool.KEPT:
                    self._free.append(buf)
            self._returned = busy
            return self._free.pop() if self._free else self._new()

    def _new(self) -> np.ndarray:
        buf = written_through(self.length)  # see there: pages mapped up front, on the training thread
        self._owned[id(buf)] = buf
        return buf

    def track(self, buf: np.ndarray, request: MPI.Request) -> None:
        with self._lock:
            self._sends.setdefault(id(buf), []).append(request)

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            if self._owned.get(id(buf)) is buf:
                self._returned.append(buf)

    def pending(self) -> list[MPI.Request]:
        with self._lock:
            return [r for sends in self._sends.values() for r in sends]


def _horovod(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.hvd.reducer import HorovodReducer  # imports Horovod only when a run asks for it

    return HorovodReducer(comm, length, partial)


def _members(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.members_reducer import MembersReducer  # that module builds on this one's pools

    return MembersReducer(comm, length, partial)


def _shared_memory(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.shm_reducer import SharedMemoryReducer  # that module builds on this one's BufferPool

    return SharedMemoryReducer(comm, length, partial)


def _auto(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.shm_reducer import auto_reducer  # shm on one node with room in /dev/shm, else dense

    return auto_reducer(comm, length, partial)


# Each is made as REDUCERS[name](comm, length, partial): `partial` when steps may leave ranks out (N < P).
REDUCERS = {"dense": DenseReducer, "members": _members, "horovod": _horovod, "shm": _shared_memory,
            "auto": _auto}
