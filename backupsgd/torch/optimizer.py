"""`DistributedOptimizer`: Horovod's optimizer wrapper, with each step averaging the first N of P gradients.

Differences from Horovod, and why:
- No allreduce per tensor from backward hooks: the members of step t must be the same for every tensor, so
  `synchronize()` packs all gradients into one fused buffer, and the vote and the reduction run once per step.
- A rank whose gradient came late does not recompute: `step()` applies every update decided without it, in
  order, through the wrapped optimizer (so momentum and Adam state stay identical on every rank).
- User code between `synchronize()` and `step()` (clipping, loss scaling) cannot be replayed on a rank that
  missed the step, so with b > 0 a change to the gradients there is refused; `max_grad_norm=` clips
  identically on every rank, replays included.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from backupsgd.auto_spec import parse_auto
from backupsgd.auto_quorum import AutoQuorum, successor
from backupsgd.checkpoint import decode, encode
from backupsgd.engine import Decision
from backupsgd.faults import FaultInjector, parse_faults
from backupsgd.fused import FusedGradients
from backupsgd.modes import MODES
from backupsgd.noise import NoiseScale, step_fields
from backupsgd.protocol import StepProtocol
from backupsgd.rundir import StepTiming
from backupsgd.straggler import StragglerModel, parse_straggler, rank_delay
from backupsgd.torch.failover import surviving
from backupsgd.torch.ops import Average, Compression, check_op
from backupsgd.torch.record import ScriptRun
from backupsgd.torch.runtime import Runtime, current
from backupsgd.torch.wrapper import WrappedOptimizer
from backupsgd.vote import COORDINATOR
from backupsgd.watchdog import Watchdog


@dataclass(frozen=True)
class StepReport:
    """What the latest `step()` did on this rank (`optimizer.last_step`)."""

    step: int  # the global step this rank offered its gradient for
    used: bool  # whether this rank's gradient was among that step's members
    members: tuple[int, ...]  # the ranks whose gradients were averaged into that step (empty: resynchronised)
    applied: int  # updates this call applied: its own step plus those decided without this rank meanwhile
    global_step: int  # updates applied on this rank after the call


class _DistributedOptimizer(WrappedOptimizer):
    """Wraps a torch optimizer; one exchange (engine thread) per instance."""

    def __init__(self, optimizer: torch.optim.Optimizer, runtime: Runtime, named_parameters, compression,
                 backward_passes_per_step: int, op: int, gradient_predivide_factor: float,
                 max_grad_norm: float | None, batch_size: int | None = None) -> None:
        _check_arguments(optimizer, named_parameters, backward_passes_per_step, op, gradient_predivide_factor,
                         max_grad_norm, compression)
        self.optimizer, self._runtime = optimizer, runtime
        self._compression, self._op, self.max_grad_norm = compression, op, max_grad_norm
        self.backward_passes_per_step = backward_passes_per_step
        self._params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        self._fused = FusedGradients(self._params)  # its loss slot stays 0: a script's loss is its own
        settings = runtime.settings
        self._faults = FaultInjector(parse_faults(settings.fault), runtime.world_rank)
        # backups="auto": rank 0 chooses each step's N from the arrivals and the noise scale it measures here
        self._batch_size = batch_size
        self._auto = AutoQuorum(parse_auto(settings.backups), runtime.size, batch_size or 1) \
            if isinstance(settings.backups, str) and runtime.rank == 0 else None
        self._noise = NoiseScale()
        self._open(first_step=0)
        self._straggler = parse_straggler(settings.straggler, settings.seed)
        self.record = ScriptRun(runtime, Path(settings.run_dir) if settings.run_dir else None,
                                batch_size=batch_size, auto=self._auto)
        self._timing = StepTiming()  # this rank's clock for the step being synchronized
        self._compute_start = time.perf_counter()  # since the previous step (or skip_missed's latest batch)
        self._decision: Decision | None = None  # synchronized, not yet applied
        self._synchronized = self._user_synchronized = False
        self._should_synchronize = True
        self._offered = 0  # the step the pending (or latest) gradient was offered for
        self._owed = 0  # steps applied without computing them, whose batches skip_missed has not skipped yet
        self.last_step: StepReport | None = None
        self._closed = False

    # --- torch.optim.Optimizer (the rest is delegated by WrappedOptimizer) ------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __repr__(self) -> str:
        return f"DistributedOptimizer(b={self._runtime.settings.backups}, {self.optimizer!r})"

    # --- the step ---------------------------------------------------------------------------------
    def synchronize(self) -> None:
        """Offer this rank's gradient for the current global step, wait for the decision, and set every
        `.grad` to the average of the step's members (N of them) - also when this rank's came too late."""
        self._synchronize()
        self._user_synchronized = True

    @contextlib.contextmanager
    def skip_synchronize(self) -> Iterator[None]:
        """`step()` inside this block applies what `synchronize()` fetched instead of synchronizing again."""
        self._should_synchronize = False
        try:
            yield
        finally:
            self._should_synchronize = True

    def step(self, closure=None):
        """Synchronize (unless inside skip_synchronize), apply the step with the wrapped optimizer, then apply
        every step decided without this rank meanwhile; `last_step` tells what happened."""
        if closure is not None:
            raise ValueError("step(closure) re-evaluates the loss and gradients inside the optimizer, which cannot "
                             "be averaged over a step's members; compute the gradient first, then call step()")
        if self._should_synchronize:
            if self._synchronized:
                warnings.warn("optimizer.step() called after optimizer.synchronize() without "
                              "optimizer.skip_synchronize(); the gradients already synchronized are used")
            self._synchronize()
        elif not self._synchronized:
            raise ValueError("optimizer.step() inside skip_synchronize() needs optimizer.synchronize() first")
        decision, offered = self._decision, self._offered
        if decision is not None:
            if self._user_synchronized and not self._protocol.everyone:
                self._refuse_changed_gradients(decision)
            self._update(decision, self._timing)
            self._protocol.commit(decision)
        self._decision, self._synchronized, self._user_synchronized = None, False, False
        self._catch_up()
        self._compute_start = time.perf_counter()
        applied = self._protocol.applied - offered
        self._owed += applied - 1  # the batch of the offered step was consumed by computing it
        self.last_step = StepReport(offered, decision is not None and self._runtime.rank in decision.members,
                                    decision.members if decision is not None else (), applied,
                                    self._protocol.applied)
        self._watchdog.doing("in the training script")

    def catch_up(self) -> int:
        """Apply every step decided without this rank (before computing the next one); returns how many."""
        if self._synchronized:  # a fetched step waits for step(): nothing may be applied before it
            return 0
        n = self._catch_up()
        self._owed += n
        self._compute_start = time.perf_counter()  # the batch about to be yielded is computed from here
        return n

    def take_owed(self) -> bool:
        """One batch of a step this rank did not compute is due to be skipped (skip_missed asks)."""
        if self._owed > 0:
            self._owed -= 1
            return True
        return False

    def serve_snapshot(self) -> None:
        """Rank 0, waiting elsewhere (a collective): hand a laggard the state it is waiting to be brought back with."""
        if not self._synchronized:
            self._engine.serve_snapshot(self._protocol.applied)

    def evaluated(self, metrics: dict[str, float]) -> None:
        """The script evaluated since its latest step() (hvd.log_eval): record `metrics` at the global step, and
        count the time since that step() as a pause, not compute. Under backups="auto", rank 0's coordinator marks
        the next step as following an evaluation (AutoQuorum.pause, post_pause), as `backupsgd train` marks its
        evaluations: the ranks' READYs for it count the evaluation, and learnt as their speed, one evaluation of
        0.8 s against 0.1 s steps made every E[T_(k)] alike and a run waited 34 s at N = P (AutoPolicy.observe).
        Marked here, after the evaluation, not before it as the CLI marks: a step other ranks decide before rank 0
        gets here is learnt from as before. A script that averages its metrics (hvd.allreduce, as Horovod's
        examples do) holds every rank until rank 0 has evaluated too, so only that average's last hop is raced."""
        now = time.perf_counter()
        self.record.evaluation(self.global_step, metrics)
        if self._auto is not None:
            self._auto.post_pause(now - self._compute_start)
            self._auto.pause(self.global_step)
        # the next step's compute (and a slow:factor straggler's delay, which scales it) starts after the evaluation
        self._compute_start = now

    @property
    def global_step(self) -> int:
        """Updates applied on this rank so far."""
        return self._protocol.applied

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        trained_s = self.record.elapsed()  # before closing the exchange, which waits for every rank
        self._watchdog.doing("finishing: closing the exchange")
        self._engine.close()
        self._watchdog.doing("finishing: gathering every rank's record")
        self.record.finish(self._params, self.optimizer, self._protocol.applied, trained_s)
        self._watchdog.close()

    # --- after a process failure (ULFM; backupsgd.torch.failover) -----------------------------------
    def abandon_exchange(self) -> None:
        """Fail every survivor's pending exchange, then apply the decided steps this rank's engine still holds
        (a decided step is final once any rank holds it; see backupsgd.failover)."""
        self._engine.abandon()
        for decision in self._engine.held(self._protocol.applied):
            self._replay(decision)
            self._protocol.commit(decision)
        self._watchdog.abandon()

    def go_on(self, dead: list[int], owed: bool) -> tuple[int, bool]:
        """Collective over the survivors (the runtime's world, just shrunk): load the most advanced survivor's
        state and reopen the exchange on the survivors from its step. `owed`: the steps this applies count as
        batches skip_missed skips (else the caller, inside step() or catch_up(), counts them itself). Returns
        the step gone on from and whether this rank took over writing the run directory."""
        before = self._protocol.applied
        step, state, took_over = self.record.go_on(before, self._snapshot, dead)
        if state is not None:
            self._load_state(step, state)
        runtime = self._runtime
        if self._auto is None and runtime.rank == 0 and isinstance(runtime.settings.backups, str):
            # this rank now coordinates: a policy of its own (as `backupsgd train`'s new coordinator)
            self._auto = self.record.tally.auto = successor(parse_auto(runtime.settings.backups),
                                                            len(runtime.living), runtime.quorum, self._batch_size or 1)
        self._open(first_step=step)
        if owed:
            self._owed += step - before
        return step, took_over

    # --- inside ----------------------------------------------------------------------------------
    def _open(self, first_step: int) -> None:
        """The exchange on the runtime's (living) ranks from `first_step`: engine, watchdog, step protocol."""
        runtime, settings = self._runtime, self._runtime.settings
        partial = runtime.quorum < runtime.size
        self._watchdog = Watchdog(runtime.world.Dup(), settings.stall_timeout, names=runtime.living,
                                  coordinator=COORDINATOR if partial else None)
        self._engine = MODES["backup" if settings.backups else "sync"].open_exchange(
            runtime.world, self._fused.length, runtime.quorum, settings.reducer, first_step=first_step,
            lag_limit=settings.lag_limit, member_timeout=settings.member_timeout,
            snapshot=self._snapshot if runtime.rank == 0 else None, freeze=self._faults.reduce_freeze,
            quorum_policy=self._auto if runtime.rank == 0 else None, report_late=isinstance(settings.backups, str))
        self._watchdog.describe = self._engine.describe
        staging = self._engine.staging_buffer()  # the shm reducer's shared segment: offering it costs no copy
        self._buf = staging if staging is not None else self._fused.new_buffer()
        self._protocol = StepProtocol(self._engine, first_step=first_step, rank=runtime.world_rank,
                                      replay=self._replay, load_state=self._load_state)

    def _synchronize(self) -> None:
        if self._synchronized:
            return
        step = self._offered = self._protocol.applied
        self._watchdog.step(step)
        self._faults.at_step_start(step)
        self._timing = straggle(self._straggler, step, self._runtime, self._compute_start, self.record.start)
        self._decision = surviving(lambda: self._offer(step), caller=self)
        self._timing.exchange_s = self._protocol.last_wait_s
        if self._decision is not None:
            self._fused.unpack(self._decision.total, self._scale(self._decision))
        self._synchronized = True

    def _offer(self, step: int) -> Decision | None:
        """Pack this rank's gradient, offer it for `step` and wait for the decision (None: resynchronised, or the
        survivors of a dead rank went on from past `step`; the step is applied already)."""
        if self._protocol.applied != step:
            return None
        self._fused.pack(self._buf)
        if self._compression is not Compression.none:  # what is offered is the rounded gradient, norm included
            self._compression.round(self._buf[: self._fused.size])
            self._buf[self._fused.sq_norm] = self._fused.squared_norm(self._buf)
        self._faults.corrupt(step, self._buf)
        finite = bool(np.isfinite(self._buf.sum()))  # a NaN or Inf anywhere makes the sum non-finite
        if not finite and step not in self.record.nonfinite_steps:
            self.record.nonfinite_steps.append(step)
        self._watchdog.doing(f"waiting for the decision on step {step}")
        return self._protocol.exchange(self._buf, finite)

    def _scale(self, decision: Decision) -> float:
        return decision.scale if self._op == Average else 1.0

    def _update(self, decision: Decision, timing: StepTiming) -> None:
        t0 = time.perf_counter()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.max_grad_norm)
        self.optimizer.step()
        timing.apply_s = time.perf_counter() - t0
        self._runtime.n = len(decision.members)
        self.record.step(decision, timing, self._step_fields(decision) if self._runtime.rank == 0 else {})

    def _step_fields(self, decision: Decision) -> dict:
        """Rank 0: the step's noise-scale fields and, under auto, the N chosen and the estimates behind it; the
        noise scale goes to the coordinator for its next choices (as in train.py)."""
        fields = step_fields(decision.step, float(decision.total[self._fused.sq_norm]), len(decision.members),
                             self._batch_size or 1,
                             self._fused.squared_norm(decision.total, decision.scale), self._noise)
        return fields | self.record.tally.fields(decision.step, fields["noise_scale"], len(decision.members))

    def _replay(self, decision: Decision) -> None:
        """A step decided without this rank: the same update the members applied."""
        self._faults.at_step_start(decision.step)  # an injected fault strikes whether this rank computes it or not
        self._fused.unpack(decision.total, self._scale(decision))
        self._update(decision, StepTiming())

    def _catch_up(self) -> int:
        before = self._protocol.applied
        while surviving(lambda: self._protocol.catch_up(), caller=self):
            pass
        return self._protocol.applied - before

    def _refuse_changed_gradients(self, decision: Decision) -> None:
        if not self._fused.matches(decision.total, self._scale(decision)):
            raise ValueError(
                "the gradients changed between optimizer.synchronize() and optimizer.step() (gradient clipping, or "
                "a GradScaler's unscale_?). With backup workers a rank whose gradient came late replays this step "
                "without running that code, so replicas would drift apart. Pass max_grad_norm= to "
                "hvd.DistributedOptimizer to clip identically on every rank, or run with backups=0")

    def _snapshot(self) -> bytes:
        """Rank 0's state, for a rank that fell too far behind (members reducer)."""
        return encode({"params": [p.detach().cpu() for p in self._params], "optimizer": self.optimizer.state_dict()})

    def _load_state(self, applied: int, payload: bytes) -> None:
        state = decode(payload)
        with torch.no_grad():
            for p, value in zip(self._params, state["params"]):
                p.copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])


