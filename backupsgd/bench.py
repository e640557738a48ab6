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
MEMBER_TIMEOUT_S = 30.0


def _timed(comm: MPI.Comm, iters: int, one_step: Callable[[int], None]) -> float:
    """Mean seconds per step, as the slowest rank saw it (a step ends when every rank has its result)."""
    comm.Barrier()
    t0 = time.perf_counter()
    for i in range(iters):
        one_step(i)
    return comm.allreduce((time.perf_counter() - t0) / iters, op=MPI.MAX)


def _exchange_time(comm: MPI.Comm, mode: str, backups: int, buf: np.ndarray, iters: int,
                   reducer: str = "dense", deadline: bool = True) -> float:
    quorum = MODES[mode].quorum(comm.size, backups)
    # A snapshot source on rank 0 turns the members reducer's member timeout on, as in training (none is taken);
    # without one (`deadline` off) each member's part runs on its engine thread, waited for without a deadline.
    # Its deadline is set far beyond any scheduling stall of a loaded machine: the machinery runs every step,
    # and no step is decided again (a rank brought back would end the benchmark).
    snapshot = (lambda: b"") if reducer == "members" and deadline and comm.rank == 0 else None
    with MODES[mode].open_exchange(comm, len(buf), quorum, reducer, snapshot=snapshot,
                                   member_timeout=MEMBER_TIMEOUT_S) as engine:
        buf = _as_training_offers(engine, buf)
        engine.submit(0, buf).wait()  # warm-up: MPI's first use of this size, the members reducer's first communicator
        engine.pop(0)

        def one_step(i: int) -> None:
            engine.submit(i + 1, buf).wait()
            engine.pop(i + 1)  # as training does once a step is applied: its buffer is reused

        return _timed(comm, iters, one_step)


def _as_training_offers(engine: GradientEngine, buf: np.ndarray) -> np.ndarray:
    """`buf` where training would compute it: in the reducer's staging buffer if it has one (no copy)."""
    if (staging := engine.staging_buffer()) is None:
        return buf
    np.copyto(staging, buf)
    return staging


def _straggling_step_time(engine: GradientEngine, comm: MPI.Comm, buf: np.ndarray, steps: int,
                          compute_s: float, slow_rank: int, delay_s: float) -> float:
    """The training loop's shape with a sleep for compute: missed steps are applied, not computed.

    Timed as the slowest of the other ranks saw it. The slow rank's own clock also holds the sleep it is
    in when the last step is decided without it (up to compute + delay, 150 ms by default: 7.5 ms per
    step over 20 steps, in some runs and not others), which no step waited for. In sync it is a member
    of every step, so the others' clocks hold its delay anyway.
    """
    buf = _as_training_offers(engine, buf)
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
    elapsed = (time.perf_counter() - t0) / steps
    return comm.allreduce(0.0 if comm.rank == slow_rank else elapsed, op=MPI.MAX)


def _horovod(comm: MPI.Comm):
    """Horovod on `comm` if every rank can import it, else None (its columns are then skipped)."""
    from backupsgd.hvd import runtime

    return runtime.init(comm) if comm.allreduce(runtime.available(), op=MPI.LAND) else None


