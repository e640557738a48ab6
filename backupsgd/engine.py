"""The gradient engine: a background thread per worker that votes on each step's members and reduces.

The training thread hands it one fused buffer per step and gets a handle back. The engine thread
owns the vote and reduction traffic after start-up, so a worker whose own compute is slow still
answers votes and joins reductions (with zeros, or by receiving the result) at once: its slowness
never holds the others up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from mpi4py import MPI

from backupsgd.coordinator import Coordinator, QuorumPolicy
from backupsgd.evaluation_fence import EvaluationFence
from backupsgd.polling import Backoff, Stopped
from backupsgd.reducers import Reducer
from backupsgd.standby import Resume, Standby, Superseded
from backupsgd.survivors import name_the_dead, revoke
from backupsgd.vote import COORDINATOR, REJECTED, STANDS, Follower, Vote

__all__ = ["COORDINATOR", "Decision", "EngineError", "GradientEngine", "Handle", "Resync", "Resynced"]


class EngineError(RuntimeError):
    """The engine thread failed; the training thread re-raises it so the job aborts instead of hanging."""


@dataclass
class Decision:
    """One decided step. The average is `total * scale`; applying it scales during the unpacking copy,
    so averaging costs no extra pass over the buffer."""

    step: int
    total: np.ndarray  # the members' summed fused buffer, identical on every rank
    members: tuple[int, ...]  # ranks whose buffers were summed (sorted)
    vote_s: float  # from this rank's submit (or the step's start, if it never submitted) to the decision
    reduce_s: float
    arrivals: dict[int, float] = field(default_factory=dict)  # coordinator only: rank -> READY time in the step
    nonfinite: tuple[tuple[int, int], ...] = ()  # coordinator only: (rank, step) of non-finite gradients
    # reported since the previous decision (not offered; one may come after its own step was decided)
    behind: tuple[int, ...] = ()  # ranks too far behind to be sent this result (they will be resynchronised)
    # coordinator only: the earlier rounds of a step decided again after a member timed out, each
    # {"round", "timed_out" (its members that never answered), "silent" (every rank that did not), "waited_s"}
    redecided: tuple[dict, ...] = ()

    @property
    def scale(self) -> float:
        return 1.0 / len(self.members)

    @property
    def grad(self) -> np.ndarray:
        """The averaged fused buffer (a new array: use `total` and `scale` on hot paths)."""
        return self.total * np.float32(self.scale)


@dataclass(frozen=True)
class Resync:
    """The state this rank must load instead of the updates it missed: that after `step` updates."""

    step: int
    state: bytes


class Resynced(Exception):
    """wait() found this rank resynchronised past the step it waited for; take_resync() has the state."""


class Handle:
    """The nonblocking form of one step's exchange: `test()` polls, `wait()` returns the Decision."""

    def __init__(self, engine: "GradientEngine", step: int) -> None:
        self._engine, self.step = engine, step

    def test(self) -> bool:
        return self._engine.decided(self.step) is not None

    def wait(self, timeout: float | None = None) -> Decision:
        return self._engine.wait_decided(self.step, timeout)


