"""Reducers: turn one step's decision (who the members are) into the summed fused gradient."""

from __future__ import annotations

import queue
import threading
import time
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


class _Worker:
    """A thread that runs member reductions one at a time, so the engine thread can stop waiting for one.

    A blocking MPI_Allreduce cannot be abandoned; a thread blocked in it can be left there. It returns when
    the member that stopped answering makes its own call (every member of an abandoned step still makes it,
    see MembersReducer), and the worker is then free again. Its calls are Open MPI's tuned blocking
    collectives, the ones the reducer always used: a nonblocking MPI_Iallreduce polled with a deadline was
    1.7x slower at 1 MiB here (libnbc's schedule, advanced only while polled).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="backupsgd-members", daemon=True)
        self._thread.start()

    def submit(self, job: "_Job") -> None:
        self.busy = True
        self._jobs.put(job)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.run()
            except BaseException as exc:  # raised on the engine thread by Pending.result()
                job.error = exc
            self.busy = False
            job.done.set()

    def stop(self, timeout: float) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)  # one still blocked in an abandoned reduction is left (a daemon thread)


class _SubComm:
    """A member set's communicator, made on a worker thread by the first reduction that needs it."""

    def __init__(self, members: tuple[int, ...]) -> None:
        self.members = members
        self.comm: MPI.Comm | None = None
        self.last: "_Job | None" = None  # the latest reduction on it: the next one waits for it (same order everywhere)

    def idle(self) -> bool:
        return self.last is None or self.last.done.is_set()

    def free(self) -> None:
        if self.comm is not None:
            self.comm.Free()  # local in practice (MPI advises implementors so); every member frees it at the same step
            self.comm = None


class _Job:
    def __init__(self, run: Callable[[], None]) -> None:
        self.run, self.done, self.error = run, threading.Event(), None


class Pending:
    """This rank's part of one step's reduction, under way: wait for it with a deadline, then take the
    result or abandon it. A member's part runs on a worker thread; a non-member's is a receive."""

    def __init__(self, reducer: "MembersReducer", out: np.ndarray, job: _Job | None = None,
                 request: MPI.Request | None = None, sender: int = -1, sends: list[int] = (),
                 tag: int = 0) -> None:
        self._reducer, self.out, self._job, self._request = reducer, out, job, request
        self.sender, self._sends, self._tag = sender, sends, tag  # non-member: who sends; member: whom to send to

    def wait(self, timeout: float | None, stopping: Callable[[], bool]) -> bool:
        """True once this rank's part is done; False if `timeout` seconds passed first."""
        if self._job is not None:
            return self._job.done.wait(timeout)
        if timeout is None:
            polling.wait(self._request, stopping)
            return True
        deadline, backoff = time.perf_counter() + timeout, polling.Backoff()
        while not self._request.Test():
            if stopping():
                raise polling.Stopped
            if time.perf_counter() > deadline:
                return False
            backoff.pause()
        return True

    def result(self) -> np.ndarray:
        """The members' sum; a member then sends it to the non-members it serves (only an accepted result
        ever leaves this rank, so no rank receives a form of a step that was decided again)."""
        if self._job is not None:
            if self._job.error is not None:
                raise self._job.error
            for peer in self._sends:
                self._reducer._pool.track(self.out, self._reducer._comm.Isend(self.out, peer, self._tag))
        return self.out

    def abandon(self, sender_may_send: bool) -> None:
        """Stop waiting. A member's reduction runs on in its worker (the member that stopped answering makes
        its call when it answers again); a non-member's receive is cancelled, unless its sender may have
        accepted the step and sent the result (`sender_may_send`): then it is kept until closing, so that
        send completes."""
        self._reducer._abandoned(self, sender_may_send)


