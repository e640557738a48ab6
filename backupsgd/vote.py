"""The per-step vote of backup mode: the first N workers to report READY are the step's members.

One coordinator (rank 0) collects control messages from every worker and sends each step's
DECISION to the others. It is a single point of failure by design, as Horovod's rank-0 controller
is: a frozen rank 0 stalls every step (the stall watchdog then names it). Any other worker may
freeze or fail to produce a finite gradient, and the vote goes on without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from mpi4py import MPI

from backupsgd.faults import RunFault, rank_names
from backupsgd.polling import Backoff, wait_all

TAG_CTRL, TAG_DECISION, TAG_RESYNC = 11, 12, 13
COORDINATOR = 0
# Control messages to the coordinator, (kind, step): READY and NONFINITE offer or decline a step;
# ACK says a non-member holds the step's result (only reducers that send results by message need it);
# REJOIN asks for the current state after falling behind; FIN closes, carrying how many came before it.
READY, NONFINITE, ACK, REJOIN, FIN = range(5)
REJECTED = "rejected"  # what Host.local returns for a step whose local gradient was not finite
# Once this rank has offered its step, the decision is usually a vote round trip away: poll without
# sleeping this long first (polling.Backoff says why; a sync rank spins in its allreduce all along).
OFFERED_SPIN_S = 2e-3


@dataclass
class Vote:
    step: int
    members: tuple[int, ...]  # sorted
    behind: tuple[int, ...] = ()  # ranks too far behind to be sent results (members skip them)
    arrivals: dict[int, float] = field(default_factory=dict)  # coordinator only: rank -> READY time in the step
    # coordinator only: (rank, step) of the non-finite gradients reported since the previous decision
    # (one can arrive after its step was decided without it, so it is logged with the next one)
    nonfinite: tuple[tuple[int, int], ...] = ()


class Host(Protocol):
    """What a vote needs from its engine."""

    def local(self, step: int) -> tuple[np.ndarray, float] | str | None:
        """This rank's (buffer, submit time) for `step`, REJECTED, or None while it is still computing."""

    def stopping(self) -> bool: ...

    def snapshot(self, step: int) -> bytes | None:
        """The training state after `step` updates, once the training thread has produced it (asks for it)."""


class Coordinator:
    """Rank 0's side: tally READYs per step, decide, track who lags behind, bring laggards back."""

    def __init__(self, comm: MPI.Comm, quorum: int, track_lag: bool, lag_limit: int = 20) -> None:
        self._comm, self.quorum = comm, quorum
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.track_lag, self.lag_limit = track_lag, lag_limit
        self._box = np.zeros(2, dtype=np.int64)
        self._recv = comm.Irecv(self._box, MPI.ANY_SOURCE, TAG_CTRL)
        self._ready: dict[int, list[tuple[int, float]]] = {}
        self._rejected: dict[int, list[int]] = {}
        self._nonfinite: list[tuple[int, int]] = []
        self._received = [0] * self.size  # control messages received per rank, FIN excluded
        self._fin: dict[int, int] = {}  # rank -> control messages it sent before FIN
        self._progress = [-1] * self.size  # the last step each rank is known to hold the result of
        self.behind: set[int] = set()
        self._rejoining: set[int] = set()
        self._sends: list[MPI.Request] = []
        self._step = 0

    def vote(self, step: int, host: Host, step_start: float) -> Vote | None:
        self._step = step
        ready = self._ready.setdefault(step, [])
        rejected = self._rejected.setdefault(step, [])
        counted_self = any(r == self.rank for r, _ in ready) or self.rank in rejected
        backoff = Backoff()
        while True:
            progressed = self._drain(step)
            if not counted_self and (local := host.local(step)) is not None:
                if local is REJECTED:
                    rejected.append(self.rank)
                    self._nonfinite.append((self.rank, step))
                else:
                    ready.append((self.rank, time.perf_counter()))
                counted_self = progressed = True
            if self._rejoining:  # no step is decided until the laggards hold the state it starts from
                progressed |= self._serve_rejoin(step, host)
            elif len(ready) >= self.quorum:
                break
            elif len(rejected) > self.size - self.quorum:
                raise RunFault(f"step {step}: {rank_names(rejected)} produced non-finite gradients; fewer than "
                               f"the N = {self.quorum} finite gradients a step needs remain")
            if progressed:
                backoff.reset(OFFERED_SPIN_S if counted_self else 0.0)
            elif host.stopping():
                return None
            else:
                backoff.pause()
        return self._decide(step, step_start)

    def _decide(self, step: int, step_start: float) -> Vote:
        chosen = self._ready.pop(step)[: self.quorum]
        self._rejected.pop(step, None)
        nonfinite, self._nonfinite = tuple(self._nonfinite), []
        members = tuple(sorted(r for r, _ in chosen))
        newly = set()
        for r in members:
            self._progress[r] = step
        if self.track_lag:
            for r in range(self.size):
                if r != self.rank and r not in members and r not in self.behind \
                        and step - self._progress[r] > self.lag_limit:
                    newly.add(r)
            self.behind |= newly
        behind = tuple(sorted(self.behind))
        msg = np.array((step, len(behind), *members, *behind), dtype=np.int64)
        for peer in range(self.size):  # a rank already behind is sent nothing until it asks to rejoin
            if peer != self.rank and (peer not in self.behind or peer in newly):
                self._sends.append(self._comm.Isend(msg, peer, TAG_DECISION))
        self._sends = [r for r in self._sends if not r.Test()]
        arrivals = {r: t - step_start for r, t in chosen}
        return Vote(step, members, behind, arrivals, nonfinite)

    def _drain(self, step: int) -> bool:
        got, status = False, MPI.Status()
        while self._recv.Test(status):
            src, kind, s = status.Get_source(), int(self._box[0]), int(self._box[1])
            self._recv = self._comm.Irecv(self._box, MPI.ANY_SOURCE, TAG_CTRL)
            got = True
            if kind == FIN:
                self._fin[src] = s
                continue
            self._received[src] += 1
            if kind in (READY, NONFINITE):
                self._progress[src] = max(self._progress[src], s - 1)
                if kind == NONFINITE:
                    self._nonfinite.append((src, s))
                if s >= step:  # an offer for a decided step is stale: that worker was dropped
                    if kind == READY:
                        self._ready.setdefault(s, []).append((src, time.perf_counter()))
                    else:
                        self._rejected.setdefault(s, []).append(src)
            elif kind == ACK:
                self._progress[src] = max(self._progress[src], s)
            elif kind == REJOIN:
                self._rejoining.add(src)
        return got

    def _serve_rejoin(self, step: int, host: Host) -> bool:
        """Send the state after `step` updates to every rank asking to rejoin; False until it exists."""
        state = host.snapshot(step)
        if state is None:
            return False
        for r in sorted(self._rejoining):
            self._sends.append(self._comm.isend((step, state), r, TAG_RESYNC))
            self.behind.discard(r)
            self._progress[r] = step - 1
        self._rejoining.clear()
        return True

    def shutdown(self, host: Host, next_step: int) -> None:
        """Account for every control message sent to us, so none is in flight at MPI_Finalize; a rank
        that falls behind near the end still gets the final state."""
        backoff = Backoff()
        while len(self._fin) < self.size - 1 or any(self._received[r] < n for r, n in self._fin.items()):
            progressed = self._drain(next_step)
            if self._rejoining:
                progressed |= self._serve_rejoin(next_step, host)
            backoff.reset() if progressed else backoff.pause()
        self._recv.Cancel()
        self._recv.Wait()
        wait_all(self._sends)

    def describe(self) -> str:
        step = self._step
        ready = {r for r, _ in self._ready.get(step, [])}
        missing = [r for r in range(self.size) if r not in ready and r not in self._rejected.get(step, [])]
        text = (f"step {step}: {len(ready)} of the N = {self.quorum} READY needed; "
                f"no READY yet from {rank_names(missing)}")
        if self.behind:
            text += f"; behind: {rank_names(self.behind)}"
        if self._rejoining:
            text += f"; rejoining: {rank_names(self._rejoining)} (waiting for rank 0's training thread)"
        return text


