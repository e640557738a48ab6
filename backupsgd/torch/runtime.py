"""The process's backupsgd state: the MPI world, the settings (b, reducer) and the communicators.

Horovod's API is module-level functions (`hvd.rank()`), so the library keeps one `Runtime` per process,
made by `init()` and ended by `shutdown()`. It is the only place `backupsgd.torch` touches
`MPI.COMM_WORLD`; everything else is given the communicators it uses.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpi4py import MPI

from backupsgd.auto_spec import is_auto, parse_auto
from backupsgd.config import REDUCERS
from backupsgd.errors import ConfigError
from backupsgd.faults import fault_in, say
from backupsgd.mpi_env import agreed, check_thread_level
from backupsgd.survivors import leave_if_shrunk

if TYPE_CHECKING:
    from backupsgd.torch.optimizer import _DistributedOptimizer

ENV_BACKUPS, ENV_REDUCER = "BACKUPSGD_BACKUPS", "BACKUPSGD_REDUCER"
ENV_STALL_TIMEOUT, ENV_LAG_LIMIT, ENV_FAULT = "BACKUPSGD_STALL_TIMEOUT", "BACKUPSGD_LAG_LIMIT", "BACKUPSGD_FAULT"
ENV_STRAGGLER, ENV_SEED, ENV_RUN_DIR = "BACKUPSGD_STRAGGLER", "BACKUPSGD_SEED", "BACKUPSGD_RUN_DIR"
ENV_MODE, ENV_MEMBER_TIMEOUT = "BACKUPSGD_MODE", "BACKUPSGD_MEMBER_TIMEOUT"
MODES = ("sync", "backup", "horovod")


@dataclass(frozen=True)
class Settings:
    mode: str  # sync | backup: backupsgd's exchange; horovod: horovod.torch's own DistributedOptimizer (baseline)
    backups: int | str  # b: each step drops the b slowest gradients; N = P - b; or "auto[:min=A,max=B,...]"
    # (backupsgd/adaptive.py): rank 0 chooses N every step from the arrivals and the gradient noise
    reducer: str  # how a step's members sum their gradients (dense, members, shm, horovod)
    stall_timeout: float  # seconds without progress before every rank says whom it waits for and the job aborts
    lag_limit: int  # members reducer: steps a frozen rank may fall behind before it is resynchronised
    # members reducer: seconds a step's reduction waits for a member before the step is decided again without
    # it; 0.0: automatic (0.5 s + 20 ms per MiB of fused gradients), as the CLI's --member-timeout
    member_timeout: float
    fault: str  # injected faults, as the CLI's --fault (for tests)
    straggler: str  # injected delays, as the CLI's --straggler: the same seeded draws per (seed, step)
    seed: int  # seeds the straggler draws (the script seeds its own model and data)
    run_dir: str  # where rank 0 writes what `backupsgd train` writes; empty: nothing is written


class Runtime:
    """One per process between init() and shutdown().

    `world` is the communicator of the living ranks: MPI_COMM_WORLD until ranks die under ULFM, then the
    survivors' (backupsgd.torch.failover); `rank` and `size` are this rank's place in it and its size (what
    hvd.rank() and hvd.size() say). A rank keeps `world_rank` as its identity (its injected faults and delays,
    its name in records and messages), and `workers`, the P the run started with.
    """

    def __init__(self, world: MPI.Comm, settings: Settings) -> None:
        self.world, self.settings = world, settings
        self.rank, self.size = world.Get_rank(), world.Get_size()
        self.world_rank, self.workers = self.rank, self.size
        self.living = list(range(self.size))  # the world rank of each rank of `world`
        auto = isinstance(settings.backups, str)
        # The engine's N: under auto the least its policy may choose. `n` is the latest step's (hvd.quorum()).
        self.bounds = parse_auto(settings.backups).bounds(self.size) if auto else (self.size - settings.backups,) * 2
        self.quorum, self.n = self.bounds  # the policy starts at the most
        # Plain collectives (metrics, set-up) on a communicator of their own, so they never match the
        # gradient exchange's messages, which run on the engine's own duplicates of the world.
        self.collectives = world.Dup()
        self.node = world.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = self.node.Get_rank(), self.node.Get_size()
        self.optimizers: list[_DistributedOptimizer] = []

    def shrunk_to(self, world: MPI.Comm, living: list[int]) -> None:
        """Go on on `world`, the survivors' communicator (world ranks `living`): the collectives' communicator
        and the node's are made again on it (the old ones hold the dead, and are revoked)."""
        self.world, self.living = world, living
        self.rank, self.size = world.Get_rank(), world.Get_size()
        self.collectives = world.Dup()
        self.node = world.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = self.node.Get_rank(), self.node.Get_size()

    def close(self) -> None:
        for optimizer in self.optimizers:
            optimizer.close()
        self.optimizers.clear()
        self.collectives.Free()
        self.node.Free()


