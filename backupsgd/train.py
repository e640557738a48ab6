"""The training loop every allreduce mode shares: straggle, compute, exchange, update, log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mpi4py import MPI

from backupsgd.checkpoint import Checkpointer, decode, encode, fingerprint, load_latest
from backupsgd.config import ExperimentConfig
from backupsgd.data import load_dataset
from backupsgd.engine import Decision, GradientEngine, Handle, Resynced
from backupsgd.faults import FaultInjector, RunFault, parse_faults, stop_on_fault
from backupsgd.modes import MODES
from backupsgd.mpi_env import agree, local_rank
from backupsgd.progress import Progress
from backupsgd.replica import Replica, pick_device
from backupsgd.replicacheck import ReplicaCheck
from backupsgd.rundir import RunWriter
from backupsgd.straggler import parse_straggler
from backupsgd.watchdog import Watchdog


@dataclass
class StepTiming:
    compute_s: float | None = None  # None: this rank never computed the step (it was decided without it)
    delay_s: float | None = None
    exchange_s: float | None = None  # training thread's wait from submit to decision


def train(config: ExperimentConfig, comm: MPI.Comm, run_dir: Path) -> dict:
    """Train on every rank of `comm`; rank 0 writes the run directory and returns the summary."""
    rank, workers = comm.rank, comm.size
    wl, ft = config.workload, config.faults
    torch.set_num_threads(wl.threads)
    mode = MODES[config.mode.mode]
    quorum = mode.quorum(workers, config.mode.backups)
    data, straggler = load_dataset(wl.dataset), parse_straggler(config.straggler.straggler, wl.seed)
    faults = FaultInjector(parse_faults(ft.fault), rank)
    replica = Replica(wl, pick_device(local_rank()))
    settings = fingerprint(config, workers)
    first = _resume(comm, run_dir, settings, replica) if ft.resume else 0
    writer = RunWriter(run_dir, config.to_dict() | {"workers": workers, "quorum": quorum},
                       resume_step=first if ft.resume else None) if rank == 0 else None
    checkpoints = Checkpointer(run_dir, ft.checkpoint_every, settings) if writer else None
    progress = Progress(wl.steps - first, enabled=rank == 0 and config.output.progress)
    timings: dict[int, StepTiming] = {}
    nonfinite_steps: list[int] = []  # the steps whose local gradient was not finite
    start = time.perf_counter()

    def update_and_log(d: Decision, timing: StepTiming) -> None:
        replica.apply(d.total, d.scale)
        loss = float(d.total[-1]) * d.scale
        timings[d.step] = timing
        if writer:
            writer.step({
                "step": d.step, "time": time.perf_counter() - start, "members": list(d.members),
                "dropped": [r for r in range(workers) if r not in d.members], "loss": loss,
                "compute_s": timing.compute_s, "delay_s": timing.delay_s, "exchange_s": timing.exchange_s,
                "vote_s": d.vote_s, "reduce_s": d.reduce_s,
                "arrivals": {str(r): t for r, t in sorted(d.arrivals.items())},
                "nonfinite": [list(rs) for rs in d.nonfinite], "behind": list(d.behind),
            })
        progress.update(loss=loss)
        step = d.step + 1
        if (wl.eval_every and step % wl.eval_every == 0) or step == wl.steps:
            test_loss, test_acc = replica.evaluate(data)
            if writer:
                writer.evaluation({"step": step, "time": time.perf_counter() - start,
                                   "test_loss": test_loss, "test_accuracy": test_acc})

    def finish_step(d: Decision, timing: StepTiming) -> None:
        update_and_log(d, timing)
        engine.pop(d.step)  # the engine is done with `buf` once decided, so the next step reuses it
        faults.after_apply(d.step, replica.params)
        check.after(d.step + 1, replica.param_digest)
        if checkpoints and checkpoints.due(d.step + 1, final=d.step + 1 == wl.steps):
            writer.sync()  # every step before the checkpoint is on disk first
            checkpoints.save(d.step + 1, replica.state())

    buf = replica.new_buffer()
    with stop_on_fault(comm), Watchdog(comm.Dup(), ft.stall_timeout) as watchdog, \
            ReplicaCheck(comm.Dup(), ft.check_every) as check:
        # Rank 0's state is what a worker that fell too far behind is brought back with.
        snapshot = (lambda: encode(replica.state())) if rank == 0 else None
        with mode.open_exchange(comm, len(buf), quorum, ft.reducer, first_step=first, lag_limit=ft.lag_limit,
                                snapshot=snapshot) as engine:
            watchdog.describe = engine.describe
            step = first
            while step < wl.steps:
                watchdog.step(step)
                faults.at_step_start(step)  # an injected hang or crash, whether or not this rank computes it
                # A rank that froze too long is brought back with the current state, not a backlog of updates.
                if (resync := engine.take_resync()) is not None:
                    replica.load_state(decode(resync.state))
                    step = resync.step
                    continue
                # Steps decided without this rank (it was a dropped straggler): apply them in order, no compute.
                if (missed := engine.decided(step)) is not None:
                    finish_step(missed, StepTiming())
                    step += 1
                    continue
                # Compute on parameters that include every update so far.
                t0 = time.perf_counter()
                replica.compute(*data.sample(wl.seed, rank, step, wl.batch_size), out=buf)
                faults.corrupt(step, buf)
                compute_s = time.perf_counter() - t0
                # Straggle: the injected delay, seeded by (seed, step), the same in every mode.
                own = np.zeros(workers)
                own[rank] = compute_s
                delay_s = float(straggler.delays(step, own)[rank])
                time.sleep(delay_s)
                # Exchange: vote and reduce on the engine thread; a late buffer is dropped there, and a
                # non-finite one is not offered at all.
                watchdog.doing(f"waiting for the decision on step {step}")
                t1 = time.perf_counter()
                finite = bool(np.isfinite(buf.sum()))  # one pass; a NaN or Inf anywhere makes the sum non-finite
                if not finite:  # kept here too: a step decided before this rank declines it never hears of it
                    nonfinite_steps.append(step)
                try:
                    decision = _offer(engine, step, buf, finite, rank, quorum == workers).wait()
                except Resynced:
                    continue
                # Update and log.
                finish_step(decision, StepTiming(compute_s, delay_s, time.perf_counter() - t1))
                step += 1
            watchdog.doing("finishing: closing the exchange")
        watchdog.doing("finishing: gathering every rank's results")
        check.close()
        summary = _finish(config, comm, replica, data, writer, timings, nonfinite_steps,
                          time.perf_counter() - start, quorum, first)
    progress.close()
    return summary


def _offer(engine: GradientEngine, step: int, buf: np.ndarray, finite: bool, rank: int, everyone: bool) -> Handle:
    """Submit a finite gradient; a non-finite one is declined (backup) or stops the run (sync)."""
    if finite:
        return engine.submit(step, buf)
    if everyone:
        raise RunFault(f"non-finite gradient on rank {rank} at step {step}; with N = P every gradient is "
                       "needed (--mode backup with --backups 1 or more drops such a gradient instead)")
    return engine.reject(step)


def _resume(comm: MPI.Comm, run_dir: Path, settings: dict, replica: Replica) -> int:
    """Load the newest intact checkpoint (read by rank 0, sent to all); every rank exits 2 if none fits."""
    found = agree(comm, lambda: load_latest(run_dir, settings) if comm.rank == 0 else None)
    step, payload = comm.bcast(found, root=0)
    replica.load_state(decode(payload))
    return step


def _finish(config, comm, replica, data, writer, timings, nonfinite_steps, wall_s, quorum, first) -> dict:
    """Gather every rank's digests and timings to rank 0 and write the summary."""
    digests = comm.gather((replica.param_digest(), replica.optimizer_digest()), root=0)
    per_rank = comm.gather({
        "rank": comm.rank,
        "compute_s": [timings[s].compute_s for s in sorted(timings)],
        "delay_s": [timings[s].delay_s for s in sorted(timings)],
        "nonfinite_steps": nonfinite_steps,
    }, root=0)
    if writer is None:
        return {}
    test_loss, test_acc = replica.evaluate(data)
    steps = config.workload.steps
    dropped = (comm.size - quorum) * steps
    summary = {
        "mode": config.mode.mode, "workers": comm.size, "backups": config.mode.backups, "quorum": quorum,
        "steps": steps, "wall_s": wall_s, "steps_per_s": (steps - first) / wall_s,
        "dropped_gradients": dropped, "dropped_fraction": dropped / (comm.size * steps),
        "test_loss": test_loss, "test_accuracy": test_acc, "seed": config.workload.seed,
        "straggler": config.straggler.straggler, "model": config.workload.model,
        "reducer": config.faults.reducer,
        "nonfinite_gradients": [[r["rank"], st] for r in per_rank for st in r["nonfinite_steps"]],
        "resumed_from": first if config.faults.resume else None,
        "param_digests": [d[0] for d in digests], "optimizer_digests": [d[1] for d in digests],
        "run_dir": str(writer.path),
    }
    writer.finish(summary, replica.flat_params(), per_rank)
    return summary