class GradientEngine:
    """Votes and reduces step after step; `quorum` = N (P for sync, P - b for backup), or under `--backups
    auto` the smallest N the coordinator's `quorum_policy` may choose (given on rank 0): each step's N is then
    the number of members its decision names, and every reducer divides by that. Under auto every rank is opened
    with `report_late`: a gradient offered after its step's decision is then announced to the coordinator (a
    READY for that step), which tells its policy when dropped ranks are free again.

    With a reducer that sends results by message (`point_to_point`), a worker more than `lag_limit`
    steps behind is sent no more results (which bounds the result buffers pinned by sends to it);
    when it answers again it gets the current parameters and optimizer state from rank 0 (`snapshot`,
    called on rank 0's training thread, so it needs to be given on rank 0) instead of a backlog.

    With such a reducer and a snapshot on rank 0, no rank waits on a step's reduction longer than
    `member_timeout` seconds (0: the reducer's default, scaled with the buffer; None: wait forever): a rank
    whose part has not ended by then asks the coordinator for a verdict, and the step is decided again
    without the ranks that stopped answering (see backupsgd.vote). A member's part runs on the engine thread
    itself; one that overruns the deadline is left blocked there and a standby thread carries on as the engine thread
    (standby.py). `freeze(step, round)` gives the seconds to stop this rank's engine thread at that form of `step`'s
    reduction, before its part (injected faults: the rank is silent meanwhile, as a stopped process is).
    `fence` (used on the coordinator) holds the steps after an evaluation for every rank (evaluation_fence.py).
    """

    def __init__(self, vote_comm: MPI.Comm, reducer: Reducer, quorum: int, *, first_step: int = 0,
                 lag_limit: int = 20, snapshot: Callable[[], bytes] | None = None,
                 reduce_comm: MPI.Comm | None = None, member_timeout: float | None = 0.0,
                 freeze: Callable[[int, int], float] | None = None, quorum_policy: QuorumPolicy | None = None,
                 report_late: bool = False, fence: EvaluationFence | None = None) -> None:
        self._comm, self._reducer, self.quorum = vote_comm, reducer, quorum
        self._reduce_comm = reduce_comm  # revoked with the vote's when a process fails (ULFM)
        self.rank, self.size = vote_comm.Get_rank(), vote_comm.Get_size()
        self._p2p = bool(getattr(reducer, "point_to_point", False))
        self._role: Coordinator | Follower | None = None  # None: sync, every rank is a member of every step
        if (prepare := getattr(reducer, "prepare", None)) is not None:
            prepare(quorum)  # collective, now that every rank is here (the members reducer's communicators)
        self._timeout: float | None = None  # the member timeout, when on (every rank agrees)
        if quorum < self.size:
            # Without a snapshot to bring a laggard back with, nobody is marked behind (sends to it pile up).
            track_lag = self._p2p and snapshot is not None
            if self._p2p and member_timeout is not None and \
                    vote_comm.bcast(track_lag if self.rank == COORDINATOR else None, root=COORDINATOR):
                self._timeout = member_timeout or reducer.default_timeout()
            self._role = (Coordinator(vote_comm, quorum, track_lag, lag_limit, grace=self._timeout or 0.0,
                                      policy=quorum_policy, fence=fence)
                          if self.rank == COORDINATOR else Follower(vote_comm, quorum))
        self._poisoned = False  # stuck on a step that stood without this rank: it waits to be brought back
        self._cv = threading.Condition()
        # step -> (buffer, submit time, seconds the training thread computed it) or REJECTED
        self._submitted: dict[int, tuple[np.ndarray, float, float] | str] = {}
        self._report_late = report_late
        self._offered_late: list[tuple[int, float, float]] = []  # as _submitted's, offered after the step's decision
        # when the training thread began computing the step it offers next: it applied the step before (pop) or
        # loaded the state it was brought back with (take_resync)
        self._began = time.perf_counter()
        self._decided: dict[int, Decision] = {}
        self._next_step = first_step  # the step the engine thread is voting on (a resumed run starts later)
        self._stop = self._done = False
        self._error: BaseException | None = None
        self._resync: Resync | None = None
        self._snapshot_fn = snapshot
        self._snapshot_wanted: int | None = None
        self._snapshot_ready: tuple[int, bytes] | None = None
        self._phase = "starting"
        # injected faults: seconds to stop inside a step's reduction
        self._freeze = freeze or (lambda step, round_: 0.0)
        # With a member timeout, a standby thread replaces the engine thread if a member's part overruns it.
        self._standby = Standby(self._timeout, self._take_over) if self._timeout is not None else None
        self._thread = threading.Thread(target=self._run, name="backupsgd-engine", daemon=True)
        self._thread.start()

    # --- training-thread side ---------------------------------------------------------------
    def submit(self, step: int, buf: np.ndarray) -> Handle:
        """Offer this rank's fused gradient for `step`; dropped if the step was decided without it."""
        now = time.perf_counter()
        return self._offer(step, (buf, now, now - self._began))

    def reject(self, step: int) -> Handle:
        """Decline `step` (this rank's gradient is not finite): the step is decided without this rank."""
        if self._role is None:
            raise RuntimeError("every rank's gradient is needed when N = P; a step cannot be declined")
        return self._offer(step, REJECTED)

    def _offer(self, step: int, entry) -> Handle:
        with self._cv:
            # While a resync waits to be loaded, any gradient was computed on the state it replaces.
            if step >= self._next_step and self._resync is None:
                self._submitted[step] = entry
                self._cv.notify_all()
            elif self._report_late and self._role is not None and self._resync is None and entry is not REJECTED:
                self._offered_late.append((step, *entry[1:]))  # the vote tells the coordinator: this rank is free again
        return Handle(self, step)

    def staging_buffer(self) -> np.ndarray | None:
        """Where to compute the fused gradient so that offering it costs no copy (the shm reducer's
        shared segment), or None: then any buffer will do."""
        stage = getattr(self._reducer, "staging_buffer", None)
        return stage() if stage is not None else None

    def decided(self, step: int) -> Decision | None:
        self._serve_snapshot(step)
        with self._cv:
            self._raise_if_failed()
            return None if self._resync is not None else self._decided.get(step)

    def wait_decided(self, step: int, timeout: float | None = None) -> Decision:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._serve_snapshot(step)
            with self._cv:
                self._raise_if_failed()
                if step in self._decided:
                    return self._decided[step]
                if self._resync is not None and self._resync.step >= step:
                    raise Resynced(f"rank {self.rank} was resynchronised to step {self._resync.step}")
                if self._snapshot_wanted == step:
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"step {step} not decided within {timeout} s")
                self._cv.wait(remaining)

    def take_resync(self) -> Resync | None:
        """The state to load if this rank fell behind and was brought back (once), else None."""
        with self._cv:
            self._raise_if_failed()
            resync, self._resync = self._resync, None
        if resync is not None:
            self._began = time.perf_counter()
        return resync

    def pop(self, step: int) -> None:
        """Forget an applied step; its buffer goes back to the reducer for a later step."""
        self._began = time.perf_counter()  # the training thread computes the next step from now
        with self._cv:
            decision = self._decided.pop(step, None)
        if decision is not None:
            self._reducer.release(decision.total)

    def describe(self) -> str:
        """What the engine is doing or waiting for (for the stall watchdog; read without locking)."""
        try:
            role = f" ({self._role.describe()})" if self._role is not None else ""
        except RuntimeError:  # a dict changed under us: diagnostics only
            role = ""
        return f"engine {self._phase}{role}"

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        while True:
            self._serve_snapshot(None)  # training is over: a laggard that shows up now gets the final state
            with self._cv:
                if self._done:
                    break
                if self._snapshot_wanted is None:
                    self._cv.wait(0.1)
        self._join_engine_thread(None)
        if self._standby is not None:
            self._standby.close()
        self._reducer.close()
        with self._cv:
            self._raise_if_failed()

    def __enter__(self) -> "GradientEngine":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # a failing step must not hide behind a shutdown handshake that peers may never answer
            with self._cv:
                self._stop = True
                self._cv.notify_all()

    def abandon(self, timeout: float = 30.0) -> None:
        """After a process failure: fail every survivor's pending exchange and let the engine thread end."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        revoke(self._comm, self._reduce_comm)
        self._join_engine_thread(timeout)

    def _join_engine_thread(self, timeout: float | None) -> None:
        """Join the engine thread, whichever thread it is by now (a standby may have taken its place)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread is self._thread or (deadline is not None and time.monotonic() >= deadline):
                return

    def held(self, step: int) -> list[Decision]:
        """After abandon(): the decided steps from `step` on that this rank holds and has not applied, in order
        (a decided step is final even if the rank that decided it died since; see backupsgd.failover)."""
        with self._cv:
            if self._resync is not None:  # brought back meanwhile: what it holds precedes that state
                return []
            held = []
            while step in self._decided:
                held.append(self._decided[step])
                step += 1
            return held

    def serve_snapshot(self, step: int) -> None:
        """On the training thread, while it waits for something else with `step` updates applied: hand rank
        0's state to the engine if a laggard is waiting to be brought back with exactly that state."""
        self._serve_snapshot(step)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise EngineError(f"gradient engine on rank {self.rank} failed: {self._error!r}") from self._error

    def _serve_snapshot(self, step: int | None) -> None:
        """On the training thread, at a step boundary: hand rank 0's state to the engine if it asked for it."""
        with self._cv:
            wanted, fn = self._snapshot_wanted, self._snapshot_fn
        if wanted is None or (step is not None and wanted != step):
            return
        if fn is None:
            raise RuntimeError("a rank fell behind and needs the current state, but the engine has no snapshot source")
        state = fn()  # outside the lock: the engine thread keeps draining votes meanwhile
        with self._cv:
            self._snapshot_ready, self._snapshot_wanted = (wanted, state), None
            self._cv.notify_all()

    # --- Host, for the vote (engine thread) -------------------------------------------------
    def local(self, step: int):
        with self._cv:
            return self._submitted.get(step)

    def stopping(self) -> bool:
        return self._stop

    def late(self) -> list[tuple[int, float, float]]:
        with self._cv:
            late, self._offered_late = self._offered_late, []
            return late

    def snapshot(self, step: int) -> bytes | None:
        with self._cv:
            if self._snapshot_ready is not None and self._snapshot_ready[0] == step:
                state, self._snapshot_ready = self._snapshot_ready[1], None
                return state
            if self._snapshot_wanted != step:
                self._snapshot_wanted = step
                self._cv.notify_all()
            return None

    # --- engine-thread side -----------------------------------------------------------------
    def _take_over(self, resume: Resume) -> None:
        """On a standby thread: become the engine thread, from the step whose part the old one is blocked in."""
        self._thread = threading.current_thread()
        self._run(resume)

    def _run(self, resume: Resume | None = None) -> None:
        replaced = False
        try:
            step_start = resume.step_start if resume is not None else time.perf_counter()
            while True:
                step = self._next_step
                if resume is not None:  # a standby taking over: this step's part is blocked in the old thread
                    vote, resume = self._decide(resume.vote, step_start, resume), None
                else:
                    self._phase = (f"voting on step {step}" if self._role is not None
                                   else f"waiting for this rank's own gradient for step {step}")
                    vote = self._vote_all(step) if self._role is None else self._role.vote(step, self, step_start)
                    if vote is None:
                        break
                    if self.rank not in vote.behind:
                        # None, or a decision of it again marking this rank behind
                        vote = self._decide(vote, step_start)
                if vote is not None and self._stop:
                    raise RuntimeError(f"rank {self.rank} applied step {vote.step} as first decided, and it was "
                                       "decided again without this rank after its training had ended, so its replica "
                                       "differs; raise --member-timeout (its ranks were slower than it allows)")
                if vote is not None:  # this rank froze too long, or took a step's superseded form: fetch the state
                    self._phase = f"rejoining at step {step}"
                    resync = self._role.rejoin(step, self)
                    if resync is None:
                        break
                    self._resynced(*resync)
                step_start = time.perf_counter()
            self._phase = "shutting down"
            if self._role is not None:
                self._role.shutdown(self, self._next_step)
        except Superseded:  # a standby thread carried on while this one was blocked: it touches nothing more
            replaced = True
        except BaseException as exc:  # surfaced to the training thread by decided()/wait()
            error = name_the_dead(self._comm, exc)
            if error is not exc:  # a rank died: make every survivor's engine fail now, not hang
                revoke(self._comm, self._reduce_comm)
            with self._cv:
                self._error = error
                self._cv.notify_all()
        finally:
            if not replaced:
                with self._cv:
                    self._done = True
                    self._cv.notify_all()

    def _decide(self, vote: Vote, step_start: float, resume: Resume | None = None) -> Vote | None:
        """Reduce `vote`'s step and hand the result over; a step decided again is reduced again. Returns a
        decision that marks this rank behind, if one came instead, else None. `resume`: continue from the part
        an engine thread replaced by this one is blocked in."""
        t_dec = resume.t_dec if resume is not None else time.perf_counter()
        while True:
            member = self.rank in vote.members
            local = self.local(vote.step) if member else None
            if member and not isinstance(local, tuple):
                raise RuntimeError(f"rank {self.rank} chosen for step {vote.step} without having offered a gradient")
            buf, t_sub = local[:2] if member else (None, None)
            self._phase = f"reducing step {vote.step} with members {', '.join(map(str, vote.members))}"
            if (freeze_s := self._freeze(vote.step, vote.round)) > 0:  # this rank stops before its part, as if stopped
                time.sleep(freeze_s)
            if not self._p2p:
                total = self._reducer.reduce(vote.members, buf)
                break
            if resume is not None:
                pending, started, resume = resume.pending, resume.started, None
            else:
                pending = self._reducer.start(vote.members, buf, step=vote.step, round_=vote.round, skip=vote.behind)
                started = time.perf_counter()
                if self._standby is not None and not self._poisoned:
                    self._standby.run(Resume(vote, step_start, t_dec, pending, started), pending.run)
                else:
                    pending.run()
            outcome = self._await(pending, vote, started)
            if isinstance(outcome, np.ndarray):
                total = outcome
                break
            pending.abandon(sender_may_send=outcome is STANDS or pending.sender in getattr(outcome, "behind", ()))
            if outcome is STANDS:  # the step went on in its first form without this rank's part ending
                self._poisoned = True
                with self._cv:
                    self._submitted.pop(vote.step, None)
                    self._next_step += 1
                return None
            vote = outcome
            if self.rank in vote.behind:
                return vote
        if not member and isinstance(self._role, Follower):
            self._role.ack(vote.step)
        self._role.settle(vote.step) if self._role is not None else None
        t_red = time.perf_counter()
        decision = Decision(vote.step, total, vote.members, t_dec - (t_sub or step_start), t_red - t_dec,
                            vote.arrivals, vote.nonfinite, vote.behind, vote.redecided)
        with self._cv:
            self._decided[vote.step] = decision
            entry = self._submitted.pop(vote.step, None)
            # A gradient submitted after this rank learnt the decision, before its part of the reduction ended, was
            # never offered: it is late as those submitted after are (rank 0's own, nearly always a few ms late on
            # the Python manual's gpt, read as silent for a step or two and held E[T_(4..5)] up for `--backups auto`)
            offered_late = self._report_late and self._role is not None and not member
            if offered_late and isinstance(entry, tuple) and entry[1] >= t_dec:
                self._offered_late.append((vote.step, *entry[1:]))
            self._next_step += 1
            self._cv.notify_all()
        return None

    def _await(self, pending, vote: Vote, started: float):
        """This rank's part of the reduction's result (an array), or the coordinator's verdict once the member
        timeout passed: the step decided again (a Vote), or STANDS. A member's part has run (or is blocked in a
        replaced thread); a non-member's receive is waited for here."""
        if self._timeout is None or self._poisoned:  # a rank waiting to be brought back holds nobody up
            pending.wait(None, self.stopping)
            return pending.result()
        remaining = max(0.0, self._timeout - (time.perf_counter() - started))
        if pending.wait(remaining, self.stopping) and not self._late(vote, started):
            return pending.result()
        # From here this rank never takes this round's result itself: the coordinator may have decided the
        # step again without it, and only its verdict says which form every rank applies.
        self._phase = (f"step {vote.step}: reduction not done within the member timeout ({self._timeout:g} s); "
                       f"waiting for rank {COORDINATOR}'s verdict")
        self._role.stuck(vote)
        backoff = Backoff()
        while (outcome := self._role.verdict(vote, self)) is None:
            if self.stopping():
                raise Stopped
            backoff.pause()
        return outcome

    def _late(self, vote: Vote, started: float) -> bool:
        """Whether a follower whose part of the reduction ended must still ask for the verdict instead of taking
        the result: the step was decided again already (a rank stopped before it read the first decision finds
        both queued), or its part ended past the deadline (a rank stopped while waiting can see it end on
        waking). Rank 0's own result always stands: it is the arbiter."""
        return isinstance(self._role, Follower) and \
            (time.perf_counter() - started > self._timeout or self._role.superseded(vote))

    def _vote_all(self, step: int) -> Vote | None:
        """Sync: every rank is a member; wait for the local buffer."""
        with self._cv:
            self._cv.wait_for(lambda: step in self._submitted or self._stop)
            if step not in self._submitted:
                return None
        return Vote(step, tuple(range(self.size)))

    def _resynced(self, step: int, state: bytes) -> None:
        """Drop what the state supersedes. Decided buffers are not given back: the training thread
        may still be applying one (it loads the state right after)."""
        with self._cv:
            self._decided.clear()
            self._submitted.clear()  # computed on the state this one replaces
            self._next_step = step
            self._resync = Resync(step, state)
            self._poisoned = False
            self._cv.notify_all()
        self._reducer.reset()  # only point-to-point reducers resynchronise; they all have reset()
