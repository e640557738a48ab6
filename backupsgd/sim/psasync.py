"""Discrete-event model of `ps-async`: every push is applied on arrival, so the server sets the pace."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from backupsgd.sim.network import NetConfig


@dataclass(frozen=True)
class AsyncTrace:
    """Apply times and staleness of the updates applied while every worker was still pushing."""

    applied_s: np.ndarray  # when each update was applied
    staleness: np.ndarray  # updates applied between a worker's pull and its own push being applied

    @property
    def intervals_s(self) -> np.ndarray:
        """Time between consecutive applied updates (a lone update: its own time)."""
        return np.diff(self.applied_s) if len(self.applied_s) > 1 else self.applied_s


def simulate_ps_async(times: np.ndarray, net: NetConfig, updates: int | None = None) -> AsyncTrace:
    """Replay `times[r, i]` (worker i's r-th compute time) through the server queues.

    Assumptions, the same link model as `ps_transfer_s`: a push reaches the servers one latency a
    after the compute ends and waits in a FIFO ingress queue, served in (M/k)/B; the k servers see
    the pushes in the same order and work in parallel, so they act as one queue. The update is
    applied when the push is received; the fresh parameters (a snapshot right after this update)
    queue FIFO on the egress link, (M/k)/B each, and reach the worker a later, which then starts
    its next compute. Simultaneous arrivals go in worker order. The run stops when the first worker
    has pushed all its steps, so the measurement never includes the drain with fewer workers, or
    after `updates` applied updates where given (a real run of that many steps stops there).
    """
    steps, workers = times.shape
    service, latency = net.shard_transfer_s, net.latency_s
    per_worker = times.T.tolist()  # python floats: this loop is scalar work
    arrivals = [(per_worker[i][0] + latency, i) for i in range(workers)]
    heapq.heapify(arrivals)
    done = [0] * workers
    read_version = [0] * workers
    ingress_free = egress_free = 0.0
    applied: list[float] = []
    staleness: list[int] = []
    pop, push = heapq.heappop, heapq.heappush  # local names: this loop runs steps x P times
    while arrivals:
        t, i = pop(arrivals)
        # apply on receipt: the ingress link is the only wait
        ingress_free = (t if t > ingress_free else ingress_free) + service
        staleness.append(len(applied) - read_version[i])
        applied.append(ingress_free)
        read_version[i] = len(applied)
        done[i] += 1
        if done[i] == steps or len(applied) == updates:
            break
        # pull fresh parameters, then compute the next gradient
        egress_free = (ingress_free if ingress_free > egress_free else egress_free) + service
        push(arrivals, (egress_free + latency + per_worker[i][done[i]] + latency, i))
    return AsyncTrace(applied_s=np.array(applied), staleness=np.array(staleness, dtype=float))
