"""Datasets by name, their shapes, and per-worker minibatch sampling keyed by (seed, worker, step)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from backupsgd.errors import ConfigError
from backupsgd.plugins import is_import_path, load_user_dataset

# Data are fixed across runs (only sampling and init follow the run seed), so every run sees the same problem.
_DATA_SEED = 1234
_SAMPLE_STREAM = 0x5A4D


@dataclass(frozen=True)
class Shape:
    """What a model needs to know of its data, known from the dataset's name alone (no file is read)."""

    classes: int  # outputs: classes, or the vocabulary for text (256 byte values)
    image: tuple[int, int, int] | None = None  # (channels, height, width) of an image, however x is stored
    features: int | None = None  # length of a flat feature vector (non-image tabular data)
    context: int | None = None  # tokens per example (text)


SHAPES = {
    "digits": Shape(10, image=(1, 8, 8)),  # stored flat, (n, 64)
    "synthetic": Shape(2, features=20),
    "cifar": Shape(10, image=(3, 32, 32)),
    "fashion-mnist": Shape(10, image=(1, 28, 28)),
    "mnist": Shape(10, image=(1, 28, 28)),
    "pydocs": Shape(256, context=128),
}


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor  # the whole test split
    y_test: torch.Tensor
    classes: int
    eval_examples: int | None = None  # evaluations use the first this-many test examples; None: all of them

    def sample(self, seed: int, worker: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatch worker `worker` trains on at `step`: the same in every mode and on every run."""
        rng = np.random.default_rng((seed, _SAMPLE_STREAM, worker, step))
        idx = torch.from_numpy(rng.integers(0, len(self.x_train), batch_size))
        return self.x_train[idx], self.y_train[idx]

    def eval_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed test examples every evaluation uses: bounded, so an evaluation stays cheap."""
        n = self.eval_examples
        return (self.x_test, self.y_test) if n is None else (self.x_test[:n], self.y_test[:n])


@dataclass(frozen=True)
class TextDataset(Dataset):
    """Byte-level language modelling: x_train is the training text as one uint8 stream (y_train unused).

    An example is a window of `context` bytes and the same window shifted by one (next-byte targets).
    """

    context: int = 128

    def sample(self, seed: int, worker: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((seed, _SAMPLE_STREAM, worker, step))
        start = torch.from_numpy(rng.integers(0, len(self.x_train) - self.context, batch_size))
        windows = self.x_train[start[:, None] + torch.arange(self.context + 1)].long()
        return windows[:, :-1], windows[:, 1:]


# The rows of scikit-learn's digits that train_test_split(test_size=0.25, random_state=0, stratify=y) puts in the
# training and the test set, in its order (tests/test_digits.py checks them against scikit-learn and says how to
# write them again).
DIGITS_SPLIT = Path(__file__).with_name("digits_split.npz")


def digits_file() -> Path:
    """scikit-learn's own copy of the 8x8 digits, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the digits dataset is read from scikit-learn's copy: pip install scikit-learn")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


@lru_cache(maxsize=None)
def _digits() -> Dataset:
    """load_digits() split as above, without importing scikit-learn: its import cost each rank ~2 s of CPU at
    start-up, as much as torch's, and every rank of a run loads the data."""
    table = np.loadtxt(digits_file(), delimiter=",")  # what load_digits reads: 64 pixels 0-16, then the label
    x, y = table[:, :-1] / 16.0, table[:, -1].astype(int)
    with np.load(DIGITS_SPLIT) as split:
        train, test = split["train"], split["test"]
    return Dataset("digits", _f32(x[train]), torch.as_tensor(y[train]), _f32(x[test]), torch.as_tensor(y[test]), 10)


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


# Datasets bundled with a Python package; the others are read from files (backupsgd.realdata).
_BUNDLED = {"digits": _digits, "synthetic": _synthetic, "cifar": _cifar}
DATASETS = tuple(SHAPES)


def load_dataset(name: str, data_dir: str = "") -> Dataset:
    """The dataset `name`; the file-backed ones are read from `data_dir`, or found in the default places; a name
    with a colon is a user's factory (backupsgd.plugins)."""
    if is_import_path(name):
        return load_user_dataset(name)
    if name in _BUNDLED:
        return _BUNDLED[name]()
    from backupsgd import realdata

    return realdata.load(name, data_dir)
