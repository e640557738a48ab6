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

from backupsgd.auto_quorum import AutoQuorum, QuorumTally
from backupsgd.clock import run_clock_offset
from backupsgd.engine import Decision
from backupsgd.failover import NO_NOISE, StepLog, go_on_from
from backupsgd.replica import flat_params, optimizer_digest, param_digest
from backupsgd.rundir import RunWriter, StepTiming, rank_record, step_record
from backupsgd.torch.runtime import Runtime


class ScriptRun:
    """Collective to create and to finish (every rank); `step` and `evaluation` are local calls."""

    def __init__(self, runtime: Runtime, path: str | Path | None, batch_size: int | None = None,
                 auto: AutoQuorum | None = None) -> None:
        """`batch_size`: the per-rank minibatch, recorded in config.json so the noise scale reads in examples;
        `auto`: rank 0's coordinator under backups="auto" (its choices go into the records)."""
        settings = runtime.settings
        # rank and size: this rank's world rank and P, as the run started (the runtime's shrink under ULFM)
        self.rank, self.size, self.quorum, self._runtime = runtime.world_rank, runtime.workers, runtime.quorum, runtime
        self._settings = settings
        self.start = time.perf_counter()
        self.clock_offset_s = run_clock_offset(runtime.collectives, self.start)
        self.timings: dict[int, StepTiming] = {}
        self.nonfinite_steps: list[int] = []
        self._last_eval: dict[str, float] = {}
        self._auto = isinstance(settings.backups, str)
        # rank 0: each step's N and the gradients dropped (under auto N changes), for the records and the summary
        self.tally = QuorumTally(self.quorum, auto, runtime.bounds if self._auto else None)
        config = {"mode": settings.mode, "backups": settings.backups,
                  "workers": self.size, "quorum": None if self._auto else self.quorum, "seed": settings.seed,
                  "straggler": settings.straggler,
                  "reducer": settings.reducer, "model": Path(sys.argv[0]).stem, "script": sys.argv[0],
                  "script_args": sys.argv[1:], "eval_every": 0}
        if batch_size is not None:
            config["batch_size"] = batch_size
        self._path, self._config = (Path(path) if path else None), config
        self._writer = RunWriter(Path(path), config) if path and runtime.rank == 0 else None
        self._log = StepLog()  # a non-writer's copy of the records, should it take over from a dead writer
        self.shrinks: list[dict] = []  # each time dead ranks were shrunk away: the step gone on from, who

    def step(self, decision: Decision, timing: StepTiming, fields: dict | None = None) -> None:
        """`fields`: more of the step's record (rank 0: the noise scale; under auto the N chosen)."""
        self.timings[decision.step] = timing
        living = self._runtime.living  # decision.members are ranks of the communicator of the living
        record = step_record(decision, self.elapsed(), None, timing, living)
        if self._writer is not None:
            record.update(fields or {})
            self.tally.count(record)
            self._writer.step(record)
        elif self._path is not None:
            self._log.step(record | NO_NOISE | self.tally.stated(len(decision.members)))

    def evaluation(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, "time": self.elapsed()}
        record.update({key if key.startswith("test_") else f"test_{key}": float(value)
                       for key, value in metrics.items()})
        self._last_eval = {k: v for k, v in record.items() if k.startswith("test_")}
        if self._writer is not None:
            self._writer.evaluation(record)
        elif self._path is not None:
            self._log.evaluation(record)

    def go_on(self, applied: int, state, dead: list[int]) -> tuple[int, bytes | None, bool]:
        """Collective over the survivors, just shrunk (backupsgd.failover.go_on_from): the step to go on from,
        the state to load (None on the rank whose state it is), and whether this rank took over the writing."""
        was_writer, runtime = self._writer is not None, self._runtime
        take_over = (lambda upto: RunWriter.take_over(self._path, self._config, upto)) if self._path else None
        step, payload, self._writer = go_on_from(runtime.world, applied, state, self._log, self._writer, take_over,
                                                 self.rank)
        if self._writer is not None and self._path is not None:  # the dead writer's steps and those filled in
            self.tally.recount(self._path / "steps.jsonl")
        self.shrinks.append({"step": step, "dead": dead, "living": runtime.living})
        return step, payload, self._writer is not None and not was_writer

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def finish(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, steps: int,
               trained_s: float) -> None:
        """Gather every rank's digests and timings and write the summary. `trained_s`: seconds to the script's
        close (its last step applied, its evaluations done), the run's `wall_s`; the closing itself waits for every
        rank, a dropped straggler still sleeping out its last delay included, and counts only in `ended_s`."""
        comm = self._runtime.collectives  # the survivors', after a shrink
        digests = comm.gather((param_digest(params), optimizer_digest(optimizer)), root=0)
        hosts = comm.gather(MPI.Get_processor_name(), root=0)  # each rank's node, in rank order
        per_rank = comm.gather(rank_record(self.rank, self.timings, self.clock_offset_s,
                                           nonfinite_steps=self.nonfinite_steps), root=0)
        if self._writer is None:
            return
        wall_s, ended_s, s = trained_s, self.elapsed(), self._settings
        summary = {
            "mode": s.mode, "workers": self.size, "backups": s.backups, **self.tally.summary(self.size, steps),
            "steps": steps, "wall_s": wall_s, "steps_per_s": steps / wall_s, "ended_s": ended_s,
            "test_loss": self._last_eval.get("test_loss"), "test_accuracy": self._last_eval.get("test_accuracy"),
            **{k: v for k, v in self._last_eval.items() if k not in ("test_loss", "test_accuracy")},
            "seed": s.seed, "straggler": s.straggler, "model": Path(sys.argv[0]).stem, "reducer": s.reducer,
            "nonfinite_gradients": [[r["rank"], st] for r in per_rank for st in r["nonfinite_steps"]],
            "param_digests": [d[0] for d in digests], "optimizer_digests": [d[1] for d in digests],
            "hosts": hosts, "run_dir": str(self._writer.path),
            # ranks that died under a fault-tolerant launch, and the step the survivors went on from
            "shrinks": self.shrinks, "living": self._runtime.living,
        }
        self._writer.finish(summary, flat_params(params), per_rank)
