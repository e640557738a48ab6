"""The real workloads run end to end under mpirun, and every mode records the model's own metrics."""

import gzip
import json

import pytest
from mpirun import mpirun, train

from backupsgd import realdata
from backupsgd.errors import ConfigError


def _corpus(directory) -> None:
    """A small python3.11.info.gz stand-in, so these runs need no package (a warning says it is another file)."""
    directory.mkdir()
    text = b"".join(b"def f%d(x):\n    return x * %d  # a line of code\n" % (i, i) for i in range(3000))
    (directory / "python3.11.info.gz").write_bytes(gzip.compress(text))


def _evals(run_dir):
    return [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", [["--mode", "backup", "--backups", "1"], ["--mode", "ps-async"],
                                  ["--mode", "horovod"]], ids=["backup", "ps-async", "horovod"])
def test_language_model_records_bits_per_byte_in_every_mode(tmp_path, mode):
    _corpus(tmp_path / "text")
    out = tmp_path / "run"
    summary = train(2, out, "--model", "gpt", "--data-dir", str(tmp_path / "text"), "--batch-size", "2",
                    "--steps", "3", "--eval-every", "2", "--optimizer", "adam", "--lr", "0.001", *mode, timeout=240)
    assert "test_accuracy" not in summary
    assert summary["test_bits_per_byte"] == pytest.approx(summary["test_loss"] / 0.6931471805599453)
    evals = _evals(out)
    assert [e["step"] for e in evals] == [2, 3]
    assert all(set(e) >= {"test_loss", "test_bits_per_byte"} and "test_accuracy" not in e for e in evals)
    assert evals[-1]["test_loss"] == summary["test_loss"]


def _have_fashion() -> bool:
    try:
        realdata.locate("fashion-mnist")
        return True
    except ConfigError:
        return False


@pytest.mark.skipif(not _have_fashion(), reason="Fashion-MNIST's IDX files are absent (run `make data`)")
def test_cnn_trains_on_fashion_mnist_under_mpirun(tmp_path):
    out = tmp_path / "run"
    summary = train(2, out, "--model", "cnn", "--dataset", "fashion-mnist", "--mode", "sync", "--steps", "30",
                    "--batch-size", "32", "--lr", "0.05", "--eval-every", "0", timeout=240)
    assert len(set(summary["param_digests"])) == 1
    # 30 steps of 64 images: far above the 10% of a guess (the cnn passes 70% within about 20 such steps)
    assert summary["test_accuracy"] > 0.5, summary
    assert [e["step"] for e in _evals(out)] == [30]
