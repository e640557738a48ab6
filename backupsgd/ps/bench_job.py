"""One `backupsgd bench ps` job, run under mpirun by the driver (backupsgd.ps.bench):

    mpirun -n W+k python -m backupsgd.ps.bench_job --servers k --size-mb M --steps S --repeats R --out FILE

Times the ps-sync exchange (the real server and worker code, with a plain SGD step for the optimizer)
and the allreduce `sync` exchange among the W workers on a synthetic M MiB gradient: no model, no
compute, so the step time is the exchange alone. Rank 0 writes one JSON row to FILE. No torch import:
a dozen ranks on two cores start in seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from mpi4py import MPI

from backupsgd.modes import MODES
from backupsgd.ps.client import WorkerClient
from backupsgd.ps.layout import Layout, idle_barrier
from backupsgd.ps.policy import QuorumPolicy
from backupsgd.ps.server import ParameterServer

MIB = 1 << 20
WARMUP = 2  # steps before the clock starts: first-touch of buffers and connection set-up


def ps_sync(comm: MPI.Comm, layout: Layout, grad: np.ndarray, steps: int) -> tuple[float, int]:
    """Seconds per step (slowest worker) and the push bytes this rank received per step (0 on workers)."""
    total = WARMUP + steps
    elapsed, bytes_in = 0.0, 0
    idle_barrier(comm)
    if layout.is_server(comm.rank):
        params = np.zeros(layout.shard_length(comm.rank), dtype=np.float32)

        def sgd(total_grad: np.ndarray, scale: float) -> None:
            total_grad *= -0.01 * scale
            params[:] += total_grad

        with ParameterServer(comm, layout, params, sgd, QuorumPolicy(layout.workers), total, False) as server:
            bytes_in = server.run().bytes_in // total
    else:
        with WorkerClient(comm, layout) as client:
            while (version := client.pull()) < total:
                if version == WARMUP:
                    t0 = time.perf_counter()
                client.push(version, 0.0, grad)
            elapsed = (time.perf_counter() - t0) / steps
    return comm.allreduce(elapsed, op=MPI.MAX), bytes_in


def allreduce_sync(comm: MPI.Comm, workers: MPI.Comm | None, grad: np.ndarray, steps: int) -> float:
    """Seconds per step of the `sync` mode's exchange among the workers; the servers sit it out."""
    elapsed = 0.0
    idle_barrier(comm)
    if workers is not None:
        buf = grad.copy()
        with MODES["sync"].open_exchange(workers, len(buf), workers.size) as engine:
            for step in range(WARMUP + steps):
                if step == WARMUP:
                    t0 = time.perf_counter()
                buf[:] = grad  # the allreduce works in place, as training's fused buffer does
                engine.submit(step, buf).wait()
                engine.pop(step)
            elapsed = (time.perf_counter() - t0) / steps
    idle_barrier(comm)
    return comm.allreduce(elapsed, op=MPI.MAX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, required=True)
    parser.add_argument("--size-mb", type=float, required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    layout = Layout(comm.size, args.servers, int(args.size_mb * MIB) // 4)
    serving = layout.is_server(comm.rank)
    grad = np.random.default_rng(comm.rank).standard_normal(layout.length).astype(np.float32)
    split = comm.Split(0 if serving else 1, comm.rank)
    workers = None if serving else split
    ps_s, ar_s = [], []
    for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both alike
        step_s, bytes_in = ps_sync(comm, layout, grad, args.steps)
        ps_s.append(step_s)
        ar_s.append(allreduce_sync(comm, workers, grad, args.steps))
    by_server = comm.gather(bytes_in if serving else None, root=0)
    split.Free()
    if comm.rank == 0:
        by_server_mib = [b / MIB for b in by_server if b is not None]
        size_mib = layout.length * 4 / MIB
        row = {
            "workers": layout.workers, "servers": layout.servers, "size_mib": size_mib,
            "bytes_in_per_server_mib": statistics.mean(by_server_mib),
            "ps_step_ms": 1e3 * statistics.median(ps_s), "allreduce_step_ms": 1e3 * statistics.median(ar_s),
            "bytes_in_by_server_mib": by_server_mib,
            "expected_bytes_in_per_server_mib": layout.workers * size_mib / layout.servers,
            "ring_allreduce_per_rank_mib": 2 * (layout.workers - 1) / layout.workers * size_mib,
            "ps_step_ms_samples": [1e3 * s for s in ps_s], "allreduce_step_ms_samples": [1e3 * s for s in ar_s],
        }
        with open(args.out, "w") as f:
            json.dump(row, f)


if __name__ == "__main__":
    main()
