"""`backupsgd simulate`: predict step time of every mode at scales this machine cannot run, and pick b."""

from __future__ import annotations

import json
from pathlib import Path

import click

from backupsgd.auto_spec import AutoSpec, is_auto, parse_auto
from backupsgd.errors import ConfigError
from backupsgd.sim.model import MODES
from backupsgd.sim.network import ALLREDUCES, NetConfig
from backupsgd.sim.recommend import OBJECTIVES
from backupsgd.sim.sweep import SimConfig, SimResult, simulate


class OneLineUsageError(click.UsageError):
    """Exit status 2 with the message alone: the message already names the fix, usage would bury it."""

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True, file=file)


def _ints(option: str, text: str, accepted: str = "integers", example: str = "0,4,10") -> tuple[int, ...]:
    """`text` as a comma list of integers; the error names what `option` accepts and an example of it."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise OneLineUsageError(f"{option} takes a comma list of {accepted}, e.g. {option} {example}; "
                                f"got {text!r}") from None


def _backups(text: str) -> tuple[tuple[int, ...], tuple[AutoSpec, ...]]:
    """Static b values and auto specs from one comma list: `auto:min=0,max=4,0,2` is auto with two keys,
    then b = 0 and 2 (a key=value item belongs to the auto before it)."""
    static: list[int] = []
    autos: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if is_auto(item):
            autos.append(item)
        elif "=" in item and autos:
            autos[-1] += ("," if ":" in autos[-1] else ":") + item
        else:
            # auto is as likely meant as an integer here: the error names both
            static += _ints("--backups", item, "integers b and auto choices", "auto,0,2,4")
    return tuple(static), tuple(parse_auto(a) for a in autos)


def _modes(text: str) -> tuple[str, ...]:
    return MODES if text.strip() == "all" else tuple(m.strip() for m in text.split(","))


def _format_table(result: SimResult) -> str:
    header = ("mode", "P", "b", "N", "step_ms", "p50_ms", "p95_ms", "grads/s", "progress/s", "staleness")
    lines = [header]
    for p in result.predictions:
        staleness = "" if p.staleness_mean is None else f"{p.staleness_mean:.1f}"
        progress = "" if p.progress_per_s is None else f"{p.progress_per_s:.2f}"
        n = str(p.n) if isinstance(p.n, int) else f"{p.n:.1f}"  # auto: the mean N chosen
        lines.append((p.mode, str(p.workers), str(p.backups), n, f"{p.step_s * 1e3:.2f}",
                      f"{p.step_p50_s * 1e3:.2f}", f"{p.step_p95_s * 1e3:.2f}", f"{p.grads_per_s:.1f}", progress,
                      staleness))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in lines
    )


def _format_recommendation(result: SimResult, config: SimConfig) -> str:
    if not result.best:
        return "recommendation: none (ask for at least one synchronous mode: sync, backup, ps-sync, ps-backup)"
    lines = []
    for c in result.best:
        p = c.prediction
        line = (f"recommendation for P={p.workers} ({config.objective}): {p.mode} with b={p.backups} (N={p.n}): "
                f"step {p.step_s * 1e3:.2f} ms, {p.grads_per_s:.1f} grads/s")
        if c.time_to_accuracy_s is not None:
            line += (f", time-to-accuracy {c.time_to_accuracy_s * 1e3:.2f} ms per S_min step "
                     f"(noise scale {config.noise_scale:g})")
        lines.append(line)
    return "\n".join(lines)


@click.command("simulate")
@click.option("--workers", default="100", show_default=True, help="Comma list of P, total machines (backups included).")
@click.option("--backups", default="0", show_default=True,
              help="Comma list of b for the backup modes (N = P - b), and of adaptive choices: auto, auto-dbw, "
                   "auto:min=A,max=B[,rule=dbw] (needs --noise-scale).")
@click.option("--modes", default="all", show_default=True, help=f"Comma list of {','.join(MODES)}, or all.")
@click.option("--straggler", default="exp:mean=0.02", show_default=True, help="Straggler spec, as for train.")
@click.option("--compute-s", type=float, default=0.05, show_default=True, help="Base compute seconds per step.")
@click.option("--steps", type=int, default=200, show_default=True, help="Simulated steps per P.")
@click.option("--seed", type=int, default=0, show_default=True, help="Straggler seed.")
@click.option("--model-mb", type=float, default=10.0, show_default=True, help="Gradient size in MiB.")
@click.option("--bandwidth-gbps", type=float, default=10.0, show_default=True, help="Link bandwidth, Gbit/s.")
@click.option("--latency-us", type=float, default=50.0, show_default=True, help="One-way latency, microseconds.")
@click.option("--servers", type=int, default=1, show_default=True, help="Parameter-server ranks k.")
@click.option("--duplex", type=float, default=1.0, show_default=True,
              help="Share of the bandwidth each direction gets while a link carries data both ways (ring "
                   "allreduce); 1: full duplex. `python -m backupsgd.cluster.pingpong` measures it.")
@click.option("--ranks-per-node", type=int, default=1, show_default=True,
              help="Ranks packed on one node and sharing its link; > 1 makes the allreduce hierarchical.")
@click.option("--allreduce", type=click.Choice(ALLREDUCES), default="ring", show_default=True,
              help="The allreduce among one rank per node: the textbook ring, or what Open MPI 5.0 runs over TCP "
                   "(coll/tuned's algorithm; large exchanges with one peer go one way at a time).")
@click.option("--node-gbps", type=float, default=18.0, show_default=True,
              help="Shared-memory bandwidth within a node, Gbit/s (with --ranks-per-node > 1).")
@click.option("--step-overhead-ms", type=float, default=0.0, show_default=True,
              help="Per synchronous step cost besides compute and the wire (engine, Python, shared cores).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="grads-per-s", show_default=True)
@click.option("--noise-scale", type=float, default=None,
              help="Critical batch B_noise in examples (time-to-accuracy, progress/s, auto).")
@click.option("--batch-size", type=int, default=1, show_default=True,
              help="Examples per worker minibatch B (1: --noise-scale counts worker minibatches).")
@click.option("--restart", is_flag=True, help="Textbook model: every worker restarts each step (default: a dropped "
              "worker finishes its stale step first, as the engine does).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rows and recommendation here.")
def simulate_command(workers, backups, modes, straggler, compute_s, steps, seed, model_mb, bandwidth_gbps,
                     latency_us, servers, duplex, ranks_per_node, allreduce, node_gbps, step_overhead_ms, objective,
                     noise_scale, batch_size, restart, json_path) -> None:
    """Predict per-step time of every mode for each P and b (no MPI), and recommend b."""
    try:
        static, autos = _backups(backups)
        config = SimConfig(
            workers=_ints("--workers", workers),
            backups=static,
            auto=autos,
            batch_size=batch_size,
            modes=_modes(modes),
            straggler=straggler,
            compute_s=compute_s,
            steps=steps,
            seed=seed,
            net=NetConfig(model_mb=model_mb, bandwidth_gbps=bandwidth_gbps, latency_us=latency_us, servers=servers,
                           duplex=duplex, ranks_per_node=ranks_per_node, allreduce=allreduce, node_gbps=node_gbps,
                           step_overhead_ms=step_overhead_ms),
            objective=objective,
            noise_scale=noise_scale,
            restart=restart,
        )
    except ConfigError as e:
        raise OneLineUsageError(str(e)) from None
    result = simulate(config)
    click.echo(_format_table(result))
    click.echo(_format_recommendation(result, config))
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(result.as_json(config), indent=2) + "\n")
        except OSError as e:
            raise OneLineUsageError(f"cannot write --json {json_path}: {e.strerror}; give a writable path") from None
