"""A cluster on one machine: nodes as network namespaces with shaped links, for real multi-node MPI jobs.

    with running_cluster(ClusterSpec(nodes=2, slots=2, bandwidth="1gbit", name="mytest")) as spec:
        cmd = mpirun_command(spec, ["-n", "4", "python", "-m", "backupsgd", "train", ...])
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from backupsgd.cluster.launch import mpirun_command, run
from backupsgd.cluster.topology import ClusterSpec, down, existing_namespaces, parse_rate, up

__all__ = ["ClusterSpec", "running_cluster", "mpirun_command", "run", "up", "down", "existing_namespaces",
           "parse_rate"]


@contextlib.contextmanager
def running_cluster(spec: ClusterSpec) -> Iterator[ClusterSpec]:
    """Bring the cluster up for the block and always take it down, even when the block fails."""
    try:
        up(spec)
        yield spec
    finally:
        down(spec.name)
