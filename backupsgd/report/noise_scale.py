"""The gradient noise scale each run measured, and the drop-versus-wait trade-off it predicts.

train.py logs B_simple (McCandlish et al. 2018, in examples) per step from the members' gradient norms
(backupsgd/noise.py). A step that averages N worker batches of B examples makes

    progress(N) = N B / (N B + B_noise)

of a noise-free step's progress, so waiting for one more gradient is worth more the larger the noise
scale is against the batch. The table set here beside what was measured: per configuration, the noise
model's progress per step, per second (with the measured step time), and the measured speed to target,
each relative to sync. Where the two speed-ups agree, the noise scale explains the trade-off.

B_simple grows as training goes on (the true gradient shrinks faster than its noise), so one number per
run is taken from the steps before it reached its target: the steps whose count the noise model explains, and
where `--backups auto` chooses N (on digits about steps 0-100 of 250, with B_simple there 0.6x the second half's,
which a calibration against the second half left out). A run that never reached it: its second half.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from backupsgd.adaptive import progress_fraction
from backupsgd.report.aggregate import GroupStats, Stat
from backupsgd.report.runs import Run
from backupsgd.report.target import Target
from backupsgd.report.tables import markdown_table, stat_cell

VOTED = ("sync", "backup", "horovod")  # modes whose steps average N gradients: the noise model applies


@dataclass(frozen=True)
class NoiseFit:
    s_min: float  # steps to the target with an infinitely large batch
    noise_scale: float  # B_noise, in workers' minibatches
    points: int  # runs the fit (or the measurement) used
    source: str = "fitted"  # "fitted" from steps to target, or "measured" (B_simple logged per step)


def run_noise_scale(run: Run, target: Target) -> float | None:
    """Median B_simple (examples) over the steps before the run reached `target`, or over the second half of its
    steps if it never did; None if it logged none there."""
    reached = run.steps_to(target)
    logged = [s for s in run.steps if s.get("noise_scale") is not None]
    logged = logged[len(logged) // 2:] if reached is None else [s for s in logged if int(s["step"]) < reached]
    values = [v for s in logged if np.isfinite(v := float(s["noise_scale"]))]
    return statistics.median(values) if values else None


def batch_size(run: Run) -> int | None:
    value = run.config.get("batch_size")
    return int(value) if value else None


def panel_noise_batches(stats: list[GroupStats]) -> NoiseFit | None:
    """The panel's measured noise scale in worker minibatches (median over its voted runs of a fixed N, as the
    fit from steps to target takes them: an auto run's noise scale follows the N it chose) and how many runs
    gave it, or None."""
    values = [b / size for s in stats if s.group.mode in VOTED and not isinstance(s.group.backups, str)
              for r in s.group.runs if (b := run_noise_scale(r, s.target)) is not None and (size := batch_size(r))]
    return NoiseFit(math.nan, statistics.median(values), len(values), source="measured") if values else None


def fit_noise_scale(stats: list[GroupStats]) -> NoiseFit | None:
    """Least squares of steps-to-target on 1/N over the sync and backup runs of one panel; None when
    the runs cover fewer than two N or the fit is not physical (S_min <= 0 or B_noise < 0)."""
    xs, ys = [], []
    for s in stats:
        if s.group.mode not in ("sync", "backup") or isinstance(s.group.backups, str):  # auto: N varies
            continue
        n = s.group.first.workers - s.group.backups
        for run in s.group.runs:
            steps = run.steps_to(s.target)
            if steps is not None:
                xs.append(1.0 / n)
                ys.append(float(steps))
    if len(set(xs)) < 2:
        return None
    slope, intercept = np.polyfit(xs, ys, 1)
    if intercept <= 0 or slope < 0:
        return None
    return NoiseFit(float(intercept), float(slope / intercept), len(xs))


def _quorum(s: GroupStats) -> float:
    """N; under `--backups auto` the mean N its runs chose (the noise model is then approximate)."""
    return s.group.first.workers - (s.group.b_value if s.group.mode == "backup" else 0)


def noise_table(stats: list[GroupStats]) -> str:
    """Per voted configuration: the measured noise scale and the speed-ups it predicts against those measured;
    "" when no run logged a noise scale."""
    rows = []
    for panel_stats in _by_panel(stats):
        sync = _baseline(panel_stats)
        for s in panel_stats:
            scales = [run_noise_scale(r, s.target) for r in s.group.runs]
            stat = Stat.of(scales, lower_is_better=True)
            size = batch_size(s.group.first)
            if stat is None or size is None:
                continue
            n = _quorum(s)
            progress = float(progress_fraction(n, size, stat.mean))
            row = [s.group.label, f"{n:g}" if n == int(n) else f"{n:.1f}", stat_cell(stat, lambda x: f"{x:.0f}"),
                   f"{stat.mean / size:.2f}", f"{progress:.3f}"]
            if sync is not None and s.step_s and sync.step_s:
                sync_progress = float(progress_fraction(_quorum(sync), size, stat.mean))
                predicted = (progress / s.step_s.mean) / (sync_progress / sync.step_s.mean)
                row.append(f"{predicted:.2f}x")
            else:
                row.append("n/a")
            if sync is not None and s.time_to_target and sync.time_to_target:
                row.append(f"{sync.time_to_target.mean / s.time_to_target.mean:.2f}x")
            else:
                row.append("n/a")
            rows.append(row)
    if not rows:
        return ""
    return markdown_table(["configuration", "N", "B_simple, examples: mean [min, max]", "in worker batches",
                           "progress per step (noise model)", "predicted speed vs sync",
                           "measured speed to target vs sync"], rows)


def calibration_table(stats: list[GroupStats]) -> str:
    """Per panel: the effective noise scale its static runs' steps to target fit, against the B_simple they
    measured, and their ratio: the `noise=` calibration `--backups auto` takes (backupsgd.adaptive); "" when
    no panel has both."""
    rows = []
    for panel_stats in _by_panel(stats):
        measured_fit, fitted = panel_noise_batches(panel_stats), fit_noise_scale(panel_stats)
        if measured_fit is None or fitted is None or measured_fit.noise_scale <= 0:
            continue
        measured = measured_fit.noise_scale
        factor = fitted.noise_scale / measured
        straggler, workers = panel_stats[0].group.panel
        rows.append([f"{straggler}, P={workers}", f"{measured:.2f}", f"{fitted.noise_scale:.2f} ({fitted.points} runs)",
                     f"{factor:.2f}", f"`--backups auto:noise={factor:.2g}`"])
    if not rows:
        return ""
    return markdown_table(["panel", "B_simple measured, worker batches", "B_noise fitted from steps to target",
                           "fitted / measured", "auto calibrated to it"], rows)


def _baseline(panel_stats: list[GroupStats]) -> GroupStats | None:
    """What the speed-ups are relative to: sync, or where a sweep has no sync mode, backup with b = 0."""
    return next((s for s in panel_stats if s.group.mode == "sync"), None) or next(
        (s for s in panel_stats if s.group.mode == "backup" and s.group.backups == 0), None)


def _by_panel(stats: list[GroupStats]) -> list[list[GroupStats]]:
    panels: dict[tuple, list[GroupStats]] = {}
    for s in stats:
        if s.group.mode in VOTED:
            panels.setdefault(s.group.panel, []).append(s)
    return list(panels.values())
