"""Per-step time of every training mode, predicted from seeded straggler draws and the network model.

Synchronous modes with backups are a discrete-event replay of the training loop (backupsgd.train):
a worker free when an update is applied starts the next step then; a dropped worker does not
abandon its stale step but finishes it (its whole compute and injected delay), skips every step
decided meanwhile, and joins the first undecided step when it is done. So a late worker carries
over and is more likely to miss the next step too. The textbook model, where all P workers restart
together every step and steps are independent draws, stays available as `restart=True`: it is
what order-statistics closed forms describe, and what an engine that cancels stale work would do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from backupsgd.errors import ConfigError
from backupsgd.sim.network import NetConfig, allreduce_s, ps_transfer_s, vote_s
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
    backups: int | str  # b; or the label of an adaptive choice ('auto', 'auto-dbw', ...)
    n: int | float  # N = P - b; 1 for ps-async, which applies one gradient per update; auto: the mean N
    step_s: float  # mean time per applied update
    step_p50_s: float
    step_p95_s: float
    staleness_mean: float | None = None  # ps-async only
    progress_per_s: float | None = None  # noise-free steps' worth of progress per second, given a noise scale

    @property
    def grads_per_s(self) -> float:
        return self.n / self.step_s if self.step_s > 0 else math.inf

    def as_row(self) -> dict:
        row = asdict(self)
        row["N"] = row.pop("n")
        row["grads_per_s"] = self.grads_per_s
        for key in ("staleness_mean", "progress_per_s"):
            if row[key] is None:
                del row[key]
        return row

    def with_progress(self, progress_per_s: float) -> "Prediction":
        return replace(self, progress_per_s=progress_per_s)


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


@dataclass(frozen=True)
class Schedule:
    """When each step's update is applied, overall and as worker 0 (the run's logger) sees it."""

    applied_s: np.ndarray  # the decision plus the exchange: when the free workers can start the next step
    observed_s: np.ndarray  # when worker 0 applies it: later where worker 0 was still on a stale step

    @property
    def step_s(self) -> np.ndarray:
        """Seconds between consecutive applied updates (the first counted from time 0)."""
        return np.diff(self.applied_s, prepend=0.0)


def schedule(times: np.ndarray, n: int, exchange_s: float, restart: bool = False) -> Schedule:
    """Replay steps that each take the first `n` offers.

    `times[t, i]` is what worker i takes (compute + injected delay) if it computes step t. An offer
    is made at the worker's start plus that time; the n-th earliest offer decides the step, and the
    update is applied `exchange_s` later. Carry-over (the default): a worker starts step t at the
    later of the previous update and the end of its own last computation, and computes step t only
    if it starts before t is decided. `restart`: every worker starts every step at the previous update.
    """
    steps, workers = times.shape
    if restart or n == workers:  # with n = P nobody is ever late, so the two models agree
        # the n-th arrival decides the step; np.partition finds it in O(P) per step
        kth = times.max(axis=1) if n == workers else np.partition(times, n - 1, axis=1)[:, n - 1]
        applied = np.cumsum(kth + exchange_s)
        return Schedule(applied, applied)
    free = np.zeros(workers)  # when each worker ends the computation it is on
    applied = np.empty(steps)
    observed = np.empty(steps)
    last = 0.0  # when the latest update was applied: no worker starts the next step before it
    for t in range(steps):
        offers = np.maximum(free, last) + times[t]
        decided = np.partition(offers, n - 1)[n - 1]
        # A worker still busy at the decision never saw step t; one free by then computed it, and
        # ends at its offer: on time (a member) or late (it carries the stale step over).
        free = np.where(free <= decided, offers, free)
        last = applied[t] = decided + exchange_s
        observed[t] = max(last, free[0])  # a busy worker applies step t once its stale step is done
    return Schedule(applied, observed)


def exchange_time_s(mode: str, workers: int, n: int, net: NetConfig) -> float:
    """Seconds from a synchronous step's decision to its update being applied (the per-step overhead included)."""
    return net.step_overhead_s + {
        "sync": allreduce_s(workers, net),
        "backup": vote_s(net) + allreduce_s(workers, net),
        "ps-sync": ps_transfer_s(workers, workers, net),
        # a late push reaches the servers while the next step computes, and is dropped: only the
        # N members' shards are between the decision and the next step; all P pull
        "ps-backup": ps_transfer_s(n, workers, net),
    }[mode]


def predict(mode: str, times: np.ndarray, backups: int, net: NetConfig, restart: bool = False) -> Prediction:
    """Predict one mode from a drawn compute-time matrix; the same matrix serves every mode and b."""
    steps, workers = times.shape
    check_point(mode, workers, backups)
    n = workers - backups
    if mode == "ps-async":
        trace = simulate_ps_async(times, net)
        return summary(mode, workers, 0, 1, trace.intervals_s, float(trace.staleness.mean()))
    plan = schedule(times, n, exchange_time_s(mode, workers, n, net), restart)
    return summary(mode, workers, backups, n, plan.step_s)


def logged_times(mode: str, times: np.ndarray, backups: int, net: NetConfig) -> np.ndarray:
    """When the run's logger applies each update, as a run's steps.jsonl records it: worker 0 in the
    allreduce modes (late where it was on a stale step), the leading server in the ps-* modes."""
    check_point(mode, times.shape[1], backups)
    if mode == "ps-async":  # one update per row: a run of that many steps stops there
        return simulate_ps_async(times, net, updates=len(times)).applied_s
    n = times.shape[1] - backups
    plan = schedule(times, n, exchange_time_s(mode, times.shape[1], n, net))
    return plan.observed_s if mode in ("sync", "backup") else plan.applied_s


def summary(mode: str, workers: int, backups: int | str, n: int | float, step_s: np.ndarray,
            staleness: float | None = None) -> Prediction:
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
    restart: bool = False,
) -> Prediction:
    """Predicted step time of one configuration, to set beside a measured run with the same seed."""
    check_point(mode, workers, backups)
    if not math.isfinite(compute_s) or compute_s < 0:
        raise ConfigError(f"compute_s must be a finite number >= 0, got {compute_s}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    times = compute_times(parse_straggler(straggler_spec, seed), workers, compute_s, steps)
    return predict(mode, times, backups, net, restart)
