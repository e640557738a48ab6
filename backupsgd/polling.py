"""Polling MPI requests without burning a shared core, and without blocking where a stop must be noticed."""

from __future__ import annotations

import time
from typing import Callable

from mpi4py import MPI


class Backoff:
    """Spin briefly, then sleep longer and longer (max 0.25 ms): Open MPI's blocking waits spin at
    full speed, which steals the core a co-located rank computes on."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._idle = 0

    def pause(self) -> None:
        self._idle += 1
        if self._idle > 20:
            time.sleep(min(2.5e-4, 1e-5 * (self._idle - 20)))


class Stopped(Exception):
    """A polled wait gave up because its owner is shutting down."""


def wait(request: MPI.Request, stopping: Callable[[], bool] = lambda: False) -> None:
    """Wait for `request` politely; raise Stopped (after cancelling it) once `stopping()` is true."""
    backoff = Backoff()
    while not request.Test():
        if stopping():
            request.Cancel()
            request.Wait()
            raise Stopped
        backoff.pause()


def wait_all(requests: list[MPI.Request]) -> None:
    backoff = Backoff()
    while requests and not MPI.Request.Testall(requests):
        backoff.pause()
