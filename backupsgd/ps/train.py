"""The parameter-server modes' runner: ranks 0..k-1 serve shards, the other ranks run the worker loop.

Worker w = rank - k samples its minibatches and draws its straggler delay as rank w does in the
allreduce modes, so ps-sync with W workers sees the same data and stragglers as sync with W ranks.
A straggler spec therefore names workers: `slow:ranks=1` slows worker 1, which is MPI rank k + 1, and
the run directory names it worker 1 too (`members`, `dropped`, `late` and `arrivals` in steps.jsonl;
`worker` next to the MPI `rank` in ranks.jsonl).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mpi4py import MPI

from backupsgd.config import ExperimentConfig
from backupsgd.data import Dataset, load_dataset
from backupsgd.mpi_env import local_rank
from backupsgd.optim import build_optimizer
from backupsgd.progress import Progress
from backupsgd.ps.client import WorkerClient
from backupsgd.ps.layout import LEADER, Layout, idle_barrier
from backupsgd.ps.policy import AsyncPolicy, FollowPolicy, Policy, QuorumPolicy
from backupsgd.ps.runlog import LeaderLog, ShardSender, eval_versions
from backupsgd.ps.server import Observer, ParameterServer
from backupsgd.replica import Replica, pick_device
from backupsgd.rundir import RunWriter
from backupsgd.straggler import parse_straggler, rank_delay


@dataclass(frozen=True)
class PSMode:
    """One ps-* mode: how many pushes a step takes, and whether the servers need the leader's events."""

    name: str

    def quorum(self, workers: int, backups: int) -> int:
        return {"ps-sync": workers, "ps-backup": workers - backups, "ps-async": 1}[self.name]

    def policy(self, workers: int, backups: int) -> Policy:
        return AsyncPolicy() if self.name == "ps-async" else QuorumPolicy(self.quorum(workers, backups))

    @property
    def coordinated(self) -> bool:
        # ps-sync has nothing to choose: every server decides the same alone (see backupsgd.ps.server).
        return self.name != "ps-sync"


class ShardOptimizer:
    """The run's torch.optim optimizer over one flat shard, updating `params` (a numpy array) in place.

    Elementwise optimizers (SGD with momentum, Adam, AdamW, RMSprop, Adagrad, ...) then update each
    parameter exactly as they would inside the whole model, whatever the shard boundaries.
    """

    def __init__(self, params: np.ndarray, config: ExperimentConfig) -> None:
        wl = config.workload
        self.param = torch.nn.Parameter(torch.from_numpy(params))  # shares memory with `params`
        self.param.grad = torch.zeros_like(self.param)
        self.optimizer = build_optimizer(wl.optimizer, [self.param], wl.lr, wl.momentum)

    def apply(self, total: np.ndarray, scale: float) -> None:
        torch.mul(torch.from_numpy(total), scale, out=self.param.grad)
        self.optimizer.step()


def load_params(replica: Replica, flat: np.ndarray) -> None:
    """Copy a flat parameter vector into the replica's model (in its parameters' order)."""
    offset = 0
    with torch.no_grad():
        for p in replica.params:
            p.copy_(torch.from_numpy(flat[offset: offset + p.numel()]).view_as(p))
            offset += p.numel()


def train(config: ExperimentConfig, comm: MPI.Comm, run_dir: Path) -> dict:
    """Serve or work on every rank of `comm`; rank 0 (server 0) writes the run directory and returns the summary."""
    wl, mode = config.workload, PSMode(config.mode.mode)
    torch.set_num_threads(wl.threads)
    data = load_dataset(wl.dataset, wl.data_dir)
    serving = comm.rank < config.mode.servers
    replica = Replica(wl, torch.device("cpu") if serving else pick_device(local_rank()))
    layout = Layout(comm.size, config.mode.servers, replica.size)
    quorum = mode.quorum(layout.workers, config.mode.backups)
    versions = eval_versions(wl.steps, wl.eval_every)
    # Start together: a rank still loading data at version 0 would look like a straggler in step 0.
    idle_barrier(comm)
    start = time.perf_counter()
    log = writer = None
    if comm.rank == LEADER:
        writer = RunWriter(run_dir, config.to_dict() | {"workers": layout.workers, "quorum": quorum})

        def evaluate(flat: np.ndarray) -> dict[str, float]:
            load_params(replica, flat)
            return replica.evaluate(data)

        log = LeaderLog(comm, layout, versions, writer, Progress(wl.steps, enabled=config.output.progress),
                        evaluate, start, drops_others=mode.name != "ps-async")
        record = _serve(config, comm, layout, mode, replica, log)
    elif serving:
        record = _serve(config, comm, layout, mode, replica, ShardSender(comm, versions))
    else:
        record = _work(config, comm, layout, mode, replica, data)
    wall_s = time.perf_counter() - start
    record["host"] = MPI.Get_processor_name()  # each rank's node (servers and workers), for summary["hosts"]
    records = comm.gather(record, root=LEADER)
    if log is None or writer is None:
        return {}
    return _finish(config, layout, quorum, log, writer, records, wall_s)


