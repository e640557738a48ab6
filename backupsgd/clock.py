"""Every rank's clock offset to rank 0's, measured by an NTP-style ping-pong at start-up.

`time.perf_counter()` is per process; on one machine it is usually the system-wide CLOCK_MONOTONIC,
across machines it is not comparable at all. A timeline that lays every rank's step out side by
side needs one clock, so each rank measures how far its clock is from rank 0's: it sends its time
t0, rank 0 answers with its own time t1 on receipt, and the answer arrives at t2. If the two
messages took equally long, rank 0's clock read t1 at (t0 + t2) / 2 on this rank's clock, so the
offset is t1 - (t0 + t2) / 2, with an error of at most half the round trip t2 - t0. Of several
rounds the one with the smallest round trip is kept: it has the smallest bound (NTP's choice).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
from mpi4py import MPI

ROOT = 0
ROUNDS = 16  # rounds per rank: one more costs a round trip (tens of microseconds) at start-up
_TAG = 31


def best_offset(samples: Sequence[tuple[float, float, float]]) -> tuple[float, float]:
    """(offset, round trip) of the sample (t0, t1, t2) with the smallest round trip t2 - t0."""
    if not samples:
        raise ValueError("no ping-pong samples: give rounds >= 1")
    t0, t1, t2 = min(samples, key=lambda s: s[2] - s[0])
    return t1 - (t0 + t2) / 2, t2 - t0


def offset_to_root(comm: MPI.Comm, rounds: int = ROUNDS,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds to add to this rank's `clock()` to read rank 0's `clock()` (0.0 on rank 0).

    Collective over `comm`. Rank 0 answers the other ranks one at a time, so a rank's round trips
    are not slowed by another's; the ping-pong runs on a duplicate of `comm`, so it cannot match
    any message of the caller's. The error is at most half the smallest round trip (see the module
    docstring), microseconds on one machine.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: give rounds >= 1")
    pingpong = comm.Dup()
    try:
        box = np.zeros(1, dtype=np.float64)
        if pingpong.rank == ROOT:
            for peer in range(pingpong.size):
                if peer == ROOT:
                    continue
                for _ in range(rounds):
                    pingpong.Recv(box, peer, _TAG)
                    box[0] = clock()
                    pingpong.Send(box, peer, _TAG)
            return 0.0
        samples = []
        for _ in range(rounds):
            box[0] = t0 = clock()
            pingpong.Send(box, ROOT, _TAG)
            pingpong.Recv(box, ROOT, _TAG)
            samples.append((t0, float(box[0]), clock()))
        return best_offset(samples)[0]
    finally:
        pingpong.Free()


def run_clock_offset(comm: MPI.Comm, start: float, rounds: int = ROUNDS,
                     clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds to add to a time `clock() - start` on this rank to get rank 0's `clock() - start`
    (each rank's own `start`): what ranks.jsonl records as `clock_offset_s`. Collective over `comm`."""
    offset = offset_to_root(comm, rounds, clock)
    root_start = comm.bcast(start if comm.rank == ROOT else None, root=ROOT)
    return start + offset - root_start
