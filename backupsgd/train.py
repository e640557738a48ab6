"""The training loop every allreduce mode shares: straggle, compute, exchange, update, log."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from mpi4py import MPI

from backupsgd.auto_spec import parse_auto
from backupsgd.auto_quorum import AutoQuorum, QuorumTally, successor
from backupsgd.checkpoint import Checkpointer, decode, encode, fingerprint, load_latest
from backupsgd.clock import run_clock_offset
from backupsgd.config import ExperimentConfig
from backupsgd.data import load_dataset
from backupsgd.engine import Decision, GradientEngine
from backupsgd.evaluation_fence import EvaluationFence
from backupsgd.failover import NO_NOISE, StepLog, announce, go_on_from, survivors
from backupsgd.faults import FaultInjector, parse_faults, stop_on_fault
from backupsgd.modes import MODES
from backupsgd.noise import NoiseScale, step_fields
from backupsgd.mpi_env import agree, local_rank
from backupsgd.progress import Progress
from backupsgd.protocol import StepProtocol
from backupsgd.replica import Replica, pick_device
from backupsgd.replicacheck import ReplicaCheck
from backupsgd.rundir import RunWriter, StepTiming, rank_record, step_record
from backupsgd.straggler import parse_straggler, rank_delay
from backupsgd.survivors import failure_in
from backupsgd.vote import COORDINATOR
from backupsgd.watchdog import Watchdog


def train(config: ExperimentConfig, comm: MPI.Comm, run_dir: Path) -> dict:
    """Train on every rank of `comm`; rank 0 (after its death under ULFM, the lowest surviving rank) writes the
    run directory and returns the summary, the others {}."""
    run = _Run(config, comm, run_dir)
    with stop_on_fault(comm):
        step = run.first
        while True:
            try:
                run.steps_from(step)
                summary = run.finish()
                break
            except Exception as exc:  # a dead rank under ULFM: go on with the survivors if N of them remain
                if (failure := failure_in(exc)) is None:
                    raise
                step = run.go_on_without_the_dead(failure)
    run.progress.close()
    return summary


class _Run:
    """One training run on every rank: the replica, the log and the communicator of the living ranks.

    A rank keeps its MPI_COMM_WORLD rank as its identity (its minibatches, its injected delays, its name
    in the logs) when dead ranks are shrunk away and the communicator renumbers the survivors.
    """

    def __init__(self, config: ExperimentConfig, comm: MPI.Comm, run_dir: Path) -> None:
        self.config, self.comm = config, comm
        self.rank, self.workers = comm.rank, comm.size  # world rank and P; `comm` may shrink, these do not
        self.living = list(range(comm.size))  # world rank of each rank of self.comm
        self.wl, self.ft = wl, ft = config.workload, config.faults
        torch.set_num_threads(wl.threads)
        self.mode = MODES[config.mode.mode]
        self.quorum = self.mode.quorum(self.workers, config.mode.backups)  # under auto, the least N
        # `--backups auto`: rank 0's coordinator chooses each step's N (it decides; the others follow)
        self.auto_spec = parse_auto(config.mode.backups) if isinstance(config.mode.backups, str) else None
        self.auto = AutoQuorum(self.auto_spec, self.workers, wl.batch_size) \
            if self.auto_spec and self.rank == 0 else None
        self._mark_evaluations()
        self.fence = EvaluationFence(self._evaluates_at)  # no rank trains through another's evaluation
        # A user's model or dataset (by import path) may be refused only once built: every rank exits 2 alike.
        self.data, self.replica = agree(comm, lambda: (load_dataset(wl.dataset, wl.data_dir),
                                                       Replica(wl, pick_device(local_rank()))))
        self.straggler = parse_straggler(config.straggler.straggler, wl.seed)
        self.faults = FaultInjector(parse_faults(ft.fault), self.rank)
        self.run_dir, self.settings = run_dir, fingerprint(config, self.workers)
        self.first = _resume(comm, run_dir, self.settings, self.replica) if ft.resume else 0
        bounds = self.auto_spec.bounds(self.workers) if self.auto_spec else None
        self.tally = QuorumTally(self.quorum, self.auto, bounds)  # the writer's count of N and of the dropped
        quorum = {"quorum": None, "quorum_bounds": list(bounds)} if bounds else {"quorum": self.quorum}
        # `evaluation_fence`: how the report charges an evaluation (backupsgd.report.runs.Run.evaluation_pauses)
        self.run_config = config.to_dict() | {"workers": self.workers, **quorum, "evaluation_fence": True}
        self.writer = RunWriter(run_dir, self.run_config, resume_step=self.first if ft.resume else None) \
            if self.rank == 0 else None
        self.checkpoints = Checkpointer(run_dir, ft.checkpoint_every, self.settings) if self.writer else None
        self.log = StepLog()  # a non-writer's copy of the records, should it take over from a dead writer
        self.progress = Progress(wl.steps - self.first, enabled=self.rank == 0 and config.output.progress)
        self.timings: dict[int, StepTiming] = {}
        self.noise = NoiseScale()  # B_simple smoothed over steps (rank 0 logs it)
        self.nonfinite_steps: list[int] = []  # the steps whose local gradient was not finite
        self.applied = self.first  # steps applied to this replica
        self.shrinks: list[dict] = []  # each time dead ranks were shrunk away: the step gone on from, who
        self.buf = self.replica.new_buffer()
        self.start = time.perf_counter()
        self.trained_s = math.nan  # seconds to the last update applied and evaluated (see steps_from)
        self.clock_offset_s = run_clock_offset(comm, self.start)  # puts this rank's times on rank 0's clock (timeline)

    # --- the steps ---------------------------------------------------------------------------
    def steps_from(self, first: int) -> None:
        """Steps `first`..end on the living ranks."""
        comm, ft = self.comm, self.ft
        coordinator = COORDINATOR if self.quorum < comm.size else None  # the vote's, named when it stalls the run
        with Watchdog(comm.Dup(), ft.stall_timeout, names=self.living, coordinator=coordinator) as watchdog, \
                ReplicaCheck(comm.Dup(), ft.check_every) as check:
            # The first rank of `comm` coordinates the vote: its state is what a worker that fell too far behind
            # is brought back with.
            snapshot = (lambda: encode(self.replica.state())) if comm.rank == 0 else None
            engine = self.mode.open_exchange(comm, len(self.buf), self.quorum, ft.reducer, first_step=first,
                                             lag_limit=ft.lag_limit, snapshot=snapshot,
                                             member_timeout=ft.member_timeout, freeze=self.faults.reduce_freeze,
                                             quorum_policy=self.auto, report_late=self.auto_spec is not None,
                                             fence=self.fence)
            try:
                with engine:
                    watchdog.describe = engine.describe
                    staging = engine.staging_buffer()
                    self._steps(first, engine, watchdog, check, self.buf if staging is None else staging)
                    # the run's time: to its last update applied and evaluated, not to the shutdown below, which waits
                    # for every rank, a straggler still sleeping out a delay on a step decided without it included
                    self.trained_s = time.perf_counter() - self.start
                    watchdog.doing("finishing: closing the exchange")
            except Exception as exc:
                if failure_in(exc) is not None:  # no survivor may wait on this engine: revoke its traffic
                    engine.abandon()
                    self._apply_held(engine)
                raise
            watchdog.doing("finishing: gathering every rank's results")
            check.close()

    def _steps(self, step: int, engine: GradientEngine, watchdog: Watchdog, check: ReplicaCheck,
               buf: np.ndarray) -> None:
        """Steps from `step` on; each gradient is computed into `buf` and offered from there."""
        wl, rank = self.wl, self.rank

        def replay(missed: Decision) -> None:  # a step decided without this rank: applied, not computed
            self._finish_step(missed, StepTiming(), check)

        def load_state(applied: int, state: bytes) -> None:  # brought back after falling too far behind
            self.replica.load_state(decode(state))
            self.applied = applied

        protocol = StepProtocol(engine, first_step=step, rank=rank, replay=replay, load_state=load_state)
        while protocol.applied < wl.steps:
            step = protocol.applied
            watchdog.step(step)
            self.faults.at_step_start(step)  # an injected hang or crash, whether or not this rank computes it
            # A dropped straggler applies the steps decided without it, in order, or (after falling too
            # far behind) loads the current state it is brought back with; no compute for those.
            if protocol.catch_up():
                continue
            # Compute on parameters that include every update so far.
            t0 = time.perf_counter()
            self.replica.compute(*self.data.sample(wl.seed, rank, step, wl.batch_size), out=buf)
            self.faults.corrupt(step, buf)
            compute_s = time.perf_counter() - t0
            # Straggle: the injected delay, seeded by (seed, step), the same in every mode.
            delay_s = rank_delay(self.straggler, step, rank, self.workers, compute_s)
            time.sleep(delay_s)
            # Exchange: vote and reduce on the engine thread; a late buffer is dropped there, and a
            # non-finite one is not offered at all.
            watchdog.doing(f"waiting for the decision on step {step}")
            finite = bool(np.isfinite(buf.sum()))  # one pass; a NaN or Inf anywhere makes the sum non-finite
            if not finite:  # kept here too: a step decided before this rank declines it never hears of it
                self.nonfinite_steps.append(step)
            if (decision := protocol.exchange(buf, finite)) is None:
                continue  # resynchronised meanwhile: compute afresh on the state loaded
            # Update and log.
            self._finish_step(decision, StepTiming(compute_s, delay_s, protocol.last_wait_s, t0 - self.start), check)
            protocol.commit(decision)  # the engine is done with `buf` once decided, so the next step reuses it

    def _mark_evaluations(self) -> None:
        """Under auto, rank 0 tells its coordinator up front which steps follow an evaluation (every rank evaluates
        before computing them, so their arrivals count the pause: AutoQuorum.pause). Up front, not as each
        evaluation begins: then a faster rank's READY could decide the step first (1-5 of the 15 evaluations of a
        Fashion-MNIST run were learnt from so)."""
        if self.auto is not None:
            for step in filter(self._evaluates_at, range(1, self.wl.steps)):
                self.auto.pause(step)

    def _evaluates_at(self, step: int) -> bool:
        """Whether the test set is evaluated once `step` updates are applied (before the next step is computed)."""
        return bool(self.wl.eval_every and step % self.wl.eval_every == 0) or step == self.wl.steps

    def _finish_step(self, d: Decision, timing: StepTiming, check: ReplicaCheck) -> None:
        self._update_and_log(d, timing)
        self.applied = d.step + 1
        self.faults.after_apply(d.step, self.replica.params)
        check.after(d.step + 1, self.replica.param_digest)
        if self.checkpoints and self.checkpoints.due(d.step + 1, final=d.step + 1 == self.wl.steps):
            self.writer.sync()  # every step before the checkpoint is on disk first
            self.checkpoints.save(d.step + 1, self.replica.state())

    def _update_and_log(self, d: Decision, timing: StepTiming) -> None:
        wl, writer = self.wl, self.writer
        t_apply = time.perf_counter()
        self.replica.apply(d.total, d.scale)
        timing.apply_s = time.perf_counter() - t_apply
        fused = self.replica.fused
        loss = float(d.total[fused.loss]) * d.scale
        self.timings[d.step] = timing
        record = step_record(d, time.perf_counter() - self.start, loss, timing, self.living)
        if writer:
            # The gradient noise scale, measured: the members' own squared norms against their mean's.
            record.update(step_fields(d.step, float(d.total[fused.sq_norm]), len(d.members), wl.batch_size,
                                      fused.squared_norm(d.total, d.scale), self.noise))
            # The chosen N; under auto the estimates behind it, and the noise scale handed to the coordinator.
            record.update(self.tally.fields(d.step, record["noise_scale"], len(d.members)))
            self.tally.count(record)
            writer.step(record)
        else:  # a copy, should this rank take over from a dead writer (see failover), less that pass over `total`
            self.log.step(record | NO_NOISE | self.tally.stated(len(d.members)))
        self.progress.update(loss=loss)
        step = d.step + 1
        if self._evaluates_at(step):
            began = time.perf_counter()
            metrics = self.replica.evaluate(self.data)
            self.fence.evaluated(took := time.perf_counter() - began)  # how long a fenced step waits for a rank
            if self.auto is not None:  # how far apart the ranks' evaluations can leave them (AutoQuorum.post_pause)
                self.auto.post_pause(took)
            evaluation = {"step": step, "time": time.perf_counter() - self.start, **metrics}
            writer.evaluation(evaluation) if writer else self.log.evaluation(evaluation)

    # --- a dead rank -----------------------------------------------------------------------
    def _apply_held(self, engine: GradientEngine) -> None:
        """A process failed: apply the decided steps this rank's engine still holds (no replica check, no
        checkpoint: their traffic may involve the dead), so survivors go on from every step any of them holds."""
        for d in engine.held(self.applied):
            self._update_and_log(d, StepTiming())
            self.applied = d.step + 1

    def go_on_without_the_dead(self, failure: BaseException) -> int:
        """Shrink to the survivors and agree on the state to go on from; returns its step.

        Every survivor loads the state of the most advanced one (backupsgd.failover says why that applies every
        decided step once on every survivor). The lowest surviving rank coordinates the vote from then on and
        writes the run directory, taking over the dead writer's files if rank 0 died. Raises the failure when
        fewer than N workers remain.
        """
        self.comm, self.living, dead = survivors(self.comm, self.living, self.quorum, "--backups")
        was_writer = self.writer is not None
        step, state, self.writer = go_on_from(
            self.comm, self.applied, lambda: encode(self.replica.state()), self.log, self.writer,
            lambda upto: RunWriter.take_over(self.run_dir, self.run_config, upto), self.rank)
        if state is not None:
            self.replica.load_state(decode(state))
        self.applied = step
        if self.writer is not None and not was_writer:
            self.checkpoints = Checkpointer(self.run_dir, self.ft.checkpoint_every, self.settings)
        if self.writer is not None:  # the dead writer's steps, and those filled in from the survivors' copies
            self.tally.recount(self.writer.path / "steps.jsonl")
        if self.auto_spec and self.comm.rank == 0 and self.auto is None:  # this rank now coordinates
            self.auto = self.tally.auto = successor(self.auto_spec, len(self.living), self.quorum, self.wl.batch_size)
            self._mark_evaluations()
        self.shrinks.append({"step": step, "dead": dead, "living": self.living})
        if self.writer is not None:
            announce(dead, step, self.living, self.quorum, self.rank, took_over=not was_writer)
        return step

    # --- the summary -----------------------------------------------------------------------
    def finish(self) -> dict:
        """Gather every living rank's digests and timings to rank 0 and write the summary."""
        comm, config, replica, timings = self.comm, self.config, self.replica, self.timings
        digests = comm.gather((replica.param_digest(), replica.optimizer_digest()), root=0)
        # each (living) rank's node and where it computed (cuda:<local rank> or cpu), in rank order: one gather
        placement = comm.gather((MPI.Get_processor_name(), str(replica.device)), root=0)
        per_rank = comm.gather(rank_record(self.rank, timings, self.clock_offset_s,
                                           nonfinite_steps=self.nonfinite_steps), root=0)
        if self.writer is None:
            return {}
        ended_s = time.perf_counter() - self.start
        wall_s = self.trained_s
        metrics = replica.evaluate(self.data)
        steps, first = self.wl.steps, self.first
        summary = {
            "mode": config.mode.mode, "workers": self.workers, "backups": config.mode.backups,
            # under auto, the mean N chosen (and its bounds); else the fixed N; the gradients dropped, counted
            # from the steps recorded
            **self.tally.summary(self.workers, steps),
            "steps": steps, "wall_s": wall_s, "steps_per_s": (steps - first) / wall_s, "ended_s": ended_s,
            **metrics, "seed": config.workload.seed,
            "straggler": config.straggler.straggler, "model": config.workload.model,
            "reducer": config.faults.reducer,
            "nonfinite_gradients": [[r["rank"], st] for r in per_rank for st in r["nonfinite_steps"]],
            "resumed_from": first if config.faults.resume else None,
            # ranks that died under a fault-tolerant launch, and the step the survivors went on from
            "shrinks": self.shrinks, "living": self.living,
            "param_digests": [d[0] for d in digests], "optimizer_digests": [d[1] for d in digests],
            "hosts": [host for host, _ in placement], "devices": [device for _, device in placement],
            "run_dir": str(self.writer.path),
        }
        self.writer.finish(summary, replica.flat_params(), per_rank)
        return summary


def _resume(comm: MPI.Comm, run_dir: Path, settings: dict, replica: Replica) -> int:
    """Load the newest intact checkpoint (read by rank 0, sent to all); every rank exits 2 if none fits."""
    found = agree(comm, lambda: load_latest(run_dir, settings) if comm.rank == 0 else None)
    step, payload = comm.bcast(found, root=0)
    replica.load_state(decode(payload))
    return step
