"""A user's model and dataset by import path: the same training as the built-in names, and refusals that name
the fix (at configuration, or on every rank alike once built)."""

import pytest
from mpirun import mpirun, train

from backupsgd.config import build_config
from backupsgd.errors import ConfigError

ZOO = "tests.userzoo.models"


@pytest.mark.parametrize("model,dataset,words", [
    ("no.such.module:mlp", "digits", "cannot import module 'no.such.module'"),
    (f"{ZOO}:nothing", "digits", "has no callable 'nothing'"),
    (f"{ZOO}:mlp", "", "has no default dataset"),
    ("mlp", f"{ZOO}:digits", "give a model for it by import path too"),
    (f"{ZOO}:mlp", "imagenet", "unknown dataset 'imagenet'"),
    (":mlp", "digits", "pkg.module:factory"),
])
def test_bad_import_paths_are_refused_naming_the_fix(model, dataset, words):
    with pytest.raises(ConfigError, match=words):
        build_config({"model": model, "dataset": dataset})


def test_a_model_by_import_path_trains_exactly_as_its_built_in_twin(tmp_path):
    common = ("--mode", "backup", "--backups", "1", "--steps", "12", "--eval-every", "6",
              "--straggler", "slow:ranks=2,delay=0.03")
    builtin = train(3, tmp_path / "builtin", "--model", "mlp", *common)
    theirs = train(3, tmp_path / "theirs", "--model", f"{ZOO}:mlp", "--dataset", f"{ZOO}:digits", *common)
    assert theirs["param_digests"] == builtin["param_digests"]
    assert theirs["test_accuracy"] == builtin["test_accuracy"] and theirs["model"] == f"{ZOO}:mlp"


@pytest.mark.parametrize("model,dataset,words", [
    (f"{ZOO}:not_a_model", "digits", "returned str, not a torch.nn.Module"),
    (f"{ZOO}:mlp", f"{ZOO}:float_labels", "y must hold class indices"),
])
def test_a_factory_returning_the_wrong_thing_stops_every_rank_with_one_line(tmp_path, model, dataset, words):
    result = mpirun(2, ["-m", "backupsgd", "train", "--no-progress", "--out", str(tmp_path / "run"),
                        "--model", model, "--dataset", dataset, "--steps", "3"], timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count(words) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