class MembersReducer:
    """Only the step's N members reduce, over a communicator of just them; each non-member then gets
    the result by a point-to-point message from one member (spread round-robin over the members).

    A non-member is never waited for, so a stopped or frozen worker holds nobody up. A member that stops
    answering inside the reduction is bounded by the engine's member timeout: each member's part runs on
    a worker thread (see _Worker) that the engine thread waits for with a deadline, and abandons when the
    step is decided again. Every member of a set still calls each reduction on its communicator, in the
    same order, so an abandoned one ends when the late member answers. Communicators are cached by member
    set in an LRU that every rank updates for every step, member or not, so all members of a set agree on
    whether it must be created (MPI_Comm_create_group is collective over them); the cache is emptied on
    every rank whenever the set of behind ranks changes, as a rank that was behind missed updates, and a
    step decided again always changes it.

    A set's communicator is created on the engine thread, blocking, the first time the set reduces: Open MPI
    serialises concurrent communicator creations within a process, so a creation left blocked on a worker
    thread stopped every later one (a deadlock in 1 of 2 stress runs with a 3 ms timeout). So a member that
    freezes while a *new* member set is being created (the set's first step, or the first after a rank fell
    behind or came back) still holds the other members of that set until it answers: the one window left.
    """

    name = "members"
    point_to_point = True
    TIMEOUT_S, TIMEOUT_PER_MIB_S = 0.5, 0.02  # the automatic member timeout: 0.5 s + 20 ms per MiB of buffer

    def __init__(self, comm: MPI.Comm, length: int, partial: bool = False, cache_size: int = 64) -> None:
        self._comm = comm  # results travel here
        self._creator = comm.Dup()  # only Create_group runs here, so its internal messages never meet results
        self._world = comm.Get_group()
        self._tag_ub = int(comm.Get_attr(MPI.TAG_UB))
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._cache: OrderedDict[tuple[int, ...], _SubComm] = OrderedDict()
        self._cache_size = cache_size
        self._skip: tuple[int, ...] = ()
        self._epoch = 0
        self._pool = SendPool(length, BufferPool.SPARES)  # every rank takes one every step, member or not
        self._workers: list[_Worker] = []
        self._retired: list[_SubComm] = []  # out of the cache, freed once their last reduction has ended
        self._kept: list[MPI.Request] = []  # receives of abandoned steps whose sender may still send
        self.created = 0  # communicators created so far (the cache's misses)

    def default_timeout(self) -> float:
        return self.TIMEOUT_S + self.TIMEOUT_PER_MIB_S * self._pool.length * 4 / (1 << 20)

    def _tag(self, step: int, round_: int) -> int:
        """A tag per (step, round), so a result of a step decided again can never match another's receive."""
        return (TAG_RESULT + 16 * step + round_ % 16) % self._tag_ub

    def reduce(self, members: tuple[int, ...], local: np.ndarray | None, *, step: int = 0,
               skip: tuple[int, ...] = (), stopping: Callable[[], bool] = lambda: False) -> np.ndarray:
        """The blocking form: start() and wait without a deadline."""
        pending = self.start(members, local, step=step, skip=skip)
        pending.wait(None, stopping)
        return pending.result()

    def start(self, members: tuple[int, ...], local: np.ndarray | None, *, step: int = 0, round_: int = 0,
              skip: tuple[int, ...] = (), epoch: int = 0, hold: threading.Event | None = None) -> Pending:
        """Begin this rank's part of the reduction of (`step`, `round_`) over `members`; `hold`, if given,
        keeps a member's part from entering the reduction until it is set (an injected freeze). The cache is
        emptied whenever `skip` or `epoch` changes (the coordinator's Vote.epoch)."""
        if (tuple(skip), epoch) != (self._skip, self._epoch):
            self.reset()
            self._skip, self._epoch = tuple(skip), epoch
        self._sweep()
        sub = self._member_comm(members)
        out = self._pool.take()  # out of place: `local` is the training thread's, reused once decided
        others = [r for r in range(self.size) if r not in members]
        tag = self._tag(step, round_)
        if local is None:
            sender = members[others.index(self.rank) % len(members)]
            return Pending(self, out, request=self._comm.Irecv(out, sender, tag), sender=sender)
        me = members.index(self.rank)
        sends = [peer for i, peer in enumerate(others) if i % len(members) == me and peer not in skip]
        if sub.comm is None:  # on this thread: see the docstring (a residual window)
            group = self._world.Incl(list(members))
            # Distinct tags keep overlapping creations apart: a rank outside an earlier set may already
            # be creating this one while others still create the earlier one.
            sub.comm = self._creator.Create_group(group, (16 * step + round_ % 16) % self._tag_ub)
            group.Free()
            self.created += 1
        before, comm = sub.last, sub.comm

        def run() -> None:
            if before is not None:
                before.done.wait()
            if hold is not None:
                hold.wait()
            comm.Allreduce(local, out, op=MPI.SUM)

        job = _Job(run)
        sub.last = job
        worker = next((w for w in self._workers if not w.busy), None)
        if worker is None:  # the first step, or a worker still blocked in an abandoned reduction
            worker = _Worker()
            self._workers.append(worker)
        worker.submit(job)
        return Pending(self, out, job=job, sends=sends, tag=tag)

    def _abandoned(self, pending: Pending, sender_may_send: bool) -> None:
        if pending._request is not None:
            if sender_may_send:
                self._kept.append(pending._request)
            else:
                pending._request.Cancel()
                pending._request.Wait()
        # A member's `out` stays with its job, never back in the pool: the abandoned reduction may still write it.

    def _sweep(self) -> None:
        done = [sub for sub in self._retired if sub.idle()]
        for sub in done:
            sub.free()
        self._retired = [sub for sub in self._retired if sub not in done]
        self._kept = [r for r in self._kept if not r.Test()]

    def _member_comm(self, members: tuple[int, ...]) -> _SubComm:
        if members in self._cache:
            self._cache.move_to_end(members)
            return self._cache[members]
        sub = self._cache[members] = _SubComm(members)  # made by the first reduction on it (members only)
        if len(self._cache) > self._cache_size:
            _, old = self._cache.popitem(last=False)
            self._retired.append(old)  # every member evicts it at the same step
        return sub

    def release(self, buf: np.ndarray) -> None:
        self._pool.give(buf)

    def reset(self) -> None:
        self._retired.extend(self._cache.values())
        self._cache.clear()
        self._sweep()

    def close(self, timeout: float = 10.0) -> None:
        polling.wait_all(self._pool.pending())
        for request in self._kept:  # a sender that never accepted its step never sends
            request.Cancel()
            request.Wait()
        self._kept = []
        self.reset()
        deadline = time.perf_counter() + timeout
        for worker in self._workers:
            worker.stop(max(0.0, deadline - time.perf_counter()))
        self._sweep()  # what is still in use by an abandoned reduction that never ended is left to MPI_Finalize
        self._creator.Free()
        self._world.Free()


def _horovod(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.hvd.reducer import HorovodReducer  # imports Horovod only when a run asks for it

    return HorovodReducer(comm, length, partial)


def _shared_memory(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.shm_reducer import SharedMemoryReducer  # that module builds on this one's BufferPool

    return SharedMemoryReducer(comm, length, partial)


def _auto(comm: MPI.Comm, length: int, partial: bool = False) -> Reducer:
    from backupsgd.shm_reducer import auto_reducer  # shm on one node with room in /dev/shm, else dense

    return auto_reducer(comm, length, partial)


# Each is made as REDUCERS[name](comm, length, partial): `partial` when steps may leave ranks out (N < P).
REDUCERS = {"dense": DenseReducer, "members": MembersReducer, "horovod": _horovod, "shm": _shared_memory,
            "auto": _auto}
