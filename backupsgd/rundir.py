"""The run directory: config.json, steps.jsonl, evals.jsonl, ranks.jsonl, summary.json, params.npy.

Only rank 0 writes. Step records are appended as they happen (flushed), so an interrupted run
still leaves every finished step on disk.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from backupsgd.errors import ConfigError

RUNS_ROOT = Path("results") / "runs"


def choose_run_dir(out: str, label: str) -> Path:
    """The directory this run writes: `out`, or a fresh timestamped one under results/runs/."""
    if out:
        path = Path(out)
        if (path / "steps.jsonl").exists() or (path / "summary.json").exists():
            raise ConfigError(f"run directory {path} already holds a run; pass a new --out DIR or remove it")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RUNS_ROOT / f"{stamp}-{label}"
    n = 1
    while path.exists():
        n += 1
        path = RUNS_ROOT / f"{stamp}-{label}-{n}"
    return path


def _clean(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


class RunWriter:
    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(_clean(config), indent=2) + "\n")
        self._steps = (path / "steps.jsonl").open("a")
        self._evals = (path / "evals.jsonl").open("a")
        self._last_flush = time.monotonic()

    def step(self, record: dict[str, Any]) -> None:
        self._steps.write(json.dumps(_clean(record)) + "\n")
        if time.monotonic() - self._last_flush > 1.0:
            self._steps.flush()
            self._last_flush = time.monotonic()

    def evaluation(self, record: dict[str, Any]) -> None:
        self._evals.write(json.dumps(_clean(record)) + "\n")
        self._evals.flush()

    def finish(self, summary: dict[str, Any], params: np.ndarray, ranks: list[dict[str, Any]]) -> None:
        self._steps.close()
        self._evals.close()
        with (self.path / "ranks.jsonl").open("w") as f:
            for record in ranks:
                f.write(json.dumps(_clean(record)) + "\n")
        np.save(self.path / "params.npy", params)
        tmp = self.path / "summary.json.tmp"
        tmp.write_text(json.dumps(_clean(summary), indent=2) + "\n")
        os.replace(tmp, self.path / "summary.json")  # summary.json present means the run finished

    def close(self) -> None:
        self._steps.close()
        self._evals.close()
