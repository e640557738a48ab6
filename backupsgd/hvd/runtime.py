"""Loading and initialising Horovod on demand, with a one-line fix when it is missing or misused."""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from backupsgd.errors import ConfigError

if TYPE_CHECKING:
    from mpi4py import MPI

BUILD_HINT = "build it into the venv with `make horovod` (or `bash launch/build_horovod.sh .venv`)"


def require() -> ModuleType:
    """`horovod.torch`, or a ConfigError saying how to build it (called at config validation, on every rank)."""
    try:
        import horovod.torch as hvd
    except ImportError as exc:  # absent, or built without its PyTorch extension
        raise ConfigError(f"Horovod is not importable here ({exc}); {BUILD_HINT}") from None
    return hvd


def available() -> bool:
    try:
        require()
    except ConfigError:
        return False
    return True


def init(comm: MPI.Comm) -> ModuleType:
    """Horovod running on `comm` (initialised once per process; later callers share it, as Horovod's state is
    per process). Horovod duplicates `comm`, so its traffic never meets ours."""
    hvd = require()
    if not hvd.is_initialized():
        hvd.init(comm=comm)  # shut down by Horovod's own atexit hook, before mpi4py finalizes MPI
        # hvd.init returns up to ~0.5 s apart on different ranks; line them up again, or the first
        # step's vote would rank start-up order, not compute.
        comm.Barrier()
    if (hvd.rank(), hvd.size()) != (comm.Get_rank(), comm.Get_size()):
        raise RuntimeError(f"Horovod runs as rank {hvd.rank()} of {hvd.size()}, but this communicator is "
                           f"rank {comm.Get_rank()} of {comm.Get_size()}; initialise it on one communicator only")
    return hvd


def check_launch(world: int) -> None:
    """`horovodrun --gloo` (or a horovodrun that cannot find mpirun) starts processes without MPI between
    them: each would train alone as rank 0 of 1. Say so before any of them writes a run directory."""
    launched = os.environ.get("HOROVOD_SIZE")
    if launched is not None and launched.isdigit() and int(launched) != world:
        raise ConfigError(
            f"horovodrun started {launched} processes but MPI sees {world} rank(s): it launched them with "
            "Gloo, not mpirun; drop --gloo and put the venv's bin first on PATH so horovodrun finds its mpirun"
        )
