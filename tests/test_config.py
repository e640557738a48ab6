"""Configuration: TOML and CLI fill one typed tree; every bad value names its fix."""

import pytest

from backupsgd.config import build_config, load_toml
from backupsgd.errors import ConfigError


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('mode = "backup"\nbackups = 2\nbatch-size = 16\nlr = 1\n')
    values = load_toml(path) | {"backups": 1}
    cfg = build_config(values)
    assert (cfg.mode.mode, cfg.mode.backups, cfg.workload.batch_size, cfg.workload.lr) == ("backup", 1, 16, 1)
    assert cfg.workload.dataset == "digits"


@pytest.mark.parametrize("values,fix", [
    ({"mode": "bogus"}, "unknown mode"),
    ({"backups": -1}, "backups must be an integer >= 0"),
    ({"mode": "sync", "backups": 1}, "use --backups 0"),
    ({"model": "vgg"}, "unknown model"),
    ({"dataset": "imagenet"}, "use --dataset digits"),
    ({"optimizer": "sgdx"}, "unknown optimizer"),
    ({"straggler": "slow:rank=1"}, "unknown key"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"colour": "red"}, "unknown option 'colour'"),
    ({"backups": "two"}, "backups must be an integer"),
])
def test_bad_values(values, fix):
    with pytest.raises(ConfigError, match=fix):
        build_config(values)


def test_world_checks():
    with pytest.raises(ConfigError, match="use --backups 0..3"):
        build_config({"backups": 4}).check_world(4)
    with pytest.raises(ConfigError, match="outside the world of 3"):
        build_config({"straggler": "slow:ranks=5,delay=1"}).check_world(3)
    build_config({"backups": 3}).check_world(4)


@pytest.mark.parametrize("text,fix", [
    ("mode = ", "not valid TOML"),
    ("speed = 3", "unknown key 'speed'"),
    ("[train]\nmode = 'sync'", "tables are not supported"),
])
def test_bad_files(tmp_path, text, fix):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fix):
        load_toml(path)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")


def test_every_optimizer_name_builds():
    import torch

    from backupsgd.optim import build_optimizer, optimizer_class

    for name in ("sgd", "SGD", "adam", "adamw", "rmsprop", "adagrad"):
        assert issubclass(optimizer_class(name), torch.optim.Optimizer)
        build_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], 0.1, 0.9)
