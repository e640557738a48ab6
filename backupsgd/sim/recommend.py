"""Choose N and b for P machines: the synchronous mode and backup count that optimise an objective.

Objectives (lower cost is better; ties go to fewer backups, then to the earlier mode in MODES):

- "grads-per-s": gradients applied per second, N / step_s.
- "time-to-accuracy": wall time to a fixed amount of progress under the gradient-noise model of
  McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training"
  (arXiv 1812.06162): steps to a target scale as S = S_min (1 + B_noise / B). With batch N B
  (N workers' minibatches of B examples) and the critical batch `noise_scale` = B_noise in examples,
  one step makes g(N) = N B / (N B + B_noise) of a large-batch step's progress, so time-to-accuracy
  is proportional to step_s / g(N) (reported in seconds per S_min step). With B = 1 (the default)
  B_noise counts worker minibatches.

Adaptive rows (`--backups auto`) are reported beside these, never ranked: their N changes per step.

ps-async is never recommended: its updates are stale, and this model has no agreed cost for
staleness, so its rows stay for reading, not for choosing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backupsgd.adaptive import progress_fraction
from backupsgd.errors import ConfigError
from backupsgd.sim.model import MODES, SYNC_MODES, Prediction

OBJECTIVES = ("grads-per-s", "time-to-accuracy")


def progress_per_step(n: int, noise_scale: float, batch: int = 1) -> float:
    """g(N) = N B / (N B + B_noise): the fraction of a noise-free step's progress one update makes."""
    return progress_fraction(n, batch, noise_scale)


def check_objective(objective: str, noise_scale: float | None) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    if noise_scale is not None and (not math.isfinite(noise_scale) or noise_scale < 0):
        raise ConfigError(f"--noise-scale must be a finite number >= 0 (critical batch in examples), got {noise_scale}")
    if objective == "time-to-accuracy" and noise_scale is None:
        raise ConfigError("objective time-to-accuracy needs --noise-scale B_NOISE (critical batch, in examples)")


@dataclass(frozen=True)
class Choice:
    """One candidate (mode, b) at P machines with the quantities the objectives compare."""

    prediction: Prediction
    cost: float  # seconds per gradient or seconds per S_min step: lower is better
    time_to_accuracy_s: float | None  # step_s / g(N), when a noise scale is known

    def as_row(self) -> dict:
        p = self.prediction
        row = {"workers": p.workers, "mode": p.mode, "backups": p.backups, "N": p.n,
               "step_s": p.step_s, "grads_per_s": p.grads_per_s}
        if self.time_to_accuracy_s is not None:
            row["time_to_accuracy_s"] = self.time_to_accuracy_s
        return row


def rank(predictions: list[Prediction], objective: str, noise_scale: float | None = None,
         batch: int = 1) -> list[Choice]:
    """Synchronous static candidates of one P, best first, in a fully deterministic order."""
    check_objective(objective, noise_scale)
    if len({p.workers for p in predictions}) > 1:
        raise ValueError("rank() compares candidates for one machine count P at a time")
    choices = []
    for p in predictions:
        if p.mode not in SYNC_MODES or isinstance(p.backups, str):
            continue
        tta = None if noise_scale is None else p.step_s / progress_per_step(p.n, noise_scale, batch)
        cost = p.step_s / p.n if objective == "grads-per-s" else tta
        choices.append(Choice(p, cost, tta))
    return sorted(choices, key=lambda c: (c.cost, c.prediction.backups, MODES.index(c.prediction.mode)))


def recommend(predictions: list[Prediction], objective: str, noise_scale: float | None = None,
              batch: int = 1) -> Choice | None:
    """The best synchronous (mode, b) among `predictions` of one P, or None if there is none."""
    ranked = rank(predictions, objective, noise_scale, batch)
    return ranked[0] if ranked else None
