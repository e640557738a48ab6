"""A simulator run: every (P, mode, b) of a sweep predicted from one seeded draw per P, plus a recommendation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from backupsgd.errors import ConfigError
from backupsgd.sim.model import FULL_MODES, MODES, Prediction, compute_times, predict
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
    noise_scale: float | None = None  # B_noise in workers, for time-to-accuracy
    restart: bool = False  # textbook model: all P restart every step (default: a late worker carries over)

    def __post_init__(self) -> None:
        if not self.workers or min(self.workers) < 1:
            raise ConfigError("--workers needs one or more counts >= 1, e.g. --workers 100,1000")
        if not self.backups or min(self.backups) < 0:
            raise ConfigError("--backups needs one or more counts >= 0, e.g. --backups 0,4,10")
        if max(self.backups) >= min(self.workers):
            raise ConfigError(
                f"--backups {max(self.backups)} is not below --workers {min(self.workers)}; "
                "every b must leave N = P - b >= 1 for every P: drop that b or raise P"
            )
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise ConfigError(f"unknown mode {unknown[0] if unknown else ''!r}; --modes takes a comma list of {','.join(MODES)}")
        if not math.isfinite(self.compute_s) or self.compute_s < 0:
            raise ConfigError(f"--compute-s must be a finite number >= 0, got {self.compute_s}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        check_objective(self.objective, self.noise_scale)
        model = parse_straggler(self.straggler, self.seed)
        for p in self.workers:
            model.check_world(p)


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
                "best": [c.as_row() for c in self.best],
                "ranking": [c.as_row() for c in self.ranking],
            },
        }


def simulate(config: SimConfig) -> SimResult:
    """Predict every (P, mode, b); all modes and b of one P share one draw, so they compare fairly."""
    model = parse_straggler(config.straggler, config.seed)
    predictions: list[Prediction] = []
    best: list[Choice] = []
    ranking: list[Choice] = []
    for workers in sorted(set(config.workers)):
        times = compute_times(model, workers, config.compute_s, config.steps)
        at_p = [
            predict(mode, times, b, config.net, config.restart)
            for mode in MODES
            if mode in config.modes
            for b in ((0,) if mode in FULL_MODES else sorted(set(config.backups)))
        ]
        predictions += at_p
        ranked = rank(at_p, config.objective, config.noise_scale)
        ranking += ranked
        best += ranked[:1]
    return SimResult(predictions, best, ranking)
