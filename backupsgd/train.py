"""The training loop every allreduce mode shares: straggle, compute, exchange, update, log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mpi4py import MPI

from backupsgd.config import ExperimentConfig
from backupsgd.data import load_dataset
from backupsgd.engine import Decision
from backupsgd.modes import MODES
from backupsgd.mpi_env import local_rank
from backupsgd.progress import Progress
from backupsgd.replica import Replica, pick_device
from backupsgd.rundir import RunWriter
from backupsgd.straggler import parse_straggler


@dataclass
class StepTiming:
    compute_s: float | None = None  # None: this rank never computed the step (it was decided without it)
    delay_s: float | None = None
    exchange_s: float | None = None  # training thread's wait from submit to decision


def train(config: ExperimentConfig, comm: MPI.Comm, run_dir: Path) -> dict:
    """Train on every rank of `comm`; rank 0 writes the run directory and returns the summary."""
    rank, workers = comm.rank, comm.size
    wl = config.workload
    torch.set_num_threads(wl.threads)
    mode = MODES[config.mode.mode]
    quorum = mode.quorum(workers, config.mode.backups)
    data, straggler = load_dataset(wl.dataset), parse_straggler(config.straggler.straggler, wl.seed)
    replica = Replica(wl, pick_device(local_rank()))
    writer = RunWriter(run_dir, config.to_dict() | {"workers": workers, "quorum": quorum}) if rank == 0 else None
    progress = Progress(wl.steps, enabled=rank == 0 and config.output.progress)
    timings: dict[int, StepTiming] = {}
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
            })
        progress.update(loss=loss)
        step = d.step + 1
        if (wl.eval_every and step % wl.eval_every == 0) or step == wl.steps:
            test_loss, test_acc = replica.evaluate(data)
            if writer:
                writer.evaluation({"step": step, "time": time.perf_counter() - start,
                                   "test_loss": test_loss, "test_accuracy": test_acc})

    buf = replica.new_buffer()
    with mode.open_exchange(comm, len(buf), quorum) as engine:
        step = 0
        while step < wl.steps:
            # Steps decided without this rank (it was a dropped straggler): apply them in order, no compute.
            if (missed := engine.decided(step)) is not None:
                update_and_log(missed, StepTiming())
                engine.pop(step)
                step += 1
                continue
            # Compute on parameters that include every update so far.
            t0 = time.perf_counter()
            replica.compute(*data.sample(wl.seed, rank, step, wl.batch_size), out=buf)
            compute_s = time.perf_counter() - t0
            # Straggle: the injected delay, seeded by (seed, step), the same in every mode.
            own = np.zeros(workers)
            own[rank] = compute_s
            delay_s = float(straggler.delays(step, own)[rank])
            time.sleep(delay_s)
            # Exchange: vote and reduce on the engine thread; a late buffer is dropped there.
            t1 = time.perf_counter()
            decision = engine.submit(step, buf).wait()
            # Update and log.
            update_and_log(decision, StepTiming(compute_s, delay_s, time.perf_counter() - t1))
            engine.pop(step)  # the engine is done with `buf` once decided, so the next step reuses it
            step += 1
    wall_s = time.perf_counter() - start
    progress.close()
    return _finish(config, comm, replica, data, writer, timings, wall_s, quorum)


def _finish(config, comm, replica, data, writer, timings, wall_s, quorum) -> dict:
    """Gather every rank's digests and timings to rank 0 and write the summary."""
    digests = comm.gather((replica.param_digest(), replica.optimizer_digest()), root=0)
    per_rank = comm.gather({
        "rank": comm.rank,
        "compute_s": [timings[s].compute_s for s in sorted(timings)],
        "delay_s": [timings[s].delay_s for s in sorted(timings)],
    }, root=0)
    if writer is None:
        return {}
    test_loss, test_acc = replica.evaluate(data)
    steps = config.workload.steps
    dropped = (comm.size - quorum) * steps
    summary = {
        "mode": config.mode.mode, "workers": comm.size, "backups": config.mode.backups, "quorum": quorum,
        "steps": steps, "wall_s": wall_s, "steps_per_s": steps / wall_s,
        "dropped_gradients": dropped, "dropped_fraction": dropped / (comm.size * steps),
        "test_loss": test_loss, "test_accuracy": test_acc, "seed": config.workload.seed,
        "straggler": config.straggler.straggler, "model": config.workload.model,
        "param_digests": [d[0] for d in digests], "optimizer_digests": [d[1] for d in digests],
        "run_dir": str(writer.path),
    }
    writer.finish(summary, replica.flat_params(), per_rank)
    return summary