class Follower:
    """Every other rank: offer each step to the coordinator, then wait for its DECISION."""

    def __init__(self, comm: MPI.Comm, quorum: int) -> None:
        self._comm, self.quorum = comm, quorum
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._box = np.empty(2 + self.size, dtype=np.int64)
        self._sends: list[MPI.Request] = []
        self._sent = 0
        self._waiting = ""

    def _ctrl(self, kind: int, step: int) -> None:
        self._sends.append(self._comm.Isend(np.array([kind, step], dtype=np.int64), COORDINATOR, TAG_CTRL))
        self._sent += 1

    def vote(self, step: int, host: Host, step_start: float) -> Vote | None:
        self._waiting = f"rank {COORDINATOR}'s decision on step {step}"
        recv = self._comm.Irecv(self._box, COORDINATOR, TAG_DECISION)
        offered, backoff = False, Backoff()
        while not recv.Test():
            if not offered and (local := host.local(step)) is not None:
                self._ctrl(NONFINITE if local is REJECTED else READY, step)
                offered = True
                backoff.reset(OFFERED_SPIN_S)
            elif host.stopping():
                recv.Cancel()
                recv.Wait()
                return None
            backoff.pause()
        if self._box[0] != step:
            raise RuntimeError(f"decision for step {self._box[0]} arrived while voting on step {step}")
        self._sends = [r for r in self._sends if not r.Test()]
        n_behind, q = int(self._box[1]), self.quorum
        members = tuple(int(m) for m in self._box[2: 2 + q])
        return Vote(step, members, tuple(int(r) for r in self._box[2 + q: 2 + q + n_behind]))

    def ack(self, step: int) -> None:
        self._ctrl(ACK, step)

    def rejoin(self, step: int, host: Host) -> tuple[int, bytes] | None:
        """Ask for the current state instead of the updates missed; returns (its step, state)."""
        self._waiting = f"the current state from rank {COORDINATOR} (this rank fell behind at step {step})"
        self._ctrl(REJOIN, step)
        backoff = Backoff()
        while (msg := self._comm.improbe(COORDINATOR, TAG_RESYNC)) is None:
            if host.stopping():
                return None
            backoff.pause()
        return msg.recv()

    def shutdown(self, host: Host, next_step: int) -> None:
        self._sends.append(self._comm.Isend(np.array([FIN, self._sent], dtype=np.int64), COORDINATOR, TAG_CTRL))
        wait_all(self._sends)

    def describe(self) -> str:
        return f"waiting for {self._waiting}" if self._waiting else "idle"
