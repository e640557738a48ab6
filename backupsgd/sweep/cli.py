"""`backupsgd sweep FILE.toml`: run a grid of training jobs (a plain process that launches mpirun itself)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from backupsgd.sweep.grid import load_grid
from backupsgd.sweep.runner import MpiLauncher, run_sweep

SWEEPS_ROOT = Path("results") / "sweeps"


@click.command("sweep")
@click.argument("grid_file", metavar="FILE.toml")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the run directories (default: results/sweeps/<FILE's stem>).")
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is finished; launch nothing.")
@click.option("--progress/--no-progress", default=True, help="Progress bar with the time left.")
def sweep_command(grid_file: str, out_dir: Path | None, dry_run: bool, progress: bool) -> None:
    """Run every point of a grid, one MPI job after another; rerun the same command to resume.

    Not under mpirun: each run is `mpirun --oversubscribe -n P backupsgd train`, e.g.
    backupsgd sweep launch/experiments/smoke.toml --out results/smoke
    """
    grid = load_grid(grid_file)
    out_dir = out_dir or SWEEPS_ROOT / Path(grid_file).stem
    if dry_run:
        for spec in grid.runs:
            state = "finished" if (out_dir / spec.name / "summary.json").is_file() else "to run"
            click.echo(f"{state:8}  mpirun -n {spec.ranks}  {out_dir / spec.name}")
        click.echo(f"{len(grid.runs)} runs ({grid.collapsed} duplicate points of full modes collapsed to b=0)")
        return
    launcher = MpiLauncher()
    try:
        result = run_sweep(grid, out_dir, launcher, progress=progress)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; rerun the same command to resume (finished runs in {out_dir} are kept)", err=True)
        sys.exit(130)
    click.echo(f"{result.total} runs in {out_dir}: {result.skipped} already finished, {result.ran} run now, "
               f"{len(result.failures)} failed")
    if result.failures:
        for name, detail in result.failures:
            click.echo(f"failed: {name}\n{detail}", err=True)
        click.echo("rerun the same command to retry the failed runs (finished ones are skipped)", err=True)
        sys.exit(1)
