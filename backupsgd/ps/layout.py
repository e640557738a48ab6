"""Who is a server, which slice of the flat parameter vector each server owns, and the message formats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from backupsgd import polling

# Distinct tags keep pushes, replies, the leader's event stream and evaluation shards from ever matching.
TAG_PUSH, TAG_REPLY, TAG_EVENT, TAG_EVAL = 21, 22, 23, 24
LEADER = 0  # server 0 decides the members of every step for all servers (see backupsgd.ps.server)

PUSH_HEADER = 16  # bytes: int64 step (the version the gradient was computed on), float64 minibatch loss
REPLY_HEADER = 8  # bytes: int64 version of the parameters that follow


@dataclass(frozen=True)
class Layout:
    """k servers over a world of `size` ranks and `length` parameters, split into contiguous shards.

    Shard sizes differ by at most one element, so every server receives the same bytes per push:
    the load is balanced by size, not by tensor boundaries (a flat shard needs none).
    """

    size: int
    servers: int
    length: int

    def __post_init__(self) -> None:
        if not 1 <= self.servers < self.size:
            raise ValueError(f"{self.servers} servers need at least {self.servers + 1} ranks, got {self.size}")

    @property
    def workers(self) -> int:
        return self.size - self.servers

    def is_server(self, rank: int) -> bool:
        return rank < self.servers

    def worker_rank(self, w: int) -> int:
        return self.servers + w

    def worker_index(self, rank: int) -> int:
        return rank - self.servers

    def bounds(self, server: int) -> tuple[int, int]:
        base, extra = divmod(self.length, self.servers)
        lo = server * base + min(server, extra)
        return lo, lo + base + (server < extra)

    def shard_length(self, server: int) -> int:
        lo, hi = self.bounds(server)
        return hi - lo


class PushBuffer:
    """One preallocated push message: header then the gradient shard, sent as raw bytes."""

    def __init__(self, shard_length: int) -> None:
        self.raw = np.zeros(PUSH_HEADER + 4 * shard_length, dtype=np.uint8)
        self.grad = self.raw[PUSH_HEADER:].view(np.float32)
        self._step = self.raw[:8].view(np.int64)
        self._loss = self.raw[8:16].view(np.float64)

    @property
    def step(self) -> int:
        return int(self._step[0])

    @property
    def loss(self) -> float:
        return float(self._loss[0])

    def set_header(self, step: int, loss: float) -> None:
        self._step[0], self._loss[0] = step, loss


class ParamBuffer:
    """One preallocated parameter message (a reply, or an evaluation shard): version then the shard."""

    def __init__(self, shard_length: int) -> None:
        self.raw = np.zeros(REPLY_HEADER + 4 * shard_length, dtype=np.uint8)
        self.params = self.raw[REPLY_HEADER:].view(np.float32)
        self._version = self.raw[:8].view(np.int64)

    @property
    def version(self) -> int:
        return int(self._version[0])

    def fill(self, version: int, params: np.ndarray) -> None:
        self._version[0] = version
        self.params[:] = params


def idle_barrier(comm: MPI.Comm) -> None:
    """A barrier that sleeps while it waits, so that ranks already there leave the cores to those still busy."""
    polling.wait(comm.Ibarrier())
