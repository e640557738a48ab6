"""A script's run directory (BACKUPSGD_RUN_DIR): the files `backupsgd train` writes, so `backupsgd report`,
`backupsgd timeline` and the simulator's calibration read a script's runs unchanged.

Rank 0 writes config.json and one steps.jsonl record per decided step as it goes; evaluations come from
`hvd.log_eval`; at shutdown every rank's timings and digests are gathered into ranks.jsonl, params.npy and,
last, summary.json (its presence marks a finished run, as for `train`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from mpi4py import MPI

from backupsgd.clock import run_clock_offset
from backupsgd.engine import Decision
from backupsgd.fused import FusedGradients
from backupsgd.noise import NoiseScale, step_fields
from backupsgd.replica import flat_params, optimizer_digest, param_digest
from backupsgd.rundir import RunWriter, StepTiming, rank_record, step_record
from backupsgd.torch.runtime import Runtime


class ScriptRun:
    """Collective to create and to finish (every rank); `step` and `evaluation` are local calls."""

    def __init__(self, runtime: Runtime, path: str | Path | None,
                 noise: tuple[FusedGradients, int] | None = None) -> None:
        """`noise`: the fused layout whose sums decisions carry and the per-rank batch size, to record the
        gradient noise scale per step (as train.py does)."""
        settings = runtime.settings
        self.rank, self.size, self.quorum, self._comm = runtime.rank, runtime.size, runtime.quorum, runtime.collectives
        self._settings = settings
        self.start = time.perf_counter()
        self.clock_offset_s = run_clock_offset(self._comm, self.start)
        self.timings: dict[int, StepTiming] = {}
        self.nonfinite_steps: list[int] = []
        self._last_eval: dict[str, float] = {}
        self._noise, self._smoother = noise, NoiseScale()
        config = {"mode": settings.mode, "backups": settings.backups,
                  "workers": self.size, "quorum": self.quorum, "seed": settings.seed, "straggler": settings.straggler,
                  "reducer": settings.reducer, "model": Path(sys.argv[0]).stem, "script": sys.argv[0],
                  "script_args": sys.argv[1:], "eval_every": 0}
        if noise is not None:
            config["batch_size"] = noise[1]
        self._writer = RunWriter(Path(path), config) if path and self.rank == 0 else None

    def step(self, decision: Decision, timing: StepTiming) -> None:
        self.timings[decision.step] = timing
        if self._writer is not None:
            record = step_record(decision, self.elapsed(), None, timing, list(range(self.size)))
            if self._noise is not None:  # the members' own squared norms (summed in a slot) against their mean's
                fused, batch = self._noise
                record.update(step_fields(float(decision.total[fused.sq_norm]), len(decision.members), batch,
                                          fused.squared_norm(decision.total, decision.scale), self._smoother))
            self._writer.step(record)

    def evaluation(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, "time": self.elapsed()}
        record.update({key if key.startswith("test_") else f"test_{key}": float(value)
                       for key, value in metrics.items()})
        self._last_eval = {k: v for k, v in record.items() if k.startswith("test_")}
        if self._writer is not None:
            self._writer.evaluation(record)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def finish(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, steps: int) -> None:
        digests = self._comm.gather((param_digest(params), optimizer_digest(optimizer)), root=0)
        hosts = self._comm.gather(MPI.Get_processor_name(), root=0)  # each rank's node, in rank order
        per_rank = self._comm.gather(rank_record(self.rank, self.timings, self.clock_offset_s,
                                                 nonfinite_steps=self.nonfinite_steps), root=0)
        if self._writer is None:
            return
        wall_s, s = self.elapsed(), self._settings
        dropped = (self.size - self.quorum) * steps
        summary = {
            "mode": s.mode, "workers": self.size, "backups": s.backups,
            "quorum": self.quorum, "steps": steps, "wall_s": wall_s, "steps_per_s": steps / wall_s,
            "dropped_gradients": dropped, "dropped_fraction": dropped / max(1, self.size * steps),
            "test_loss": self._last_eval.get("test_loss"), "test_accuracy": self._last_eval.get("test_accuracy"),
            **{k: v for k, v in self._last_eval.items() if k not in ("test_loss", "test_accuracy")},
            "seed": s.seed, "straggler": s.straggler, "model": Path(sys.argv[0]).stem, "reducer": s.reducer,
            "nonfinite_gradients": [[r["rank"], st] for r in per_rank for st in r["nonfinite_steps"]],
            "param_digests": [d[0] for d in digests], "optimizer_digests": [d[1] for d in digests],
            "hosts": hosts, "run_dir": str(self._writer.path),
        }
        self._writer.finish(summary, flat_params(params), per_rank)