def straggle(straggler: StragglerModel, step: int, runtime: Runtime, compute_start: float,
             run_start: float) -> StepTiming:
    """Sleep the injected delay of `step`, drawn from (seed, step) as the CLI draws it, after this rank's compute
    (which began at `compute_start`); returns the step's timing so far."""
    compute_s = time.perf_counter() - compute_start
    delay_s = rank_delay(straggler, step, runtime.world_rank, runtime.workers, compute_s)
    time.sleep(delay_s)
    return StepTiming(compute_s, delay_s, start_s=compute_start - run_start)


def DistributedOptimizer(optimizer: torch.optim.Optimizer, named_parameters=None, compression=Compression.none,
                         backward_passes_per_step: int = 1, op: int = Average, gradient_predivide_factor: float = 1.0,
                         max_grad_norm: float | None = None, batch_size: int | None = None) -> _DistributedOptimizer:
    """Wrap `optimizer` so that each `step()` applies the average of the first N = P - b gradients of the step.

    Horovod's signature and semantics, plus `max_grad_norm` (clip the averaged gradient to this norm on every
    rank, replays included: use it instead of clipping between synchronize() and step()). Collective: every
    rank builds its optimizers in the same order. With BACKUPSGD_MODE=horovod it is horovod.torch's own
    DistributedOptimizer doing every step, recorded and straggled like backupsgd's (the baseline in sweeps).
    `backward_passes_per_step` is accepted for Horovod scripts: gradients accumulate in `.grad` across the backward
    passes and the exchange runs at `step()` anyway.
    `gradient_predivide_factor` only splits Horovod's averaging into two scalings; the average is the same.
    Rank 0's run directory records the gradient noise scale per step, as `backupsgd train` does (`grad_sq`,
    `trace_cov`, `noise_scale` in steps.jsonl; backupsgd/noise.py: the members' own squared gradient norms against
    their mean's), in examples when `batch_size` (examples per rank per step, the loss a mean over them) is
    given, else in per-rank batches; `backups="auto"` weighs it in the same unit, so its choices do not depend
    on it.
    """
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be the examples each rank's gradient averages per step, an integer >= 1 "
                         f"(or None: the noise scale in per-rank batches), got {batch_size!r}")
    runtime = current()
    if runtime.settings.mode == "horovod":  # the baseline: horovod.torch's own optimizer, recorded like ours
        from backupsgd.torch.baseline import HorovodBaseline

        kind = HorovodBaseline
    else:
        kind = _DistributedOptimizer
    wrapped = kind(optimizer, runtime, named_parameters, compression, backward_passes_per_step, op,
                   gradient_predivide_factor, max_grad_norm, batch_size)
    runtime.optimizers.append(wrapped)
    return wrapped


