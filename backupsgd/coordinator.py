"""Rank 0's side of backup mode's per-step vote (the protocol and every other rank's side: backupsgd.vote).

The coordinator tallies each step's READYs, decides once N have come (under `--backups auto` its QuorumPolicy
chooses N per step, from what WorkerWatch makes of every READY it hears), tracks who lags behind and brings
laggards back with the current state, and decides a step again when members report STUCK (the member timeout,
backupsgd.vote's docstring). At shutdown it accounts for every control message sent to it.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple, Protocol

import numpy as np
from mpi4py import MPI

from backupsgd.evaluation_fence import EvaluationFence
from backupsgd.faults import RunFault, rank_names
from backupsgd.polling import Backoff, wait_all
from backupsgd.vote import (ACK, FIN, NONFINITE, READY, REJECTED, REJOIN, STUCK, TAG_CTRL, TAG_DECISION, TAG_RESYNC,
                            OFFERED_SPIN_S, Host, Vote)
from backupsgd.worker_watch import WorkerWatch


class Offer(NamedTuple):
    """A READY the coordinator holds for a step not yet decided."""

    rank: int
    when: float  # time.perf_counter() when it came
    took_s: float | None  # how long the rank computed the gradient; None: not measured


class QuorumPolicy(Protocol):
    """Chooses each step's N on the coordinator (backupsgd.auto_quorum.AutoQuorum)."""

    def choose(self, step: int, size: int, busy: int, deep: int, started: float) -> int:
        """N for `step`, at most `size`; `busy`: ranks still on a step decided without them (or behind); `deep`:
        those silent for longer than deep_after_s() (backupsgd.worker_watch); `started`: when the step began on the
        coordinator (perf_counter), which its arrivals are timed from."""

    def deep_after_s(self) -> float:
        """How long a rank may go unheard before it counts as deep in a delay (nan: none does yet)."""

    def decided(self, step: int, arrivals, late, floors) -> None:
        """`step` was decided; `arrivals`: its members' READY times, seconds into the step; `late`: the READYs
        of step - 1 that came after its decision and before this one, as seconds into step - 1 had those ranks begun it
        when its members did (WorkerWatch._late_arrival); `floors`: how long each rank silent since then has
        computed. Learnt from in catch_up()."""

    def catch_up(self) -> None:
        """Learn from the steps decided since the last call (off the reduction's critical path)."""


