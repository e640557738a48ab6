"""The stall watchdog: when a step makes no progress for `timeout` seconds, every rank says which
ranks it is waiting for, and the job aborts (exit status 1) instead of hanging.

A blocked collective cannot tell who is missing, so the watchdog asks: a thread per rank answers
PINGs with what its rank is doing. A rank that does not answer within a grace period is stopped,
hung in a way that stops every thread, or dead; a rank that answers from an earlier step is slow.
A silent vote coordinator is named as such: backup workers absorb frozen workers, not a frozen coordinator.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

from mpi4py import MPI

from backupsgd.survivors import failure_in, is_process_failure

TAG_PING, TAG_PONG = 31, 32


class Watchdog:
    def __init__(self, comm: MPI.Comm, timeout: float, describe: Callable[[], str] = lambda: "",
                 tick: float = 0.2, grace: float = 2.0, names: list[int] | None = None,
                 coordinator: int | None = None) -> None:
        self._comm, self.timeout = comm, timeout
        self._names = names or list(range(comm.Get_size()))  # how reports name rank r of `comm` (its world rank)
        self._coordinator = coordinator  # the rank of `comm` that coordinates the vote, if there is a vote
        self.describe = describe  # what else this rank waits on (the engine's state), for the report
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._tick, self._grace = tick, grace
        self._step, self._doing = -1, "starting"
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._replies: list[MPI.Request] = []
        self._thread = threading.Thread(target=self._run, name="backupsgd-watchdog", daemon=True)
        if timeout > 0:
            self._thread.start()

    def step(self, step: int) -> None:
        """The training thread reached `step`: progress, so the clock restarts."""
        self._step, self._doing, self._last = step, f"starting step {step}", time.monotonic()

    def doing(self, what: str) -> None:
        """What the training thread waits on now (no progress by itself)."""
        self._doing = what

    def close(self) -> None:
        self._stop_watching()
        try:
            self._comm.Free()
        except MPI.Exception as exc:  # a communicator with a dead rank (ULFM) need not be freed cleanly
            if not is_process_failure(exc):
                raise

    def abandon(self) -> None:
        """After a process failure: stop watching and leave the communicator, which holds the dead, unfreed.

        Freeing it could crash this process: Open MPI 5.0's ompi_comm_destruct clears a communicator's groups
        before it takes it off the list that the failure handler walks, and the handler runs in whichever thread
        progresses MPI (here a reduction blocked on the dead) while this one frees. results/ulfm-free-race
        reproduces the crash. Nothing is lost: a survivor of a death ends without MPI_Finalize
        (survivors.leave_if_shrunk)."""
        self._stop_watching()

    def _stop_watching(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> "Watchdog":
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if exc is not None and failure_in(exc) is not None:
            self.abandon()
        else:
            self.close()

    # --- watchdog thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._watch()
        except MPI.Exception as exc:
            if not is_process_failure(exc):
                raise
            # A rank died (a fault-tolerant launch): the training thread shrinks to the survivors and
            # starts a new watchdog on them; this one has nobody reliable left to ask.

    def _watch(self) -> None:
        last_tick = time.monotonic()
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            if now - last_tick > max(2.0, 10 * self._tick):
                self._last = now  # this process itself was frozen (SIGSTOP): not a stall of the others
            last_tick = now
            self._answer_pings()
            if now - self._last > self.timeout:
                self._fire(now - self._last)

    def _status(self) -> tuple[int, str]:
        return self._step, f"{self._doing}; {self.describe()}"

    def _role(self, rank: int) -> str:
        if rank != self._coordinator:
            return ""
        return ("; it is the vote's coordinator, so no step can be decided without it (under mpirun --with-ft "
                "ulfm the lowest surviving rank takes over from a dead coordinator, not from a frozen one)")

    def _answer_pings(self) -> None:
        status = MPI.Status()
        while (msg := self._comm.improbe(MPI.ANY_SOURCE, TAG_PING, status)) is not None:
            msg.recv()
            self._replies.append(self._comm.isend(self._status(), status.Get_source(), TAG_PONG))

    def _fire(self, idle: float) -> None:
        step, doing = self._status()
        for peer in range(self.size):
            if peer != self.rank:
                self._replies.append(self._comm.isend(None, peer, TAG_PING))
        answers: dict[int, tuple[int, str]] = {}
        deadline, status = time.monotonic() + self._grace, MPI.Status()
        while len(answers) < self.size - 1 and time.monotonic() < deadline:
            self._answer_pings()  # the others fire at about the same time and ask us too
            while (msg := self._comm.improbe(MPI.ANY_SOURCE, TAG_PONG, status)) is not None:
                answers[status.Get_source()] = msg.recv()
            time.sleep(0.01)
        silent = [r for r in range(self.size) if r != self.rank and r not in answers]
        slow = {r: a for r, a in answers.items() if a[0] < step}
        waiting = sorted(silent + list(slow))
        name = self._names.__getitem__
        whom = ", ".join(f"rank {name(r)}" for r in waiting) if waiting else "no rank behind it (a collective is stuck)"
        lines = [f"backupsgd: rank {name(self.rank)}: stalled: step {step} made no progress for {idle:.0f} s "
                 f"(--stall-timeout {self.timeout:g}); waiting for {whom}"]
        lines += [f"  rank {name(r)}: no answer (stopped, hung or dead)" + self._role(r) for r in silent]
        lines += [f"  rank {name(r)}: at step {s}: {what}" for r, (s, what) in sorted(slow.items())]
        lines.append(f"  rank {name(self.rank)} itself: {doing}")
        print("\n".join(lines), file=sys.stderr, flush=True)
        end = time.monotonic() + self._grace + 1.0  # let the other ranks report before the abort kills them
        while time.monotonic() < end:
            self._answer_pings()
            time.sleep(0.05)
        self._comm.Abort(1)
