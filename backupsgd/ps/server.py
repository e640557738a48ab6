"""One parameter server: receives gradient shards from every worker, applies steps, replies with its shard.

How k servers agree. Each worker pushes shard s of every gradient to server s, all k at once, and
waits for all k replies before computing again, so it has at most one push in flight per server.
In ps-sync there is nothing to choose (a step is every worker's push of that step), so each
server decides alone. In ps-backup and ps-async the choice depends on arrival order, which
differs between servers; if each chose alone, shard 0 could hold workers {1, 2}'s gradient and
shard 1 workers {1, 3}'s, and the assembled model would be no step of SGD at all. So server 0, the
leader, decides every event (apply these members / drop that late push) from the order pushes
reach *it*, executes it, and streams it to the other servers, which execute the same events in the
same order as soon as the pushes named have reached them. Every server thus applies the same
member sets, keeps the same version counter, and replies to a dropped worker with the same version,
so a worker always pulls one consistent model. The cost is one small message per event from the
leader, and a follower lagging the leader by one message latency; no server ever waits for a
worker's compute, only for pushes already on the wire.

A server never blocks on one worker: it keeps one posted receive per worker and polls them all,
and replies go out as nonblocking sends from snapshots of the shard that live until those sends
complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
from mpi4py import MPI

from backupsgd.polling import Backoff
from backupsgd.ps.layout import LEADER, TAG_EVENT, TAG_PUSH, TAG_REPLY, Layout, ParamBuffer, PushBuffer
from backupsgd.ps.policy import APPLY, DROP, STOP, Event, FollowPolicy, Policy, Push


@dataclass
class Applied:
    """What the leader reports about one applied step (the run log's record)."""

    event: Event
    pushes: list[Push]  # the members' pushes, in member order
    loss: float  # mean of the members' minibatch losses
    late: list[int]  # workers whose late pushes were dropped since the previous step
    started_s: float  # perf_counter when the previous step was applied (arrivals are relative to it)
    apply_s: float  # seconds spent summing and running the optimizer


@dataclass
class ServerStats:
    pushes_in: int = 0  # pushes received
    bytes_in: int = 0  # bytes of pushes received (the ingress the bottleneck is about)
    bytes_out: int = 0  # bytes of parameter replies sent
    applied: int = 0  # steps applied
    dropped: int = 0  # late pushes dropped (including those after the last step)
    late_after_final: int = 0  # of those, pushes that arrived after the last step


class Observer(Protocol):
    """Hooks for the run log and evaluation; polled in the server loop so it never blocks it."""

    def applied(self, version: int, params: np.ndarray, report: Applied | None) -> None: ...

    def poll(self) -> bool: ...

    def close(self) -> None: ...


class _Outbox:
    """Parameter snapshots, each reused only once every reply sent from it has completed."""

    def __init__(self, comm: MPI.Comm, shard_length: int) -> None:
        self._comm, self._length = comm, shard_length
        self._sends: dict[int, list[MPI.Request]] = {}  # id(snapshot) -> its replies in flight
        self._snapshots: list[ParamBuffer] = []
        self.latest: ParamBuffer | None = None
        self.bytes_out = 0

    def publish(self, version: int, params: np.ndarray) -> ParamBuffer:
        self.poll()
        free = [b for b in self._snapshots if b is not self.latest and not self._sends[id(b)]]
        if free:
            snapshot = free[0]
        else:
            snapshot = ParamBuffer(self._length)
            self._snapshots.append(snapshot)
            self._sends[id(snapshot)] = []
        snapshot.fill(version, params)
        self.latest = snapshot
        return snapshot

    def send(self, snapshot: ParamBuffer, rank: int) -> None:
        self._sends[id(snapshot)].append(self._comm.Isend(snapshot.raw, rank, TAG_REPLY))
        self.bytes_out += snapshot.raw.nbytes

    def poll(self) -> bool:
        done = False
        for key, reqs in self._sends.items():
            if reqs:
                left = [r for r in reqs if not r.Test()]
                done |= len(left) < len(reqs)
                self._sends[key] = left
        return done

    def close(self) -> None:
        MPI.Request.Waitall([r for reqs in self._sends.values() for r in reqs])


class ParameterServer:
    """The server on rank `comm.rank` (< layout.servers): owns `params`, its shard, and `apply(total, scale)`,
    which steps the optimizer on that shard in place. Run with `run()`; a context manager."""

    def __init__(self, comm: MPI.Comm, layout: Layout, params: np.ndarray, apply: Callable[[np.ndarray, float], None],
                 policy: Policy, steps: int, coordinated: bool, observer: Observer | None = None) -> None:
        self._comm, self._layout, self._params, self._apply = comm, layout, params, apply
        self._policy, self._steps, self._observer = policy, steps, observer
        self.rank, self.version, self.stats = comm.rank, 0, ServerStats()
        length = layout.shard_length(self.rank)
        self._bufs = [PushBuffer(length) for _ in range(layout.workers)]
        self._recvs: list[MPI.Request | None] = [None] * layout.workers
        self._pending: list[Push] = []  # received, not yet applied or dropped; arrival order
        self._total = np.zeros(length, dtype=np.float32)
        self._outbox = _Outbox(comm, length)
        self._final_sent: set[int] = set()
        self._late: list[int] = []  # workers whose late pushes were dropped since the last applied step
        self._step_start = time.perf_counter()
        # The event stream: the leader sends, the others follow (not needed in ps-sync, see the module doc).
        self._followers = list(range(1, layout.servers)) if coordinated and self.rank == LEADER else []
        self._event_sends: list[tuple[MPI.Request, np.ndarray]] = []
        self._follow = policy if isinstance(policy, FollowPolicy) else None
        self._event_box = np.empty(4 + layout.workers, dtype=np.int64)
        self._event_recv: MPI.Request | None = None

    def __enter__(self) -> "ParameterServer":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:  # on failure the job aborts; waiting here for peers could hang instead
            self._outbox.close()
            MPI.Request.Waitall([r for r, _ in self._event_sends])
            if self._observer:
                self._observer.close()

    def run(self) -> ServerStats:
        """Serve until every worker has been sent the final parameters (and, following, the leader stopped)."""
        initial = self._outbox.publish(0, self._params)
        for w in range(self._layout.workers):
            self._outbox.send(initial, self._layout.worker_rank(w))
            self._post(w)
        if self._follow:
            self._event_recv = self._comm.Irecv(self._event_box, LEADER, TAG_EVENT)
        self._step_start, backoff = time.perf_counter(), Backoff()  # the clock of step 0's arrivals
        while not self._done():
            progressed = self._receive_pushes() | self._receive_events() | self._outbox.poll()
            if self._observer:
                progressed |= self._observer.poll()
            while (event := self._policy.decide(self.version, self._pending, self.version >= self._steps)) is not None:
                self._execute(event)
                progressed = True
            if progressed:
                backoff.reset()
            else:
                backoff.pause()
        for follower in self._followers:
            self._send_event(Event(STOP, self.version), follower)
        self.stats.bytes_out = self._outbox.bytes_out
        return self.stats

    def _done(self) -> bool:
        everyone_final = len(self._final_sent) == self._layout.workers
        return everyone_final and (self._follow is None or self._follow.stopped)

    # --- receiving ------------------------------------------------------------------------------
    def _post(self, w: int) -> None:
        self._recvs[w] = self._comm.Irecv(self._bufs[w].raw, self._layout.worker_rank(w), TAG_PUSH)

    def _receive_pushes(self) -> bool:
        got, status = False, MPI.Status()
        for w, req in enumerate(self._recvs):
            if req is not None and req.Test(status):
                self._recvs[w] = None  # the buffer is held until its push is applied or dropped
                self.stats.pushes_in += 1
                self.stats.bytes_in += status.Get_count(MPI.BYTE)
                self._pending.append(Push(w, self._bufs[w].step, time.perf_counter()))
                got = True
        return got

    def _receive_events(self) -> bool:
        got = False
        while self._follow and self._event_recv is not None and self._event_recv.Test():
            event = Event.decode(self._event_box)
            self._follow.inbox.append(event)
            self._event_recv = None if event.kind == STOP else self._comm.Irecv(self._event_box, LEADER, TAG_EVENT)
            got = True
        return got

    # --- executing events -----------------------------------------------------------------------
    def _execute(self, event: Event) -> None:
        for follower in self._followers:
            self._send_event(event, follower)
        if event.kind == APPLY:
            self._apply_step(event)
        elif event.kind == DROP:
            (w,) = event.members
            self.stats.dropped += 1
            self.stats.late_after_final += self.version >= self._steps
            self._late.append(w)
            self._reply(w, self._outbox.latest)
        else:
            raise RuntimeError(f"unknown event kind {event.kind}")

    def _apply_step(self, event: Event) -> None:
        t0 = time.perf_counter()
        pushes = [next(p for p in self._pending if p.worker == w) for w in event.members]
        if any(p.step != event.version - event.staleness for p in pushes):
            raise RuntimeError(f"step {event.version}: a member's push was computed on another version")
        np.copyto(self._total, self._bufs[event.members[0]].grad)
        for w in event.members[1:]:
            self._total += self._bufs[w].grad
        loss = float(np.mean([self._bufs[w].loss for w in event.members]))
        self._apply(self._total, 1.0 / len(event.members))
        self.version += 1
        self.stats.applied += 1
        snapshot = self._outbox.publish(self.version, self._params)
        for w in event.members:
            self._reply(w, snapshot)
        now = time.perf_counter()
        report = Applied(event, pushes, loss, self._late, self._step_start, now - t0) if self.rank == LEADER else None
        self._late, self._step_start = [], now
        if self._observer:
            self._observer.applied(self.version, self._params, report)

    def _reply(self, w: int, snapshot: ParamBuffer) -> None:
        """Send `snapshot` to worker w and release its push buffer for its next push."""
        self._pending = [p for p in self._pending if p.worker != w]
        self._outbox.send(snapshot, self._layout.worker_rank(w))
        if snapshot.version >= self._steps:
            self._final_sent.add(w)  # w stops now: it never pushes again, so no receive is left posted
        else:
            self._post(w)

    def _send_event(self, event: Event, follower: int) -> None:
        msg = event.encode(self._layout.workers)
        self._event_sends = [(r, m) for r, m in self._event_sends if not r.Test()]
        self._event_sends.append((self._comm.Isend(msg, follower, TAG_EVENT), msg))
