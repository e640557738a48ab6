"""Latency-bandwidth (alpha-beta) network costs of one step's gradient exchange, in seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from backupsgd.errors import ConfigError

MIB = 2**20  # bytes in one MiB: --model-mb counts MiB


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


def ps_transfer_s(pushes: int, pulls: int, net: NetConfig) -> float:
    """Parameter-server exchange: max(pushes M/k, M)/B + max(pulls M/k, M)/B + 2a.

    Assumptions: each of the k servers owns M/k bytes and receives the `pushes` shards one after
    another and then, once the update is applied, sends `pulls` fresh shards one after another; the
    k servers work in parallel. A worker's own link carries its whole gradient (k shards) each way,
    so with fewer pushes than servers (P < k) the workers' links, not the servers', set the pace.
    One latency a for the pushes and one for the pulls. With P >= k this is the textbook
    2 P M / (k B) + 2a.
    """
    worker_link_s = net.bytes / net.bytes_per_s
    return (max(pushes * net.shard_transfer_s, worker_link_s) + max(pulls * net.shard_transfer_s, worker_link_s)
            + 2 * net.latency_s)


def vote_s(net: NetConfig) -> float:
    """`backup` mode's membership vote: READY to the coordinator, DECISION back: two latencies."""
    return 2 * net.latency_s
