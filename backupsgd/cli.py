"""The command line: `backupsgd train | bench ...`. MPI.COMM_WORLD is fetched here and nowhere else."""

from __future__ import annotations

import sys
from typing import Any

import click

from backupsgd.errors import ConfigError


def _train_options(fn):
    # Every option defaults to None so that a value from --config is only overridden when given.
    options = [
        click.option("--config", "config_file", type=str, help="TOML file with any of these options as keys."),
        click.option("--mode", type=str, help="sync | backup | horovod (Horovod's DistributedOptimizer)"),
        click.option("--backups", type=str, help="b: drop the b slowest gradients of each step (N = P - b); "
                     "auto[:min=A,max=B,rule=progress|dbw]: choose N every step from the arrivals and the gradient "
                     "noise (--mode backup)."),
        click.option("--servers", type=int, help="k parameter-server ranks (0..k-1) for --mode ps-sync | ps-backup "
                     "| ps-async (default 1); the other ranks are workers."),
        click.option("--model", type=str, help="mlp (digits) | cnn (digits, fashion-mnist, mnist) | logreg "
                     "(synthetic) | resnet (cifar, fashion-mnist, mnist) | gpt (pydocs: byte-level language model) | "
                     "pkg.module:factory (your own nn.Module; see backupsgd/plugins.py)."),
        click.option("--dataset", type=str, help="digits | synthetic | cifar | fashion-mnist | mnist | pydocs "
                     "| pkg.module:factory (your own data) (default: the model's first)."),
        click.option("--data-dir", type=str, help="Directory with the dataset's files (MNIST-format IDX files, or "
                     "python3.11.info.gz); default: where `make data` puts them."),
        click.option("--batch-size", type=int, help="Per-worker minibatch size."),
        click.option("--lr", type=float, help="Learning rate."),
        click.option("--optimizer", type=str, help="Any torch.optim optimizer by name: sgd, adam, adamw, ..."),
        click.option("--momentum", type=float, help="Momentum, for optimizers that take it."),
        click.option("--steps", type=int, help="Number of updates to apply."),
        click.option("--seed", type=int, help="Seeds init, sampling and straggler delays."),
        click.option("--straggler", type=str, help="none | slow:ranks=2+4,delay=S | slow:ranks=2,factor=X | "
                     "exp:mean=S | lognormal:median=S,sigma=X | pareto:scale=S,alpha=A | trace:PATH. "
                     "ps-* modes: ranks= names workers 0..W-1 (MPI rank - servers), as steps.jsonl does."),
        click.option("--eval-every", type=int, help="Steps between test evaluations (0: at the end only)."),
        click.option("--threads", type=int, help="torch threads per rank (default 1: ranks share cores)."),
        click.option("--out", type=str, help="Run directory (default: a new one under results/runs/)."),
        click.option("--progress/--no-progress", default=None, help="Progress bar on rank 0."),
        click.option("--reducer", type=str, help="dense (default): allreduce over all ranks, non-members adding "
                     "zeros | members: only each step's members reduce, so a frozen worker blocks nobody | "
                     "horovod: as dense, through Horovod's allreduce | shm: members' buffers summed in the node's "
                     "shared memory (fastest on one machine; hierarchical across machines) | auto: shm on one "
                     "machine whose /dev/shm has room for it, else dense."),
        click.option("--lag-limit", type=int, help="members reducer: steps a frozen worker may fall behind before "
                     "it is sent the current state instead of a backlog (default 20)."),
        click.option("--member-timeout", type=float, help="members reducer: seconds a step's reduction may wait for a "
                     "member before the step is decided again without it (default 0: 0.5 s + 20 ms per MiB)."),
        click.option("--stall-timeout", type=float, help="Seconds a step may make no progress before every rank "
                     "reports whom it waits for and the job aborts (default 300; 0: never)."),
        click.option("--fault", type=str, help="Inject faults (for tests): nan:ranks=2,steps=3-6 | "
                     "hang:rank=R,step=S | crash:rank=R,step=S | freeze:rank=R,step=S,phase=reduce[,seconds=X]; "
                     "join several with ';'."),
        click.option("--checkpoint-every", type=int, help="Steps between checkpoints in <run dir>/checkpoints."),
        click.option("--resume", is_flag=True, default=None, help="Continue the run in --out DIR from its last "
                     "intact checkpoint (same options; --steps may grow)."),
        click.option("--check-every", type=int, help="Steps between replica checks (parameter digests compared)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def main() -> None:
    """Straggler-resilient synchronous data-parallel training over MPI (launch with mpirun)."""


@main.command()
@_train_options
def train(config_file: str | None, **options: Any) -> None:
    """Train data-parallel on every MPI rank, e.g. mpirun -n 5 backupsgd train --mode backup --backups 1."""
    from mpi4py import MPI

    from backupsgd.config import build_config, load_toml
    from backupsgd.mpi_env import abort_on_failure, agree, check_thread_level
    from backupsgd.rundir import choose_run_dir
    from backupsgd.summary import format_summary
    from backupsgd.survivors import leave_if_shrunk
    from backupsgd.runners import runner_for

    comm = MPI.COMM_WORLD

    def resolve():
        check_thread_level()
        values = load_toml(config_file) if config_file else {}
        values.update({k: v for k, v in options.items() if v is not None})
        config = build_config(values)
        config.check_world(comm.size)
        return config

    config = agree(comm, resolve)
    from backupsgd.auto_spec import backups_slug

    label = f"{config.mode.mode}-b{backups_slug(config.mode.backups)}-{config.workload.model}-s{config.workload.seed}"
    run_dir = agree(comm, lambda: choose_run_dir(config.output.out, label, config.faults.resume)
                    if comm.rank == 0 else None)
    run_dir = comm.bcast(run_dir, root=0)
    with abort_on_failure(comm):
        summary = runner_for(config.mode.mode)(config, comm, run_dir)
    if summary:  # the writer's: rank 0, or the rank that took over from it (see backupsgd.failover)
        click.echo(format_summary(summary))
    leave_if_shrunk()


@main.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run (launch with mpirun)."""


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers, e.g. 1,16,64") from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter("give one or more sizes > 0, e.g. 1,16,64")
    return values


@bench.command("exchange")
@click.option("--sizes", default="1,16,64", show_default=True, help="Fused buffer sizes in MiB.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(1), help="Interleaved repeats.")
@click.option("--iters", default=5, show_default=True, type=click.IntRange(1), help="Steps timed per repeat.")
@click.option("--backups", default=1, show_default=True, type=click.IntRange(0), help="b for the backup exchange.")
@click.option("--straggler-delay", default=0.1, show_default=True, type=click.FloatRange(0),
              help="Seconds one rank is delayed per step in the step-time comparison (0 skips it).")
@click.option("--compute", default=0.05, show_default=True, type=click.FloatRange(0),
              help="Seconds of simulated compute per step in the step-time comparison.")
@click.option("--json", "json_path", type=str, help="Write the rows to this JSON file.")
@click.option("--horovod/--no-horovod", default=True, show_default=True,
              help="Add Horovod's columns when it is importable. Its background thread polls every 1 ms, which "
                   "slows the other columns at small sizes where ranks share cores; --no-horovod leaves it out.")
@click.option("--auto", is_flag=True, help="Add a column for backup with --reducer auto.")
def bench_exchange_command(sizes, repeats, iters, backups, straggler_delay, compute, json_path, horovod, auto) -> None:
    """Raw MPI_Allreduce vs the backup and sync exchanges, e.g. mpirun -n 4 backupsgd bench exchange."""
    from mpi4py import MPI

    from backupsgd import bench as b
    from backupsgd.mpi_env import abort_on_failure, agree, check_thread_level

    comm = MPI.COMM_WORLD
    sizes_mib = _float_list(sizes)

    def check():
        check_thread_level()
        if backups >= comm.size:
            raise ConfigError(f"--backups {backups} needs at least {backups + 1} ranks; launch more with mpirun -n")

    agree(comm, check)
    with abort_on_failure(comm):
        rows = b.bench_exchange(comm, sizes_mib, repeats, iters, backups, horovod, auto)
        straggler = (b.bench_straggler(comm, 1.0, 20, compute, straggler_delay, max(backups, 1))
                     if straggler_delay > 0 and comm.size > 1 else None)
    if comm.rank == 0:
        click.echo(b.format_rows(rows, straggler))
        if json_path:
            b.write_json(json_path, rows, straggler)
            click.echo(f"wrote {json_path}")


def _register_subcommands() -> None:
    from backupsgd.bench_library import bench_library_command
    from backupsgd.cluster.cli import cluster_command
    from backupsgd.report.cli import compare_command, report_command, timeline_command
    from backupsgd.ps.bench import bench_ps_command
    from backupsgd.sim.cli import simulate_command
    from backupsgd.sweep.cli import sweep_command

    main.add_command(simulate_command)
    bench.add_command(bench_ps_command)
    bench.add_command(bench_library_command)
    main.add_command(sweep_command)
    main.add_command(report_command)
    main.add_command(timeline_command)
    main.add_command(compare_command)
    main.add_command(cluster_command)


_register_subcommands()


def run() -> None:
    """Console entry point: a ConfigError outside MPI context is one line and exit 2, never a traceback."""
    try:
        main(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"backupsgd: error: {exc}", err=True)
        sys.exit(2)
