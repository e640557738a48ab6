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


def _exchange_time(comm: MPI.Comm, mode: str, backups: int, buf: np.ndarray, iters: int,
                   reducer: str = "dense") -> float:
    quorum = MODES[mode].quorum(comm.size, backups)
    with MODES[mode].open_exchange(comm, len(buf), quorum, reducer) as engine:
        engine.submit(0, buf).wait()  # warm-up: MPI's first use of this size, the members reducer's first communicator
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


def _horovod(comm: MPI.Comm):
    """Horovod on `comm` if every rank can import it, else None (its columns are then skipped)."""
    from backupsgd.hvd import runtime

    return runtime.init(comm) if comm.allreduce(runtime.available(), op=MPI.LAND) else None


def bench_exchange(comm: MPI.Comm, sizes_mib: list[float], repeats: int, iters: int, backups: int,
                   horovod: bool = True) -> list[dict]:
    import torch

    hvd = _horovod(comm) if horovod else None
    rows = []
    for size in sizes_mib:
        buf = np.random.default_rng(comm.rank).standard_normal(int(size * MIB) // 4).astype(np.float32)
        samples: dict[str, list[float]] = {"mpi": [], "backup": [], "members": [], "sync": []}
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)  # warm-up
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits every variant alike
            samples["mpi"].append(_timed(comm, iters, lambda i: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)))
            samples["backup"].append(_exchange_time(comm, "backup", backups, buf, iters))
            # backup with the members-only reducer: N ranks reduce, b receive the result by message
            samples["members"].append(_exchange_time(comm, "backup", backups, buf, iters, reducer="members"))
            samples["sync"].append(_exchange_time(comm, "sync", 0, buf, iters))
            if hvd is not None:  # Horovod's allreduce of the same buffer (in place, as the MPI one)
                tensor = torch.from_numpy(buf)
                samples.setdefault("hvd", []).append(
                    _timed(comm, iters, lambda i: hvd.allreduce_(tensor, name=f"bench.hvd.{size}", op=hvd.Sum)))
                samples.setdefault("backup_hvd", []).append(
                    _exchange_time(comm, "backup", backups, buf, iters, reducer="horovod"))
        med = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
        rows.append({"size_mib": size, "ranks": comm.size, "backups": backups, "mpi_ms": med["mpi"],
                     "backup_ms": med["backup"], "members_ms": med["members"], "sync_ms": med["sync"],
                     "backup_over_mpi": med["backup"] / med["mpi"], "members_over_mpi": med["members"] / med["mpi"],
                     "sync_over_mpi": med["sync"] / med["mpi"],
                     # None without Horovod: hvd = its allreduce, backup_hvd = backup with --reducer horovod
                     "hvd_ms": med.get("hvd"), "backup_hvd_ms": med.get("backup_hvd"),
                     "backup_over_hvd": med["backup"] / med["hvd"] if hvd is not None else None})
    return rows


def bench_straggler(comm: MPI.Comm, size_mib: float, steps: int, compute_s: float, delay_s: float,
                    backups: int) -> dict:
    """Step time of sync and backup, without and with one rank delayed `delay_s` per step."""
    buf = np.zeros(int(size_mib * MIB) // 4, dtype=np.float32)
    slow = comm.size - 1
    out = {"size_mib": size_mib, "ranks": comm.size, "backups": backups, "compute_s": compute_s,
           "delay_s": delay_s, "slow_rank": slow}
    for name, mode, b, reducer in (("sync", "sync", 0, "dense"), ("backup", "backup", backups, "dense"),
                                   ("members", "backup", backups, "members")):
        for label, delay in (("clean", 0.0), ("straggler", delay_s)):
            quorum = MODES[mode].quorum(comm.size, b)
            with MODES[mode].open_exchange(comm, len(buf), quorum, reducer) as engine:
                out[f"{name}_{label}_ms"] = 1e3 * _straggling_step_time(engine, comm, buf, steps, compute_s,
                                                                       slow, delay)
    for name in ("sync", "backup", "members"):
        out[f"{name}_slowdown"] = out[f"{name}_straggler_ms"] / out[f"{name}_clean_ms"]
    return out


def format_rows(rows: list[dict], straggler: dict | None) -> str:
    lines = [f"{'MiB':>6} {'ranks':>5} {'mpi ms':>9} {'backup ms':>10} {'members ms':>11} {'sync ms':>9} "
             f"{'backup/mpi':>11} {'members/mpi':>12} {'sync/mpi':>9} {'hvd ms':>9} {'backup/hvd':>11} "
             f"{'bk+hvd ms':>10}"]
    for r in rows:
        lines.append(f"{r['size_mib']:>6g} {r['ranks']:>5} {r['mpi_ms']:>9.2f} {r['backup_ms']:>10.2f} "
                     f"{r['members_ms']:>11.2f} {r['sync_ms']:>9.2f} {r['backup_over_mpi']:>10.2f}x "
                     f"{r['members_over_mpi']:>11.2f}x {r['sync_over_mpi']:>8.2f}x" + _hvd_columns(r))
    if rows and rows[0]["hvd_ms"] is None:
        from backupsgd.hvd.runtime import BUILD_HINT

        lines.append(f"hvd columns skipped (--no-horovod, or Horovod not importable here: {BUILD_HINT})")
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
            f"  members (b={s['backups']}): clean {s['members_clean_ms']:8.2f} ms   straggler "
            f"{s['members_straggler_ms']:8.2f} ms   ({s['members_slowdown']:.2f}x)",
        ]
    return "\n".join(lines)


def _hvd_columns(r: dict) -> str:
    if r["hvd_ms"] is None:
        return f" {'-':>9} {'-':>11} {'-':>10}"
    return f" {r['hvd_ms']:>9.2f} {r['backup_over_hvd']:>10.2f}x {r['backup_hvd_ms']:>10.2f}"


def write_json(path: str, rows: list[dict], straggler: dict | None) -> None:
    with open(path, "w") as f:
        json.dump({"rows": rows, "straggler": straggler}, f, indent=2)
        f.write("\n")
