"""`backupsgd bench library`: images per second of one user script on horovod.torch and on backupsgd.torch
(b = 0 and b = 1), with no straggler and with one rank F times slower, side by side in one run.

Each configuration is one mpirun job of examples/pytorch_synthetic_benchmark.py; repeats are interleaved
(every configuration once, then again), so a machine that slows down slows them all alike. The slow rank
sleeps the same fixed time per batch under every library: (F - 1) x the median compute per batch measured
in the repeat's no-straggler runs. "Compute F times as long" measured in each job would differ between
libraries, because ranks sharing cores slow each other's compute by what their exchange threads do.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import click

from backupsgd.errors import ConfigError
from backupsgd.jobs import run_launcher, venv_mpirun

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "pytorch_synthetic_benchmark.py"
# (label, library, b)
LIBRARIES = [("horovod.torch", "horovod", 0), ("backupsgd.torch b=0", "backupsgd", 0),
             ("backupsgd.torch b=1", "backupsgd", 1)]


def run_one(ranks: int, library: str, backups: int, slow_delay: float, script_args: list[str],
            timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        slow = ["--slow-rank", str(ranks - 1), "--slow-delay", f"{slow_delay:.6f}"] if slow_delay > 0 else []
        cmd = [str(venv_mpirun()), "--oversubscribe", "-x", "BACKUPSGD_BACKUPS", "-n", str(ranks), sys.executable,
               str(SCRIPT), *(["--horovod"] if library == "horovod" else []), *slow, *script_args, "--json", str(out)]
        env = dict(os.environ, BACKUPSGD_BACKUPS=str(backups), OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        done = run_launcher(cmd, env, timeout)
        if done.returncode != 0 or not out.exists():
            raise click.ClickException(f"{library} b={backups} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def format_table(rows: list[dict], ranks: int, slow_factor: float, slow_delay_s: float) -> str:
    lines = [f"img/sec applied, {ranks} ranks (median of repeats); slow: rank {ranks - 1} sleeps "
             f"{1e3 * slow_delay_s:.1f} ms more per batch ({slow_factor - 1:g}x the median compute: "
             f"{slow_factor:g}x as long)",
             "| library | no straggler | vs Horovod | slow rank | vs Horovod |", "|---|--:|--:|--:|--:|"]
    base = {r["slow"]: r["img_per_s"] for r in rows if r["library"] == "horovod.torch"}
    for label, _, _ in LIBRARIES:
        cells = {r["slow"]: r["img_per_s"] for r in rows if r["library"] == label}
        lines.append(f"| {label} | {cells[False]:.1f} | {cells[False] / base[False]:.2f}x | {cells[True]:.1f} | "
                     f"{cells[True] / base[True]:.2f}x |")
    return "\n".join(lines)


@click.command("library")
@click.option("--ranks", default=4, show_default=True, type=click.IntRange(2), help="MPI ranks per job.")
@click.option("--slow-factor", default=5.0, show_default=True, type=click.FloatRange(1.0, min_open=True),
              help="The last rank sleeps (F - 1) x the median compute per batch more in the straggler runs.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1), help="Interleaved repeats.")
@click.option("--iters", default=5, show_default=True, type=click.IntRange(1), help="Timed iterations per job.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds before a job is killed.")
@click.option("--json", "json_path", type=str, help="Write the rows to this JSON file.")
def bench_library_command(ranks, slow_factor, repeats, iters, timeout, json_path) -> None:
    """horovod.torch vs backupsgd.torch on the same script, e.g. backupsgd bench library --ranks 4."""
    from backupsgd.hvd.runtime import require

    if not SCRIPT.exists():
        raise ConfigError(f"{SCRIPT} is missing: run the benchmark from a checkout of backupsgd")
    require()
    script_args = ["--num-iters", str(iters)]
    samples: dict[tuple[str, bool], list[float]] = {}
    delays = []
    for repeat in range(repeats):
        computes = []
        for slow in (False, True):
            delay = (slow_factor - 1) * statistics.median(computes) if slow else 0.0
            for label, library, backups in LIBRARIES:
                row = run_one(ranks, library, backups, delay, script_args, timeout)
                samples.setdefault((label, slow), []).append(row["img_per_s"])
                if not slow:
                    computes.append(row["compute_s"])
                click.echo(f"[repeat {repeat + 1}/{repeats}] {label}, "
                           f"{f'slow rank (+{1e3 * delay:.1f} ms)' if slow else 'no straggler'}: "
                           f"{row['img_per_s']:.1f} img/s (median compute {1e3 * row['compute_s']:.1f} ms)", err=True)
        delays.append(delay)
    rows = [{"library": label, "slow": slow, "img_per_s": statistics.median(values), "samples": values}
            for (label, slow), values in samples.items()]
    click.echo(format_table(rows, ranks, slow_factor, statistics.median(delays)))
    if json_path:
        Path(json_path).write_text(json.dumps({"ranks": ranks, "slow_factor": slow_factor, "slow_delays_s": delays,
                                               "rows": rows}, indent=1))
        click.echo(f"wrote {json_path}")
