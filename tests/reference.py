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
    model = build_model(cfg["model"], cfg["seed"])
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


def replay(cfg: dict, members_per_step: list[list[int]]) -> np.ndarray:
    """Re-run training in one process, each step averaging the gradients of exactly the recorded members."""
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
            p.grad = torch.stack([g[i] for g in grads]).mean(0)
        opt.step()
    return _flat(model)
