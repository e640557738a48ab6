"""Training modes by name: how many gradients a step waits for, and the exchange that aggregates them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mpi4py import MPI

from backupsgd.auto_spec import parse_auto
from backupsgd.engine import GradientEngine
from backupsgd.reducers import REDUCERS


class Mode(Protocol):
    name: str

    def quorum(self, workers: int, backups: int | str) -> int:
        """N: how many workers' gradients each step aggregates (the least, under `--backups auto`)."""

    def open_exchange(self, comm: MPI.Comm, length: int, quorum: int, reducer: str = "dense",
                      **engine_options) -> GradientEngine:
        """The engine that exchanges fused buffers of `length` floats; closed by the caller."""


@dataclass(frozen=True)
class AllreduceMode:
    """sync (N = P, a plain allreduce) and backup (N = P - b, vote + partial allreduce)."""

    name: str
    drops_backups: bool

    def quorum(self, workers: int, backups: int | str) -> int:
        """`backups` "auto...": the smallest N its policy may choose (the engine's bound; see auto_quorum.py)."""
        if isinstance(backups, str):
            return parse_auto(backups).bounds(workers)[0]
        return workers - backups if self.drops_backups else workers

    def open_exchange(self, comm: MPI.Comm, length: int, quorum: int, reducer: str = "dense",
                      **engine_options) -> GradientEngine:
        # Separate communicators keep vote messages and reductions from ever matching each other.
        reduce_comm = comm.Dup()
        reducer_impl = REDUCERS[reducer](reduce_comm, length, partial=quorum < comm.Get_size())
        return GradientEngine(comm.Dup(), reducer_impl, quorum, reduce_comm=reduce_comm, **engine_options)


MODES: dict[str, Mode] = {
    "sync": AllreduceMode("sync", drops_backups=False),
    "backup": AllreduceMode("backup", drops_backups=True),
}
