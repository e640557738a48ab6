"""A simulator run: every (P, mode, b) of a sweep predicted from one seeded draw per P, plus a recommendation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from backupsgd.adaptive import progress_fraction
from backupsgd.auto_spec import AutoSpec
from backupsgd.errors import ConfigError
from backupsgd.sim.auto import AUTO_MODES, predict_auto
from backupsgd.sim.model import FULL_MODES, MODES, SYNC_MODES, Prediction, compute_times, predict
from backupsgd.sim.network import NetConfig
from backupsgd.sim.recommend import Choice, check_objective, rank
from backupsgd.straggler import parse_straggler


@dataclass(frozen=True)
class SimConfig:
    """What to sweep; validated here so a bad value fails before any draw."""

    workers: tuple[int, ...] = (100,)  # P values: total machines, backups included
    backups: tuple[int, ...] = (0,)  # b values for the backup modes; N = P - b
    modes: tuple[str, ...] = MODES  # modes to predict
    straggler: str = "exp:mean=0.02"  # straggler spec, as for `backupsgd train --straggler`
    compute_s: float = 0.05  # base compute time of one step on one worker, seconds
    steps: int = 200  # simulated steps per P (ps-async: pushes per worker)
    seed: int = 0  # straggler seed: the same seed draws the same delays as a real run
    net: NetConfig = field(default_factory=NetConfig)  # latency-bandwidth network
    objective: str = "grads-per-s"  # what the recommendation maximises; see recommend.py
    noise_scale: float | None = None  # B_noise in examples: time-to-accuracy, progress_per_s and auto need it
    restart: bool = False  # textbook model: all P restart every step (default: a late worker carries over)
    auto: tuple[AutoSpec, ...] = ()  # adaptive choices of N (`--backups auto`), replayed per backup mode
    batch_size: int = 1  # B, examples per worker minibatch (1: B_noise counts worker minibatches)

    def __post_init__(self) -> None:
        if not self.workers or min(self.workers) < 1:
            raise ConfigError("--workers needs one or more counts >= 1, e.g. --workers 100,1000")
        if not (self.backups or self.auto) or min(self.backups, default=0) < 0:
            raise ConfigError("--backups needs one or more counts >= 0 or auto, e.g. --backups auto,0,4,10")
        if self.backups and max(self.backups) >= min(self.workers):
            raise ConfigError(
                f"--backups {max(self.backups)} is not below --workers {min(self.workers)}; "
                "every b must leave N = P - b >= 1 for every P: drop that b or raise P"
            )
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise ConfigError(f"unknown mode {unknown[0] if unknown else ''!r}; --modes takes a comma list of "
                              f"{','.join(MODES)}")
        if not math.isfinite(self.compute_s) or self.compute_s < 0:
            raise ConfigError(f"--compute-s must be a finite number >= 0, got {self.compute_s}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        check_objective(self.objective, self.noise_scale)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.auto and self.noise_scale is None:
            raise ConfigError("--backups auto needs --noise-scale B_NOISE (critical batch, in examples): "
                              "the policy trades the noise of a smaller N against waiting for a larger one")
        if self.auto and not set(AUTO_MODES) & set(self.modes):
            raise ConfigError(f"--backups auto needs a voting mode among --modes: {' or '.join(AUTO_MODES)}")
        model = parse_straggler(self.straggler, self.seed)
        for p in self.workers:
            model.check_world(p)
            for spec in self.auto:
                spec.bounds(p)


@dataclass(frozen=True)
class SimResult:
    predictions: list[Prediction]  # every row, grouped by P, then mode, then b
    best: list[Choice]  # the recommended choice per P (none where no synchronous mode was asked)
    ranking: list[Choice]  # every synchronous candidate, grouped by P, best first

    def as_json(self, config: SimConfig) -> dict:
        return {
            "rows": [p.as_row() for p in self.predictions],
            "recommendation": {
                "objective": config.objective,
                "noise_scale": config.noise_scale,
                "batch_size": config.batch_size,
                "best": [c.as_row() for c in self.best],
                "ranking": [c.as_row() for c in self.ranking],
            },
        }


def _with_progress(p: Prediction, config: SimConfig) -> Prediction:
    """progress_per_s of a static row: g(N) per step over the mean step (ps-async: none, its updates are stale)."""
    if config.noise_scale is None or p.mode not in SYNC_MODES:
        return p
    return p.with_progress(progress_fraction(p.n, config.batch_size, config.noise_scale) / p.step_s)


def simulate(config: SimConfig) -> SimResult:
    """Predict every (P, mode, b); all modes and b of one P share one draw, so they compare fairly."""
    model = parse_straggler(config.straggler, config.seed)
    predictions: list[Prediction] = []
    best: list[Choice] = []
    ranking: list[Choice] = []
    for workers in sorted(set(config.workers)):
        times = compute_times(model, workers, config.compute_s, config.steps)
        at_p = [
            _with_progress(predict(mode, times, b, config.net, config.restart), config)
            for mode in MODES
            if mode in config.modes
            for b in ((0,) if mode in FULL_MODES else sorted(set(config.backups)))
        ]
        at_p += [
            predict_auto(times, spec, mode, config.net, config.batch_size, config.noise_scale, config.restart)
            for mode in AUTO_MODES
            if mode in config.modes
            for spec in config.auto
        ]
        predictions += at_p
        ranked = rank(at_p, config.objective, config.noise_scale, config.batch_size)
        ranking += ranked
        best += ranked[:1]
    return SimResult(predictions, best, ranking)
