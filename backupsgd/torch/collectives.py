"""Plain collectives over all ranks (Horovod's names), for set-up and metrics.

They run on the runtime's own communicator, never the gradient exchange's, and wait by polling: while rank
0 waits here (say, averaging test metrics at the end of an epoch), it still hands a rank that fell too far
behind the state it needs to catch up and reach the same collective. A blocking wait would deadlock there.
Under ULFM a collective that a rank's death fails is run again on the survivors (backupsgd.torch.failover).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from mpi4py import MPI

from backupsgd.polling import Backoff
from backupsgd.torch.failover import survives
from backupsgd.torch.ops import Adasum, Average, Sum, check_op
from backupsgd.torch.runtime import current


def _wait(request: MPI.Request) -> None:
    runtime, backoff = current(), Backoff()
    while not request.Test():
        for optimizer in runtime.optimizers:
            optimizer.serve_snapshot()
        backoff.pause()


def _resolve_op(average: bool | None, op: int | None) -> int:
    if average is not None and op is not None:
        raise ValueError("give either average= (deprecated in Horovod) or op=, not both")
    op = op if op is not None else (Sum if average is False else Average)
    if op == Adasum:
        raise ValueError("op=hvd.Adasum is not supported by backupsgd.torch collectives; use hvd.Average or hvd.Sum")
    check_op(op)
    return op


@survives
def allreduce(tensor: torch.Tensor, average: bool | None = None, name: str | None = None, compression=None,
              op: int | None = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0) -> torch.Tensor:
    """A new tensor: the sum (op=hvd.Sum) or mean (hvd.Average, the default) of `tensor` over all ranks."""
    op = _resolve_op(average, op)
    send = np.ascontiguousarray(tensor.detach().cpu().numpy())
    if prescale_factor != 1.0:
        send = send * prescale_factor
    recv = np.empty_like(send)
    _wait(current().collectives.Iallreduce(send, recv, MPI.SUM))
    result = torch.from_numpy(recv)
    if op == Average:
        size = current().size
        result = result // size if not result.is_floating_point() else result / size
    if postscale_factor != 1.0:
        result = result * postscale_factor
    return result.to(tensor.device)


def allreduce_(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
               op: int | None = None) -> torch.Tensor:
    """In place: `tensor` becomes its allreduce over all ranks."""
    with torch.no_grad():
        tensor.copy_(allreduce(tensor, average=average, name=name, op=op))
    return tensor


@survives
def allgather(tensor: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """Every rank's `tensor` concatenated along the first dimension (which may differ between ranks)."""
    comm = current().collectives
    local = np.ascontiguousarray(tensor.detach().cpu().numpy())
    if local.ndim == 0:
        local = local.reshape(1)
    shapes = allgather_object(local.shape)
    if any(s[1:] != local.shape[1:] for s in shapes):
        raise ValueError(f"allgather needs the same shape past the first dimension on every rank, got {shapes}")
    counts = [int(np.prod(s)) for s in shapes]
    out = np.empty((sum(s[0] for s in shapes), *local.shape[1:]), dtype=local.dtype)
    _wait(comm.Iallgatherv(local, [out, counts]))
    return torch.from_numpy(out).to(tensor.device)


@survives
def broadcast(tensor: torch.Tensor, root_rank: int, name: str | None = None) -> torch.Tensor:
    """A new tensor holding `root_rank`'s `tensor` on every rank."""
    buf = np.ascontiguousarray(tensor.detach().cpu().numpy()).copy()
    _wait(current().collectives.Ibcast(buf, root=root_rank))
    return torch.from_numpy(buf).to(tensor.device)


def broadcast_(tensor: torch.Tensor, root_rank: int, name: str | None = None) -> torch.Tensor:
    with torch.no_grad():
        tensor.copy_(broadcast(tensor, root_rank, name))
    return tensor


def broadcast_parameters(params, root_rank: int) -> None:
    """Overwrite, in place, every parameter with `root_rank`'s: a `model.state_dict()`, `model.named_parameters()`
    or `model.parameters()` (Horovod's forms)."""
    if isinstance(params, dict):
        tensors = [t for _, t in sorted(params.items())]
    elif isinstance(params, (list, tuple)) or hasattr(params, "__iter__"):
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
    else:
        raise ValueError(f"invalid params of type {type(params).__name__}: give a state_dict or a list of parameters")
    for tensor in tensors:
        broadcast_(tensor, root_rank)


def broadcast_optimizer_state(optimizer: torch.optim.Optimizer, root_rank: int, model=None) -> None:
    """Load `root_rank`'s optimizer state on every rank. As in Horovod, a state not yet created is first created
    by one step of the wrapped optimizer on zero gradients, so a script behaves the same under both."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if isinstance(inner, torch.optim.LBFGS):
        raise ValueError("cannot broadcast torch.optim.LBFGS state")
    if len(inner.state_dict()["state"]) == 0:
        for group in inner.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        inner.step()
    state = broadcast_object(inner.state_dict() if current().rank == root_rank else None, root_rank)
    inner.load_state_dict(state)


@survives
def broadcast_object(obj: Any, root_rank: int = 0, name: str | None = None) -> Any:
    """`root_rank`'s picklable `obj`, on every rank."""
    comm = current().collectives
    data = np.frombuffer(MPI.pickle.dumps(obj), dtype=np.uint8) if comm.Get_rank() == root_rank else None
    size = np.array([0 if data is None else len(data)], dtype=np.int64)
    _wait(comm.Ibcast(size, root=root_rank))
    buf = data.copy() if data is not None else np.empty(int(size[0]), dtype=np.uint8)
    _wait(comm.Ibcast(buf, root=root_rank))
    return MPI.pickle.loads(buf.tobytes())


@survives
def allgather_object(obj: Any, name: str | None = None) -> list:
    """Every rank's picklable `obj`, as a list indexed by rank."""
    comm = current().collectives
    data = np.frombuffer(MPI.pickle.dumps(obj), dtype=np.uint8)
    sizes = np.empty(comm.Get_size(), dtype=np.int64)
    _wait(comm.Iallgather(np.array([len(data)], dtype=np.int64), sizes))
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    _wait(comm.Iallgatherv(data, [out, sizes.tolist()]))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return [MPI.pickle.loads(out[a:b].tobytes()) for a, b in zip(offsets[:-1], offsets[1:])]


@survives
def barrier() -> None:
    """Wait until every rank has called it."""
    _wait(current().collectives.Ibarrier())


@survives
def join(device: int = -1) -> int:
    """Wait until every rank has joined; returns the rank that joined last (Horovod's return value).

    Unlike Horovod's, a joined rank does not stand in for later gradient steps with zeros: with backup workers
    a rank with fewer batches simply falls behind, and `hvd.skip_missed(loader)` keeps every rank's epochs on
    the same global steps.
    """
    joined = allgather_object(time.time())
    return int(np.argmax(joined))
