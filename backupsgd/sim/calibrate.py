"""The simulator against measured runs: predict each run's mean step time, set it beside the measurement.

Inputs per run are what a run directory records (see backupsgd.report.runs): the mode, P, b, the
straggler spec and seed (so the simulator redraws exactly the delays the run injected), the
measured compute time per step, and the measured mean step time.

What is fitted, and on what: everything a step costs besides compute and the injected delay
(the exchange, the vote, applying the update, Python and logging overhead, waiting for the CPU the
ranks share) is one constant per world size P, the *overhead*. It is fitted on the `sync` runs of
that P (the median over them of measured minus predicted-without-overhead), so `backup` and the
other modes are predicted out of sample. Where a P has no sync run the overhead is fitted on all
its runs instead (then nothing is out of sample, and the rows say so).

The simulator takes the overhead as its network: the bandwidth term of a ring allreduce over P
ranks, with zero latency. Zero latency makes `backup`'s vote free, which is close to the truth on
one machine (two tiny messages), where the per-step cost is dominated by the reduction and the
shared CPU; a latency fitted instead would charge every vote a share of that cost. The parameter-
server modes then cost what the simulator's server-link model makes of the same bandwidth.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from backupsgd.errors import ConfigError
from backupsgd.sim.model import MODES, predict_step_time
from backupsgd.sim.network import MIB, NetConfig

TOLERANCE = 0.15  # the target: predictions within 15% of the measured step time
BARE = NetConfig(model_mb=0.0, latency_us=0.0)
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


@dataclass(frozen=True)
class CalibrationRow:
    run: Measured
    overhead_s: float  # fitted per-step overhead for this P
    predicted_s: float
    in_sample: bool  # whether this run helped fit the overhead

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted - measured) / measured."""
        return (self.predicted_s - self.run.step_s) / self.run.step_s


@dataclass(frozen=True)
class Calibration:
    rows: list[CalibrationRow]
    overhead_s: dict[int, float]  # P -> fitted overhead
    fitted_on: dict[int, str]  # P -> "sync runs" or "all runs"
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


def _bare(m: Measured) -> float:
    """The simulator's step time with a free network: the decisive arrival alone."""
    return predict_step_time(m.mode, m.workers, m.backups, m.straggler, m.compute_s, BARE, m.steps, m.seed).step_s


def calibrate(measured: list[Measured]) -> Calibration:
    """Fit the per-P overhead and predict every run the simulator has a model for."""
    usable, skipped = [], []
    for m in measured:
        if m.mode not in MODES:
            skipped.append((m.name, f"the simulator has no model of mode {m.mode!r}"))
        elif m.workers < 2:
            skipped.append((m.name, "one worker: nothing to exchange"))
        elif not (math.isfinite(m.step_s) and m.step_s > 0 and math.isfinite(m.compute_s)):
            skipped.append((m.name, "no measured step or compute time"))
        else:
            usable.append(m)
    bare = {m.name: _bare(m) for m in usable}
    by_p: dict[int, list[Measured]] = defaultdict(list)
    for m in usable:
        by_p[m.workers].append(m)
    overhead, fitted_on, rows = {}, {}, []
    for p, runs in sorted(by_p.items()):
        basis = [m for m in runs if m.mode == "sync"]
        fitted_on[p] = "sync runs" if basis else "all runs"
        basis = basis or runs
        overhead[p] = max(statistics.median(m.step_s - bare[m.name] for m in basis), 0.0)
        fit_names = {m.name for m in basis}
        for m in runs:
            net = overhead_net(overhead[p], p, m.servers)
            pred = predict_step_time(m.mode, p, m.backups, m.straggler, m.compute_s, net, m.steps, m.seed)
            rows.append(CalibrationRow(m, overhead[p], pred.step_s, m.name in fit_names))
    return Calibration(rows, overhead, fitted_on, skipped)
