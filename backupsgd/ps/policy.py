"""What a server does with the pushes it holds: apply a step (which pushes), drop a late push, or wait.

Pure logic over arrival order, no MPI, so every mode's rule is unit-tested without launching ranks.
Workers are named by their index w (MPI rank - servers) here, in the run directory and in --straggler.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

APPLY, DROP, STOP = 1, 2, 3


@dataclass(frozen=True)
class Push:
    worker: int  # worker index
    step: int  # the parameter version the gradient was computed on
    arrived_s: float = 0.0  # perf_counter on the server when it arrived


@dataclass(frozen=True)
class Event:
    """One server action. Every server executes the same events in the same order, so shards never mix
    gradients of different workers and every server's version counter stays equal."""

    kind: int  # APPLY, DROP or STOP (the leader has no more events)
    version: int  # apply: the version the gradients are applied to; drop: the version the worker gets back
    members: tuple[int, ...] = ()  # apply: the summed workers (sorted); drop: the one late worker
    staleness: int = 0  # ps-async: server version minus the version the push was computed on

    def encode(self, workers: int) -> np.ndarray:
        """A fixed-size int64 message, so the follower's receive buffer is preallocated once."""
        msg = np.full(4 + workers, -1, dtype=np.int64)
        msg[:4] = self.kind, self.version, len(self.members), self.staleness
        msg[4: 4 + len(self.members)] = self.members
        return msg

    @staticmethod
    def decode(msg: np.ndarray) -> "Event":
        kind, version, count, staleness = (int(x) for x in msg[:4])
        return Event(kind, version, tuple(int(m) for m in msg[4: 4 + count]), staleness)


class Policy(Protocol):
    def decide(self, version: int, pending: list[Push], final: bool) -> Event | None:
        """The next event given the held pushes in arrival order; None: wait for more messages.

        `final` is True once the last step is applied: every push still arriving is dropped.
        """


@dataclass
class QuorumPolicy:
    """ps-sync (quorum = all workers) and ps-backup (quorum N = workers - b): apply step t with the first
    `quorum` pushes computed on version t; a push computed on an older version arrived after its step
    was applied without it, and is dropped (its worker gets the current parameters back at once)."""

    quorum: int

    def decide(self, version: int, pending: list[Push], final: bool) -> Event | None:
        for p in pending:
            if p.step > version:
                raise RuntimeError(f"worker {p.worker} pushed step {p.step} ahead of server version {version}")
            if final or p.step < version:
                return Event(DROP, version, (p.worker,))
        if len(pending) >= self.quorum:
            return Event(APPLY, version, tuple(sorted(p.worker for p in pending[: self.quorum])))
        return None


class AsyncPolicy:
    """ps-async: apply each push alone, in arrival order, whatever version it was computed on."""

    def decide(self, version: int, pending: list[Push], final: bool) -> Event | None:
        if not pending:
            return None
        p = pending[0]
        if final:
            return Event(DROP, version, (p.worker,))
        return Event(APPLY, version, (p.worker,), staleness=version - p.step)


class FollowPolicy:
    """A server other than the leader replays the leader's events in order, each once the pushes it
    names have arrived here too (they are in flight: workers push to every server at once)."""

    def __init__(self) -> None:
        self.inbox: deque[Event] = deque()
        self.stopped = False

    def decide(self, version: int, pending: list[Push], final: bool) -> Event | None:
        if not self.inbox:
            return None
        event = self.inbox[0]
        if event.kind == STOP:
            self.inbox.popleft()
            self.stopped = True
            return None
        if event.version != version:
            raise RuntimeError(f"leader's event is for version {event.version}, this server is at {version}")
        held = {p.worker for p in pending}
        if not set(event.members) <= held:
            return None
        self.inbox.popleft()
        return event
