"""`backupsgd cluster up | down | run`: a K-node cluster on this machine (network namespaces, needs root)."""

from __future__ import annotations

import sys

import click

from backupsgd.cluster import launch, topology


_NAME = click.option("--name", default=topology.DEFAULT_NAME, show_default=True,
                     help="Cluster name: the prefix of its namespaces (<name>-n0, ...); several can be up at once.")


@click.group("cluster")
def cluster_command() -> None:
    """A K-node cluster on this machine: one network namespace per node, tbf-shaped links (needs root)."""


@cluster_command.command("up")
@click.option("--nodes", default=2, show_default=True, type=int, help="Nodes K (namespaces n0..nK-1).")
@click.option("--slots", default=2, show_default=True, type=int, help="Ranks per node in the hostfile.")
@click.option("--bandwidth", default="10gbit", show_default=True,
              help="Each node's link rate, both ways (tc units: 100mbit, 1gbit, 10gbit; 'unlimited').")
@_NAME
def up_command(nodes: int, slots: int, bandwidth: str, name: str) -> None:
    """Create the cluster; the same settings again do nothing, other settings need `cluster down` first."""
    spec = topology.ClusterSpec(nodes=nodes, slots=slots, bandwidth=bandwidth, name=name)
    made = topology.up(spec)
    state = "up" if made else "already up"
    click.echo(f"cluster {state}: {nodes} node(s) n0..n{nodes - 1} x {slots} slot(s), links {bandwidth}; "
               f"run jobs with: backupsgd cluster run{'' if name == topology.DEFAULT_NAME else ' --name ' + name} -- "
               f"-n {nodes * slots} python ...")


@cluster_command.command("down")
@_NAME
def down_command(name: str) -> None:
    """Remove the cluster: its processes, namespaces, links, bridge and files (nothing up: nothing to do)."""
    removed = topology.down(topology.ClusterSpec(name=name).name)
    click.echo(f"cluster down: removed {', '.join(removed)}" if removed else "no cluster was up")


@cluster_command.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_NAME
@click.argument("mpirun_args", nargs=-1, type=click.UNPROCESSED, required=True)
def run_command(name: str, mpirun_args: tuple[str, ...]) -> None:
    """Run `mpirun MPIRUN_ARGS` across the cluster, e.g. backupsgd cluster run -- -n 4 python -m backupsgd train."""
    topology.check_host()
    spec = launch.current(topology.ClusterSpec(name=name).name)
    sys.exit(launch.run(spec, list(mpirun_args)))
