"""Reducers: turn one step's decision (who the members are) into the summed fused gradient."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Callable, Protocol

import numpy as np
from mpi4py import MPI

from backupsgd import polling

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


class MembersReducer:
    """Only the step's N members reduce, over a communicator of just them; each non-member then gets
    the result by a point-to-point message from one member (spread round-robin over the members).

    A non-member is never waited for, so a stopped or frozen worker holds nobody up. Communicators
    are cached by member set in an LRU that every rank updates for every step, member or not, so
    all members of a set agree on whether it must be created (MPI_Comm_create_group is collective
    over them); the cache is emptied on every rank whenever the set of behind ranks changes, as a
    rank that was behind missed updates.
    """

    name = "members"
    point_to_point = True

    def __init__(self, comm: MPI.Comm, length: int, partial: bool = False, cache_size: int = 64) -> None:
        self._comm = comm  # results travel here
        self._creator = comm.Dup()  # only Create_group runs here, so its internal messages never meet results
        self._world = comm.Get_group()
        self._tag_ub = int(comm.Get_attr(MPI.TAG_UB))
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._cache: OrderedDict[tuple[int, ...], MPI.Comm | None] = OrderedDict()
        self._cache_size = cache_size
        self._skip: tuple[int, ...] = ()
        self._pool = SendPool(length, BufferPool.SPARES)  # every rank takes one every step, member or not
        self.created = 0  # communicators created so far (the cache's misses)

    def reduce(self, members: tuple[int, ...], local: np.ndarray | None, *, step: int = 0,
               skip: tuple[int, ...] = (), stopping: Callable[[], bool] = lambda: False) -> np.ndarray:
        if tuple(skip) != self._skip:
            self.reset()
            self._skip = tuple(skip)
        sub = self._member_comm(members, step)
        out = self._pool.take()  # out of place: `local` is the training thread's, reused at once
        others = [r for r in range(self.size) if r not in members]
        if local is not None:
            sub.Allreduce(local, out, op=MPI.SUM)
            me = members.index(self.rank)
            for i, peer in enumerate(others):
                if i % len(members) == me and peer not in skip:
                    self._pool.track(out, self._comm.Isend(out, peer, TAG_RESULT))
        else:
            sender = members[others.index(self.rank) % len(members)]
            polling.wait(self._comm.Irecv(out, sender, TAG_RESULT), stopping)
        return out

    def _member_comm(self, members: tuple[int, ...], step: int) -> MPI.Comm | None:
        if members in self._cache:
            self._cache.move_to_end(members)
            return self._cache[members]
        sub = None
        if self.rank in members:
            group = self._world.Incl(list(members))
            # Distinct tags keep overlapping creations apart: a rank outside an earlier set may already
            # be creating this one while others still create the earlier one.
            sub = self._creator.Create_group(group, step % self._tag_ub)
            group.Free()
            self.created += 1
        self._cache[members] = sub
        if len(self._cache) > self._cache_size:
            _, old = self._cache.popitem(last=False)
            if old is not None:
                old.Free()  # local in practice (MPI advises implementors so); every member evicts at the same step
        return sub

    def release(self, buf: np.ndarray) -> None:
        self._pool.give(buf)

    def reset(self) -> None:
        for sub in self._cache.values():
            if sub is not None:
                sub.Free()
        self._cache.clear()

    def close(self) -> None:
        polling.wait_all(self._pool.pending())
        self.reset()
        self._creator.Free()
        self._world.Free()


def _horovod(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.hvd.reducer import HorovodReducer  # imports Horovod only when a run asks for it

    return HorovodReducer(comm, length, partial)


def _shared_memory(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.shm_reducer import SharedMemoryReducer  # that module builds on this one's BufferPool

    return SharedMemoryReducer(comm, length, partial)


# Each is made as REDUCERS[name](comm, length, partial): `partial` when steps may leave ranks out (N < P).
REDUCERS = {"dense": DenseReducer, "members": MembersReducer, "horovod": _horovod, "shm": _shared_memory}
