"""A user's own model and dataset, named by import path (`--model pkg.module:factory`).

The protocol:
- a **model factory** takes no arguments and returns a `torch.nn.Module`. It is called on every rank after
  `torch.manual_seed(seed)`, so every rank builds the same initial parameters without a broadcast.
- a **dataset factory** takes no arguments and returns either `(x_train, y_train, x_test, y_test)`, four tensors
  for classification (y holds class indices; the loss is cross-entropy, evaluations record `test_loss`, which
  goes down, and `test_accuracy`, which goes up), or a `backupsgd.data.Dataset` for anything else.
Built-in models and datasets keep their short names; a name with a colon is an import path.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch
from torch import nn

from backupsgd.errors import ConfigError


def is_import_path(name: str) -> bool:
    return ":" in name


def load_factory(path: str, what: str) -> Callable[[], object]:
    """The callable `path` ("pkg.module:factory") names; ConfigError naming what is missing."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--{what} {path!r}: write an import path as pkg.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--{what} {path!r}: cannot import module {module_name!r} ({exc}); put it on "
                          "PYTHONPATH (every rank imports it)") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"--{what} {path!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def build_user_model(path: str) -> nn.Module:
    model = load_factory(path, "model")()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {path!r} returned {type(model).__name__}, not a torch.nn.Module; "
                          "a model factory must return the model")
    return model


def load_user_dataset(path: str):
    """The Dataset `path` names (tensors are wrapped into one; their shapes are checked)."""
    from backupsgd.data import Dataset

    value = load_factory(path, "dataset")()
    if isinstance(value, Dataset):
        return value
    if not (isinstance(value, tuple) and len(value) == 4 and all(torch.is_tensor(v) for v in value)):
        raise ConfigError(f"--dataset {path!r} returned {type(value).__name__}; a dataset factory must return "
                          "(x_train, y_train, x_test, y_test) tensors or a backupsgd.data.Dataset")
    x_train, y_train, x_test, y_test = value
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or not len(x_train) or not len(x_test):
        raise ConfigError(f"--dataset {path!r}: x and y must have the same, non-zero number of rows in both splits "
                          f"(got {len(x_train)}/{len(y_train)} train, {len(x_test)}/{len(y_test)} test)")
    if y_train.is_floating_point() or y_test.is_floating_point():
        raise ConfigError(f"--dataset {path!r}: y must hold class indices (an integer tensor) for the "
                          "cross-entropy loss; return a backupsgd.data.Dataset for other problems")
    classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(path, x_train.float(), y_train.long(), x_test.float(), y_test.long(), classes)
