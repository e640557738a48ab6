"""Which training loop runs a mode, by name, imported lazily so that no mode's dependencies
(Horovod, say) are needed by another."""

from __future__ import annotations

import importlib
from typing import Callable

# mode -> "module:function"; the function is called as fn(config, comm, run_dir) on every rank and
# returns the summary dict on the writing rank ({} elsewhere).
RUNNERS: dict[str, str] = {
    "sync": "backupsgd.train:train",
    "backup": "backupsgd.train:train",
    "horovod": "backupsgd.hvd.train:train",
    "ps-sync": "backupsgd.ps.train:train",
    "ps-backup": "backupsgd.ps.train:train",
    "ps-async": "backupsgd.ps.train:train",
}


def runner_for(mode: str) -> Callable:
    module, _, name = RUNNERS[mode].partition(":")
    return getattr(importlib.import_module(module), name)