_runtime: Runtime | None = None


def current() -> Runtime:
    if _runtime is None:
        raise ValueError("backupsgd.torch is not initialised; call hvd.init() first")
    return _runtime


def init(backups: int | str | None = None, reducer: str | None = None,
         member_timeout: float | str | None = None) -> None:
    """Start backupsgd on every rank of MPI_COMM_WORLD: b from `backups`, else $BACKUPSGD_BACKUPS (default 0,
    plain full sync); the reducer from `reducer`, else $BACKUPSGD_REDUCER (default dense); the members
    reducer's member timeout from `member_timeout` (seconds, or "auto"), else $BACKUPSGD_MEMBER_TIMEOUT
    (default auto: 0.5 s + 20 ms per MiB of fused gradients).

    `backups="auto"` (or "auto:min=0,max=4,rule=dbw", see `backupsgd train --backups`): rank 0 chooses N for
    every step from the READY arrivals it sees and the gradient noise scale it measures from the members'
    gradients; `hvd.quorum()` and `hvd.backups()` then report the latest step's. `DistributedOptimizer(batch_size=)`
    (the per-rank minibatch) is optional: it only puts the recorded noise scale in examples; without it the noise
    scale is measured in per-rank batches, and since the rule weighs N B against it in the same unit, N comes out
    the same.

    Collective: every rank must call it. Bad settings raise ConfigError (a ValueError) on every rank
    alike, so none is left waiting for the others. Calling it again with the same settings does nothing.
    """
    global _runtime
    world = MPI.COMM_WORLD
    settings = agreed(world, lambda: _settings(world.Get_size(), backups, reducer, member_timeout))
    if _runtime is not None:
        if _runtime.settings != settings:
            raise ConfigError(f"backupsgd.torch is already initialised with {_runtime.settings}; "
                              "call hvd.shutdown() before init() with other settings")
        return
    _runtime = Runtime(world, settings)
    _abort_on_uncaught_exception(world)
    atexit.register(leave_if_shrunk)  # runs after shutdown(), registered next
    atexit.register(shutdown)  # after mpi4py's own atexit hook was registered, so it runs before MPI_Finalize


def shutdown() -> None:
    """Close every DistributedOptimizer's exchange (collective) and free the communicators."""
    global _runtime
    if _runtime is not None:
        runtime, _runtime = _runtime, None
        runtime.close()


def is_initialized() -> bool:
    return _runtime is not None


