"""A worker's end of the parameter-server exchange: push gradient shards, pull parameter shards."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from backupsgd.polling import Backoff
from backupsgd.ps.layout import TAG_PUSH, TAG_REPLY, Layout, ParamBuffer, PushBuffer


class WorkerClient:
    """Talks to all k servers with preallocated buffers; every server first sends version 0.

    A worker has at most one push in flight per server: it pushes, then waits for every server's
    reply before computing again. The servers rely on that to hold one receive buffer per worker.
    """

    def __init__(self, comm: MPI.Comm, layout: Layout) -> None:
        self._comm, self._layout = comm, layout
        self._bounds = [layout.bounds(s) for s in range(layout.servers)]
        self._push = [PushBuffer(layout.shard_length(s)) for s in range(layout.servers)]
        self._pull = [ParamBuffer(layout.shard_length(s)) for s in range(layout.servers)]
        self._sends: list[MPI.Request] = []
        self._recvs = self._post_pulls()
        self.pushes = 0

    def __enter__(self) -> "WorkerClient":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:  # on failure the job aborts; waiting on servers here could hang instead
            self.close()

    def close(self) -> None:
        if any(self._recvs):
            raise RuntimeError("worker closed while a pull was still posted; pull the final version first")
        MPI.Request.Waitall(self._sends)

    def _post_pulls(self) -> list[MPI.Request]:
        return [self._comm.Irecv(b.raw, s, TAG_REPLY) for s, b in enumerate(self._pull)]

    def pull(self) -> int:
        """Wait for every server's reply; returns the parameter version (the same on every server)."""
        backoff = Backoff()
        while not all(r.Test() for r in self._recvs if r):  # a completed request turns into REQUEST_NULL
            backoff.pause()
        self._recvs = []
        versions = {b.version for b in self._pull}
        if len(versions) != 1:
            raise RuntimeError(f"servers replied with different parameter versions {sorted(versions)}")
        return versions.pop()

    def params_into(self, out: np.ndarray) -> None:
        """Assemble the pulled shards into the full flat parameter vector."""
        for (lo, hi), b in zip(self._bounds, self._pull):
            out[lo:hi] = b.params

    def push(self, step: int, loss: float, grad: np.ndarray) -> None:
        """Send shard s of the flat gradient `grad`, computed on version `step`, to server s."""
        MPI.Request.Waitall(self._sends)  # done already: every server replied, so it received the last push
        for (lo, hi), b in zip(self._bounds, self._push):
            b.set_header(step, loss)
            b.grad[:] = grad[lo:hi]
        self._recvs = self._post_pulls()  # posted first, so each reply lands in a posted receive
        self._sends = [self._comm.Isend(b.raw, s, TAG_PUSH) for s, b in enumerate(self._push)]
        self.pushes += 1
