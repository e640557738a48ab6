"""Real data from files: MNIST-format IDX images (Fashion-MNIST, MNIST) and the Python docs as bytes.

The files come from Debian packages (`make data`); a user's own copies work from any directory given
as --data-dir. Without --data-dir, the package's install path is searched, then the user's cache.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from backupsgd.data import SHAPES, Dataset, TextDataset, _DATA_SEED
from backupsgd.errors import ConfigError


def cache_dir() -> Path:
    """Where `make data` unpacks the packages when it cannot install them (not root)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "backupsgd" / "data"


@dataclass(frozen=True)
class Source:
    files: tuple[str, ...]  # names looked for in a directory (an IDX file may also be there un-gzipped)
    system_dir: str  # where the Debian package installs them; "" when no package ships them
    package: str  # the Debian package `make data` fetches; "" when none


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SOURCES = {
    "fashion-mnist": Source(_IDX_FILES, "/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist"),
    "mnist": Source(_IDX_FILES, "", ""),
    "pydocs": Source(("python3.11.info.gz",), "/usr/share/info", "python3.11-doc"),
}
# torchvision keeps the same files in ROOT/<Name>/raw; a --data-dir pointing at ROOT works too.
_TORCHVISION = {"fashion-mnist": "FashionMNIST/raw", "mnist": "MNIST/raw"}

# Per-pixel mean and spread of each training set (the values torchvision users normalise with).
_NORMALISE = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}
# Evaluations use the first 1,000 of the 10,000 test images (about 100 of each class): 0.4 s for the cnn
# on one thread, 1.6 s for the resnet.
IMAGE_EVAL_EXAMPLES = 1000

# python3.11-doc 3.11.2-6+deb12u8 (Debian 12): the SHA-256 of the .gz file as shipped.
PYDOCS_SHA256 = "1b2cee8a7fdbb54f17a7c8e65e494851867edaa1142eff6a959fc0a2447c8eba"
PYDOCS_TEST_FRACTION = 0.05  # the last 5% of the prose's bytes are the test split
# An Info manual ends with generated indexes (the Python docs': 10% of the file) and a tag table of node
# offsets (11%): lists, not prose, so the text is cut at the first of them.
_NOT_PROSE = re.compile(rb"\x1f\n(?:File: [^,\n]*,  Node: (?:Python Module Index|Index),|Tag Table:)")
PYDOCS_EVAL_WINDOWS = 64  # windows per evaluation: a fixed random subset of the test split's windows


def search_dirs(name: str, data_dir: str = "") -> list[Path]:
    """The directories searched for `name`'s files, in order: --data-dir alone if given."""
    if data_dir:
        base = Path(data_dir).expanduser()
        return [base] + ([base / _TORCHVISION[name]] if name in _TORCHVISION else [])
    source = SOURCES[name]
    return [Path(d) for d in (source.system_dir, str(cache_dir() / name)) if d]


def _find(directory: Path, filename: str) -> Path | None:
    for candidate in (filename, filename.removesuffix(".gz")):  # torchvision keeps both forms
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def locate(name: str, data_dir: str = "") -> list[Path]:
    """The paths of `name`'s files, from the first directory that holds all of them; ConfigError if none does."""
    source = SOURCES[name]
    dirs = search_dirs(name, data_dir)
    for directory in dirs:
        found = [_find(directory, f) for f in source.files]
        if all(found):
            return found  # type: ignore[return-value]
    where = " or ".join(str(d) for d in dirs)
    files = ", ".join(source.files)
    if data_dir:
        fix = f"put them in {data_dir} or pass --data-dir with the directory that holds them"
    elif source.package:
        fix = (f"run `make data` (Debian package {source.package}), or pass --data-dir DIR holding them")
    else:
        fix = f"put them in {cache_dir() / name} or pass --data-dir DIR holding them"
    raise ConfigError(f"dataset {name!r}: {files} not found in {where}; {fix}")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian header, then unsigned bytes), gzipped or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ConfigError(f"{path} is not an IDX file of unsigned bytes; replace it with the original file "
                          "(`make data` fetches Fashion-MNIST's)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: header says {dims} ({int(np.prod(dims))} bytes), the file holds {body.size}; "
                          "the file is truncated or corrupt: fetch it again")
    return body.reshape(dims)


@lru_cache(maxsize=None)
def _images(name: str, data_dir: str) -> Dataset:
    train_x, train_y, test_x, test_y = (read_idx(p) for p in locate(name, data_dir))
    channels, height, width = SHAPES[name].image  # type: ignore[misc]
    for images, labels in ((train_x, train_y), (test_x, test_y)):
        if images.shape[1:] != (height, width) or len(images) != len(labels):
            raise ConfigError(f"dataset {name!r}: images {images.shape} and labels {labels.shape} are not "
                              f"N x {height} x {width} images with N labels; check the files in --data-dir")
    mean, std = _NORMALISE[name]

    def scale(images: np.ndarray) -> torch.Tensor:
        x = (images.astype(np.float32) / 255.0 - mean) / std
        return torch.from_numpy(x.reshape(len(images), channels, height, width))

    return Dataset(name, scale(train_x), torch.from_numpy(train_y.astype(np.int64)),
                   scale(test_x), torch.from_numpy(test_y.astype(np.int64)), SHAPES[name].classes,
                   eval_examples=IMAGE_EVAL_EXAMPLES)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_text(data: bytes, context: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training stream, then the test split cut into non-overlapping (input, next-byte target) windows.

    The test windows come in a fixed random order, so an evaluation of the first k spans the whole split.
    """
    stream = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    cut = len(stream) - int(len(stream) * PYDOCS_TEST_FRACTION)
    test = stream[cut:]
    n = (len(test) - 1) // context
    starts = torch.arange(n) * context
    order = torch.from_numpy(np.random.default_rng(_DATA_SEED).permutation(n))
    windows = test[starts[order][:, None] + torch.arange(context + 1)].long()
    return stream[:cut].clone(), windows[:, :-1], windows[:, 1:]


@lru_cache(maxsize=None)
def _pydocs(data_dir: str) -> TextDataset:
    (path,) = locate("pydocs", data_dir)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != PYDOCS_SHA256:
        print(f"backupsgd: warning: {path} has SHA-256 {digest}, not the recorded {PYDOCS_SHA256} "
              "(python3.11-doc 3.11.2-6+deb12u8): a different text, so its losses and bits per byte are "
              "not comparable with results measured on the recorded file", file=sys.stderr, flush=True)
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if (end := _NOT_PROSE.search(text)) is not None:
        text = text[:end.start()]
    context = SHAPES["pydocs"].context
    assert context is not None
    train, x_test, y_test = split_text(text, context)
    return TextDataset("pydocs", train, torch.empty(0, dtype=torch.int64), x_test, y_test, SHAPES["pydocs"].classes,
                       eval_examples=PYDOCS_EVAL_WINDOWS, context=context)


def load(name: str, data_dir: str = "") -> Dataset:
    if name == "pydocs":
        return _pydocs(data_dir)
    return _images(name, data_dir)
