"""What rank 0 (server 0) writes while serving: one record per applied step, and test evaluations.

Rank 0 holds only shard 0, so at each evaluation version the other servers send it their shard
(a nonblocking send from a copy); rank 0 evaluates once the whole vector of that version is in.
Evaluation thus sees exactly the parameters of that version, the ones every worker pulls.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from mpi4py import MPI

from backupsgd.polling import Backoff
from backupsgd.progress import Progress
from backupsgd.ps.layout import LEADER, TAG_EVAL, Layout, ParamBuffer
from backupsgd.ps.server import Applied
from backupsgd.rundir import RunWriter


def eval_versions(steps: int, eval_every: int) -> list[int]:
    """Versions evaluated: every `eval_every` steps and the last (the allreduce modes' schedule)."""
    return [v for v in range(1, steps + 1) if (eval_every and v % eval_every == 0) or v == steps]


class ShardSender:
    """A server other than rank 0: sends its shard at each evaluation version."""

    def __init__(self, comm: MPI.Comm, versions: list[int]) -> None:
        self._comm, self._versions = comm, set(versions)
        self._sends: list[tuple[MPI.Request, ParamBuffer]] = []

    def applied(self, version: int, params: np.ndarray, report: Applied | None) -> None:
        if version in self._versions:
            buf = ParamBuffer(len(params))
            buf.fill(version, params)
            self._sends.append((self._comm.Isend(buf.raw, LEADER, TAG_EVAL), buf))

    def poll(self) -> bool:
        before = len(self._sends)
        self._sends = [(r, b) for r, b in self._sends if not r.Test()]
        return len(self._sends) < before

    def close(self) -> None:
        MPI.Request.Waitall([r for r, _ in self._sends])


class LeaderLog:
    """Rank 0: step records, progress, evaluations, the final vector.

    Step records name workers by index w (MPI rank - servers), as --straggler does and as the allreduce
    modes name their ranks, so `slow:ranks=1` is the worker listed as 1 in `members` and `dropped`.
    """

    def __init__(self, comm: MPI.Comm, layout: Layout, versions: list[int], writer: RunWriter,
                 progress: Progress, evaluate: Callable[[np.ndarray], dict[str, float]], start: float,
                 drops_others: bool) -> None:
        self._comm, self._layout, self._writer, self._progress = comm, layout, writer, progress
        self._evaluate, self._start, self._drops_others = evaluate, start, drops_others
        self._versions = list(versions)  # still to evaluate, in order
        self._pending: dict[int, tuple[np.ndarray, set[int]]] = {}  # version -> (vector, servers still missing)
        self._expected = {s: list(versions) for s in range(1, layout.servers)}
        self._bufs = {s: ParamBuffer(layout.shard_length(s)) for s in self._expected}
        self._recvs = {s: comm.Irecv(self._bufs[s].raw, s, TAG_EVAL) for s in self._expected if versions}
        self.staleness: list[int] = []
        self.final_params: np.ndarray | None = None
        self.final_eval: dict[str, float] | None = None  # the last evaluation's metrics

    def applied(self, version: int, params: np.ndarray, report: Applied | None) -> None:
        assert report is not None, "rank 0 is the leader: every applied step comes with its report"
        members = list(report.event.members)
        record = {
            "step": report.event.version, "time": time.perf_counter() - self._start, "members": members,
            "dropped": ([w for w in range(self._layout.workers) if w not in members]
                        if self._drops_others else []),
            "late": list(report.late), "loss": report.loss,
            "compute_s": None, "delay_s": None,  # rank 0 is a server: it computes no gradient
            "reduce_s": report.apply_s,
            "arrivals": {str(p.worker): p.arrived_s - report.started_s for p in report.pushes},
        }
        if not self._drops_others:
            record["staleness"] = report.event.staleness
            self.staleness.append(report.event.staleness)
        self._writer.step(record)
        self._progress.update(loss=report.loss)
        if version in self._versions:
            self._fill(version, LEADER, params)
            self._evaluate_ready()

    def poll(self) -> bool:
        got = False
        for s, req in list(self._recvs.items()):
            if req.Test():
                buf = self._bufs[s]
                version = self._expected[s].pop(0)
                if buf.version != version:
                    raise RuntimeError(f"server {s} sent version {buf.version} for evaluation, expected {version}")
                self._fill(version, s, buf.params)
                if self._expected[s]:
                    self._recvs[s] = self._comm.Irecv(buf.raw, s, TAG_EVAL)
                else:
                    del self._recvs[s]
                got = True
        if got:
            self._evaluate_ready()
        return got

    def _fill(self, version: int, server: int, shard: np.ndarray) -> None:
        # In ps-sync the servers decide alone, so a follower's shard may arrive before rank 0 applied the version.
        vector, missing = self._pending.setdefault(
            version, (np.empty(self._layout.length, dtype=np.float32), set(range(self._layout.servers))))
        lo, hi = self._layout.bounds(server)
        vector[lo:hi] = shard
        missing.discard(server)

    def _evaluate_ready(self) -> None:
        while self._versions and self._versions[0] in self._pending and not self._pending[self._versions[0]][1]:
            version = self._versions.pop(0)
            vector, _ = self._pending.pop(version)
            metrics = self._evaluate(vector)
            self._writer.evaluation({"step": version, "time": time.perf_counter() - self._start, **metrics})
            self.final_params, self.final_eval = vector, metrics

    def close(self) -> None:
        """Wait for the remaining evaluation shards (the followers are at most a few messages behind)."""
        backoff = Backoff()
        while self._recvs:
            if self.poll():
                backoff.reset()
            else:
                backoff.pause()
        self._progress.close()
        if self._versions:
            raise RuntimeError(f"versions {self._versions} were never evaluated")
