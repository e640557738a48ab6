"""Single-process references the multi-rank runs are checked against (no engine, no MPI)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backupsgd.data import load_dataset
from backupsgd.models import build_model
from backupsgd.optim import build_optimizer


def _setup(cfg: dict):
    torch.set_num_threads(1)
    model = build_model(cfg["model"], cfg["seed"], cfg["dataset"])
    opt = build_optimizer(cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"])
    return model, opt, load_dataset(cfg["dataset"])


def _flat(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


def concatenated_step(cfg: dict, workers: int) -> np.ndarray:
    """One SGD step on the concatenation of every worker's step-0 minibatch, in one forward pass."""
    model, opt, data = _setup(cfg)
    batches = [data.sample(cfg["seed"], r, 0, cfg["batch_size"]) for r in range(workers)]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return _flat(model)


def members_mean(grads: list[torch.Tensor]) -> torch.Tensor:
    """The members' mean in the members reducer's own float32 arithmetic: Open MPI's allreduce over a step's (at
    most 3) members adds their buffers from the highest member down, and the engine scales that sum by float32(1/n).
    A replay summing in another order drifts off some runs of a few hundred steps by 1e-4 and more (a ReLU flips
    on a 1-ulp difference); in this order it stays within 2e-7 of them."""
    total = grads[-1].clone()
    for g in reversed(grads[:-1]):
        total = total + g
    return total * np.float32(1.0 / len(grads))


def replay(cfg: dict, members_per_step: list[list[int]], mean=lambda grads: torch.stack(grads).mean(0)) -> np.ndarray:
    """Re-run training in one process, each step averaging the gradients of exactly the recorded members (`mean`:
    how, e.g. `members_mean`)."""
    model, opt, data = _setup(cfg)
    params = list(model.parameters())
    for step, members in enumerate(members_per_step):
        grads = []
        for r in members:
            x, y = data.sample(cfg["seed"], r, step, cfg["batch_size"])
            model.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            grads.append([p.grad.clone() for p in params])
        for i, p in enumerate(params):
            p.grad = mean([g[i] for g in grads])
        opt.step()
    return _flat(model)


def exp_order_stats(mean: float, p: int) -> np.ndarray:
    """E[T_(k)], k = 1..p, of p independent exponentials of mean `mean` (Renyi): mean times the sum over i < k of
    1 / (p - i)."""
    return mean * np.cumsum([1 / (p - i) for i in range(p)])
