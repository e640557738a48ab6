"""The run directory: config.json, steps.jsonl, evals.jsonl, ranks.jsonl, summary.json, params.npy
(and checkpoints/, see checkpoint.py).

Only one rank writes: rank 0, or after its death under ULFM the lowest surviving rank, which continues
the same files (see backupsgd.failover). Step records are appended as they happen (flushed), so an interrupted run
still leaves every finished step on disk; a resumed run drops the records past its checkpoint
and appends from there, so no step is recorded twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from backupsgd.errors import ConfigError

if TYPE_CHECKING:
    from backupsgd.engine import Decision

RUNS_ROOT = Path("results") / "runs"


def choose_run_dir(out: str, label: str, resume: bool = False) -> Path:
    """The directory this run writes: `out`, or a fresh timestamped one under results/runs/."""
    if resume:
        if not out:
            raise ConfigError("--resume continues an existing run: name its directory with --out DIR")
        if not Path(out).is_dir():
            raise ConfigError(f"--resume: run directory {out} does not exist; "
                              "pass the --out DIR of the run to continue")
        return Path(out)
    if out:
        path = Path(out)
        steps = path / "steps.jsonl"
        # A run stopped before its first step (a refused setting) leaves an empty log: its --out is reused.
        if (steps.exists() and steps.stat().st_size > 0) or (path / "summary.json").exists():
            raise ConfigError(f"run directory {path} already holds a run; pass a new --out DIR or remove it")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RUNS_ROOT / f"{stamp}-{label}"
    n = 1
    while path.exists():
        n += 1
        path = RUNS_ROOT / f"{stamp}-{label}-{n}"
    return path


def _numpy_scalar(value: Any) -> Any:
    """orjson's fallback for what it does not serialise itself: a numpy scalar as its Python number (a float32 as
    the float64 it is, not orjson's shorter float32 digits, so replays read the same bits)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a run record")


def _json(value: Any, options: int) -> bytes:
    """Every file of the run directory as JSON, newline included: NaN and infinities as null (JSON has none, and
    every reader must parse the file), numpy scalars as Python numbers, keys as strings. orjson, not the json module:
    rank 0 writes a record a step, and on 5 ranks sharing 2 cores its CPU is every rank's time (an auto step's
    record took json.dumps 37.5 us, a static b's 15-17 us; orjson 4.2 and 2.7-2.8: results/auto-lean)."""
    return orjson.dumps(value, default=_numpy_scalar,
                        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE | options)


def json_line(record: dict[str, Any]) -> bytes:
    """One JSON-lines record (steps.jsonl, evals.jsonl, ranks.jsonl), newline included."""
    return _json(record, 0)


def _json_document(value: dict[str, Any]) -> bytes:
    """config.json and summary.json: indented for people to read."""
    return _json(value, orjson.OPT_INDENT_2)


def _keep_records(path: Path, keep) -> None:
    """Rewrite a JSON-lines file with the records `keep` accepts (a torn last line is dropped)."""
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        try:
            if keep(json.loads(line)):
                lines.append(line + "\n")
        except ValueError:
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


@dataclass
class StepTiming:
    """One rank's clock for one step (ranks.jsonl); None where the rank did not do that part."""

    compute_s: float | None = None  # None: this rank never computed the step (it was decided without it)
    delay_s: float | None = None  # the injected straggler delay
    exchange_s: float | None = None  # training thread's wait from submit to decision
    start_s: float | None = None  # when this rank started computing the step, seconds since its own start
    apply_s: float | None = None  # time to apply the decided update


