"""Finished run directories read back from their files, and the per-run quantities a report needs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from backupsgd.report.target import Target

# Never part of a configuration's identity: where a run wrote, whether it drew a bar, whether it was
# resumed from a checkpoint, and how long it would have waited on a hung rank before aborting.
# Settings that do not change what a run computes: runs differing only in these group together.
NOT_CONFIG = ("out", "progress", "run_dir", "resume", "stall_timeout", "check_every", "checkpoint_every",
              "lag_limit", "threads")


@dataclass
class Run:
    path: Path
    config: dict[str, Any]  # config.json flattened: every section's keys, plus workers and quorum
    summary: dict[str, Any]
    training_time: bool = False  # time to target leaves out the evaluations' pauses (see `evaluation_pauses`)
    interpolate: bool = False  # time to target is the crossing between evaluations (see `crossing_time`)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", self.summary.get("seed", 0)))

    @property
    def mode(self) -> str:
        return str(self.config.get("mode", self.summary.get("mode", "?")))

    @property
    def backups(self) -> int | str:
        """b, or the `auto...` spec of a run that chose N per step (see `b_value`)."""
        value = self.config.get("backups", self.summary.get("backups", 0))
        return value if isinstance(value, str) and value.startswith("auto") else int(value)

    @property
    def is_auto(self) -> bool:
        return isinstance(self.backups, str)

    @property
    def b_value(self) -> float:
        """b as a number: an auto run's mean b over its steps (P less the mean N its summary states)."""
        if not self.is_auto:
            return float(self.backups)
        return float(self.workers - self.summary.get("quorum", self.workers))

    def chosen_n(self) -> np.ndarray:
        """Each step's N from steps.jsonl (`quorum`; older runs: how many members it had)."""
        return np.array([s.get("quorum") or len(s.get("members", [])) for s in self.steps], dtype=float)

    @property
    def workers(self) -> int:
        return int(self.config.get("workers", self.summary.get("workers", 0)))

    @property
    def straggler(self) -> str:
        return str(self.config.get("straggler", self.summary.get("straggler", "none")))

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", ""))

    def config_key(self) -> tuple:
        """Everything that defines the configuration except the seed: runs with equal keys are repeats."""
        return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in self.config.items()
                            if k != "seed" and k not in NOT_CONFIG))

    @cached_property
    def evals(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path / "evals.jsonl")

    @cached_property
    def steps(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path / "steps.jsonl")

    @cached_property
    def ranks(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path / "ranks.jsonl")

    def final_value(self, target: Target) -> float | None:
        """The target's metric at the end of the run: summary.json's (train evaluates once more after the
        last step), else the last evaluation that recorded it."""
        final = target.value_of(self.summary)
        if final is not None:
            return final
        return next((x for r in reversed(self.evals) if (x := target.value_of(r)) is not None), None)

    def first_reaching(self, target: Target) -> dict[str, Any] | None:
        """The first evaluation at or past the target, in its direction; None if none was."""
        index = self._first_reaching_index(target)
        return None if index is None else self.evals[index]

    def _first_reaching_index(self, target: Target) -> int | None:
        return next((i for i, r in enumerate(self.evals) if target.reached(r)), None)

    def time_to(self, target: Target) -> float | None:
        """Wall seconds (rank 0's clock, from the first step) of the first evaluation that reached `target`; with
        `training_time`, less every evaluation's pause up to it, that one's included; with `interpolate`, the
        crossing_time instead."""
        if self.interpolate:
            return self.crossing_time(target)
        record = self.first_reaching(target)
        return None if record is None else self.time_of(record)

    def crossing_time(self, target: Target) -> float | None:
        """time_to, interpolated: where the metric crossed `target`, linearly in time between the first evaluation
        that reached it and the one before (that one's time if it is the first evaluation, or if the one before did
        not record the metric). time_to is quantised to the evaluations: on Fashion-MNIST, 10 steps apart against ~70
        to the target, up to 14% of a run's time; the metric's own noise stays. Paired over the same 20 seeds
        (Fashion-MNIST under Pareto delays), auto against b = 3's 95% interval went from +-18% to +-12%
        (results/README section 10).
        `backupsgd report --interpolate` and load_runs(interpolate=True) make it every run's time_to."""
        index = self._first_reaching_index(target)
        if index is None:
            return None
        reached = self.evals[index]
        if index == 0:
            return self.time_of(reached)
        before = self.evals[index - 1]
        below, at = target.value_of(before), target.value_of(reached)
        if below is None:
            return self.time_of(reached)
        # in (0, 1], and at != below: `before` read short of the target, `reached` at or past it
        share = (target.value - below) / (at - below)
        start = self.time_of(before)
        return start + share * (self.time_of(reached) - start)

    def time_of(self, record: dict[str, Any]) -> float:
        """An evaluation's time as time_to counts it: wall, or with `training_time` the time of the step it follows
        (when its updates were all applied) less every earlier evaluation's pause (the record's own time less every
        pause up to it, its own included, where the pause is rank 0's own: runs before the evaluation fence)."""
        if not self.training_time:
            return float(record["time"])
        step = int(record["step"])
        applied = self._step_times.get(step - 1)
        if applied is None:  # no record of the step it follows: as before, less its own pause too
            return float(record["time"]) - sum(p for s, p in self.evaluation_pauses if s <= step)
        return applied - sum(p for s, p in self.evaluation_pauses if s < step)

    @cached_property
    def _step_times(self) -> dict[int, float]:
        """Rank 0's clock when each step was applied (steps.jsonl)."""
        return {int(s["step"]): float(s["time"]) for s in self.steps if s.get("time") is not None}

    @cached_property
    def evaluation_pauses(self) -> list[tuple[int, float]]:
        """(step, seconds) of each evaluation: how long it held training up. Every rank evaluates after the same
        step, so on a workload whose evaluation is not cheap (~2 s a time on Fashion-MNIST with 5 ranks on 2 cores,
        against ~0.1 s steps) these pauses tax every step alike, and the configurations that need more steps pay
        more of them.

        Runs with the evaluation fence (config `evaluation_fence`, backupsgd/evaluation_fence.py: the step after an
        evaluation is decided once every rank offered it): the time from the step it follows to the step after it,
        less the mean of the ordinary steps (no evaluation in them) within `eval_every` steps either side, what
        that step would have taken with no evaluation. The ranks do not finish evaluating together (on Fashion-MNIST
        the last 0.3-0.7 s after rank 0), and the fence waits for the last; rank 0's own pause would charge that
        wait to training, alike in every arm. Earlier runs: the record's time less that of the step it follows, rank
        0's own pause; the ranks done first trained on through it under a small N, and those steps counted free.
        An evaluation whose steps are not both recorded counts 0."""
        times, every = self._step_times, int(self.config.get("eval_every") or 0)
        fenced, durations = bool(self.config.get("evaluation_fence")), self.ordinary_durations
        pauses = []
        for e in self.evals:
            step = int(e["step"])
            if e.get("time") is None or step - 1 not in times:
                continue
            if not fenced:
                pauses.append((step, max(0.0, float(e["time"]) - times[step - 1])))
            elif step in times:
                near = [d for s, d in durations.items() if abs(s - step) < every] if every else []
                typical = float(np.mean(near)) if near else 0.0
                pauses.append((step, max(0.0, times[step] - times[step - 1] - typical)))
        return pauses

    def steps_to(self, target: Target) -> int | None:
        """Updates applied by the first evaluation that reached `target`."""
        record = self.first_reaching(target)
        return None if record is None else int(record["step"])

    def metrics(self) -> set[str]:
        """The keys its evaluations recorded (test_accuracy, test_loss, ...), step and time left out."""
        return {k for r in self.evals for k in r} - {"step", "time"}

    def step_durations(self) -> np.ndarray:
        """Seconds per step from steps.jsonl, leaving out step 0 (warm-up) and each step that also
        paid for a test evaluation (the one logged right after it), so only training steps count."""
        return np.array(list(self.ordinary_durations.values()))

    @cached_property
    def ordinary_durations(self) -> dict[int, float]:
        """step_durations by step: what results/auto-switches/oracle.py prices a step at each N from."""
        times, every = self._step_times, int(self.config.get("eval_every") or 0)
        return {s: t - times[s - 1] for s, t in times.items() if s - 1 in times and not (every and s % every == 0)}

    def mean_step_s(self) -> float | None:
        durations = self.step_durations()
        return float(durations.mean()) if len(durations) else None

    def arrival_matrix(self) -> np.ndarray:
        """(steps, P) seconds from a worker's step start to its gradient being ready (compute + delay);
        NaN where the worker never computed that step (it was too far behind and skipped it)."""
        by_rank = sorted((r for r in self.ranks if r.get("compute_s")), key=lambda r: r["rank"])  # servers: none
        if not by_rank:
            return np.empty((0, 0))
        length = min(len(r.get("compute_s") or []) for r in by_rank)
        out = np.full((length, len(by_rank)), np.nan)
        for j, r in enumerate(by_rank):
            for t in range(length):
                c, d = r["compute_s"][t], (r.get("delay_s") or [None] * length)[t]
                if c is not None:
                    out[t, j] = c + (d or 0.0)
        return out

    def coordinator_arrivals(self) -> np.ndarray:
        """(steps, N) coordinator-measured READY times of the members, seconds into the step, sorted;
        empty for modes without a vote (sync)."""
        rows = [sorted(s["arrivals"].values()) for s in self.steps if s.get("arrivals")]
        width = min((len(r) for r in rows), default=0)
        return np.array([r[:width] for r in rows]) if width else np.empty((0, 0))

    def median_compute_s(self) -> float | None:
        """Median measured compute time per step over every rank and step, step 0 (warm-up) left out."""
        values = [c for r in self.ranks for c in (r.get("compute_s") or [])[1:] if c is not None]
        return float(np.median(values)) if values else None

    def mean_delay_s(self) -> float | None:
        """Mean injected straggler delay per computed step over every rank, step 0 left out."""
        values = [d for r in self.ranks for d in (r.get("delay_s") or [])[1:] if d is not None]
        return float(np.mean(values)) if values else None

    def median_reduce_s(self) -> float | None:
        values = [s["reduce_s"] for s in self.steps[1:] if s.get("reduce_s") is not None]
        return float(np.median(values)) if values else None

    def gradient_count(self) -> int | None:
        """Parameters in the model (the gradient's length), from params.npy's header alone."""
        path = self.path / "params.npy"
        if not path.is_file():
            return None
        return int(math.prod(np.load(path, mmap_mode="r").shape))  # memory-mapped: reads the header only


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line of an interrupted write: keep what came before
    return records


def flatten_config(raw: dict[str, Any]) -> dict[str, Any]:
    """config.json has one object per section (mode, workload, ...) plus top-level world facts."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def load_runs(root: Path, training_time: bool = False, interpolate: bool = False) -> tuple[list[Run], list[Path]]:
    """Every finished run under `root` (recursively), and the run directories without summary.json;
    `training_time`: their times to target leave out the evaluations' pauses (Run.evaluation_pauses);
    `interpolate`: their times to target are the crossings between evaluations (Run.crossing_time)."""
    runs, unfinished = [], []
    for config_path in sorted(root.rglob("config.json")):
        run_dir = config_path.parent
        summary_path = run_dir / "summary.json"
        if not summary_path.is_file():
            unfinished.append(run_dir)
            continue
        config = flatten_config(json.loads(config_path.read_text()))
        runs.append(Run(run_dir, config, json.loads(summary_path.read_text()), training_time, interpolate))
    return runs, unfinished
