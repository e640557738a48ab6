"""The members-only reducer: each step's members reduce among themselves, the others get the result by message.

Nothing here ever waits on a rank outside the step's members. A member's part runs on the calling thread (the
engine's, which a standby thread replaces if the part overruns the member timeout: standby.py), and the
communicators it runs on all exist before the first step. Communicator creation
(`MPI_Comm_create_group`) is collective over the new communicator's ranks and cannot be abandoned, so it
is never done while training runs: a member frozen at that moment would hold the others until it answered.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from typing import Callable

import numpy as np
from mpi4py import MPI

from backupsgd import polling
from backupsgd.reducers import TAG_RESULT, BufferPool, SendPool


class _Job:
    def __init__(self, run: Callable[[], None]) -> None:
        self._run, self.done, self.error = run, threading.Event(), None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # raised by Pending.result(), on whichever thread takes the step on
            self.error = exc
        self.done.set()


class _SetComm:
    """The communicator of one member set, made before training; its reductions run in the same order on
    every member (each waits for the one before it), as MPI requires of collectives on one communicator."""

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.last: _Job | None = None

    def idle(self) -> bool:
        return self.last is None or self.last.done.is_set()


def ring_allreduce(comm: MPI.Comm, members: tuple[int, ...], rank: int, local: np.ndarray, out: np.ndarray,
                   tag: int) -> None:
    """`out` = the members' sum of `local`, by point-to-point messages on `comm` under `tag` (a ring:
    reduce-scatter, then allgather). Each slice is summed once, on one rank, and copied to the others, so
    every member gets the same bits. Needs no communicator of the members' own."""
    np.copyto(out, local)
    n = len(members)
    if n == 1:
        return
    i = members.index(rank)
    right, left = members[(i + 1) % n], members[(i - 1) % n]
    edges = [len(out) * k // n for k in range(n + 1)]

    def piece(k: int) -> np.ndarray:
        k %= n
        return out[edges[k]: edges[k + 1]]

    incoming = np.empty(edges[1] - edges[0] + 1, dtype=out.dtype)
    for s in range(n - 1):  # after it, piece(i + 1) holds the full sum on this rank
        mine = piece(i - s - 1)
        comm.Sendrecv(piece(i - s), right, tag, incoming[: len(mine)], left, tag)
        mine += incoming[: len(mine)]
    for s in range(n - 1):
        comm.Sendrecv(piece(i + 1 - s), right, tag, piece(i - s), left, tag)


class Pending:
    """This rank's part of one step's reduction: run it (a member's; a non-member's is a receive, already
    posted), wait for it with a deadline, then take the result or abandon it."""

    def __init__(self, reducer: "MembersReducer", out: np.ndarray, job: _Job | None = None,
                 request: MPI.Request | None = None, sender: int = -1, sends: list[int] = (),
                 tag: int = 0) -> None:
        self._reducer, self.out, self._job, self._request = reducer, out, job, request
        self.sender, self._sends, self._tag = sender, sends, tag  # non-member: who sends; member: whom to send to

    def run(self) -> None:
        """A member's part, on this thread (blocking); nothing for a non-member."""
        if self._job is not None:
            self._job.run()

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
        """Stop waiting. A member's reduction runs on in the thread blocked in it (the member that stopped
        answering makes its call when it answers again); a non-member's receive is cancelled, unless its sender may have
        accepted the step and sent the result (`sender_may_send`): then it is kept until closing, so that
        send completes."""
        self._reducer._abandoned(self, sender_may_send)


class MembersReducer:
    """Only the step's members reduce; each non-member then gets the result by a point-to-point message from
    one member (spread round-robin over the members). A non-member is never waited for, so a stopped or
    frozen worker holds nobody up.

    Every set of N ranks gets its communicator up front (`prepare`, collective, before the first step) when
    there are at most PREMADE_MAX such sets, and reduces with MPI's tuned allreduce on it. Any other set (a
    step decided again with fewer members, or too many sets to make) reduces point-to-point, by a ring over
    a communicator of all ranks with a tag per (step, round). So no communicator is made while training runs.

    A member that stops answering inside the reduction is bounded by the engine's member timeout: a part that
    overruns it is left blocked in its thread (a standby thread takes the engine's place, standby.py) and
    abandoned when the step is decided again. Every member of a step still makes its call (decisions are
    taken in order), so an abandoned reduction ends when the late member answers.
    """

    name = "members"
    point_to_point = True
    TIMEOUT_S, TIMEOUT_PER_MIB_S = 0.5, 0.02  # the automatic member timeout: 0.5 s + 20 ms per MiB of buffer
    # Sets of N ranks given a communicator up front: C(P, N) of them (4 at P = 4, b = 1; 28 at P = 8, b = 2).
    # Beyond, every step reduces by the ring (slower than MPI's allreduce), never by a communicator made late.
    PREMADE_MAX = 64

    def __init__(self, comm: MPI.Comm, length: int, partial: bool = False) -> None:
        self._comm = comm  # results travel here
        self._ring = comm.Dup()  # reductions by message (and the up-front creations): never meets a result
        self._tag_ub = int(comm.Get_attr(MPI.TAG_UB))
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._sets: dict[tuple[int, ...], _SetComm] = {}
        self._pool = SendPool(length, BufferPool.SPARES)  # every rank takes one every step, member or not
        self._kept: list[MPI.Request] = []  # receives of abandoned steps whose sender may still send

    def prepare(self, quorum: int) -> None:
        """Make the communicator of every set of `quorum` ranks this rank belongs to (collective: every rank
        calls it once, before the first step), unless there are more than PREMADE_MAX sets."""
        if quorum < 2 or math.comb(self.size, quorum) > self.PREMADE_MAX:
            return
        world = self._ring.Get_group()
        # Every rank walks the sets in the same order, so each creation's members all reach it (no cycle).
        for i, members in enumerate(itertools.combinations(range(self.size), quorum)):
            if self.rank in members:
                group = world.Incl(list(members))
                self._sets[members] = _SetComm(self._ring.Create_group(group, i % self._tag_ub))
                group.Free()
        world.Free()

    def default_timeout(self) -> float:
        return self.TIMEOUT_S + self.TIMEOUT_PER_MIB_S * self._pool.length * 4 / (1 << 20)

    def _tag(self, step: int, round_: int) -> int:
        """A tag per (step, round), so a message of a step decided again can never match another's receive."""
        return (TAG_RESULT + 16 * step + round_ % 16) % self._tag_ub

    def reduce(self, members: tuple[int, ...], local: np.ndarray | None, *, step: int = 0,
               skip: tuple[int, ...] = (), stopping: Callable[[], bool] = lambda: False) -> np.ndarray:
        """The blocking form: start(), run and wait without a deadline."""
        pending = self.start(members, local, step=step, skip=skip)
        pending.run()
        pending.wait(None, stopping)
        return pending.result()

    def start(self, members: tuple[int, ...], local: np.ndarray | None, *, step: int = 0, round_: int = 0,
              skip: tuple[int, ...] = ()) -> Pending:
        """This rank's part of the reduction of (`step`, `round_`) over `members` (`skip`: ranks marked behind,
        sent nothing): a non-member's receive is posted; a member's part runs at Pending.run()."""
        self._kept = [r for r in self._kept if not r.Test()]
        out = self._pool.take()  # out of place: `local` is the training thread's, reused once decided
        others = [r for r in range(self.size) if r not in members]
        tag = self._tag(step, round_)
        if local is None:
            sender = members[others.index(self.rank) % len(members)]
            return Pending(self, out, request=self._comm.Irecv(out, sender, tag), sender=sender)
        me = members.index(self.rank)
        sends = [peer for i, peer in enumerate(others) if i % len(members) == me and peer not in skip]
        return Pending(self, out, job=self._job(members, local, out, tag), sends=sends, tag=tag)

    def _job(self, members: tuple[int, ...], local: np.ndarray, out: np.ndarray, tag: int) -> _Job:
        premade = self._sets.get(members)
        before = premade.last if premade is not None else None

        def run() -> None:
            if before is not None:  # on a thread replaced while blocked in it (that set's member froze)
                before.done.wait()
            if premade is not None:
                premade.comm.Allreduce(local, out, op=MPI.SUM)
            else:
                ring_allreduce(self._ring, members, self.rank, local, out, tag)

        job = _Job(run)
        if premade is not None:
            premade.last = job
        return job

    def _abandoned(self, pending: Pending, sender_may_send: bool) -> None:
        if pending._request is not None:
            if sender_may_send:
                self._kept.append(pending._request)
            else:
                pending._request.Cancel()
                pending._request.Wait()
        # A member's `out` stays with its job, never back in the pool: the abandoned reduction may still write it.

    def release(self, buf: np.ndarray) -> None:
        self._pool.give(buf)

    def reset(self) -> None:
        """This rank was resynchronised: nothing to drop (a set's communicator lives as long as the run)."""

    def close(self) -> None:
        polling.wait_all(self._pool.pending())
        for request in self._kept:  # a sender that never accepted its step never sends
            request.Cancel()
            request.Wait()
        self._kept = []
        for sub in self._sets.values():
            if sub.idle():  # one still in an abandoned reduction that never ended is left to MPI_Finalize
                sub.comm.Free()
        self._sets.clear()
        self._ring.Free()