def _settings(size: int, backups: int | str | None, reducer: str | None,
              member_timeout: float | str | None) -> Settings:
    check_thread_level()
    if backups is None:
        text = os.environ.get(ENV_BACKUPS, "0")
        backups = text.strip() if is_auto(text) else _env_number(ENV_BACKUPS, "0", int, "an integer such as 1, or auto")
    if isinstance(backups, str) and is_auto(backups):
        parse_auto(backups).bounds(size)  # a bad spec or bounds beyond this world: ConfigError naming the fix
    elif not isinstance(backups, int) or isinstance(backups, bool) or not 0 <= backups < size:
        raise ConfigError(f"backups = {backups!r} with {size} ranks: b must be an integer with 0 <= b < {size} "
                          f"(N = P - b gradients per step); pass init(backups=...) or set {ENV_BACKUPS}, "
                          "or launch more ranks")
    mode = os.environ.get(ENV_MODE) or ("backup" if backups else "sync")
    if mode not in MODES:
        raise ConfigError(f"{ENV_MODE}={mode!r}; use one of {', '.join(MODES)} (or leave it unset)")
    if mode != "backup" and backups:
        raise ConfigError(f"{ENV_MODE}={mode} waits for every rank; use backups=0, or {ENV_MODE}=backup for b > 0 "
                          "or auto")
    if mode == "horovod":
        from backupsgd.hvd.runtime import require

        require()
    reducer = reducer if reducer is not None else os.environ.get(ENV_REDUCER, "dense")
    if reducer not in REDUCERS:
        raise ConfigError(f"unknown reducer {reducer!r}; pass init(reducer=...) or set {ENV_REDUCER} to one of "
                          f"{', '.join(REDUCERS)}")
    if reducer == "horovod":
        from backupsgd.hvd.runtime import require

        require()
    stall_timeout = _env_number(ENV_STALL_TIMEOUT, "300", float, "seconds, e.g. 600 (0: never)")
    lag_limit = _env_number(ENV_LAG_LIMIT, "20", int, "an integer >= 2")
    if stall_timeout < 0 or lag_limit < 2:
        raise ConfigError(f"{ENV_STALL_TIMEOUT} must be >= 0 and {ENV_LAG_LIMIT} >= 2")
    fault = os.environ.get(ENV_FAULT, "")
    if fault:
        from backupsgd.faults import check_fault_world, parse_faults

        check_fault_world(parse_faults(fault), size)
    seed = _env_number(ENV_SEED, "0", int, "an integer >= 0")
    straggler = os.environ.get(ENV_STRAGGLER, "none")
    from backupsgd.straggler import parse_straggler

    parse_straggler(straggler, seed).check_world(size)
    run_dir = os.environ.get(ENV_RUN_DIR, "")
    if run_dir:
        from backupsgd.rundir import choose_run_dir

        choose_run_dir(run_dir, "script")  # refuses a directory that already holds a run
    return Settings(mode, backups, reducer, stall_timeout, lag_limit, _member_timeout(member_timeout), fault,
                    straggler, seed, run_dir)


def _member_timeout(value: float | str | None) -> float:
    """Seconds > 0, or 0.0 for "auto" (the engine then scales it with the buffer)."""
    where = "init(member_timeout=...)" if value is not None else ENV_MEMBER_TIMEOUT
    if value is None:
        value = os.environ.get(ENV_MEMBER_TIMEOUT, "auto")
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0.0
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{where} = {value!r}: the member timeout must be a number of seconds > 0 (e.g. 0.5) or "
                          "'auto' (0.5 s + 20 ms per MiB of gradients); fix it or leave it unset")
    return seconds


def _env_number(name: str, default: str, kind: type, example: str):
    text = os.environ.get(name, default)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number; set it to {example}") from None


def _abort_on_uncaught_exception(world: MPI.Comm) -> None:
    """An exception that ends this rank's script aborts every rank (mpi4py's `python -m mpi4py` semantics):
    the others may be waiting for it in a step or a collective, and the exit handshake would wait too."""
    previous = sys.excepthook

    def abort(kind, value, tb) -> None:
        if issubclass(kind, (KeyboardInterrupt, SystemExit)):
            previous(kind, value, tb)
            return
        if (fault := fault_in(value)) is not None:  # one line, as `backupsgd train` stops on it
            say(f"stopping the run: {fault}", _runtime.world_rank if _runtime else world.Get_rank())
            if fault.exit_without_abort:  # every survivor reaches this verdict itself (see RunFault)
                sys.stderr.flush()
                os._exit(1)
        else:
            text = "".join(traceback.format_exception(kind, value, tb))
            print(f"backupsgd: rank {world.Get_rank()} failed:\n{text}", file=sys.stderr, flush=True)
        (_runtime.world if _runtime is not None else world).Abort(1)  # after a shrink: the survivors

    sys.excepthook = abort