def _check_arguments(optimizer, named_parameters, backward_passes_per_step, op, gradient_predivide_factor,
                     max_grad_norm, compression) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer) or isinstance(optimizer, _DistributedOptimizer):
        raise ValueError(f"hvd.DistributedOptimizer wraps a torch.optim optimizer once, got {type(optimizer).__name__}")
    check_op(op)
    if compression not in (Compression.none, Compression.fp16):
        raise ValueError("compression must be hvd.Compression.none or hvd.Compression.fp16")
    if not isinstance(backward_passes_per_step, int) or backward_passes_per_step < 1:
        raise ValueError(f"backward_passes_per_step must be an integer >= 1, got {backward_passes_per_step!r}")
    if not gradient_predivide_factor > 0:
        raise ValueError(f"gradient_predivide_factor must be > 0, got {gradient_predivide_factor!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be > 0 (or None), got {max_grad_norm!r}")
    if named_parameters is not None:
        named = list(named_parameters)
        if any(not isinstance(item, tuple) for item in named):
            raise ValueError("named_parameters should be a sequence of (name, parameter) tuples, usually "
                             "model.named_parameters()")
        names = [name for name, _ in named]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names in named_parameters must be unique; duplicates: "
                             f"{', '.join(sorted({n for n in names if names.count(n) > 1}))}")
        unnamed = {id(p) for g in optimizer.param_groups for p in g["params"]} - {id(p) for _, p in named}
        if unnamed:
            raise ValueError(f"named_parameters was given, but {len(unnamed)} of the optimizer's parameters are not "
                             "named in it; pass model.named_parameters() of the model being optimised")
