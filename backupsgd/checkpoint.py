"""Checkpoints: the training state written atomically by rank 0, checked on load, and resumed from.

A checkpoint file is a magic line, a JSON header line (step, payload size, SHA-256, the settings
that shape the trajectory) and the payload (torch.save of the replica's state). It is written to a
temporary file, fsynced and renamed, so a crash mid-write leaves the previous checkpoint intact;
the previous one is also kept, so a checkpoint damaged later still leaves one to resume from.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from backupsgd.config import ExperimentConfig
from backupsgd.errors import ConfigError

MAGIC = b"backupsgd-checkpoint 1\n"
# Settings a resumed run may change: they do not shape the trajectory of parameters.
MAY_CHANGE = ("steps", "eval_every", "out", "progress", "fault", "stall_timeout", "checkpoint_every",
              "check_every", "resume", "lag_limit")


def encode(state: dict) -> bytes:
    out = io.BytesIO()
    torch.save(state, out)
    return out.getvalue()


def decode(payload: bytes) -> dict:
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def fingerprint(config: ExperimentConfig, workers: int) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it (JSON-normalised)."""
    values = {k: v for k, v in config.flat().items() if k not in MAY_CHANGE} | {"workers": workers}
    return json.loads(json.dumps(values))


class Checkpointer:
    """Writes a checkpoint every `every` applied steps (and after the last); keeps the newest two."""

    def __init__(self, run_dir: Path, every: int, settings: dict[str, Any], keep: int = 2) -> None:
        self.dir = run_dir / "checkpoints"
        self.every, self.settings, self.keep = every, settings, keep

    def due(self, applied: int, final: bool) -> bool:
        return self.every > 0 and (applied % self.every == 0 or final)

    def save(self, applied: int, state: dict) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = encode(state)
        header = {"step": applied, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                  "settings": self.settings}
        path = self.dir / f"step-{applied:09d}.ckpt"
        tmp = self.dir / f".{path.name}.tmp"
        with tmp.open("wb") as f:
            f.write(MAGIC + json.dumps(header).encode() + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.dir)  # the rename itself must reach the disk before older checkpoints go
        for old in _checkpoints(self.dir)[self.keep:]:
            old.unlink(missing_ok=True)
        return path


class CorruptCheckpoint(Exception):
    pass


def read(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header and payload of a checkpoint file; CorruptCheckpoint says what is wrong with it."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CorruptCheckpoint("not a backupsgd checkpoint (bad magic line)")
    head, newline, payload = data[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(head)
        size, digest, step = int(header["bytes"]), str(header["sha256"]), int(header["step"])
        settings = dict(header["settings"])
    except (ValueError, KeyError, TypeError):
        raise CorruptCheckpoint("its header is damaged") from None
    if not newline or len(payload) != size:
        raise CorruptCheckpoint(f"truncated: {len(payload)} of {size} payload bytes")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptCheckpoint("checksum mismatch: the payload was changed after it was written")
    return {"step": step, "settings": settings}, payload


def load_latest(run_dir: Path, settings: dict[str, Any]) -> tuple[int, bytes]:
    """The newest intact checkpoint's (step, payload); a damaged one is refused (said on stderr) in
    favour of the one before it. ConfigError if none is usable or the run's settings differ."""
    found = _checkpoints(run_dir / "checkpoints")
    if not found:
        raise ConfigError(f"no checkpoint in {run_dir}/checkpoints to resume from; "
                          "a run writes them with --checkpoint-every K")
    refused = []
    for path in found:
        try:
            header, payload = read(path)
        except (CorruptCheckpoint, OSError) as exc:
            refused.append(f"{path}: {exc}")
            print(f"backupsgd: checkpoint {path} refused: {exc}", file=sys.stderr, flush=True)
            continue
        _check_settings(path, header["settings"], settings)
        if refused:
            print(f"backupsgd: resuming from the previous checkpoint {path.name} (step {header['step']})",
                  file=sys.stderr, flush=True)
        return header["step"], payload
    raise ConfigError(f"no intact checkpoint to resume from ({'; '.join(refused)}); "
                      "restart the run without --resume")


def _check_settings(path: Path, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise ConfigError(
                f"checkpoint {path} was written by a run with {key}={theirs.get(key)!r}, this run has "
                f"{key}={ours.get(key)!r}; resume with the run's own settings (only {', '.join(MAY_CHANGE)} may change)"
            )


def _checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, newest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("step-*.ckpt"), reverse=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
