"""Real data: IDX images (Fashion-MNIST, MNIST) and the Python docs as bytes, against the files' known contents.

The tests on the Debian files skip, saying why, when `make data` could not fetch them; `make test` runs
`make data` first, so CI (root, with apt) runs them.
"""

import gzip

import numpy as np
import pytest
import torch

from backupsgd import realdata
from backupsgd.config import build_config
from backupsgd.data import load_dataset
from backupsgd.errors import ConfigError


def _have(name: str) -> bool:
    try:
        realdata.locate(name)
        return True
    except ConfigError:
        return False


needs_fashion = pytest.mark.skipif(not _have("fashion-mnist"), reason="Fashion-MNIST's IDX files are absent "
                                   "(run `make data`: Debian package dataset-fashion-mnist)")
needs_pydocs = pytest.mark.skipif(not _have("pydocs"), reason="python3.11.info.gz is absent "
                                  "(run `make data`: Debian package python3.11-doc)")


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _fake_mnist(directory, n_train=30, n_test=20, gz=True) -> dict:
    """The four standard files with known contents; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        _write_idx(directory / (name + (".gz" if gz else "")), array, gz)
    return arrays


@needs_fashion
def test_fashion_mnist_files_have_the_published_shapes_and_balanced_labels():
    train_x, train_y, test_x, test_y = (realdata.read_idx(p) for p in realdata.locate("fashion-mnist"))
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == np.uint8 and train_x.max() == 255 and train_x.min() == 0
    assert np.bincount(train_y).tolist() == [6000] * 10  # the dataset's published class balance
    assert np.bincount(test_y).tolist() == [1000] * 10
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    # normalised with the training set's own mean and spread
    assert abs(float(data.x_train.mean())) < 1e-3 and abs(float(data.x_train.std()) - 1) < 1e-3
    x, y = data.eval_split()
    assert len(x) == len(y) == realdata.IMAGE_EVAL_EXAMPLES
    assert np.bincount(y.numpy(), minlength=10).min() >= 80  # about 100 of each class


@pytest.mark.parametrize("gz,layout", [(True, ""), (False, "MNIST/raw")], ids=["gzip", "torchvision-raw"])
def test_mnist_from_a_data_dir_reads_exactly_the_written_images(tmp_path, gz, layout):
    arrays = _fake_mnist(tmp_path / layout, gz=gz)
    data = load_dataset("mnist", str(tmp_path))
    mean, std = 0.1307, 0.3081
    expected = (arrays["t10k-images-idx3-ubyte"][:, None] / 255.0 - mean) / std
    np.testing.assert_allclose(data.x_test.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert data.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    xb, yb = data.sample(seed=0, worker=1, step=2, batch_size=5)
    assert xb.shape == (5, 1, 28, 28) and yb.dtype == torch.int64


def test_a_truncated_idx_file_names_the_fix(tmp_path):
    _fake_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-3]))
    with pytest.raises(ConfigError, match="truncated or corrupt: fetch it again"):
        realdata.read_idx(path)
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(ConfigError, match="not an IDX file"):
        realdata.read_idx(tmp_path / "x.gz")


@pytest.mark.parametrize("values,fix", [
    ({"model": "cnn", "dataset": "fashion-mnist", "data_dir": "/no/such/dir"},
     "not found in /no/such/dir or /no/such/dir/FashionMNIST/raw; put them in /no/such/dir or pass --data-dir"),
    ({"model": "gpt", "data_dir": "/no/such/dir"}, "python3.11.info.gz not found in /no/such/dir"),
    ({"model": "cnn", "data_dir": "/tmp"}, "reads no files; drop --data-dir"),
    ({"model": "gpt", "dataset": "digits"}, "use --dataset pydocs"),
])
def test_bad_data_dir_is_a_config_error_naming_the_fix(values, fix):
    with pytest.raises(ConfigError, match=fix):
        build_config(values).check_world(1)


def test_missing_default_files_say_make_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(realdata.SOURCES, "fashion-mnist",
                        realdata.Source(realdata._IDX_FILES, str(tmp_path / "none"), "dataset-fashion-mnist"))
    with pytest.raises(ConfigError, match=r"run `make data` \(Debian package dataset-fashion-mnist\)"):
        build_config({"model": "cnn", "dataset": "fashion-mnist"}).check_world(1)


def _info_file(directory, prose: bytes):
    """A stand-in python3.11.info.gz: prose, then an Info manual's index node and tag table."""
    tail = b"\x1f\nFile: python3.11.info,  Node: Index,  Prev: X,  Up: Top\n\nIndex\n*****\n* a: b. (line 1)\n"
    tail += b"\x1f\nTag Table:\nNode: Top\x7f1\n\x1f\nEnd Tag Table\n"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "python3.11.info.gz").write_bytes(gzip.compress(prose + tail))


def test_text_windows_are_next_byte_pairs_cut_from_the_prose(tmp_path, capfd):
    prose = b"".join(b"line %05d of some prose about python.\n" % i for i in range(2000))
    _info_file(tmp_path, prose)
    data = load_dataset("pydocs", str(tmp_path))
    assert "not the recorded" in capfd.readouterr().err  # another file than the recorded one: said clearly
    cut = len(prose) - int(len(prose) * realdata.PYDOCS_TEST_FRACTION)
    assert bytes(data.x_train.tolist()) == prose[:cut]  # the index and tag table are gone
    test = prose[cut:]
    context = data.context
    assert data.x_test.shape == ((len(test) - 1) // context, context)
    for x, y in zip(data.x_test[:5], data.y_test[:5]):
        window = bytes(x.tolist()) + bytes(y[-1:].tolist())
        assert window in test and bytes(y.tolist()) == window[1:]
    x, y = data.sample(seed=1, worker=0, step=3, batch_size=4)
    assert x.shape == y.shape == (4, context) and x.dtype == y.dtype == torch.int64
    for xi, yi in zip(x, y):
        assert bytes(xi.tolist()) + bytes(yi[-1:].tolist()) in prose[:cut]
        assert torch.equal(xi[1:], yi[:-1])


@needs_pydocs
def test_pydocs_is_the_recorded_file_and_split():
    (path,) = realdata.locate("pydocs")
    assert realdata.file_sha256(path) == realdata.PYDOCS_SHA256, (
        f"{path} is not the recorded python3.11-doc 3.11.2-6+deb12u8 file: record the new SHA-256")
    data = load_dataset("pydocs")
    prose = 15_468_155  # bytes before the Python Module Index node: 5% of them, rounded up, are the test split
    assert int(len(data.x_train)) == prose - int(prose * realdata.PYDOCS_TEST_FRACTION) == 14_694_748
    assert tuple(data.x_test.shape) == (6042, data.context)
    assert int(data.x_train.max()) > 127  # UTF-8 prose: multi-byte characters are there, byte by byte