class Coordinator:
    """Rank 0's side: tally READYs per step, decide, track who lags behind, bring laggards back."""

    def __init__(self, comm: MPI.Comm, quorum: int, track_lag: bool, lag_limit: int = 20,
                 grace: float = 0.0, policy: QuorumPolicy | None = None,
                 fence: EvaluationFence | None = None) -> None:
        self._comm, self.quorum = comm, quorum
        self.policy = policy  # `--backups auto`: N chosen per step (self.quorum is the current one); None: fixed
        self.fence = fence  # the steps after an evaluation wait for every rank (backupsgd.evaluation_fence)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.track_lag, self.lag_limit = track_lag, lag_limit
        self.grace = grace  # once stuck itself, how long to wait for the others' STUCK reports
        self._box = np.zeros(4, dtype=np.int64)
        self._recv = comm.Irecv(self._box, MPI.ANY_SOURCE, TAG_CTRL)
        self._ready: dict[int, list[Offer]] = {}  # step -> its READYs, in the order they came
        self._rejected: dict[int, list[int]] = {}
        self._nonfinite: list[tuple[int, int]] = []
        self._received = [0] * self.size  # control messages received per rank, FIN excluded
        self._fin: dict[int, int] = {}  # rank -> control messages it sent before FIN
        self._progress = [-1] * self.size  # the last step each rank is known to hold the result of
        self.behind: set[int] = set()
        self._rejoining: set[int] = set()
        self._sends: list[MPI.Request] = []
        self._step = 0
        self._settled = -1  # the latest step whose result this rank took
        self._round = (-1, 0, 0.0)  # the (step, round) under way, and when it was decided
        self._stuck: set[int] = set()  # ranks that reported STUCK for the round under way
        self._stuck_since: float | None = None  # when this rank's own part of it passed the deadline
        self._last_decided = -1  # the latest step whose decision was sent
        self._told_final: set[int] = set()  # ranks sent the final word at shutdown
        self._epoch = 0  # see Vote.epoch
        self._watch = WorkerWatch(self.size) if policy is not None else None  # `--backups auto` only

    def vote(self, step: int, host: Host, step_start: float) -> Vote | None:
        self._step = step
        if self.policy is not None:  # followers learn N as the number of members the decision names
            self._drain(step)  # the late READYs already here: those ranks are not busy any more
            self._own_late(host)
            self.policy.catch_up()  # the last step's decision, learnt now that its reduction is done
            deep = self._watch.deep(self.behind, time.perf_counter(), self.policy.deep_after_s())
            self.quorum = self.policy.choose(step, self.size, len(self._watch.busy(self.behind)), len(deep), step_start)
        ready = self._ready.setdefault(step, [])
        rejected = self._rejected.setdefault(step, [])
        counted_self = any(offer.rank == self.rank for offer in ready) or self.rank in rejected
        backoff = Backoff()
        while True:
            progressed = self._drain(step)
            self._own_late(host)
            if not counted_self and (local := host.local(step)) is not None:
                now = time.perf_counter()
                if local is REJECTED:
                    rejected.append(self.rank)
                    self._nonfinite.append((self.rank, step))
                else:
                    ready.append(Offer(self.rank, now, local[2]))
                self._heard(self.rank, step, now, None if local is REJECTED else local[2], ready=local is not REJECTED)
                counted_self = progressed = True
            if self._rejoining:  # no step is decided until the laggards hold the state it starts from
                progressed |= self._serve_rejoin(step, host)
            elif sum(offer.rank not in self.behind for offer in ready) >= self.quorum \
                    and not self._fenced(step, ready, rejected):
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

    def _fenced(self, step: int, ready: list[Offer], rejected: list[int]) -> bool:
        """Whether the fence after an evaluation still holds `step` (its first N READYs are in)."""
        if self.fence is None or not self.fence.follows(step):  # every step's decision asks: the cheap test first
            return False
        heard = {offer.rank for offer in ready} | set(rejected) | self.behind
        own = next((offer.when for offer in ready if offer.rank == self.rank),
                   -math.inf if self.rank in rejected else None)
        return self.fence.holds(self.size - len(heard), own, time.perf_counter())

    def _own_late(self, host: Host) -> None:
        """This rank's own gradients offered after their step's decision count as the others' late READYs do."""
        for s, t, took_s in host.late():
            self._heard(self.rank, s, t, took_s)

    def _heard(self, rank: int, step: int, when: float, took_s: float | None, ready: bool = True) -> None:
        """`rank` offered (`ready`) or declined `step` at `when` after computing for `took_s`: it is free again."""
        if self._watch is not None:
            self._watch.heard(rank, step, when, took_s, late_counts=ready and rank not in self.behind)

    def _decide(self, step: int, step_start: float) -> Vote:
        # A READY from a rank marked behind is stale: it computed on a state it is being brought back from.
        offers = self._ready.pop(step)
        current = [offer for offer in offers if offer.rank not in self.behind]
        chosen = current[: self.quorum]
        declined = self._rejected.pop(step, [])
        nonfinite, self._nonfinite = tuple(self._nonfinite), []
        members = tuple(sorted(offer.rank for offer in chosen))
        newly = set()
        for r in members:
            self._progress[r] = step
        if self.track_lag:
            for r in range(self.size):
                if r != self.rank and r not in members and r not in self.behind \
                        and step - self._progress[r] > self.lag_limit:
                    newly.add(r)
        self._announce(step, 0, members, newly)
        arrivals = {offer.rank: offer.when - step_start for offer in chosen}
        if self.policy is not None:  # the first N arrivals: those after the decision are censored
            lags = [arrivals[offer.rank] - offer.took_s for offer in chosen if offer.took_s is not None]
            # a rank behind is not computing anything the policy should time: no floor for its silence
            offered = {offer.rank for offer in offers} | set(declined) | self.behind
            late, floors = self._watch.decided(step, step_start, offered, lags, time.perf_counter(),
                                               [(offer.when, offer.took_s) for offer in current[self.quorum:]])
            self.policy.decided(step, arrivals.values(), late, floors)  # learnt at the next vote: all wait now
        return Vote(step, members, tuple(sorted(self.behind)), arrivals, nonfinite, epoch=self._epoch)

    def _announce(self, step: int, round_: int, members: tuple[int, ...], newly: set[int]) -> None:
        """Send (step, round)'s decision to every rank not behind, and to those it newly marks behind."""
        if newly - self.behind or round_ > 0:
            self._epoch += 1
        self.behind |= newly
        behind = tuple(sorted(self.behind))
        msg = np.array((step, round_, self._epoch, len(members), len(behind), *members, *behind), dtype=np.int64)
        for peer in range(self.size):  # a rank already behind is sent nothing until it asks to rejoin
            if peer != self.rank and (peer not in self.behind or peer in newly):
                self._sends.append(self._comm.Isend(msg, peer, TAG_DECISION))
        self._sends = [r for r in self._sends if not r.Test()]
        self._round, self._stuck, self._stuck_since = (step, round_, time.perf_counter()), set(), None
        self._last_decided = step

    def _mark_behind(self, rank: int) -> None:
        """Mark `rank` behind now, and tell it with the decision it would get next (for the next step, with no
        members): it is waiting for a verdict on a step that stands, so no later vote may wait for it. The
        others learn it from that step's real decision, which names it behind (and is not sent to it)."""
        self.behind.add(rank)
        self._epoch += 1
        behind = tuple(sorted(self.behind))
        msg = np.array((self._last_decided + 1, 0, self._epoch, 0, len(behind), *behind), dtype=np.int64)
        self._sends.append(self._comm.Isend(msg, rank, TAG_DECISION))

    # --- the member timeout (engine thread, while this rank's part of a reduction is under way) ---------
    def settle(self, step: int) -> None:
        """This rank took `step`'s result: a STUCK report for it now means the step stands without that rank."""
        self._settled = step

    def stuck(self, vote: Vote) -> None:
        self._stuck_since = time.perf_counter()

    def verdict(self, vote: Vote, host: Host) -> Vote | None:
        """Decide `vote`'s step again once every other rank reported STUCK, or `grace` seconds after this
        rank got stuck itself; None until then. Members: those of the step that reported STUCK (they still
        hold their gradient and took no result); rank 0 alone if none did. Every silent rank is marked behind."""
        self._drain(vote.step)
        others = [r for r in range(self.size) if r != self.rank and r not in self.behind]
        since = self._stuck_since if self._stuck_since is not None else time.perf_counter()
        if time.perf_counter() - since < self.grace and not all(r in self._stuck for r in others):
            return None
        members = tuple(m for m in vote.members if m == self.rank or m in self._stuck)
        if not members:  # every member went silent: this rank's own gradient makes the step
            local = host.local(vote.step)
            if local is None:
                return None
            if local is REJECTED:
                raise RunFault(f"step {vote.step}: every member stopped answering and rank {self.rank}'s own "
                               "gradient is not finite; the step cannot be decided again")
            members = (self.rank,)
        silent = {r for r in others if r not in self._stuck}
        waited = time.perf_counter() - self._round[2]
        for r in members:
            self._progress[r] = vote.step
        record = {"round": vote.round, "timed_out": sorted(set(vote.members) & silent),
                  "silent": sorted(silent), "waited_s": waited}
        self._announce(vote.step, vote.round + 1, members, silent)
        return Vote(vote.step, members, tuple(sorted(self.behind)), vote.arrivals, vote.nonfinite,
                    vote.round + 1, self._epoch, (*vote.redecided, record))

    def _drain(self, step: int) -> bool:
        got, status = False, MPI.Status()
        while self._recv.Test(status):
            src, kind, s, round_ = status.Get_source(), int(self._box[0]), int(self._box[1]), int(self._box[2])
            took_s = int(self._box[3]) / 1e6 if self._box[3] >= 0 else None
            self._recv = self._comm.Irecv(self._box, MPI.ANY_SOURCE, TAG_CTRL)
            got = True
            if kind == FIN:
                self._fin[src] = s
                continue
            self._received[src] += 1
            if kind in (READY, NONFINITE):
                self._progress[src] = max(self._progress[src], s - 1)
                self._heard(src, s, time.perf_counter(), took_s, ready=kind == READY)
                if kind == NONFINITE:
                    self._nonfinite.append((src, s))
                if s >= step:  # an offer for a decided step is stale: that worker was dropped
                    if kind == READY:
                        self._ready.setdefault(s, []).append(Offer(src, time.perf_counter(), took_s))
                    else:
                        self._rejected.setdefault(s, []).append(src)
            elif kind == ACK:
                self._progress[src] = max(self._progress[src], s)
            elif kind == REJOIN:
                self._rejoining.add(src)
            elif kind == STUCK:
                if s <= self._settled:  # the step stands: that rank lacks its result and is brought back
                    if src not in self.behind:
                        self._mark_behind(src)
                elif (s, round_) == self._round[:2]:
                    self._stuck.add(src)
                # else: a round already decided again; that rank learns it from the decision sent to it
        return got

    def _serve_rejoin(self, step: int, host: Host) -> bool:
        """Send the state after `step` updates to every rank asking to rejoin; False until it exists."""
        state = host.snapshot(step)
        if state is None:
            return False
        self._epoch += 1
        for r in sorted(self._rejoining):
            self._sends.append(self._comm.isend((step, state), r, TAG_RESYNC))
            self.behind.discard(r)
            self._progress[r] = step - 1
            for offers in self._ready.values():  # offers it made before being brought back are stale
                offers[:] = [offer for offer in offers if offer.rank != r]
            for declined in self._rejected.values():
                declined[:] = [q for q in declined if q != r]
        self._rejoining.clear()
        return True

    def shutdown(self, host: Host, next_step: int) -> None:
        """Account for every control message sent to us, so none is in flight at MPI_Finalize; a rank
        that falls behind near the end still gets the final state."""
        backoff = Backoff()
        while len(self._fin) < self.size - 1 or any(self._received[r] < n for r, n in self._fin.items()):
            progressed = self._drain(next_step)
            # The final word (a decision for the step after the last, with no members), to every rank not
            # behind, once: a rank waits for it before it stops, so the last step's form it took is final
            # (a decision of that step again would have reached it first).
            for r in range(self.size):
                if r != self.rank and r not in self.behind and r not in self._told_final:
                    self._told_final.add(r)
                    msg = np.array((next_step, 0, self._epoch, 0, len(self.behind), *sorted(self.behind)),
                                   dtype=np.int64)
                    self._sends.append(self._comm.Isend(msg, r, TAG_DECISION))
                    progressed = True
            if self._rejoining:
                progressed |= self._serve_rejoin(next_step, host)
            backoff.reset() if progressed else backoff.pause()
        self._recv.Cancel()
        self._recv.Wait()
        wait_all(self._sends)

    def describe(self) -> str:
        step = self._step
        ready = {offer.rank for offer in self._ready.get(step, [])}
        missing = [r for r in range(self.size) if r not in ready and r not in self._rejected.get(step, [])]
        text = (f"step {step}: {len(ready)} of the N = {self.quorum} READY needed; "
                f"no READY yet from {rank_names(missing)}")
        if self.fence is not None and self.fence.follows(step) and missing:
            # more READYs than N can be in: without this the watchdog's line reads as a contradiction
            text += "; the step follows an evaluation, whose fence waits for every rank (backupsgd.evaluation_fence)"
        if self.behind:
            text += f"; behind: {rank_names(self.behind)}"
        if self._rejoining:
            text += f"; rejoining: {rank_names(self._rejoining)} (waiting for rank 0's training thread)"
        return text