def step_record(d: "Decision", time_s: float, loss: float | None, timing: StepTiming, living: list[int]) -> dict:
    """One steps.jsonl record; ranks by their MPI_COMM_WORLD number (`living[r]` is rank r of the communicator
    that decided, which may have shrunk)."""
    name = living.__getitem__
    members = [name(r) for r in d.members]
    return {
        "step": d.step, "time": time_s, "members": members, "dropped": [r for r in living if r not in members],
        "loss": loss, "compute_s": timing.compute_s, "delay_s": timing.delay_s, "exchange_s": timing.exchange_s,
        "vote_s": d.vote_s, "reduce_s": d.reduce_s,
        "arrivals": {str(name(r)): t for r, t in sorted(d.arrivals.items())},
        "nonfinite": [[name(r), s] for r, s in d.nonfinite], "behind": [name(r) for r in d.behind],
        # the earlier forms of a step decided again after a member timed out (members reducer): per round,
        # the members that never answered, every rank that did not, and how long the step waited for them
        "redecided": [{"round": r["round"], "timed_out": [name(x) for x in r["timed_out"]],
                       "silent": [name(x) for x in r["silent"]], "waited_s": r["waited_s"]} for r in d.redecided],
    }


def rank_record(rank: int, timings: dict[int, StepTiming], clock_offset_s: float, **extra: Any) -> dict:
    """One ranks.jsonl record: this rank's clock per step (in step order; null where it skipped a part) and its
    clock's offset to rank 0's, which the timeline adds to put every rank on one clock."""
    steps = sorted(timings)

    def column(name: str) -> list[float | None]:
        return [getattr(timings[s], name) for s in steps]

    return {"rank": rank, "compute_s": column("compute_s"), "delay_s": column("delay_s"),
            "clock_offset_s": clock_offset_s, "step_start_s": column("start_s"),
            "exchange_s": column("exchange_s"), "apply_s": column("apply_s"), **extra}


def _last_step(path: Path) -> int | None:
    """The highest `step` among the intact records of a JSON-lines file (None if there is none)."""
    last = None
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                last = max(int(json.loads(line)["step"]), -1 if last is None else last)
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line (its writer was killed mid-write)
    return last


class RunWriter:
    """Appends a run's records; `next_step` and `last_eval` say where its steps.jsonl and evals.jsonl end."""

    @classmethod
    def take_over(cls, path: Path, config: dict[str, Any], upto: int) -> "RunWriter":
        """Continue the files a dead writer left (on a filesystem every rank sees): keep its intact records of
        steps before `upto` (the step the survivors go on from) and append after them."""
        last = _last_step(path / "steps.jsonl")
        return cls(path, config, resume_step=min(upto, 0 if last is None else last + 1))

    def __init__(self, path: Path, config: dict[str, Any], resume_step: int | None = None) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:  # the steps past the checkpoint run again: drop their records
            _keep_records(path / "steps.jsonl", lambda r: r["step"] < resume_step)
            _keep_records(path / "evals.jsonl", lambda r: r["step"] <= resume_step)
            (path / "summary.json").unlink(missing_ok=True)
        (path / "config.json").write_bytes(_json_document(config))
        self._steps = (path / "steps.jsonl").open("ab")
        self._evals = (path / "evals.jsonl").open("ab")
        self._last_flush = time.monotonic()
        self.next_step = resume_step or 0  # the step whose record comes next
        self.last_eval = (_last_step(path / "evals.jsonl") or 0) if resume_step else 0  # the latest evaluation's step

    def step(self, record: dict[str, Any]) -> None:
        self.next_step = record["step"] + 1
        self._steps.write(json_line(record))
        if time.monotonic() - self._last_flush > 1.0:
            self._steps.flush()
            self._last_flush = time.monotonic()

    def sync(self) -> None:
        """Every record so far on disk (before a checkpoint, so none of its steps can be lost)."""
        for f in (self._steps, self._evals):
            f.flush()
            os.fsync(f.fileno())

    def evaluation(self, record: dict[str, Any]) -> None:
        self.last_eval = record["step"]
        self._evals.write(json_line(record))
        self._evals.flush()

    def finish(self, summary: dict[str, Any], params: np.ndarray, ranks: list[dict[str, Any]]) -> None:
        self._steps.close()
        self._evals.close()
        with (self.path / "ranks.jsonl").open("wb") as f:
            for record in ranks:
                f.write(json_line(record))
        np.save(self.path / "params.npy", params)
        tmp = self.path / "summary.json.tmp"
        tmp.write_bytes(_json_document(summary))
        os.replace(tmp, self.path / "summary.json")  # summary.json present means the run finished

    def close(self) -> None:
        self._steps.close()
        self._evals.close()
