"""Latency-bandwidth (alpha-beta) network costs of one step's gradient exchange, in seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from backupsgd.errors import ConfigError
from backupsgd.sim import openmpi

MIB = 2**20  # bytes in one MiB: --model-mb counts MiB
ALLREDUCES = ("ring", "openmpi")  # NetConfig.allreduce


@dataclass(frozen=True)
class NetConfig:
    """The network the simulator assumes; every link is full duplex with the same bandwidth and latency."""

    model_mb: float = 10.0  # gradient (= model) size M in MiB, fp32 parameters as stored
    bandwidth_gbps: float = 10.0  # B: per-link bandwidth in Gbit/s (10^9 bits/s)
    latency_us: float = 50.0  # a: one-way per-message latency in microseconds
    servers: int = 1  # k: parameter-server ranks, each owning an equal shard of M
    # Share of B each direction of a link gets while it carries data both ways at once (a ring allreduce
    # sends and receives together): 1 is full duplex. A parameter server's push and pull phases each load
    # a link one way, so they get all of B. Measured by `python -m backupsgd.cluster.pingpong`.
    duplex: float = 1.0
    # r: ranks packed on one node, sharing its link (1: every rank a node of its own). With r > 1 an allreduce
    # is hierarchical, as Open MPI's (coll/han) and the shm reducer's are: within each node through shared
    # memory, across nodes among one leader per node.
    ranks_per_node: int = 1
    # Shared-memory bandwidth within a node, Gbit/s: a 4-rank MPI_Allreduce of 16 MiB on this machine took
    # 11.2 ms (results/bench/exchange.json, quiet): a ring's 1.5 M in 11.2 ms is 18 Gbit/s.
    node_gbps: float = 18.0
    # Which allreduce runs among one rank per node: "ring", the textbook bandwidth-optimal ring; "openmpi", what
    # Open MPI 5.0 does over TCP (coll/tuned's choice by P and M, rendezvous exchanges one way at a time:
    # backupsgd.sim.openmpi), as measured on the namespace cluster. Across node leaders (r > 1) both use a ring.
    allreduce: str = "ring"
    # What each synchronous step costs besides compute, injected delay and the wire: the vote's polling, the
    # engine thread's hand-offs, applying the update, Python, and waiting for cores the ranks share. Fitted per
    # mode from measured runs (backupsgd.cluster.target.fit_overheads); 0 is the textbook model. ps-async: none.
    step_overhead_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("model_mb", "latency_us"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if not math.isfinite(self.bandwidth_gbps) or self.bandwidth_gbps <= 0:
            raise ConfigError(f"--bandwidth-gbps must be a finite number > 0, got {self.bandwidth_gbps}")
        if self.servers < 1:
            raise ConfigError(f"--servers must be >= 1, got {self.servers}")
        if not (math.isfinite(self.duplex) and 0 < self.duplex <= 1):
            raise ConfigError(f"--duplex must be in (0, 1] (1: full duplex links), got {self.duplex}")
        if not isinstance(self.ranks_per_node, int) or self.ranks_per_node < 1:
            raise ConfigError(f"--ranks-per-node must be an integer >= 1 (1: a node per rank), "
                              f"got {self.ranks_per_node}")
        if self.allreduce not in ALLREDUCES:
            raise ConfigError(f"--allreduce must be one of {', '.join(ALLREDUCES)}, got {self.allreduce!r}")
        if not math.isfinite(self.node_gbps) or self.node_gbps <= 0:
            raise ConfigError(f"--node-gbps must be a finite number > 0, got {self.node_gbps}")
        if not math.isfinite(self.step_overhead_ms) or self.step_overhead_ms < 0:
            raise ConfigError(f"--step-overhead-ms must be a finite number >= 0, got {self.step_overhead_ms}")

    @property
    def bytes(self) -> float:
        return self.model_mb * MIB

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_gbps * 1e9 / 8

    @property
    def latency_s(self) -> float:
        return self.latency_us * 1e-6

    @property
    def step_overhead_s(self) -> float:
        return self.step_overhead_ms * 1e-3

    @property
    def shard_transfer_s(self) -> float:
        """Time to move one worker's shard (M/k bytes) over one server link."""
        return self.bytes / self.servers / self.bytes_per_s


def ring_allreduce_s(workers: int, net: NetConfig) -> float:
    """Ring allreduce of M bytes over P ranks: 2(P-1) a + 2(P-1)/P * M/B.

    Reduce-scatter then allgather, each P-1 rounds of one latency and M/P bytes per rank.
    `backup` mode's dense reducer allreduces over all P ranks (non-members send zeros), so P is
    the full world, not N.
    """
    p = workers
    return 2 * (p - 1) * net.latency_s + 2 * (p - 1) / p * net.bytes / (net.bytes_per_s * net.duplex)


def allreduce_s(workers: int, net: NetConfig) -> float:
    """Allreduce of M bytes over P ranks packed r = `ranks_per_node` to a node; when r = 1 the flat ring, or
    with `allreduce="openmpi"` Open MPI's own algorithm over TCP (backupsgd.sim.openmpi).

    With r > 1, hierarchical (Open MPI's coll/han across nodes; the shm reducer): each node's r ranks reduce
    to a leader and get the result back through shared memory, the leader taking in and giving out r - 1
    buffers: 2(r-1) M / B_node; between them, a ring over the K = ceil(P/r) leaders on the links. A link
    then carries one leader's 2(K-1)/K x M, not the r ranks' traffic: with 2 nodes, M each way.
    """
    r = min(net.ranks_per_node, workers)
    if r == 1:
        return openmpi.allreduce_s(workers, net) if net.allreduce == "openmpi" else ring_allreduce_s(workers, net)
    nodes = math.ceil(workers / r)
    within = 2 * (r - 1) * net.bytes / (net.node_gbps * 1e9 / 8)
    return within + (ring_allreduce_s(nodes, net) if nodes > 1 else 0.0)


def ps_transfer_s(pushes: int, pulls: int, net: NetConfig) -> float:
    """Parameter-server exchange: max(pushes M/k, M)/B + max(pulls M/k, M)/B + 2a.

    Assumptions: each of the k servers owns M/k bytes and receives the `pushes` shards one after
    another and then, once the update is applied, sends `pulls` fresh shards one after another; the
    k servers work in parallel. A worker's own link carries its whole gradient (k shards) each way,
    times the r workers packed on its node (servers on nodes of their own), so with fewer pushes than
    servers (P < k) the workers' links, not the servers', set the pace.
    One latency a for the pushes and one for the pulls. With P >= k this is the textbook
    2 P M / (k B) + 2a.
    """
    worker_link_s = min(net.ranks_per_node, max(pushes, pulls)) * net.bytes / net.bytes_per_s  # r share a link
    return (max(pushes * net.shard_transfer_s, worker_link_s) + max(pulls * net.shard_transfer_s, worker_link_s)
            + 2 * net.latency_s)


def vote_s(net: NetConfig) -> float:
    """`backup` mode's membership vote: READY to the coordinator, DECISION back: two latencies."""
    return 2 * net.latency_s
