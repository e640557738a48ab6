"""Offline datasets and per-worker minibatch sampling keyed by (seed, worker, step)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

# Data are fixed across runs (only sampling and init follow the run seed), so every run sees the same problem.
_DATA_SEED = 1234
_SAMPLE_STREAM = 0x5A4D


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    def sample(self, seed: int, worker: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatch worker `worker` trains on at `step`: the same in every mode and on every run."""
        rng = np.random.default_rng((seed, _SAMPLE_STREAM, worker, step))
        idx = torch.from_numpy(rng.integers(0, len(self.x_train), batch_size))
        return self.x_train[idx], self.y_train[idx]


@lru_cache(maxsize=None)
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    return Dataset("digits", _f32(x_tr), torch.as_tensor(y_tr), _f32(x_te), torch.as_tensor(y_te), 10)


@lru_cache(maxsize=None)
def _synthetic(features: int = 20, n_train: int = 4096, n_test: int = 1024) -> Dataset:
    """Logistic-regression data drawn from a known weight vector (the model that generated them)."""
    rng = np.random.default_rng(_DATA_SEED)
    w_true = rng.normal(size=features)
    x = rng.normal(size=(n_train + n_test, features))
    y = (rng.random(n_train + n_test) < 1 / (1 + np.exp(-x @ w_true))).astype(np.int64)
    return Dataset("synthetic", _f32(x[:n_train]), torch.as_tensor(y[:n_train]),
                   _f32(x[n_train:]), torch.as_tensor(y[n_train:]), 2)


@lru_cache(maxsize=None)
def _cifar(n_train: int = 2048, n_test: int = 512) -> Dataset:
    """CIFAR-shaped (3x32x32, 10 classes) images: a class template plus noise, so there is signal to learn."""
    rng = np.random.default_rng(_DATA_SEED)
    templates = rng.normal(size=(10, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, n_train + n_test)
    x = templates[y] + 2.0 * rng.normal(size=(n_train + n_test, 3, 32, 32)).astype(np.float32)
    return Dataset("cifar", torch.from_numpy(x[:n_train]), torch.as_tensor(y[:n_train]),
                   torch.from_numpy(x[n_train:]), torch.as_tensor(y[n_train:]), 10)


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


DATASETS = {"digits": _digits, "synthetic": _synthetic, "cifar": _cifar}


def load_dataset(name: str) -> Dataset:
    return DATASETS[name]()
