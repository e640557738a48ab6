"""Going on without dead ranks under ULFM (`mpirun --with-ft ulfm --mca mpi_ft_detector true`).

Without a fault-tolerant launch the launcher ends the whole job when a rank dies, and none of this
runs. With one, MPI calls that involve a dead rank fail with a process-failure error instead; the
rank that sees it first revokes the communicators it uses, so every survivor's next call fails too
and nobody waits on the dead. The survivors then shrink the communicator to themselves and agree on
the state to go on from (see backupsgd.train).
"""

from __future__ import annotations

import os
import sys

from mpi4py import MPI

from backupsgd.faults import RunFault, rank_names

FAILURE_CLASSES = {getattr(MPI, name) for name in ("ERR_PROC_FAILED", "ERR_PROC_FAILED_PENDING", "ERR_REVOKED")
                   if hasattr(MPI, name)}


class ProcessFailure(RunFault):
    """Ranks died. A RunFault, so a mode that cannot go on without them stops with this message."""

    exit_without_abort = True  # every survivor reaches this verdict itself (see RunFault)

    def __init__(self, dead: list[int], message: str) -> None:
        super().__init__(message)
        self.dead = dead  # MPI_COMM_WORLD ranks, so they name the same process before and after a shrink


def is_process_failure(exc: BaseException) -> bool:
    return isinstance(exc, MPI.Exception) and exc.Get_error_class() in FAILURE_CLASSES


def failure_in(exc: BaseException | None) -> ProcessFailure | MPI.Exception | None:
    """The process failure behind `exc` (following its causes), if there is one."""
    while exc is not None:
        if isinstance(exc, ProcessFailure) or is_process_failure(exc):
            return exc
        exc = exc.__cause__
    return None


def _to_world(group: MPI.Group) -> list[int]:
    """The MPI_COMM_WORLD rank of each member of `group`, in group order."""
    world = MPI.COMM_WORLD.Get_group()
    try:
        return [int(r) for r in MPI.Group.Translate_ranks(group, list(range(group.Get_size())), world)]
    finally:
        world.Free()


def world_ranks(comm: MPI.Comm) -> list[int]:
    """The MPI_COMM_WORLD rank of each rank of `comm`: the names logs and messages use."""
    group = comm.Get_group()
    try:
        return _to_world(group)
    finally:
        group.Free()


def dead_ranks(comm: MPI.Comm) -> list[int]:
    """World ranks of the processes of `comm` known to have failed ([] if none is known yet)."""
    try:
        failed = comm.Get_failed()
    except (MPI.Exception, NotImplementedError):
        return []
    try:
        return sorted(_to_world(failed))
    finally:
        failed.Free()


def dead_names(dead: list[int]) -> str:
    """How messages name the dead: 'rank 2', 'ranks 1, 3', or 'a rank' while MPI cannot say which."""
    return rank_names(dead) if dead else "a rank"


def name_the_dead(comm: MPI.Comm, exc: BaseException) -> BaseException:
    """A process-failure error from `comm` as a ProcessFailure naming the dead; other errors unchanged."""
    if not is_process_failure(exc):
        return exc
    dead = dead_ranks(comm)
    failure = ProcessFailure(dead, f"{dead_names(dead)} died (MPI reports a failed process)")
    failure.__cause__ = exc
    return failure


# Communicators split or duplicated from another, by the parent's handle (mpi4py's are unhashable).
# Revoking a communicator does not revoke those made from it, so a survivor blocked on a derived one
# (the shm reducer's node barrier, waiting for a node peer that left on the parent's revocation) would
# wait forever; whoever revokes the parent revokes these too.
_DERIVED: dict[int, list[MPI.Comm]] = {}


def revoke_with(parent: MPI.Comm, *derived: MPI.Comm) -> None:
    """From now on, revoking `parent` (through revoke()) revokes `derived` too, until forget(parent)."""
    _DERIVED.setdefault(parent.py2f(), []).extend(c for c in derived if c != MPI.COMM_NULL)


def forget(parent: MPI.Comm) -> None:
    """Before `parent`'s derived communicators are freed (its handle may then be reused)."""
    _DERIVED.pop(parent.py2f(), None)


def revoke(*comms: MPI.Comm | None) -> None:
    """Make every pending and future call on `comms` (and those derived from them, see revoke_with) fail
    on every rank, so no survivor waits on the dead."""
    for comm in comms:
        if comm is None or comm == MPI.COMM_NULL:
            continue
        try:
            if not comm.Is_revoked():
                comm.Revoke()
        except (MPI.Exception, NotImplementedError):
            pass  # already revoked elsewhere, or no ULFM: then the launcher ends the job anyway
        revoke(*_DERIVED.pop(comm.py2f(), ()))


def shrink(comm: MPI.Comm) -> MPI.Comm:
    """The survivors of `comm`, as a new communicator (collective over the survivors)."""
    global _leaving
    revoke(comm)
    survivors = comm.Shrink()
    survivors.Set_errhandler(MPI.ERRORS_RETURN)
    _leaving = survivors.Dup()  # the survivors' own, for leave_if_shrunk (the run's may be freed by then)
    return survivors


_leaving: MPI.Comm | None = None  # once this process has shrunk dead ranks away: the latest survivors


def leave_if_shrunk() -> None:
    """Once everything is written: a survivor of dead ranks ends here, exit status 0, without MPI_Finalize, whose
    fence in Open MPI 5.0 now and then waits forever on the dead (seen under load with scripts and with
    `backupsgd train` alike: every survivor in ompi_mpi_finalize, gdb). First a barrier of the survivors: under
    ULFM a process that exits without finalizing counts as failed, and the first survivor out used to fail the
    others' last calls, which then shrank it away too. A run without deaths finalizes as usual."""
    if _leaving is None:
        return
    try:
        _leaving.Barrier()
    except MPI.Exception:
        pass  # another death at the very end: everything is written, so leave all the same
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
