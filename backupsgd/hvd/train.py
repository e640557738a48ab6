"""The `horovod` mode: Horovod's own full-sync training (DistributedOptimizer), the peer baseline.

It samples the same minibatches, injects the same straggler delays and writes the same run directory
as the allreduce modes, so `horovod` and `sync` reach the same parameters and compare on one footing.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from mpi4py import MPI

from backupsgd.config import ExperimentConfig
from backupsgd.data import load_dataset
from backupsgd.hvd import runtime
from backupsgd.mpi_env import local_rank
from backupsgd.progress import Progress
from backupsgd.replica import Replica, pick_device
from backupsgd.rundir import RunWriter
from backupsgd.straggler import parse_straggler, rank_delay


def train(config: ExperimentConfig, comm: MPI.Comm, run_dir: Path) -> dict:
    """Train on every rank of `comm` through Horovod; rank 0 writes the run directory and returns the summary."""
    hvd = runtime.init(comm)
    rank, workers, wl = comm.rank, comm.size, config.workload
    torch.set_num_threads(wl.threads)
    data, straggler = load_dataset(wl.dataset, wl.data_dir), parse_straggler(config.straggler.straggler, wl.seed)
    replica = Replica(wl, pick_device(local_rank()))
    hvd.broadcast_parameters(replica.model.state_dict(), root_rank=0)
    # Horovod builds a new optimizer over the same parameter groups; the replica holds that one from
    # here on, so its optimizer digest covers the state Horovod's steps build. Horovod initialises an
    # empty state with one zero-gradient step: harmless for SGD, but it shifts Adam's step count.
    replica.optimizer = hvd.DistributedOptimizer(replica.optimizer, replica.model.named_parameters(),
                                                 op=hvd.Average)
    hvd.broadcast_optimizer_state(replica.optimizer, root_rank=0)
    writer = RunWriter(run_dir, config.to_dict() | {"workers": workers, "quorum": workers}) if rank == 0 else None
    progress = Progress(wl.steps, enabled=rank == 0 and config.output.progress)
    timings: dict[str, list[float]] = {"compute_s": [], "delay_s": []}
    compute_s, start = 0.0, time.perf_counter()
    for step in range(wl.steps):
        # Straggle before computing: Horovod takes each gradient inside backward() (its hooks), so the
        # delay must come first to hold this rank's gradients back as in the other modes. The previous
        # step's compute time stands in for this one's (only slow:factor delays depend on it).
        delay_s = rank_delay(straggler, step, rank, workers, compute_s)
        time.sleep(delay_s)
        # Compute: backward hands each gradient to Horovod's background thread as it is produced.
        t0 = time.perf_counter()
        x, y = data.sample(wl.seed, rank, step, wl.batch_size)
        replica.optimizer.zero_grad()
        loss = replica.loss_fn(replica.model(x.to(replica.device)), y.to(replica.device))
        loss.backward()
        compute_s = time.perf_counter() - t0
        # Exchange: wait for every averaged gradient, and average the loss for the log alongside them.
        t1 = time.perf_counter()
        loss_handle = hvd.allreduce_async(loss.detach(), name="backupsgd.loss", op=hvd.Average)
        replica.optimizer.synchronize()
        mean_loss = float(hvd.synchronize(loss_handle))
        exchange_s = time.perf_counter() - t1
        # Update: the gradients are already averaged, so step without synchronizing again.
        with replica.optimizer.skip_synchronize():
            replica.optimizer.step()
        # Log: every rank is a member of every step; Horovod's negotiation and reduction are not separable.
        timings["compute_s"].append(compute_s)
        timings["delay_s"].append(delay_s)
        progress.update(loss=mean_loss)
        if writer:
            writer.step({
                "step": step, "time": time.perf_counter() - start, "members": list(range(workers)), "dropped": [],
                "loss": mean_loss, "compute_s": compute_s, "delay_s": delay_s, "exchange_s": exchange_s,
                "vote_s": None, "reduce_s": None, "arrivals": {},
            })
            done = step + 1
            if (wl.eval_every and done % wl.eval_every == 0) or done == wl.steps:
                writer.evaluation({"step": done, "time": time.perf_counter() - start, **replica.evaluate(data)})
    wall_s = time.perf_counter() - start
    progress.close()
    return _finish(config, comm, replica, data, writer, timings, wall_s)


def _finish(config: ExperimentConfig, comm: MPI.Comm, replica: Replica, data, writer: RunWriter | None,
            timings: dict[str, list[float]], wall_s: float) -> dict:
    """Gather every rank's digests and timings to rank 0 and write the summary (the allreduce modes' fields)."""
    digests = comm.gather((replica.param_digest(), replica.optimizer_digest()), root=0)
    hosts = comm.gather(MPI.Get_processor_name(), root=0)  # each rank's node, in rank order
    per_rank = comm.gather({"rank": comm.rank, **timings}, root=0)
    if writer is None:
        return {}
    metrics = replica.evaluate(data)
    steps = config.workload.steps
    summary = {
        "mode": config.mode.mode, "workers": comm.size, "backups": 0, "quorum": comm.size,
        "steps": steps, "wall_s": wall_s, "steps_per_s": steps / wall_s,
        "dropped_gradients": 0, "dropped_fraction": 0.0,
        **metrics, "seed": config.workload.seed,
        "straggler": config.straggler.straggler, "model": config.workload.model,
        "param_digests": [d[0] for d in digests], "optimizer_digests": [d[1] for d in digests],
        "hosts": hosts,
        "run_dir": str(writer.path),
    }
    writer.finish(summary, replica.flat_params(), per_rank)
    return summary
