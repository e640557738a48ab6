"""A script goes on without dead ranks (`mpirun --with-ft ulfm`): the library's side of backupsgd/failover.py.

Every survivor comes here from wherever it met the failure: a step's exchange, a catch-up, a plain collective
(`hvd.allreduce`, `broadcast`, ...). The one that meets it first revokes the communicators it uses, so every
other survivor's pending or next call fails too and comes here as well. Then, as `backupsgd train` does:
each survivor applies the decided steps its engine still holds, the world is shrunk to the survivors, they
load the most advanced survivor's state, the lowest surviving rank coordinates the vote and writes the run
directory (continuing the dead writer's files), and the exchange is reopened on the survivors.

What the script sees afterwards (Horovod elastic renumbers the same way after a reset):
- `hvd.size()` is the number of survivors and `hvd.rank()` this rank's place among them, so `hvd.rank() == 0`
  is again the one rank that prints and saves, and `root_rank=0` names a living rank. A rank keeps its data:
  a sampler made from the first `hvd.rank()` and `hvd.size()` keeps its shard (the dead ranks' shards are no
  longer trained on); records and messages name ranks by their MPI_COMM_WORLD number.
- The step the survivors go on from may be past this rank's: `step()` then applies nothing more for its
  gradient, and `hvd.skip_missed` skips the batches of the steps applied from the loaded state.
- A plain collective that failed is run again on the survivors (`Average` divides by the survivors).
- Fewer than N survivors: every survivor stops with one line naming the dead and exits non-zero.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

from backupsgd.failover import announce, survivors
from backupsgd.survivors import failure_in, revoke
from backupsgd.torch.runtime import ENV_BACKUPS, current

T = TypeVar("T")


def surviving(call: Callable[[], T], caller=None) -> T:
    """`call()`, made again on the survivors each time a rank's death fails it (not under ULFM, the launcher
    ends the job first). `caller`: the DistributedOptimizer making the call, which accounts for the steps the
    failover applies to it (see `go_on`)."""
    while True:
        try:
            return call()
        except Exception as exc:
            if failure_in(exc) is None:
                raise
            go_on_without_the_dead(caller)


def survives(collective: Callable[..., T]) -> Callable[..., T]:
    """A plain collective that is run again on the survivors when a rank's death fails it."""

    @functools.wraps(collective)
    def run(*args, **kwargs) -> T:
        return surviving(lambda: collective(*args, **kwargs))

    return run


def go_on_without_the_dead(caller=None) -> None:
    """Collective over the survivors: shrink the world to them and go on from the state they agree on.

    Raises ProcessFailure (one line naming the dead) when fewer than N remain.
    """
    runtime = current()
    if runtime.settings.mode == "horovod":
        raise RuntimeError("a rank died; BACKUPSGD_MODE=horovod runs horovod.torch's own exchange, which does not "
                           "go on without it: launch it with a plain mpirun")
    revoke(runtime.world, runtime.collectives)  # a survivor waiting in a plain collective fails now
    for optimizer in runtime.optimizers:
        optimizer.abandon_exchange()  # revokes its engine's communicators, then applies the steps it holds
    world, living, dead = survivors(runtime.world, runtime.living, runtime.quorum, ENV_BACKUPS)
    runtime.shrunk_to(world, living)
    for optimizer in runtime.optimizers:
        step, took_over = optimizer.go_on(dead, owed=optimizer is not caller)
        if runtime.rank == 0:
            announce(dead, step, living, runtime.quorum, runtime.world_rank, took_over)
