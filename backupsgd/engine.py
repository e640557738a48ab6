"""The gradient engine: a background thread per worker that votes on each step's members and reduces.

The training thread hands it one fused buffer per step and gets a handle back. The engine thread
owns all MPI traffic after start-up, so a worker whose own compute is slow still answers votes and
joins reductions (with zeros) at once: its slowness never holds the others up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from backupsgd.reducers import Reducer

TAG_READY, TAG_DECISION, TAG_FIN = 11, 12, 13
COORDINATOR = 0


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

    @property
    def scale(self) -> float:
        return 1.0 / len(self.members)

    @property
    def grad(self) -> np.ndarray:
        """The averaged fused buffer (a new array: use `total` and `scale` on hot paths)."""
        return self.total * np.float32(self.scale)


class Handle:
    """The nonblocking form of one step's exchange: `test()` polls, `wait()` returns the Decision."""

    def __init__(self, engine: "GradientEngine", step: int) -> None:
        self._engine, self.step = engine, step

    def test(self) -> bool:
        return self._engine.decided(self.step) is not None

    def wait(self, timeout: float | None = None) -> Decision:
        return self._engine.wait_decided(self.step, timeout)


class _Backoff:
    """Polls MPI without burning a shared core: spin briefly, then sleep longer and longer (max 0.25 ms)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._idle = 0

    def pause(self) -> None:
        self._idle += 1
        if self._idle > 20:
            time.sleep(min(2.5e-4, 1e-5 * (self._idle - 20)))


class GradientEngine:
    """Votes and reduces step after step; `quorum` = N (P for sync, P - b for backup)."""

    def __init__(self, vote_comm: MPI.Comm, reducer: Reducer, quorum: int) -> None:
        self._comm, self._reducer, self.quorum = vote_comm, reducer, quorum
        self.rank, self.size = vote_comm.Get_rank(), vote_comm.Get_size()
        self._cv = threading.Condition()
        self._submitted: dict[int, tuple[np.ndarray, float]] = {}
        self._decided: dict[int, Decision] = {}
        self._next_step = 0  # the step the engine thread is voting on
        self._stop = False
        self._error: BaseException | None = None
        self._ready_sent = 0
        self._thread = threading.Thread(target=self._run, name="backupsgd-engine", daemon=True)
        self._thread.start()

    # --- training-thread side ---------------------------------------------------------------
    def submit(self, step: int, buf: np.ndarray) -> Handle:
        """Offer this rank's fused gradient for `step`; dropped if the step was decided without it."""
        with self._cv:
            if step >= self._next_step:
                self._submitted[step] = (buf, time.perf_counter())
                self._cv.notify_all()
        return Handle(self, step)

    def decided(self, step: int) -> Decision | None:
        with self._cv:
            self._raise_if_failed()
            return self._decided.get(step)

    def wait_decided(self, step: int, timeout: float | None = None) -> Decision:
        with self._cv:
            ok = self._cv.wait_for(lambda: step in self._decided or self._error is not None, timeout)
            self._raise_if_failed()
            if not ok:
                raise TimeoutError(f"step {step} not decided within {timeout} s")
            return self._decided[step]

    def pop(self, step: int) -> None:
        """Forget an applied step; its buffer goes back to the reducer for a later step."""
        with self._cv:
            decision = self._decided.pop(step, None)
        if decision is not None:
            self._reducer.release(decision.total)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join()
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

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise EngineError(f"gradient engine on rank {self.rank} failed: {self._error!r}") from self._error

    # --- engine-thread side -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            coordinating = self.rank == COORDINATOR and self.quorum < self.size
            self._ready_box = np.zeros(1, dtype=np.int64)
            if coordinating:
                self._ready_by_step: dict[int, list[tuple[int, float]]] = {}
                self._ready_recv = self._comm.Irecv(self._ready_box, MPI.ANY_SOURCE, TAG_READY)
                self._ready_count = [0] * self.size
            self._sends: list[MPI.Request] = []
            step_start = time.perf_counter()
            while True:
                if self.quorum == self.size:
                    voted = self._vote_all()
                elif coordinating:
                    voted = self._vote_coordinator(step_start)
                else:
                    voted = self._vote_follower()
                if voted is None:
                    break
                members, local, t_sub, arrivals = voted
                t_dec = time.perf_counter()
                grad = self._reducer.reduce(members, local)
                t_red = time.perf_counter()
                decision = Decision(self._next_step, grad, members, t_dec - (t_sub or step_start),
                                    t_red - t_dec, arrivals)
                with self._cv:
                    self._decided[self._next_step] = decision
                    self._submitted.pop(self._next_step, None)
                    self._next_step += 1
                    self._cv.notify_all()
                step_start = t_red
                self._sends = [r for r in self._sends if not r.Test()]
            self._shutdown(coordinating)
        except BaseException as exc:  # surfaced to the training thread by decided()/wait()
            with self._cv:
                self._error = exc
                self._cv.notify_all()

    def _local(self) -> tuple[np.ndarray, float] | None:
        with self._cv:
            return self._submitted.get(self._next_step)

    def _vote_all(self):
        """Sync: every rank is a member; wait for the local buffer, then reduce."""
        with self._cv:
            self._cv.wait_for(lambda: self._next_step in self._submitted or self._stop)
            if self._next_step not in self._submitted:
                return None
            buf, t_sub = self._submitted[self._next_step]
        return tuple(range(self.size)), buf, t_sub, {}

    def _vote_follower(self):
        """Send READY when the local buffer arrives; meanwhile wait for the coordinator's DECISION."""
        step = self._next_step
        box = np.empty(1 + self.quorum, dtype=np.int64)
        recv = self._comm.Irecv(box, COORDINATOR, TAG_DECISION)
        ready_sent, backoff = False, _Backoff()
        while not recv.Test():
            local = self._local()
            if local is not None and not ready_sent:
                self._sends.append(self._comm.Isend(np.array([step], dtype=np.int64), COORDINATOR, TAG_READY))
                self._ready_sent += 1
                ready_sent = True
                backoff.reset()
            elif self._stop:
                recv.Cancel()
                recv.Wait()
                return None
            backoff.pause()
        if box[0] != step:
            raise RuntimeError(f"decision for step {box[0]} arrived while voting on step {step}")
        members = tuple(int(m) for m in box[1:])
        local = self._local() if self.rank in members else None
        if self.rank in members and local is None:
            raise RuntimeError(f"rank {self.rank} chosen for step {step} without having sent READY")
        return members, (local[0] if local else None), (local[1] if local else None), {}

    def _vote_coordinator(self, step_start: float):
        """Collect READYs in arrival order; the first `quorum` are the members, sent to everyone."""
        step = self._next_step
        ready = self._ready_by_step.setdefault(step, [])
        counted_self, backoff = any(r == self.rank for r, _ in ready), _Backoff()
        while len(ready) < self.quorum:
            progressed = self._drain_ready(step)
            if not counted_self and self._local() is not None:
                ready.append((self.rank, time.perf_counter()))
                counted_self = progressed = True
            if progressed:
                backoff.reset()
            elif self._stop:
                return None
            else:
                backoff.pause()
        chosen = ready[: self.quorum]
        del self._ready_by_step[step]
        members = tuple(sorted(r for r, _ in chosen))
        msg = np.array((step, *members), dtype=np.int64)
        for peer in range(self.size):
            if peer != self.rank:
                self._sends.append(self._comm.Isend(msg, peer, TAG_DECISION))
        local = self._local() if self.rank in members else None
        arrivals = {r: t - step_start for r, t in chosen}
        return members, (local[0] if local else None), (local[1] if local else None), arrivals

    def _drain_ready(self, step: int) -> bool:
        got = False
        status = MPI.Status()
        while self._ready_recv.Test(status):
            src, s = status.Get_source(), int(self._ready_box[0])
            self._ready_count[src] += 1
            if s >= step:  # a READY for a decided step is stale: that worker was dropped
                self._ready_by_step.setdefault(s, []).append((src, time.perf_counter()))
            self._ready_recv = self._comm.Irecv(self._ready_box, MPI.ANY_SOURCE, TAG_READY)
            got = True
        return got

    def _shutdown(self, coordinating: bool) -> None:
        """Account for every READY ever sent, so no message is left in flight at MPI_Finalize."""
        if self.quorum == self.size:
            return
        if not coordinating:
            self._comm.Send(np.array([self._ready_sent], dtype=np.int64), COORDINATOR, TAG_FIN)
        else:
            expected, box = [0] * self.size, np.empty(1, dtype=np.int64)
            for peer in range(self.size):
                if peer != self.rank:
                    self._comm.Recv(box, peer, TAG_FIN)
                    expected[peer] = int(box[0])
            status = MPI.Status()
            while sum(self._ready_count) < sum(expected):
                self._ready_recv.Wait(status)  # a stale READY: its step is past, only the count matters
                self._ready_count[status.Get_source()] += 1
                self._ready_recv = self._comm.Irecv(self._ready_box, MPI.ANY_SOURCE, TAG_READY)
            self._ready_recv.Cancel()
            self._ready_recv.Wait()
        MPI.Request.Waitall(self._sends)
