"""backupsgd's public API, in Horovod's names: `import backupsgd.torch as hvd` turns a Horovod PyTorch script
into one with backup workers (each step averages the first N = P - b gradients and drops the b slowest).

Launch as before (`mpirun -n 5 python train.py`, or `horovodrun`); choose b with `hvd.init(backups=1)` or
BACKUPSGD_BACKUPS=1 (or let rank 0 choose N every step: backups="auto", BACKUPSGD_BACKUPS=auto), the reducer
with `reducer=` or BACKUPSGD_REDUCER. Wrap the training loop's data in `hvd.skip_missed(loader)`. What differs
from Horovod is documented on each name.
"""

from backupsgd.torch.collectives import (allgather, allgather_object, allreduce, allreduce_, barrier, broadcast,
                                         broadcast_, broadcast_object, broadcast_optimizer_state,
                                         broadcast_parameters, join)
from backupsgd.torch.data import skip_missed
from backupsgd.torch.ops import Adasum, Average, Compression, Sum, SyncBatchNorm
from backupsgd.torch.optimizer import DistributedOptimizer, StepReport
from backupsgd.torch.runtime import current as _current
from backupsgd.torch.runtime import init, is_initialized, shutdown

__all__ = ["Adasum", "Average", "Compression", "DistributedOptimizer", "StepReport", "Sum", "SyncBatchNorm",
           "allgather", "allgather_object", "allreduce", "allreduce_", "backups", "barrier", "broadcast",
           "broadcast_", "broadcast_object", "broadcast_optimizer_state", "broadcast_parameters", "init",
           "is_initialized", "join", "local_rank", "log_eval", "local_size", "mpi_threads_supported", "nccl_built",
           "quorum", "rank", "shutdown", "size", "skip_missed"]


def rank() -> int:
    """This process's rank in MPI_COMM_WORLD; under `mpirun --with-ft ulfm`, after ranks died, its place among the
    survivors (renumbered 0.. in world order, as Horovod elastic does; backupsgd.torch.failover)."""
    return _current().rank


def size() -> int:
    """P: the number of ranks, every one a worker; after ranks died under ULFM, the number of survivors."""
    return _current().size


def local_rank() -> int:
    """This process's rank among the ranks on its node (for `torch.cuda.set_device`)."""
    return _current().local_rank


def local_size() -> int:
    return _current().local_size


def backups() -> int:
    """b: how many of the slowest gradients each step drops (under backups="auto", the latest step's P - N)."""
    return _current().size - _current().n


def quorum() -> int:
    """N = P - b: how many gradients each step averages (under backups="auto", the latest step's N)."""
    return _current().n


def log_eval(**metrics: float) -> None:
    """Record an evaluation at the current global step, e.g. `hvd.log_eval(accuracy=acc, loss=loss)`: with
    BACKUPSGD_RUN_DIR set, rank 0 appends it to evals.jsonl as test_accuracy, test_loss (a name already starting
    with test_ is kept), which `backupsgd report` reads. Call it on every rank with the same (averaged) values,
    right after the evaluation: the time since the latest step() counts as a pause, not as the next step's compute,
    and under backups="auto" rank 0 does not learn the ranks' speed from the step after it (its arrivals count the
    evaluation; DistributedOptimizer.evaluated)."""
    optimizers = _current().optimizers
    if not optimizers:
        raise ValueError("hvd.log_eval records at the global step of a DistributedOptimizer; create one first")
    for optimizer in optimizers:
        optimizer.evaluated(metrics)


def mpi_threads_supported() -> bool:
    """Always true: init() refuses an MPI without MPI_THREAD_MULTIPLE (the engine thread needs it)."""
    return True


def nccl_built() -> bool:
    """False: the exchange is staged through host memory over MPI, also when the model is on a GPU."""
    return False