def bench_exchange(comm: MPI.Comm, sizes_mib: list[float], repeats: int, iters: int, backups: int,
                   horovod: bool = True, auto: bool = False) -> list[dict]:
    import torch

    hvd = _horovod(comm) if horovod else None
    rows = []
    for size in sizes_mib:
        # Zeros: every variant reduces this buffer in place step after step, so any other values would
        # grow P-fold per step to inf within a few dozen steps. Adding floats costs the same whatever
        # their values (short of denormals, which zeros never become).
        buf = np.zeros(int(size * MIB) // 4, dtype=np.float32)
        samples: dict[str, list[float]] = {"mpi": [], "backup": [], "members": [], "members_off": [], "shm": [],
                                           "sync": []}
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)  # warm-up
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits every variant alike
            samples["mpi"].append(_timed(comm, iters, lambda i: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)))
            samples["backup"].append(_exchange_time(comm, "backup", backups, buf, iters))
            # backup with the members-only reducer: N ranks reduce, b receive the result by message
            samples["members"].append(_exchange_time(comm, "backup", backups, buf, iters, reducer="members"))
            # the same without the member timeout: what its deadline machinery (standby.py) costs
            samples["members_off"].append(_exchange_time(comm, "backup", backups, buf, iters, reducer="members",
                                                         deadline=False))
            # backup with the shared-memory reducer: members' buffers summed slice by slice in place
            samples["shm"].append(_exchange_time(comm, "backup", backups, buf, iters, reducer="shm"))
            samples["sync"].append(_exchange_time(comm, "sync", 0, buf, iters))
            if auto:  # backup with --reducer auto: shm where /dev/shm has room, else dense
                samples.setdefault("auto", []).append(
                    _exchange_time(comm, "backup", backups, buf, iters, reducer="auto"))
            if hvd is not None:  # Horovod's allreduce of the same buffer (in place, as the MPI one)
                tensor = torch.from_numpy(buf)
                samples.setdefault("hvd", []).append(
                    _timed(comm, iters, lambda i: hvd.allreduce_(tensor, name=f"bench.hvd.{size}", op=hvd.Sum)))
                samples.setdefault("backup_hvd", []).append(
                    _exchange_time(comm, "backup", backups, buf, iters, reducer="horovod"))
        med = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
        rows.append({"size_mib": size, "ranks": comm.size, "backups": backups, "mpi_ms": med["mpi"],
                     "backup_ms": med["backup"], "members_ms": med["members"], "shm_ms": med["shm"],
                     "members_no_deadline_ms": med["members_off"],
                     "deadline_cost": med["members"] / med["members_off"],
                     "sync_ms": med["sync"],
                     "backup_over_mpi": med["backup"] / med["mpi"], "members_over_mpi": med["members"] / med["mpi"],
                     "shm_over_mpi": med["shm"] / med["mpi"],
                     "sync_over_mpi": med["sync"] / med["mpi"],
                     # None without Horovod: hvd = its allreduce, backup_hvd = backup with --reducer horovod
                     "hvd_ms": med.get("hvd"), "backup_hvd_ms": med.get("backup_hvd"),
                     "backup_over_hvd": med["backup"] / med["hvd"] if hvd is not None else None,
                     "shm_over_hvd": med["shm"] / med["hvd"] if hvd is not None else None})
        if auto:
            rows[-1].update(auto_ms=med["auto"], auto_over_mpi=med["auto"] / med["mpi"])
    return rows


