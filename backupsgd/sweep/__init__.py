"""Sweeps: a TOML grid of training runs, launched one MPI job at a time, resumable."""

from backupsgd.sweep.grid import Grid, RunSpec, load_grid
from backupsgd.sweep.runner import MpiLauncher, Outcome, SweepResult, run_sweep

__all__ = ["Grid", "MpiLauncher", "Outcome", "RunSpec", "SweepResult", "load_grid", "run_sweep"]
