"""Checkpoint files without MPI: round trip, atomic replacement, and every damaged or foreign one refused."""

import hashlib

import pytest
import torch

from backupsgd.checkpoint import MAY_CHANGE, Checkpointer, decode, fingerprint, load_latest, read
from backupsgd.config import build_config
from backupsgd.errors import ConfigError
from backupsgd.replica import Replica


def _replica(**overrides) -> Replica:
    torch.set_num_threads(1)
    return Replica(build_config(overrides).workload, torch.device("cpu"))


def _trained(steps: int = 3) -> Replica:
    """A replica whose parameters and momentum moved away from their initial values."""
    from backupsgd.data import load_dataset

    replica, data = _replica(), load_dataset("digits")
    buf = replica.new_buffer()
    for step in range(steps):
        replica.compute(*data.sample(0, 0, step, 16), out=buf)
        replica.apply(buf, 1.0)
    return replica


SETTINGS = fingerprint(build_config({}), workers=4)


def test_round_trip_restores_parameters_optimizer_and_rng_exactly(tmp_path):
    trained = _trained()
    ckpt = Checkpointer(tmp_path, every=2, settings=SETTINGS)
    ckpt.save(4, trained.state())
    step, payload = load_latest(tmp_path, SETTINGS)
    fresh = _replica()
    assert fresh.param_digest() != trained.param_digest()
    fresh.load_state(decode(payload))
    assert step == 4
    assert fresh.param_digest() == trained.param_digest()
    assert fresh.optimizer_digest() == trained.optimizer_digest()
    assert torch.equal(torch.get_rng_state(), trained.state()["torch_rng"])


def test_due_every_k_steps_and_after_the_last(tmp_path):
    ckpt = Checkpointer(tmp_path, every=4, settings={})
    assert [a for a in range(1, 11) if ckpt.due(a, final=a == 10)] == [4, 8, 10]
    assert not Checkpointer(tmp_path, every=0, settings={}).due(4, final=True)


def test_keeps_the_newest_two_and_leaves_no_temporary_file(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1, settings=SETTINGS)
    state = _replica().state()
    for step in (1, 2, 3):
        ckpt.save(step, state)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000000002.ckpt",
                                                                           "step-000000003.ckpt"]


@pytest.mark.parametrize("damage,reason", [
    (lambda data: data[: len(data) - 100], "truncated"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "checksum mismatch"),
    (lambda data: b"garbage" + data, "bad magic line"),
    (lambda data: data[:30], "header is damaged"),
])
def test_a_damaged_newest_checkpoint_is_refused_for_the_previous_one(tmp_path, capsys, damage, reason):
    ckpt = Checkpointer(tmp_path, every=4, settings=SETTINGS)
    ckpt.save(4, _replica().state())
    newest = ckpt.save(8, _trained().state())
    newest.write_bytes(damage(newest.read_bytes()))
    step, _ = load_latest(tmp_path, SETTINGS)
    assert step == 4
    err = capsys.readouterr().err
    assert f"{newest} refused" in err and reason in err, err
    assert "resuming from the previous checkpoint step-000000004.ckpt" in err


def test_no_intact_checkpoint_is_a_config_error(tmp_path):
    ckpt = Checkpointer(tmp_path, every=4, settings=SETTINGS)
    path = ckpt.save(4, _replica().state())
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ConfigError, match="no intact checkpoint to resume from"):
        load_latest(tmp_path, SETTINGS)
    with pytest.raises(ConfigError, match="no checkpoint in"):
        load_latest(tmp_path / "elsewhere", SETTINGS)


@pytest.mark.parametrize("changed,key", [({"lr": 0.2}, "lr"), ({"seed": 3}, "seed"),
                                         ({"reducer": "members"}, "reducer"), ({"optimizer": "adam"}, "optimizer")])
def test_a_checkpoint_from_other_settings_is_refused_naming_the_setting(tmp_path, changed, key):
    Checkpointer(tmp_path, every=4, settings=SETTINGS).save(4, _replica().state())
    with pytest.raises(ConfigError, match=f"written by a run with {key}="):
        load_latest(tmp_path, fingerprint(build_config(changed), workers=4))
    with pytest.raises(ConfigError, match="workers=4, this run has workers=5"):
        load_latest(tmp_path, fingerprint(build_config({}), workers=5))


def test_settings_that_do_not_shape_the_trajectory_may_change(tmp_path):
    Checkpointer(tmp_path, every=4, settings=SETTINGS).save(4, _replica().state())
    changed = build_config({"steps": 999, "eval_every": 7, "fault": "nan:ranks=1,steps=2", "stall_timeout": 9.0,
                            "checkpoint_every": 3, "check_every": 2, "resume": True, "lag_limit": 7})
    assert {"steps", "fault", "resume"} <= set(MAY_CHANGE)
    assert load_latest(tmp_path, fingerprint(changed, workers=4))[0] == 4


def test_header_checksum_is_sha256_of_the_payload(tmp_path):
    path = Checkpointer(tmp_path, every=1, settings=SETTINGS).save(1, _replica().state())
    header, payload = read(path)
    assert header["step"] == 1
    assert hashlib.sha256(payload).hexdigest() in path.read_bytes()[:200].decode(errors="replace")
