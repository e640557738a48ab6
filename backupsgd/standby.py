"""The member timeout without a thread hand-over: a member's part of a reduction runs on the engine thread itself,
and a standby thread takes the engine's place only when that part overruns the deadline.

A blocking MPI call cannot be abandoned, so the part used to run on a worker thread that the engine thread waited
for with the deadline: two thread wake-ups per step, 1.2x the step's exchange time at 1 MiB with 4 ranks on 2
cores (results/bench/README.md). Now the engine thread makes the call, armed; a standby thread looks every
tenth of a second (or quarter deadline) and, once the armed part is past the deadline, becomes the engine thread:
it continues the step from where the blocked thread left it (its part abandoned, rank 0's verdict awaited) and
everything after. The blocked thread, when its call returns (the frozen member answered), finds itself replaced
and ends without touching anything. Arming and disarming are two lock round trips: no wake-up on the fast path.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


class Superseded(Exception):
    """This thread was replaced as the engine thread while its part was blocked; it ends quietly."""


@dataclass(frozen=True)
class Resume:
    """Where a thread taking over continues: the step's vote and clocks, and the part left blocked."""

    vote: Any
    step_start: float
    t_dec: float
    pending: Any
    started: float  # when the part began (its deadline counts from here)


class Standby:
    def __init__(self, timeout: float, take_over: Callable[[Resume], None]) -> None:
        self._timeout, self._take_over = timeout, take_over
        self._period = min(0.1, timeout / 4)
        self._lock = threading.Lock()
        self._armed: Resume | None = None
        self._generation = 0  # bumped at each take-over: a blocked thread compares it when its call returns
        self._stop = threading.Event()
        self._spawn()

    def run(self, resume: Resume, part: Callable[[], None]) -> None:
        """Run `part` on this (the engine) thread, armed with `resume`; raises Superseded if a standby thread
        took over meanwhile."""
        with self._lock:
            self._armed, generation = resume, self._generation
        part()
        with self._lock:
            if self._generation != generation:
                raise Superseded
            self._armed = None

    def close(self) -> None:
        self._stop.set()

    def _spawn(self) -> None:
        threading.Thread(target=self._watch, name="backupsgd-standby", daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.wait(self._period):
            with self._lock:
                armed = self._armed
                if armed is None or time.perf_counter() - armed.started <= self._timeout:
                    continue
                self._armed, self._generation = None, self._generation + 1
            self._spawn()  # the next standby, for the engine thread this one becomes
            self._take_over(armed)
            return
