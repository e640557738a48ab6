"""The network the simulator should assume, measured between two nodes: `cluster run -- -n 2 python -m
backupsgd.cluster.pingpong --out FILE` on a cluster of one slot per node (rank 0 on n0, rank 1 on n1).

One-way latency: half the median round trip of a small message (the simulator's per-message a).
Throughput: half the median round trip of an M-byte message each way (one direction at a time), and the
median time of M bytes sent both ways at once (Sendrecv: is the link full duplex, as the model assumes?).
"""

from __future__ import annotations

import argparse
import json
import time

import backupsgd  # noqa: F401  first: it sets Open MPI options that must precede MPI's start-up
import numpy as np
from mpi4py import MPI

MIB = 1 << 20


def _round_trips(comm: MPI.Comm, buf: np.ndarray, count: int) -> list[float]:
    """Seconds per round trip of `buf` between ranks 0 and 1 (rank 0's clock)."""
    other = 1 - comm.rank
    times = []
    for _ in range(count):
        comm.Barrier()
        t0 = time.perf_counter()
        if comm.rank == 0:
            comm.Send(buf, dest=other)
            comm.Recv(buf, source=other)
        else:
            comm.Recv(buf, source=other)
            comm.Send(buf, dest=other)
        times.append(time.perf_counter() - t0)
    return times


def _both_ways(comm: MPI.Comm, buf: np.ndarray, count: int) -> list[float]:
    other, back = 1 - comm.rank, np.empty_like(buf)
    times = []
    for _ in range(count):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Sendrecv(buf, dest=other, recvbuf=back, source=other)
        times.append(time.perf_counter() - t0)
    return times


def measure(comm: MPI.Comm, size_mb: float, small: int, large: int) -> dict:
    if comm.size != 2:
        raise SystemExit("pingpong runs on exactly 2 ranks (-n 2), one per node")
    tiny = np.zeros(1, dtype=np.float64)
    big = np.zeros(int(size_mb * MIB) // 4, dtype=np.float32)
    _round_trips(comm, tiny, 20)  # connections up, caches warm
    _round_trips(comm, big, 1)
    # Bimodal on a loaded machine: microseconds, or a 4 ms timer tick when another job had the core. The
    # 10th percentile is the network's latency; the median says how often the machine added its own.
    rtt_p10, rtt_p50 = np.percentile(_round_trips(comm, tiny, small), [10, 50])
    one_way = float(np.median(_round_trips(comm, big, large))) / 2
    duplex = float(np.median(_both_ways(comm, big, large)))
    return {"hosts": comm.gather(MPI.Get_processor_name()), "small_round_trips": small,
            "large_round_trips": large, "size_mib": size_mb, "latency_us": rtt_p10 / 2 * 1e6,
            "latency_us_median": rtt_p50 / 2 * 1e6,
            "one_way_ms": one_way * 1e3, "both_ways_ms": duplex * 1e3,
            "one_way_gbps": big.nbytes * 8 / one_way / 1e9, "both_ways_gbps_each": big.nbytes * 8 / duplex / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=4.0)
    parser.add_argument("--small", type=int, default=300, help="Round trips of an 8-byte message.")
    parser.add_argument("--large", type=int, default=15, help="Round trips of a --size-mb message.")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    result = measure(comm, args.size_mb, args.small, args.large)
    if comm.rank == 0:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
