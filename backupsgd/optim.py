"""Optimizers by name: any torch.optim optimizer, with momentum passed where it is accepted."""

from __future__ import annotations

import inspect

import torch

from backupsgd.errors import ConfigError


def _optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    return {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
    }


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    options = _optimizers()
    if name.lower() not in options:
        raise ConfigError(f"unknown optimizer {name!r}; use --optimizer with one of {', '.join(sorted(options))}")
    return options[name.lower()]


def build_optimizer(name: str, params, lr: float, momentum: float) -> torch.optim.Optimizer:
    cls = optimizer_class(name)
    kwargs = {"lr": lr}
    if "momentum" in inspect.signature(cls).parameters:
        kwargs["momentum"] = momentum
    return cls(params, **kwargs)
