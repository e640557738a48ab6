"""Seeded straggler models: extra compute delay per worker and step, parsed from a spec string.

Every model draws a whole step's delays for all P workers from one generator keyed by
(seed, step), so worker i sees the same delays in every mode of a run with the same seed
and world size, and the simulator can draw thousands of workers per step in one call.
"""

from __future__ import annotations

import bisect
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from backupsgd.errors import ConfigError

# Keeps straggler draws independent of the other streams seeded with the same run seed.
_STREAM = 0x57A6


class StragglerModel(Protocol):
    def delays(self, step: int, compute_s: np.ndarray) -> np.ndarray:
        """Extra seconds per worker at `step`, given each worker's own compute time."""

    def check_world(self, workers: int) -> None:
        """Raise ConfigError if the spec names a worker outside 0..workers-1."""


def _rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng((seed, _STREAM, step))


@dataclass(frozen=True)
class NoStraggler:
    def delays(self, step: int, compute_s: np.ndarray) -> np.ndarray:
        return np.zeros(len(compute_s))

    def check_world(self, workers: int) -> None:
        pass


@dataclass(frozen=True)
class SlowRanks:
    """Fixed slow workers: `delay` extra seconds, or compute stretched `factor` times."""

    ranks: tuple[int, ...]
    delay: float = 0.0
    factor: float = 1.0

    def delays(self, step: int, compute_s: np.ndarray) -> np.ndarray:
        out = np.zeros(len(compute_s))
        for r in self.ranks:
            if r < len(out):
                out[r] = self.delay + (self.factor - 1.0) * compute_s[r]
        return out

    def check_world(self, workers: int) -> None:
        outside = [r for r in self.ranks if r >= workers]
        if outside:
            raise ConfigError(
                f"straggler rank {outside[0]} is outside the world of {workers} workers; "
                f"name ranks 0..{workers - 1} in --straggler slow:ranks=..."
            )


@dataclass(frozen=True)
class RandomDelay:
    """Independent per-worker, per-step delays drawn from a named distribution."""

    kind: str
    draw: Callable[[np.random.Generator, int], np.ndarray]
    seed: int

    def delays(self, step: int, compute_s: np.ndarray) -> np.ndarray:
        return self.draw(_rng(self.seed, step), len(compute_s))

    def check_world(self, workers: int) -> None:
        pass


@dataclass(frozen=True)
class TraceReplay:
    """Per-step, per-worker delays read from a CSV (rows: steps, columns: workers), replayed cyclically."""

    path: str
    table: np.ndarray

    def delays(self, step: int, compute_s: np.ndarray) -> np.ndarray:
        return self.table[step % len(self.table), : len(compute_s)].astype(float)

    def check_world(self, workers: int) -> None:
        if self.table.shape[1] < workers:
            raise ConfigError(
                f"trace {self.path} has {self.table.shape[1]} columns but the run has {workers} workers; "
                "add one column per worker"
            )


