"""The replica check: every K applied steps each rank sends its parameter digest to rank 0, which
stops the run (naming the odd ranks) when they differ.

Digests travel point-to-point and rank 0 compares a step's set once it is complete, so the check
is no barrier: a straggler, or a stopped worker, holds nobody up by it.
"""

from __future__ import annotations

from typing import Callable

from mpi4py import MPI

from backupsgd.faults import RunFault, rank_names
from backupsgd.polling import Backoff, wait_all

TAG_DIGEST = 41
ROOT = 0


class ReplicaCheck:
    def __init__(self, comm: MPI.Comm, every: int) -> None:
        self._comm, self.every = comm, every
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._digests: dict[int, dict[int, str]] = {}  # root: step -> rank -> digest
        self._finished: set[int] = set()  # root: ranks that sent their last digest
        self._sends: list[MPI.Request] = []
        self.checked = 0  # root: complete sets compared
        self._closed = False

    def after(self, applied: int, digest: Callable[[], str]) -> None:
        """Call once `applied` steps are applied; checks every `every` of them."""
        if self.every <= 0 or applied % self.every:
            return
        if self.rank == ROOT:
            self._record(applied, ROOT, digest())
            self._drain()
        else:
            self._sends.append(self._comm.isend((applied, digest()), ROOT, TAG_DIGEST))
            self._sends = [r for r in self._sends if not r.Test()]

    def _drain(self) -> bool:
        status, got = MPI.Status(), False
        while (msg := self._comm.improbe(MPI.ANY_SOURCE, TAG_DIGEST, status)) is not None:
            applied, digest = msg.recv()
            if applied < 0:
                self._finished.add(status.Get_source())
            else:
                self._record(applied, status.Get_source(), digest)
            got = True
        return got

    def _record(self, applied: int, rank: int, digest: str) -> None:
        seen = self._digests.setdefault(applied, {})
        seen[rank] = digest
        if len(seen) == self.size:
            self._compare(applied, self._digests.pop(applied))

    def _compare(self, applied: int, seen: dict[int, str]) -> None:
        self.checked += 1
        groups: dict[str, list[int]] = {}
        for rank, digest in sorted(seen.items()):
            groups.setdefault(digest, []).append(rank)
        if len(groups) > 1:
            majority = max(groups.values(), key=len)
            odd = sorted(r for ranks in groups.values() if ranks is not majority for r in ranks)
            raise RunFault(f"replica check after step {applied}: the parameters on {rank_names(odd)} differ from "
                           f"those on {rank_names(majority)} (digests {', '.join(d[:12] for d in groups)})")

    def close(self) -> None:
        """Rank 0 compares every digest still due; a set left incomplete (a rank was resynchronised
        past that step) is compared among the ranks that sent one."""
        if self._closed:
            return
        self._closed = True
        if self.every > 0 and self.rank != ROOT:
            self._sends.append(self._comm.isend((-1, ""), ROOT, TAG_DIGEST))
            wait_all(self._sends)
        elif self.every > 0:
            backoff = Backoff()
            while len(self._finished) < self.size - 1:
                backoff.reset() if self._drain() else backoff.pause()
            for applied in sorted(self._digests):
                if len(self._digests[applied]) > 1:
                    self._compare(applied, self._digests[applied])
            self._digests.clear()
        self._comm.Free()

    def __enter__(self) -> "ReplicaCheck":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
