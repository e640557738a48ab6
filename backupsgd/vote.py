"""The per-step vote of backup mode: the first N workers to report READY are the step's members.

This module holds what both sides share (the messages, `Vote`, what a vote needs of its engine) and every
other rank's side, `Follower`; rank 0's side, which tallies and decides, is backupsgd.coordinator.

One coordinator (rank 0 of the vote's communicator) collects control messages from every worker and sends
each step's DECISION to the others. A frozen coordinator stalls every step, as Horovod's rank-0 controller
does (the stall watchdog then names it); a dead one, under ULFM, is replaced by the lowest surviving rank
once the survivors agree on where to go on from (backupsgd.failover). Any other worker may freeze or fail
to produce a finite gradient, and the vote goes on without it.

With a member timeout (members reducer), a rank whose part of a step's reduction has not ended within
the deadline reports STUCK and waits for the coordinator's verdict; it never takes that reduction's result
itself any more. The coordinator is the only arbiter. If it already took the step's result, the step
stands and the stuck rank is marked behind (brought back with the current state). Otherwise it decides the
step again (round + 1) with the members that reported STUCK, and marks every rank that did not report
behind: such a rank either stopped answering or took the first form of the step, and either way it is
brought back with rank 0's state rather than trusted. So every rank applies the same form of each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from mpi4py import MPI

from backupsgd.polling import Backoff, wait_all

TAG_CTRL, TAG_DECISION, TAG_RESYNC = 11, 12, 13
COORDINATOR = 0
# Control messages to the coordinator, (kind, step, round, took): READY and NONFINITE offer or decline a step (a
# READY for a step already decided says when this rank's late gradient was ready: it is free again, for `--backups
# auto`); a READY's `took` is how long the rank computed its gradient, in microseconds (-1: not measured);
# ACK says a non-member holds the step's result (only reducers that send results by message need it);
# REJOIN asks for the current state after falling behind; FIN closes, carrying how many came before it;
# STUCK says this rank's part of a step's reduction did not end within the member timeout.
READY, NONFINITE, ACK, REJOIN, FIN, STUCK = range(6)
STANDS = "stands"  # a follower's verdict: the coordinator went on with the step's first form
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
    round: int = 0  # how many times this step was decided before (a member timed out)
    # bumped by the coordinator whenever a rank is marked behind or brought back, or a step is decided again:
    # every rank then empties its cache of member communicators, so all keep the same ones
    epoch: int = 0
    redecided: tuple[dict, ...] = ()  # coordinator only: per earlier round, who timed out and how long it waited


class Host(Protocol):
    """What a vote needs from its engine."""

    def local(self, step: int) -> tuple[np.ndarray, float, float] | str | None:
        """This rank's (buffer, submit time, seconds it computed the gradient) for `step`, REJECTED, or None while
        it is still computing."""

    def stopping(self) -> bool: ...

    def late(self) -> list[tuple[int, float, float]]:
        """(step, submit time, seconds computing) of this rank's gradients offered after their step was decided,
        since last asked."""

    def snapshot(self, step: int) -> bytes | None:
        """The training state after `step` updates, once the training thread has produced it (asks for it)."""


class Follower:
    """Every other rank: offer each step to the coordinator, then wait for its DECISION.

    The coordinator's decisions arrive in order, one per (step, round); `_peek` holds the next one back
    unread, so a rank waiting on a step's reduction can see a later step's decision without taking it.
    """

    def __init__(self, comm: MPI.Comm, quorum: int) -> None:
        self._comm, self.quorum = comm, quorum
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._box = np.empty(5 + 2 * self.size, dtype=np.int64)
        self._next: Vote | None = None
        self._sends: list[MPI.Request] = []
        self._sent = 0
        self._waiting = ""

    def _ctrl(self, kind: int, step: int, round_: int = 0, took_s: float | None = None) -> None:
        self._send_ctrl(kind, step, round_, took_s)
        self._sent += 1

    def _send_ctrl(self, kind: int, step: int, round_: int, took_s: float | None) -> None:
        """One control message (see READY's comment for the layout); FIN is sent here too, uncounted."""
        took = -1 if took_s is None else round(took_s * 1e6)
        self._sends.append(self._comm.Isend(np.array([kind, step, round_, took], dtype=np.int64), COORDINATOR,
                                            TAG_CTRL))

    def _peek(self) -> Vote | None:
        if self._next is None and (msg := self._comm.Improbe(COORDINATOR, TAG_DECISION)) is not None:
            msg.Recv(self._box)
            step, round_, epoch, n, n_behind = (int(x) for x in self._box[:5])
            members = tuple(int(m) for m in self._box[5: 5 + n])
            self._next = Vote(step, members, tuple(int(r) for r in self._box[5 + n: 5 + n + n_behind]), round=round_,
                              epoch=epoch)
        return self._next

    def _take(self) -> Vote:
        vote, self._next = self._next, None
        return vote

    def vote(self, step: int, host: Host, step_start: float) -> Vote | None:
        self._waiting = f"rank {COORDINATOR}'s decision on step {step}"
        offered, backoff = False, Backoff()
        self._report_late(host)
        while self._peek() is None:  # stopping too: the coordinator's final word always comes (see shutdown)
            self._report_late(host)
            if not offered and (local := host.local(step)) is not None:
                if local is REJECTED:
                    self._ctrl(NONFINITE, step)
                else:
                    self._ctrl(READY, step, took_s=local[2])
                offered = True
                backoff.reset(OFFERED_SPIN_S)
            backoff.pause()
        vote = self._take()
        if vote.step == step and not vote.members and self.rank not in vote.behind:
            return None  # the final word: there is no step past the last
        self._sends = [r for r in self._sends if not r.Test()]
        if vote.step < step and self.rank in vote.behind:
            return vote  # this rank took the first form of a step decided again since: it is brought back
        if vote.step != step:
            raise RuntimeError(f"decision for step {vote.step} arrived while voting on step {step}")
        return vote

    def _report_late(self, host: Host) -> None:
        """A READY for each gradient offered after its step was decided: the coordinator learns this rank is free
        again, and when (an arrival past that step's N, for `--backups auto`)."""
        for s, _, took_s in host.late():
            self._ctrl(READY, s, took_s=took_s)

    # --- the member timeout ----------------------------------------------------------------------
    def settle(self, step: int) -> None:
        pass

    def stuck(self, vote: Vote) -> None:
        self._waiting = f"rank {COORDINATOR}'s verdict on step {vote.step} (this rank's reduction timed out)"
        self._ctrl(STUCK, vote.step, vote.round)

    def verdict(self, vote: Vote, host: Host) -> Vote | str | None:
        """The step decided again, STANDS if the coordinator went on to a later step, else None (not yet)."""
        nxt = self._peek()
        if nxt is None:
            return None
        if nxt.step > vote.step:
            return STANDS  # left unread: it is the next step's decision
        if nxt.step == vote.step and nxt.round > vote.round:
            return self._take()
        raise RuntimeError(f"decision for step {nxt.step} (round {nxt.round}) arrived while waiting for the "
                           f"verdict on step {vote.step} (round {vote.round})")

    def superseded(self, vote: Vote) -> bool:
        """Whether `vote`'s step was already decided again (that decision waits unread): take no result of it."""
        nxt = self._peek()
        return nxt is not None and nxt.step == vote.step and nxt.round > vote.round

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
        self._send_ctrl(FIN, self._sent, 0, None)
        wait_all(self._sends)

    def describe(self) -> str:
        return f"waiting for {self._waiting}" if self._waiting else "idle"
