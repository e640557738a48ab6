"""Choosing N and b beyond this machine: the simulator at 100 to 1,000 workers, fed what the runs measured.

Per panel (straggler model): the compute time per step is the measured median; the gradient size
is the model's (params.npy); the network is the simulator's default (10 Gbit/s links, 50 us
latency), since a one-machine run measures no real network. b is also chosen for time to accuracy
under the gradient-noise model: with the noise scale the runs measured (steps.jsonl `noise_scale`,
report/noise_scale.py) where they logged one, else fitted from their steps to the target when they cover
several N (McCandlish et al. 2018: S(N) = S_min (1 + B_noise / N), a straight line in 1/N).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backupsgd.report.aggregate import GroupStats
from backupsgd.report.noise_scale import NoiseFit, fit_noise_scale, panel_noise_batches
from backupsgd.sim.network import MIB, NetConfig
from backupsgd.sim.model import Prediction
from backupsgd.sim.sweep import SimConfig, simulate

SCALE_WORKERS = (100, 300, 1000)
SCALE_BACKUPS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)  # those below P/2 are simulated at each P
SCALE_STEPS = 200


@dataclass(frozen=True)
class Projection:
    straggler: str
    compute_s: float
    model_mb: float
    noise: NoiseFit | None  # the one the projection used: measured where the runs logged it
    fitted: NoiseFit | None  # the fit from steps to target, for comparison (None: not physical / one N)
    predictions: list[Prediction]  # every (P, mode, b) simulated
    objective: str


def project(stats: list[GroupStats], seed: int = 0) -> Projection | None:
    """Simulate one panel's straggler model at SCALE_WORKERS with the compute and model size measured."""
    runs = [r for s in stats for r in s.group.runs]
    sync = [r for r in runs if r.mode == "sync"] or runs
    computes = [c for r in sync if (c := r.median_compute_s()) is not None]
    counts = [c for r in runs if (c := r.gradient_count()) is not None]
    if not computes or not counts:
        return None
    fitted = fit_noise_scale(stats)
    noise = panel_noise_batches(stats) or fitted  # measured where the runs logged it
    model_mb = 4 * counts[0] / MIB  # fp32 gradient
    objective = "time-to-accuracy" if noise else "grads-per-s"
    compute_s = statistics.median(computes)
    predictions: list[Prediction] = []
    for p in SCALE_WORKERS:  # one simulation per P: each P gets the b up to half of it
        config = SimConfig(workers=(p,), backups=tuple(b for b in SCALE_BACKUPS if 2 * b <= p),
                           modes=("sync", "backup"), straggler=runs[0].straggler, compute_s=compute_s,
                           steps=SCALE_STEPS, seed=seed, net=NetConfig(model_mb=model_mb), objective=objective,
                           noise_scale=noise.noise_scale if noise else None)
        predictions += simulate(config).predictions
    return Projection(runs[0].straggler, compute_s, model_mb, noise, fitted, predictions, objective)


def simulate_command(proj: Projection, workers: int) -> str:
    """The `backupsgd simulate` line that reproduces one P of a projection."""
    backups = ",".join(str(b) for b in SCALE_BACKUPS if 2 * b <= workers)
    command = (f"backupsgd simulate --workers {workers} --backups {backups} --modes sync,backup "
               f"--straggler {proj.straggler} --compute-s {proj.compute_s:.6f} --model-mb {proj.model_mb:.4f} "
               f"--steps {SCALE_STEPS} --seed 0")
    if proj.noise:
        command += f" --objective time-to-accuracy --noise-scale {proj.noise.noise_scale:.3f}"
    return command


def projection_table(proj: Projection) -> str:
    """Per P: sync's step time, and the best b by gradients/s (and by time to accuracy, if fitted)."""
    from backupsgd.report.tables import markdown_table
    from backupsgd.sim.recommend import rank

    header = ["P", "sync step, ms", "best b for grads/s", "its step, ms", "grads/s vs sync"]
    if proj.noise:
        header += ["best b for time to accuracy", "its speed-up over sync"]
    rows = []
    for p in SCALE_WORKERS:
        preds = [x for x in proj.predictions if x.workers == p]
        sync = next(x for x in preds if x.mode == "sync")
        by_rate = rank(preds, "grads-per-s")[0].prediction
        row = [str(p), f"{1e3 * sync.step_s:.1f}", f"{by_rate.mode} b={by_rate.backups}",
               f"{1e3 * by_rate.step_s:.1f}", f"{by_rate.grads_per_s / sync.grads_per_s:.2f}x"]
        if proj.noise:
            ranked = rank(preds, "time-to-accuracy", proj.noise.noise_scale)
            best = ranked[0]
            sync_tta = next(c for c in ranked if c.prediction.mode == "sync").time_to_accuracy_s
            row += [f"{best.prediction.mode} b={best.prediction.backups}",
                    f"{sync_tta / best.time_to_accuracy_s:.2f}x"]
        rows.append(row)
    return markdown_table(header, rows)


def projection_plot(projections: list[Projection], path: Path) -> Path | None:
    """Simulated gradients/s against b at each P, one panel per straggler model (b=0 is sync's rate)."""
    if not projections:
        return None
    import matplotlib.pyplot as plt

    from backupsgd.report.plots import PANEL_H, PANEL_W, save

    fig, axes = plt.subplots(1, len(projections), figsize=(PANEL_W * len(projections), PANEL_H), squeeze=False)
    for ax, proj in zip(axes.flat, projections):
        for p in SCALE_WORKERS:
            rows = sorted((x for x in proj.predictions if x.workers == p and x.mode == "backup"),
                          key=lambda x: x.backups)
            sync = next(x for x in proj.predictions if x.workers == p and x.mode == "sync")
            line = ax.plot([x.backups for x in rows], [x.grads_per_s / sync.grads_per_s for x in rows], "o-",
                           label=f"P={p}")
            ax.plot([0], [1.0], "s", color=line[0].get_color())
        ax.axhline(1.0, color="0.3", ls=":", lw=1)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(-0.3, max(SCALE_BACKUPS) * 1.3)
        ax.set(title=f"simulated, straggler {proj.straggler}", xlabel="b (symlog scale)",
               ylabel="gradients/s relative to sync")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)
