"""Open MPI 5.0's MPI_Allreduce with one rank per node over TCP: the algorithm coll/tuned picks, and its cost.

With one rank per node coll/han steps aside (coll_han_subcomms.c: it passes through when no node holds
two ranks) and coll/tuned's fixed decision (coll_tuned_decision_fixed.c, v5.0.x) picks by communicator size
and message size. For a 4 MiB gradient on 2-8 ranks that is Rabenseifner's recursive halving and doubling,
whose every step is a Sendrecv with one peer. Over TCP, ob1 sends a message above the BTL's eager limit E by
rendezvous: its first E bytes, then the rest once the receiver's clear-to-send is back. That small message
travels on the same TCP connection as the receiver's own outgoing data, queued behind it in the socket's
send buffer (a link queue of 2 ms instead of 100 ms changed nothing). So when one side of an exchange is a
little ahead (ranks never start a step together), it streams its rest, and the other side's clear-to-send
arrives only after it: the two rests go one after the other, half duplex. Measured on the namespace cluster
at 1 Gbit/s (results/cluster/README.md, 2026-12-01): the allreduce of 4 MiB took 2.0x the ring's full-duplex
time at 2, 4 and 8 ranks (3 ranks: 1.05x this model), a Sendrecv of 4 MiB with one peer 2.0x a one-way send,
and with `--mca btl_tcp_eager_limit 8388608` (no rendezvous) the same Sendrecv 1.1x. A ring sends to one
neighbour and receives from the other, so its clear-to-sends never wait behind data (except with 2 ranks,
where both neighbours are one peer).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backupsgd.sim.network import NetConfig

EAGER_BYTES = 65536  # btl_tcp_eager_limit's default: a larger message goes by rendezvous
# coll/tuned's commutative allreduce rules: (communicator sizes below, [(message bytes below, algorithm)...])
# with the last algorithm for larger messages. Numbers as in coll_tuned_allreduce_algorithm.
_RULES = (
    (4, ((8, 4), (4096, 3), (8192, 4), (16384, 3), (65536, 4), (262144, 5)), 6),
    (8, ((16, 4), (8192, 3)), 6),
    (16, ((8192, 3),), 6),
    (32, ((64, 5), (4096, 3)), 6),
    (64, ((128, 5),), 6),
    (128, ((262144, 3),), 6),
    (256, ((131072, 2), (262144, 3)), 6),
    (512, ((4096, 2),), 6),
    (2048, ((2048, 2), (16384, 3)), 6),
    (4096, ((2048, 2), (4096, 5), (16384, 3)), 6),
    (math.inf, ((2048, 2), (16384, 5), (32768, 3)), 6),
)
NAMES = {2: "nonoverlapping", 3: "recursive_doubling", 4: "ring", 5: "segmented_ring", 6: "rabenseifner"}


def tuned_algorithm(ranks: int, nbytes: float) -> str:
    """The algorithm coll/tuned's fixed decision gives a commutative allreduce (a sum) of `nbytes` on `ranks`."""
    for below, by_size, largest in _RULES:
        if ranks < below:
            return NAMES[next((alg for limit, alg in by_size if nbytes < limit), largest)]
    raise AssertionError("the last rule covers every size")


def one_way_s(nbytes: float, net: NetConfig) -> float:
    """A Send to a rank that is not sending back: the link's full rate; a rendezvous adds a round trip."""
    return nbytes / net.bytes_per_s + net.latency_s * (3 if nbytes > EAGER_BYTES else 1)


def sendrecv_s(nbytes: float, net: NetConfig, same_peer: bool = True) -> float:
    """`nbytes` each way at once: both directions together at the duplex share of the rate, but with one peer
    and a rendezvous only the first E bytes are together, the two rests one after the other (module doc)."""
    together = nbytes / (net.bytes_per_s * net.duplex)
    if nbytes <= EAGER_BYTES:
        return together + net.latency_s
    if not same_peer:
        return together + 3 * net.latency_s
    return max(together, (2 * nbytes - EAGER_BYTES) / net.bytes_per_s) + 3 * net.latency_s


def _steps(ranks: int) -> tuple[int, int]:
    """log2 of the largest power of two p' <= ranks, and the r = ranks - p' ranks folded in before and after."""
    log = ranks.bit_length() - 1
    return log, ranks - (1 << log)


def allreduce_s(ranks: int, net: NetConfig) -> float:
    """Seconds of Open MPI's allreduce of M bytes over `ranks` ranks, one per node, on TCP (coll_base_allreduce.c).

    ring (also segmented_ring, which tuned calls without a segment size): 2(P-1) Sendrecvs of M/P, to one
    neighbour and from the other. recursive_doubling: log2 p' Sendrecvs of M with one peer, the r extra ranks
    sending their M in before and getting the result back after. rabenseifner: recursive halving then doubling,
    2 Sendrecvs of M/2^k with one peer for k = 1..log2 p'; the r extra ranks first swap halves with a partner
    and send it their reduced half, and get M back at the end. nonoverlapping: a reduce then a broadcast,
    taken as binomial trees of M (tuned picks it only for small messages on 128+ ranks).
    """
    if ranks < 2:
        return 0.0
    m = net.bytes
    alg = tuned_algorithm(ranks, m)
    if alg in ("ring", "segmented_ring"):
        return 2 * (ranks - 1) * sendrecv_s(m / ranks, net, same_peer=ranks == 2)
    if alg == "nonoverlapping":
        return 2 * math.ceil(math.log2(ranks)) * one_way_s(m, net)
    log, extra = _steps(ranks)
    if alg == "recursive_doubling":
        return log * sendrecv_s(m, net) + (2 * one_way_s(m, net) if extra else 0.0)
    halving = sum(2 * sendrecv_s(m / 2**k, net) for k in range(1, log + 1))
    return halving + (sendrecv_s(m / 2, net) + one_way_s(m / 2, net) + one_way_s(m, net) if extra else 0.0)