def _serve(config: ExperimentConfig, comm: MPI.Comm, layout: Layout, mode: PSMode, replica: Replica,
           observer: Observer) -> dict:
    lo, hi = layout.bounds(comm.rank)
    params = replica.flat_params()[lo:hi].copy()
    optimizer = ShardOptimizer(params, config)
    lead = comm.rank == LEADER or not mode.coordinated
    policy = mode.policy(layout.workers, config.mode.backups) if lead else FollowPolicy()
    with ParameterServer(comm, layout, params, optimizer.apply, policy, config.workload.steps,
                         mode.coordinated, observer) as server:
        stats = server.run()
    return {"rank": comm.rank, "role": "server", "shard": [lo, hi], **vars(stats)}


def _work(config: ExperimentConfig, comm: MPI.Comm, layout: Layout, mode: PSMode, replica: Replica,
          data: Dataset) -> dict:
    wl = config.workload
    w, workers = layout.worker_index(comm.rank), layout.workers
    straggler = parse_straggler(config.straggler.straggler, wl.seed)
    buf, flat = replica.new_buffer(), np.empty(replica.size, dtype=np.float32)
    compute, delays, waits = [], [], []
    with WorkerClient(comm, layout) as client:
        iteration = 0
        while True:
            # Pull: wait for every server's shard of one version (version 0 first, the last one at the end).
            t0 = time.perf_counter()
            version = client.pull()
            waits.append(time.perf_counter() - t0)
            client.params_into(flat)
            load_params(replica, flat)
            if version >= wl.steps:
                break
            # ps-async has no global step: the worker's own iteration count keys its data and delays.
            step = iteration if mode.name == "ps-async" else version
            # Compute on the pulled parameters.
            t1 = time.perf_counter()
            replica.compute(*data.sample(wl.seed, w, step, wl.batch_size), out=buf)
            compute_s = time.perf_counter() - t1
            # Straggle: the injected delay, drawn as for rank w in the allreduce modes.
            delay_s = rank_delay(straggler, step, w, workers, compute_s)
            time.sleep(delay_s)
            # Push each shard, tagged with the version the gradient was computed on.
            client.push(version, float(buf[replica.fused.loss]), buf[:replica.size])
            compute.append(compute_s)
            delays.append(delay_s)
            iteration += 1
    return {"rank": comm.rank, "role": "worker", "worker": w, "pushes": client.pushes, "digest": replica.param_digest(),
            "compute_s": compute, "delay_s": delays, "pull_wait_s": waits}


def _finish(config: ExperimentConfig, layout: Layout, quorum: int, log: LeaderLog, writer: RunWriter,
            records: list[dict], wall_s: float) -> dict:
    """Rank 0: the summary (the allreduce modes' keys, plus the servers' traffic) and the run directory."""
    servers = [r for r in records if r["role"] == "server"]
    workers = [r for r in records if r["role"] == "worker"]
    steps = config.workload.steps
    pushes = sum(r["pushes"] for r in workers)
    dropped = servers[LEADER]["dropped"]  # every server drops the same pushes: they execute the same events
    assert log.final_params is not None and log.final_eval is not None
    summary = {
        "mode": config.mode.mode, "workers": layout.workers, "servers": layout.servers,
        "backups": config.mode.backups, "quorum": quorum, "steps": steps, "wall_s": wall_s,
        "steps_per_s": steps / wall_s, "pushes": pushes, "dropped_gradients": dropped,
        "dropped_fraction": dropped / max(pushes, 1), "late_after_final": servers[LEADER]["late_after_final"],
        **log.final_eval, "seed": config.workload.seed,
        "straggler": config.straggler.straggler, "model": config.workload.model,
        "param_digests": [r.pop("digest") for r in workers],
        "hosts": [r["host"] for r in records],  # one per rank, servers first
        "server_bytes_in_per_step": [r["bytes_in"] / steps for r in servers],
        "run_dir": str(writer.path),
    }
    if log.staleness:
        summary["staleness_mean"] = float(np.mean(log.staleness))
        summary["staleness_max"] = int(np.max(log.staleness))
    writer.finish(summary, log.final_params, records)
    return summary