def _params(body: str, spec: str, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise ConfigError(f"straggler spec {spec!r}: {item!r} is not key=value; e.g. slow:ranks=2,delay=0.05")
        if key not in allowed:
            raise ConfigError(f"straggler spec {spec!r}: unknown key {key!r}; expected one of {sorted(allowed)}")
        params[key] = value
    return params


def _positive(params: dict[str, str], key: str, spec: str, *, required: bool = True, default: float = 0.0) -> float:
    if key not in params:
        if required:
            raise ConfigError(f"straggler spec {spec!r} needs {key}=VALUE")
        return default
    try:
        value = float(params[key])
    except ValueError:
        raise ConfigError(f"straggler spec {spec!r}: {key}={params[key]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"straggler spec {spec!r}: {key} must be a finite number >= 0")
    return value


def _parse_slow(body: str, spec: str, seed: int) -> StragglerModel:
    params = _params(body, spec, {"ranks", "delay", "factor"})
    if "ranks" not in params:
        raise ConfigError(f"straggler spec {spec!r} needs ranks=R[+R...], e.g. slow:ranks=2+4,delay=0.05")
    try:
        ranks = tuple(sorted({int(r) for r in params["ranks"].split("+")}))
    except ValueError:
        raise ConfigError(f"straggler spec {spec!r}: ranks must be integers joined by '+', e.g. ranks=2+4") from None
    if any(r < 0 for r in ranks):
        raise ConfigError(f"straggler spec {spec!r}: ranks must be >= 0")
    if ("delay" in params) == ("factor" in params):
        raise ConfigError(f"straggler spec {spec!r} needs exactly one of delay=SECONDS or factor=X")
    factor = _positive(params, "factor", spec, required=False, default=1.0)
    if factor < 1.0:
        raise ConfigError(f"straggler spec {spec!r}: factor must be >= 1 (a slow rank is never faster)")
    return SlowRanks(ranks, delay=_positive(params, "delay", spec, required=False), factor=factor)


def _parse_exp(body: str, spec: str, seed: int) -> StragglerModel:
    mean = _positive(_params(body, spec, {"mean"}), "mean", spec)
    return RandomDelay("exp", lambda rng, n: rng.exponential(mean, n), seed)


def _parse_lognormal(body: str, spec: str, seed: int) -> StragglerModel:
    params = _params(body, spec, {"median", "sigma"})
    median, sigma = _positive(params, "median", spec), _positive(params, "sigma", spec)
    if median == 0:
        raise ConfigError(f"straggler spec {spec!r}: median must be > 0")
    return RandomDelay("lognormal", lambda rng, n: rng.lognormal(math.log(median), sigma, n), seed)


def _parse_pareto(body: str, spec: str, seed: int) -> StragglerModel:
    params = _params(body, spec, {"scale", "alpha"})
    scale, alpha = _positive(params, "scale", spec), _positive(params, "alpha", spec)
    if alpha == 0:
        raise ConfigError(f"straggler spec {spec!r}: alpha must be > 0")
    # numpy's pareto is the Lomax (shifted) form; adding 1 gives the classical Pareto with minimum `scale`.
    return RandomDelay("pareto", lambda rng, n: scale * (1.0 + rng.pareto(alpha, n)), seed)


def _parse_trace(body: str, spec: str, seed: int) -> StragglerModel:
    path = Path(body)
    if not body or not path.is_file():
        raise ConfigError(f"straggler trace file {body!r} not found; give trace:PATH to a CSV of per-step delays")
    rows = []
    try:
        with path.open(newline="") as f:
            for line_no, row in enumerate(csv.reader(f), 1):
                if not row or row[0].lstrip().startswith("#"):
                    continue
                try:
                    rows.append([float(x) for x in row])
                except ValueError:
                    if rows or line_no > 1:
                        raise ConfigError(f"trace {path}:{line_no} is not a row of numbers") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"trace {path} is not a CSV text file ({exc}); give a CSV of per-step delays") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise ConfigError(f"trace {path} needs at least one row, every row with one delay per worker")
    table = np.array(rows)
    if not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ConfigError(f"trace {path} holds a negative or non-finite delay")
    return TraceReplay(str(path), table)


@dataclass(frozen=True)
class Phases:
    """A regime that shifts mid-run: each model owns a range of steps [start, end), the last open-ended.

    A phase draws exactly what its model alone would draw at that step (the generators are keyed by
    (seed, step)), so a shift changes the law and nothing else.
    """

    starts: tuple[int, ...]  # first step of each phase, ascending, starting at 0
    models: tuple[StragglerModel, ...]

    def model_at(self, step: int) -> StragglerModel:
        return self.models[bisect.bisect_right(self.starts, step) - 1]

    def delays(self, step: int, compute_s: np.ndarray) -> np.ndarray:
        return self.model_at(step).delays(step, compute_s)

    def check_world(self, workers: int) -> None:
        for model in self.models:
            model.check_world(workers)


_PHASES_EXAMPLE = "phases:exp:mean=0.01@0-200;pareto:scale=0.01,alpha=1.5@200-"


def _parse_phases(body: str, spec: str, seed: int) -> StragglerModel:
    starts, models, end = [], [], 0
    parts = [p.strip() for p in body.split(";")]
    for i, part in enumerate(parts):
        inner, at, steps = part.rpartition("@")
        first, dash, last = steps.partition("-")
        if not at or not dash or not inner:
            raise ConfigError(f"straggler spec {spec!r}: phase {part!r} needs SPEC@FIRST-END (END empty on the "
                              f"last phase), e.g. {_PHASES_EXAMPLE}")
        try:
            first_step, end_step = int(first), (int(last) if last.strip() else None)
        except ValueError:
            raise ConfigError(f"straggler spec {spec!r}: phase {part!r}: steps must be integers, "
                              f"e.g. @0-200 or @200-") from None
        if first_step != end:
            raise ConfigError(f"straggler spec {spec!r}: phase {part!r} starts at step {first_step}, but the phases "
                              f"must cover every step: it must start at {end}")
        if (end_step is None) != (i == len(parts) - 1):
            raise ConfigError(f"straggler spec {spec!r}: only the last phase is open-ended (@{first_step}-) and it "
                              f"must be: e.g. {_PHASES_EXAMPLE}")
        if end_step is not None and end_step <= first_step:
            raise ConfigError(f"straggler spec {spec!r}: phase {part!r} is empty; give END > FIRST")
        if inner.strip().partition(":")[0] == "phases":
            raise ConfigError(f"straggler spec {spec!r}: phases do not nest; list every phase at the top level")
        starts.append(first_step)
        models.append(parse_straggler(inner, seed))
        end = end_step if end_step is not None else end
    return Phases(tuple(starts), tuple(models))


def _parse_none(body: str, spec: str, seed: int) -> StragglerModel:
    if body:
        raise ConfigError(f"straggler spec {spec!r}: 'none' takes no parameters")
    return NoStraggler()


STRAGGLER_KINDS: dict[str, Callable[[str, str, int], StragglerModel]] = {
    "none": _parse_none,
    "slow": _parse_slow,
    "exp": _parse_exp,
    "lognormal": _parse_lognormal,
    "pareto": _parse_pareto,
    "trace": _parse_trace,
    "phases": _parse_phases,
}


def parse_straggler(spec: str, seed: int) -> StragglerModel:
    """Build the model a `--straggler` spec names, e.g. 'slow:ranks=2,factor=5' or 'exp:mean=0.01', or a
    regime that shifts mid-run, 'phases:exp:mean=0.01@0-200;pareto:scale=0.01,alpha=1.5@200-'."""
    kind, _, body = spec.strip().partition(":")
    if kind not in STRAGGLER_KINDS:
        raise ConfigError(
            f"unknown straggler kind {kind!r}; use one of {', '.join(STRAGGLER_KINDS)} "
            "(e.g. --straggler slow:ranks=2,delay=0.05)"
        )
    return STRAGGLER_KINDS[kind](body.strip(), spec, seed)


def rank_delay(model: StragglerModel, step: int, rank: int, workers: int, compute_s: float) -> float:
    """The delay `rank` of `workers` sleeps at `step`, given its own compute time (only slow:factor uses it):
    the one draw every mode and the library make, so the same seed gives the same stragglers everywhere."""
    own = np.zeros(workers)
    own[rank] = compute_s
    return float(model.delays(step, own)[rank])
