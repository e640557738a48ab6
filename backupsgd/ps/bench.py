"""`backupsgd bench ps`: the parameter server's bottleneck, measured against the allreduce.

Launches one MPI job per (workers, servers) itself (backupsgd.ps.bench_job), collects the rows,
writes JSON and a plot. Each server receives W pushes of M/k bytes per step; each rank of a ring
allreduce receives 2(W-1)/W x M. The plot puts both side by side.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from backupsgd.errors import ConfigError
from backupsgd.jobs import kill_session, venv_mpirun

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so the jobs import this checkout's backupsgd


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers, e.g. 2,4,8") from None
    if not values or any(v < 1 for v in values):
        raise click.BadParameter("give one or more integers >= 1, e.g. 2,4,8")
    return values


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])))
    if os.geteuid() == 0:  # Open MPI refuses root unless told; containers often run as root
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def run_job(workers: int, servers: int, size_mb: float, steps: int, repeats: int, timeout: float) -> dict:
    """One mpirun job of workers + servers ranks; on timeout every rank is killed and the bench fails."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        cmd = [str(venv_mpirun()), "--oversubscribe", "-n", str(workers + servers), sys.executable, "-m",
               "backupsgd.ps.bench_job", "--servers", str(servers), "--size-mb", str(size_mb), "--steps", str(steps),
               "--repeats", str(repeats), "--out", str(out)]
        # TMPDIR: the launcher's session files go in `tmp` too, removed with it (see jobs.launcher_tmpdir)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**_env(), "TMPDIR": tmp}, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            proc.communicate()
            raise click.ClickException(f"timed out after {timeout:g} s: {shlex.join(cmd)}") from None
        if proc.returncode != 0 or not out.exists():
            raise click.ClickException(f"job failed ({proc.returncode}): {shlex.join(cmd)}\n{stdout[-2000:]}"
                                       f"\n{stderr[-4000:]}")
        return json.loads(out.read_text())


def _spread(samples: list[float], median: float) -> list[float]:
    return [median - min(samples), max(samples) - median]


def plot(rows: list[dict], path: str) -> None:
    """Left: bytes into each server per step against the ring's per-rank bytes. Right: step times,
    median with the min-max over repeats, since ranks share a few cores with whatever else runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = sorted({r["workers"] for r in rows})
    servers = sorted({r["servers"] for r in rows})
    size = rows[0]["size_mib"]
    fig, (ax_bytes, ax_time) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, k in enumerate(servers):
        mine = sorted((r for r in rows if r["servers"] == k), key=lambda r: r["workers"])
        xs = [r["workers"] for r in mine]
        label = f"ps-sync, k = {k} server{'s' * (k > 1)}"
        ax_bytes.plot(xs, [w * size / k for w in xs], "--", color=colors[i], alpha=0.6)
        ax_bytes.plot(xs, [r["bytes_in_per_server_mib"] for r in mine], "o", color=colors[i], label=label)
        ax_time.errorbar(xs, [r["ps_step_ms"] for r in mine], capsize=3, color=colors[i], marker="o", label=label,
                         yerr=list(zip(*(_spread(r["ps_step_ms_samples"], r["ps_step_ms"]) for r in mine))))
    ax_bytes.plot([], [], "k--", alpha=0.6, label="model: W x M / k")
    ax_bytes.plot(workers, [2 * (w - 1) / w * size for w in workers], "k-", lw=2,
                  label="ring allreduce, per rank: 2(W-1)/W x M")
    ring = [[r for r in rows if r["workers"] == w] for w in workers]
    samples = [[s for r in rs for s in r["allreduce_step_ms_samples"]] for rs in ring]
    medians = [sorted(s)[len(s) // 2] for s in samples]
    ax_time.errorbar(workers, medians, yerr=list(zip(*(_spread(s, m) for s, m in zip(samples, medians)))),
                     color="k", marker="s", lw=2, capsize=3, label="allreduce sync (all jobs' repeats)")
    ax_bytes.set(title=f"Bytes into each server per step (M = {size:g} MiB)", xlabel="workers W",
                 ylabel="MiB received per step (dots: measured)")
    ax_time.set(title="Step time of the exchange alone (no compute)", xlabel="workers W",
                ylabel="ms per step (median, bars: min-max)")
    for ax in (ax_bytes, ax_time):
        ax.set_xticks(workers)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Parameter-server bottleneck vs allreduce: {len(rows)} MPI jobs on {os.cpu_count()} CPU cores "
                 "(ranks share them)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("ps")
@click.option("--workers", "workers_list", default="2,4,8", show_default=True, help="Worker counts W.")
@click.option("--servers", "servers_list", default="1,2,4", show_default=True, help="Server counts k.")
@click.option("--size-mb", default=8.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Synthetic gradient size M in MiB.")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(1), help="Steps timed per repeat.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1), help="Interleaved repeats.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(1), help="Seconds per job.")
@click.option("--json", "json_path", type=str, help="Write the rows to this JSON file.")
@click.option("--plot", "plot_path", type=str, help="PNG plot (default: the --json path with .png).")
def bench_ps_command(workers_list, servers_list, size_mb, steps, repeats, timeout, json_path, plot_path) -> None:
    """ps-sync vs allreduce sync over workers x servers; launches its own mpirun jobs (run it without mpirun)."""
    if any(v in os.environ for v in ("OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK")):
        raise ConfigError("bench ps launches its own MPI jobs; run it without mpirun, e.g. backupsgd bench ps")
    rows = []
    click.echo(f"{'W':>3} {'k':>3} {'MiB in/server':>14} {'W x M/k':>9} {'ps ms':>9} {'allreduce ms':>13}")
    for w in _int_list(workers_list):
        for k in _int_list(servers_list):
            row = run_job(w, k, size_mb, steps, repeats, timeout)
            rows.append(row)
            click.echo(f"{w:>3} {k:>3} {row['bytes_in_per_server_mib']:>14.3f} "
                       f"{row['expected_bytes_in_per_server_mib']:>9.3f} {row['ps_step_ms']:>9.2f} "
                       f"{row['allreduce_step_ms']:>13.2f}")
    if json_path:
        meta = {"command": shlex.join(["backupsgd", "bench", "ps", *sys.argv[3:]]), "steps": steps,
                "repeats": repeats, "cpu_cores": os.cpu_count()}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    plot_path = plot_path or (str(Path(json_path).with_suffix(".png")) if json_path else None)
    if plot_path:
        plot(rows, plot_path)
        click.echo(f"wrote {plot_path}")
