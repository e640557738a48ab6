"""The simulator against measured runs: predict each run's mean step time, set it beside the measurement.

Inputs per run are what a run directory records (see backupsgd.report.runs): the mode, P, b, the
straggler spec and seed (so the simulator redraws exactly the delays the run injected), the
measured compute time per step, the evaluation interval, and the measured mean step time.

What is predicted: the run replayed step by step (backupsgd.sim.model: a dropped worker finishes
its stale step and joins the first undecided one), read the way the report reads the run's
steps.jsonl: the intervals between the logger's applied updates (worker 0, or the leading server),
leaving out step 0 and each interval that also ran a test evaluation. Reading the replay the same
way matters under a heavy tail: a long stall that falls in an evaluation interval is in neither number.

What is fitted, and on what: everything a step costs besides compute and the injected delay is one
constant per world size P and *family*, the overhead:

- `sync` family (sync, backup, ps-sync, ps-backup): one exchange per step (the reduction, the vote,
  applying the update, Python and logging, waiting for the CPU the ranks share), fitted on the sync
  runs. The simulator takes it as its network: the bandwidth term of a ring allreduce over P ranks,
  with zero latency, so `backup`'s vote is free (two tiny messages on one machine) and the
  parameter-server modes cost what the server-link model makes of the same bandwidth.
- `ps-async` family: a round trip per push (push, pull, the server's receive loop), fitted on the
  ps-async runs. The simulator takes it as a per-message latency with a free link: on one machine
  the pushes go through shared memory, not through one server link they would queue on.

Each overhead is fitted on the runs with seeds in FIT_SEEDS alone: the value at which the median of
predicted minus measured step time over them is zero. Every other run, every backup run included,
is predicted out of sample. Where a family has no run of its own mode at some P, its runs of that P
fit it; where none has a fitting seed, all of them do (then nothing of it is out of sample, and
`fitted_on` says so).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from backupsgd.errors import ConfigError
from backupsgd.sim.model import MODES, compute_times, logged_times
from backupsgd.sim.network import MIB, NetConfig
from backupsgd.straggler import parse_straggler

TOLERANCE = 0.15  # the target: predictions within 15% of the measured step time
FIT_SEEDS = (0, 1)  # overheads are fitted on these seeds' runs; the other seeds are predicted out of sample
FAMILY = {"sync": "sync", "backup": "sync", "ps-sync": "sync", "ps-backup": "sync", "ps-async": "ps-async"}
# Modes the simulator replays as another: Horovod's full sync waits for every worker and allreduces,
# as sync does (its runs are predicted, never fitted on: the fit uses each family's own mode).
REPLAYED_AS = {"horovod": "sync"}
MIN_OVERHEAD_S = 1e-9  # a network must have a finite bandwidth; this one is as good as free


@dataclass(frozen=True)
class Measured:
    """One run as the calibration sees it."""

    name: str
    mode: str
    workers: int  # P
    backups: int
    straggler: str
    seed: int
    steps: int
    servers: int  # k parameter servers (ps-* modes; 1 elsewhere, unused there)
    compute_s: float  # measured compute seconds per step (median over ranks and steps)
    step_s: float  # measured mean training step time
    eval_every: int = 0  # steps between test evaluations (0: none); their intervals are not step time


@dataclass(frozen=True)
class CalibrationRow:
    run: Measured
    overhead_s: float  # fitted per-step overhead for this P and family
    predicted_s: float
    in_sample: bool  # whether this run helped fit the overhead

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted - measured) / measured."""
        return (self.predicted_s - self.run.step_s) / self.run.step_s


@dataclass(frozen=True)
class Calibration:
    rows: list[CalibrationRow]
    overhead_s: dict[tuple[int, str], float]  # (P, family) -> fitted overhead
    fitted_on: dict[tuple[int, str], str]  # (P, family) -> which runs, e.g. "sync runs, seeds 0-1"
    skipped: list[tuple[str, str]]  # (run, why it was not predicted)

    def within(self, tolerance: float = TOLERANCE, out_of_sample: bool = False) -> tuple[int, int]:
        rows = [r for r in self.rows if not (out_of_sample and r.in_sample)]
        return sum(abs(r.error) <= tolerance for r in rows), len(rows)


