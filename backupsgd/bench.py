"""`backupsgd bench exchange`: the exchange's cost against a raw MPI_Allreduce, measured side by side."""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable

import numpy as np
from mpi4py import MPI

from backupsgd.engine import GradientEngine
from backupsgd.modes import MODES

MIB = 1 << 20


def _timed(comm: MPI.Comm, iters: int, one_step: Callable[[int], None]) -> float:
    """Mean seconds per step, as the slowest rank saw it (a step ends when every rank has its result)."""
    comm.Barrier()
    t0 = time.perf_counter()
    for i in range(iters):
        one_step(i)
    return comm.allreduce((time.perf_counter() - t0) / iters, op=MPI.MAX)


def _exchange_time(comm: MPI.Comm, mode: str, backups: int, buf: np.ndarray, iters: int) -> float:
    quorum = MODES[mode].quorum(comm.size, backups)
    with MODES[mode].open_exchange(comm, len(buf), quorum) as engine:
        engine.submit(0, buf).wait()  # warm-up: the first step allocates the engine's result buffers
        engine.pop(0)

        def one_step(i: int) -> None:
            engine.submit(i + 1, buf).wait()
            engine.pop(i + 1)  # as training does once a step is applied: its buffer is reused

        return _timed(comm, iters, one_step)


def _straggling_step_time(engine: GradientEngine, comm: MPI.Comm, buf: np.ndarray, steps: int,
                          compute_s: float, slow_rank: int, delay_s: float) -> float:
    """The training loop's shape with a sleep for compute: missed steps are applied, not computed."""
    comm.Barrier()
    t0, step = time.perf_counter(), 0
    while step < steps:
        if engine.decided(step) is not None:
            engine.pop(step)
            step += 1
            continue
        time.sleep(compute_s + (delay_s if comm.rank == slow_rank else 0.0))
        engine.submit(step, buf).wait()
        engine.pop(step)
        step += 1
    return comm.allreduce((time.perf_counter() - t0) / steps, op=MPI.MAX)


def bench_exchange(comm: MPI.Comm, sizes_mib: list[float], repeats: int, iters: int, backups: int) -> list[dict]:
    rows = []
    for size in sizes_mib:
        buf = np.random.default_rng(comm.rank).standard_normal(int(size * MIB) // 4).astype(np.float32)
        samples: dict[str, list[float]] = {"mpi": [], "backup": [], "sync": []}
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)  # warm-up
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits every variant alike
            samples["mpi"].append(_timed(comm, iters, lambda i: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)))
            samples["backup"].append(_exchange_time(comm, "backup", backups, buf, iters))
            samples["sync"].append(_exchange_time(comm, "sync", 0, buf, iters))
        med = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
        rows.append({"size_mib": size, "ranks": comm.size, "backups": backups, "mpi_ms": med["mpi"],
                     "backup_ms": med["backup"], "sync_ms": med["sync"],
                     "backup_over_mpi": med["backup"] / med["mpi"], "sync_over_mpi": med["sync"] / med["mpi"]})
    return rows


def bench_straggler(comm: MPI.Comm, size_mib: float, steps: int, compute_s: float, delay_s: float,
                    backups: int) -> dict:
    """Step time of sync and backup, without and with one rank delayed `delay_s` per step."""
    buf = np.zeros(int(size_mib * MIB) // 4, dtype=np.float32)
    slow = comm.size - 1
    out = {"size_mib": size_mib, "ranks": comm.size, "backups": backups, "compute_s": compute_s,
           "delay_s": delay_s, "slow_rank": slow}
    for mode, b in (("sync", 0), ("backup", backups)):
        for label, delay in (("clean", 0.0), ("straggler", delay_s)):
            with MODES[mode].open_exchange(comm, len(buf), MODES[mode].quorum(comm.size, b)) as engine:
                out[f"{mode}_{label}_ms"] = 1e3 * _straggling_step_time(engine, comm, buf, steps, compute_s,
                                                                       slow, delay)
    out["sync_slowdown"] = out["sync_straggler_ms"] / out["sync_clean_ms"]
    out["backup_slowdown"] = out["backup_straggler_ms"] / out["backup_clean_ms"]
    return out


def format_rows(rows: list[dict], straggler: dict | None) -> str:
    lines = [f"{'MiB':>6} {'ranks':>5} {'mpi ms':>9} {'backup ms':>10} {'sync ms':>9} {'backup/mpi':>11} "
             f"{'sync/mpi':>9}"]
    for r in rows:
        lines.append(f"{r['size_mib']:>6g} {r['ranks']:>5} {r['mpi_ms']:>9.2f} {r['backup_ms']:>10.2f} "
                     f"{r['sync_ms']:>9.2f} {r['backup_over_mpi']:>10.2f}x {r['sync_over_mpi']:>8.2f}x")
    if straggler:
        s = straggler
        lines += [
            "",
            f"step time, {s['ranks']} ranks, {s['size_mib']:g} MiB, compute {1e3 * s['compute_s']:.0f} ms, "
            f"rank {s['slow_rank']} delayed {1e3 * s['delay_s']:.0f} ms per step:",
            f"  sync:          clean {s['sync_clean_ms']:8.2f} ms   straggler {s['sync_straggler_ms']:8.2f} ms"
            f"   ({s['sync_slowdown']:.2f}x)",
            f"  backup (b={s['backups']}):  clean {s['backup_clean_ms']:8.2f} ms   straggler "
            f"{s['backup_straggler_ms']:8.2f} ms   ({s['backup_slowdown']:.2f}x)",
        ]
    return "\n".join(lines)


def write_json(path: str, rows: list[dict], straggler: dict | None) -> None:
    with open(path, "w") as f:
        json.dump({"rows": rows, "straggler": straggler}, f, indent=2)
        f.write("\n")
