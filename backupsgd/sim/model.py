"""Per-step time of every training mode, predicted from seeded straggler draws and the network model.

Synchronous modes with backups: every step, all P workers start together at the moment the
previous update is applied. A dropped worker abandons its computation and starts the next step
with the others, as the real engine does (it applies the decided update and computes on fresh
parameters), so steps are independent draws and no work carries over between them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from backupsgd.errors import ConfigError
from backupsgd.sim.network import NetConfig, ps_transfer_s, ring_allreduce_s, vote_s
from backupsgd.sim.psasync import simulate_ps_async
from backupsgd.straggler import StragglerModel, parse_straggler

SYNC_MODES = ("sync", "backup", "ps-sync", "ps-backup")
MODES = SYNC_MODES + ("ps-async",)
# modes that wait for every worker: a backup count means nothing to them
FULL_MODES = ("sync", "ps-sync", "ps-async")


@dataclass(frozen=True)
class Prediction:
    """Predicted step times of one (mode, P, b); `n` is the number of gradients in one update."""

    mode: str
    workers: int  # P: all workers, backups included
    backups: int  # b
    n: int  # N = P - b; 1 for ps-async, which applies one gradient per update
    step_s: float  # mean time per applied update
    step_p50_s: float
    step_p95_s: float
    staleness_mean: float | None = None  # ps-async only

    @property
    def grads_per_s(self) -> float:
        return self.n / self.step_s if self.step_s > 0 else math.inf

    def as_row(self) -> dict:
        row = asdict(self)
        row["N"] = row.pop("n")
        row["grads_per_s"] = self.grads_per_s
        if self.staleness_mean is None:
            del row["staleness_mean"]
        return row


def check_point(mode: str, workers: int, backups: int) -> None:
    """Raise ConfigError unless (mode, P, b) is a configuration the engine could run."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if not 0 <= backups < workers:
        raise ConfigError(f"backups must be in 0..workers-1 (N = P - b >= 1); got b={backups} with P={workers}")
    if mode in FULL_MODES and backups:
        raise ConfigError(f"mode {mode} waits for every worker; give it backups=0 or use a backup mode")


def compute_times(straggler: StragglerModel, workers: int, compute_s: float, steps: int) -> np.ndarray:
    """(steps, P) matrix of compute + straggler delay, drawn step by step as the real run draws them."""
    straggler.check_world(workers)
    base = np.full(workers, float(compute_s))
    return base + np.stack([straggler.delays(t, base) for t in range(steps)])


def predict(mode: str, times: np.ndarray, backups: int, net: NetConfig) -> Prediction:
    """Predict one mode from a drawn compute-time matrix; the same matrix serves every mode and b."""
    steps, workers = times.shape
    check_point(mode, workers, backups)
    n = workers - backups
    if mode == "ps-async":
        trace = simulate_ps_async(times, net)
        return _summary(mode, workers, 0, 1, trace.intervals_s, float(trace.staleness.mean()))
    # the N-th arrival decides the step; np.partition finds it in O(P) per step
    if n == workers:
        decided = times.max(axis=1)
    else:
        decided = np.partition(times, n - 1, axis=1)[:, n - 1]
    exchange = {
        "sync": ring_allreduce_s(workers, net),
        "backup": vote_s(net) + ring_allreduce_s(workers, net),
        "ps-sync": ps_transfer_s(workers, workers, net),
        # dropped workers abandon their step, so only N shards reach each server; all P pull
        "ps-backup": ps_transfer_s(n, workers, net),
    }[mode]
    return _summary(mode, workers, backups, n, decided + exchange)


def _summary(mode: str, workers: int, backups: int, n: int, step_s: np.ndarray, staleness: float | None = None):
    p50, p95 = np.percentile(step_s, [50, 95])
    return Prediction(mode, workers, backups, n, float(step_s.mean()), float(p50), float(p95), staleness)


def predict_step_time(
    mode: str,
    workers: int,
    backups: int,
    straggler_spec: str,
    compute_s: float,
    net: NetConfig,
    steps: int = 200,
    seed: int = 0,
) -> Prediction:
    """Predicted step time of one configuration, to set beside a measured run with the same seed."""
    check_point(mode, workers, backups)
    if not math.isfinite(compute_s) or compute_s < 0:
        raise ConfigError(f"compute_s must be a finite number >= 0, got {compute_s}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    times = compute_times(parse_straggler(straggler_spec, seed), workers, compute_s, steps)
    return predict(mode, times, backups, net)