def overhead_net(overhead_s: float, workers: int, servers: int = 1) -> NetConfig:
    """A zero-latency network whose ring allreduce over P ranks costs `overhead_s`: 2(P-1)/P * M/B.

    The model size M cancels out of every cost (each is a multiple of M/B), so it is fixed at 1 MiB.
    """
    if workers < 2:
        raise ConfigError("a one-worker run has no exchange to calibrate; measure with 2 or more ranks")
    overhead_s = max(overhead_s, MIN_OVERHEAD_S)
    bytes_per_s = 2 * (workers - 1) / workers * MIB / overhead_s
    return NetConfig(model_mb=1.0, latency_us=0.0, bandwidth_gbps=8 * bytes_per_s / 1e9, servers=servers)


def round_trip_net(overhead_s: float, servers: int = 1) -> NetConfig:
    """A free link with a per-message latency of half `overhead_s`: each push and pull costs that, and
    nothing queues (ps-async on one machine, where messages go through shared memory)."""
    return NetConfig(model_mb=0.0, latency_us=max(overhead_s, 0.0) / 2 * 1e6, servers=servers)


def as_measured(logged_s: np.ndarray, eval_every: int) -> float:
    """Mean step time as backupsgd.report.runs.Run.step_durations reads it from the logged apply
    times: the interval into step 0 and each interval ending at an evaluation step are left out."""
    gaps = np.diff(logged_s)
    if eval_every:
        gaps = gaps[np.arange(1, len(logged_s)) % eval_every != 0]
    return float(gaps.mean()) if len(gaps) else float(logged_s[-1])


def _sim_mode(m: Measured) -> str:
    return REPLAYED_AS.get(m.mode, m.mode)


def _replay(m: Measured, times: np.ndarray, overhead_s: float) -> float:
    """The run's mean step time as the simulator replays it with this overhead."""
    mode = _sim_mode(m)
    net = round_trip_net(overhead_s, m.servers) if FAMILY[mode] == "ps-async" else \
        overhead_net(overhead_s, m.workers, m.servers)
    return as_measured(logged_times(mode, times, m.backups, net), m.eval_every)


def _fit(basis: list[Measured], times: dict[str, np.ndarray]) -> float:
    """The overhead at which the median over `basis` of predicted minus measured step time is zero.

    Every prediction grows with the overhead, so bisection finds it; a model already too slow with
    no overhead gets 0.
    """
    def excess(o: float) -> float:
        return statistics.median(_replay(m, times[m.name], o) - m.step_s for m in basis)

    lo, hi = 0.0, max(m.step_s for m in basis)
    if excess(lo) >= 0:
        return 0.0
    for _ in range(60):  # every prediction grows without bound with the overhead: this ends early
        if excess(hi) >= 0:
            break
        lo, hi = hi, 2 * hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


def _basis(runs: list[Measured], family: str) -> tuple[list[Measured], str]:
    """The runs that fit a family's overhead at one P, and how to say so."""
    own = [m for m in runs if m.mode == family]
    what = f"{family} runs" if own else f"the {family} family's runs"
    own = own or runs
    fit = [m for m in own if m.seed in FIT_SEEDS]
    if not fit:
        return own, f"{what}, every seed (none of seeds {FIT_SEEDS[0]}-{FIT_SEEDS[-1]})"
    return fit, f"{what}, seeds {FIT_SEEDS[0]}-{FIT_SEEDS[-1]}"


def calibrate(measured: list[Measured]) -> Calibration:
    """Fit the overhead per P and family and predict every run the simulator has a model for."""
    usable, skipped = [], []
    for m in measured:
        if _sim_mode(m) not in MODES:
            skipped.append((m.name, f"the simulator has no model of mode {m.mode!r}"))
        elif m.workers < 2:
            skipped.append((m.name, "one worker: nothing to exchange"))
        elif not (math.isfinite(m.step_s) and m.step_s > 0 and math.isfinite(m.compute_s)):
            skipped.append((m.name, "no measured step or compute time"))
        else:
            usable.append(m)
    # the delays each run injected, drawn once: the fit replays its runs many times
    times = {m.name: compute_times(parse_straggler(m.straggler, m.seed), m.workers, m.compute_s, m.steps)
             for m in usable}
    groups: dict[tuple[int, str], list[Measured]] = defaultdict(list)
    for m in usable:
        groups[(m.workers, FAMILY[_sim_mode(m)])].append(m)
    overhead, fitted_on, rows = {}, {}, []
    for key, runs in sorted(groups.items()):
        basis, fitted_on[key] = _basis(runs, key[1])
        overhead[key] = _fit(basis, times)
        fit_names = {m.name for m in basis}
        rows += [CalibrationRow(m, overhead[key], _replay(m, times[m.name], overhead[key]), m.name in fit_names)
                 for m in runs]
    return Calibration(rows, overhead, fitted_on, skipped)