def bench_straggler(comm: MPI.Comm, size_mib: float, steps: int, compute_s: float, delay_s: float,
                    backups: int) -> dict:
    """Step time of sync and backup, without and with one rank delayed `delay_s` per step."""
    buf = np.zeros(int(size_mib * MIB) // 4, dtype=np.float32)
    slow = comm.size - 1
    out = {"size_mib": size_mib, "ranks": comm.size, "backups": backups, "compute_s": compute_s,
           "delay_s": delay_s, "slow_rank": slow}
    variants = (("sync", "sync", 0, "dense"), ("backup", "backup", backups, "dense"),
                ("members", "backup", backups, "members"), ("shm", "backup", backups, "shm"))
    for name, mode, b, reducer in variants:
        for label, delay in (("clean", 0.0), ("straggler", delay_s)):
            quorum = MODES[mode].quorum(comm.size, b)
            with MODES[mode].open_exchange(comm, len(buf), quorum, reducer) as engine:
                out[f"{name}_{label}_ms"] = 1e3 * _straggling_step_time(engine, comm, buf, steps, compute_s,
                                                                       slow, delay)
    for name, *_ in variants:
        out[f"{name}_slowdown"] = out[f"{name}_straggler_ms"] / out[f"{name}_clean_ms"]
    return out


def format_rows(rows: list[dict], straggler: dict | None) -> str:
    """Two tables: the median time of each exchange, then each as a multiple of raw MPI and of Horovod."""
    hvd = bool(rows) and rows[0]["hvd_ms"] is not None
    times = [("mpi", "mpi_ms"), ("hvd", "hvd_ms"), ("backup", "backup_ms"), ("backup shm", "shm_ms"),
             ("backup members", "members_ms"), ("members, no deadline", "members_no_deadline_ms"),
             ("backup hvd", "backup_hvd_ms"), ("sync", "sync_ms")]
    ratios = [("backup/mpi", "backup_over_mpi"), ("shm/mpi", "shm_over_mpi"), ("members/mpi", "members_over_mpi"),
              ("sync/mpi", "sync_over_mpi"), ("members deadline/none", "deadline_cost"),
              ("backup/hvd", "backup_over_hvd"), ("shm/hvd", "shm_over_hvd")]
    if rows and "auto_ms" in rows[0]:
        times.insert(5, ("backup auto", "auto_ms"))
        ratios.insert(3, ("auto/mpi", "auto_over_mpi"))
    if not hvd:
        times = [(label, key) for label, key in times if "hvd" not in label]
        ratios = [(label, key) for label, key in ratios if "hvd" not in label]
    if rows:  # json written before a variant joined has no column for it
        times, ratios = ([(label, key) for label, key in columns if key in rows[0]] for columns in (times, ratios))
    lines = ["exchange time, ms (median over repeats; backup: b = "
             f"{rows[0]['backups'] if rows else '-'}, reducer dense unless named)" if rows else "no sizes measured",
             _table(rows, times, "{:.2f}")]
    lines += ["", "as a multiple of the raw MPI_Allreduce" + (" and of Horovod's allreduce" if hvd else ""),
              _table(rows, ratios, "{:.2f}x")]
    if rows and not hvd:
        from backupsgd.hvd.runtime import BUILD_HINT

        lines.append(f"hvd columns skipped (--no-horovod, or Horovod not importable here: {BUILD_HINT})")
    if straggler:
        s, b = straggler, straggler["backups"]
        lines += ["", f"step time, {s['ranks']} ranks, {s['size_mib']:g} MiB, compute {1e3 * s['compute_s']:.0f} ms, "
                      f"rank {s['slow_rank']} delayed {1e3 * s['delay_s']:.0f} ms per step:"]
        for name, label in (("sync", "sync:"), ("backup", f"backup (b={b}):"), ("members", f"members (b={b}):"),
                            ("shm", f"shm (b={b}):")):
            if f"{name}_clean_ms" in s:  # json written before the shm reducer has no shm row
                lines.append(f"  {label:<15} clean {s[f'{name}_clean_ms']:8.2f} ms   straggler "
                             f"{s[f'{name}_straggler_ms']:8.2f} ms   ({s[f'{name}_slowdown']:.2f}x)")
    return "\n".join(lines)


def _table(rows: list[dict], columns: list[tuple[str, str]], cell: str) -> str:
    widths = [max(len(label), 9) for label, _ in columns]
    lines = [f"{'MiB':>6} {'ranks':>5} " + " ".join(f"{label:>{w}}" for (label, _), w in zip(columns, widths))]
    for r in rows:
        lines.append(f"{r['size_mib']:>6g} {r['ranks']:>5} "
                     + " ".join(f"{cell.format(r[key]):>{w}}" for (_, key), w in zip(columns, widths)))
    return "\n".join(lines)


def write_json(path: str, rows: list[dict], straggler: dict | None) -> None:
    with open(path, "w") as f:
        json.dump({"rows": rows, "straggler": straggler}, f, indent=2)
        f.write("\n")
