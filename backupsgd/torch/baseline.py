"""The Horovod baseline for a script (BACKUPSGD_MODE=horovod): horovod.torch's own DistributedOptimizer does every
step, and backupsgd only injects the same stragglers and records the run directory, so one unchanged script is
compared against the real peer implementation in sweeps and reports.

Horovod starts each gradient's allreduce from its backward hook, so a delay injected after backward would
overlap the exchange instead of holding this rank's gradients back. The delay is slept when the step begins
instead, as the CLI's horovod mode does: at `zero_grad()` or at `skip_missed`'s next batch, whichever comes
first (at `step()` if neither is called), drawn with the previous step's compute time standing in for this one's.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from backupsgd.engine import Decision
from backupsgd.hvd.runtime import init as horovod_init
from backupsgd.straggler import parse_straggler, rank_delay
from backupsgd.torch.ops import Average, Compression, check_op
from backupsgd.rundir import StepTiming
from backupsgd.torch.optimizer import StepReport
from backupsgd.torch.record import ScriptRun
from backupsgd.torch.runtime import Runtime
from backupsgd.torch.wrapper import WrappedOptimizer


class HorovodBaseline(WrappedOptimizer):
    """Wraps horovod.torch.DistributedOptimizer (the wrapper pattern of _DistributedOptimizer); every rank is a
    member of every step."""

    def __init__(self, optimizer: torch.optim.Optimizer, runtime: Runtime, named_parameters, compression,
                 backward_passes_per_step: int, op: int, gradient_predivide_factor: float,
                 max_grad_norm: float | None, batch_size: int | None = None) -> None:
        # batch_size is accepted and unused: Horovod's allreduce gives no per-rank squared norms to estimate
        # the noise scale from, so the baseline's record has none
        check_op(op)
        hvd = horovod_init(runtime.world)
        self._runtime, self.max_grad_norm = runtime, max_grad_norm
        self.optimizer = hvd.DistributedOptimizer(
            optimizer, named_parameters=named_parameters,
            compression=hvd.Compression.fp16 if compression is Compression.fp16 else hvd.Compression.none,
            backward_passes_per_step=backward_passes_per_step, op=hvd.Average if op == Average else hvd.Sum,
            gradient_predivide_factor=gradient_predivide_factor)
        self._params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        self._straggler = parse_straggler(runtime.settings.straggler, runtime.settings.seed)
        self.record = ScriptRun(runtime, runtime.settings.run_dir or None)
        self._members = tuple(range(runtime.size))
        self._step = 0
        self._timing: StepTiming | None = None  # this step's, once it began (its delay slept)
        self._compute_start = time.perf_counter()
        self._last_compute_s = 0.0
        self.last_step: StepReport | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._begin_step()
        if set_to_none:
            self.optimizer.zero_grad()  # Horovod's takes no arguments (and sets gradients to None)
        else:
            for p in self._params:
                if p.grad is not None:
                    p.grad.zero_()

    def synchronize(self) -> None:
        self.optimizer.synchronize()

    def skip_synchronize(self):
        return self.optimizer.skip_synchronize()

    def step(self, closure=None):
        if closure is not None:
            raise ValueError("step(closure) is not supported; compute the gradient first, then call step()")
        self._begin_step()
        timing, self._timing = self._timing, None
        t0 = time.perf_counter()
        timing.compute_s = self._last_compute_s = t0 - self._compute_start
        self.optimizer.synchronize()  # Horovod's allreduce of every gradient
        t1 = time.perf_counter()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.max_grad_norm)
        with self.optimizer.skip_synchronize():
            self.optimizer.step()
        t2 = time.perf_counter()
        timing.exchange_s, timing.apply_s = t1 - t0, t2 - t1
        self.record.step(Decision(self._step, np.empty(0, np.float32), self._members, 0.0, t1 - t0), timing)
        self.last_step = StepReport(self._step, True, self._members, 1, self._step + 1)
        self._step += 1

    def _begin_step(self) -> None:
        """Sleep this step's injected delay before its compute (once per step)."""
        if self._timing is not None:
            return
        delay_s = rank_delay(self._straggler, self._step, self._runtime.rank, self._runtime.size,
                             self._last_compute_s)
        time.sleep(delay_s)
        self._compute_start = time.perf_counter()
        self._timing = StepTiming(None, delay_s, start_s=self._compute_start - self.record.start)

    @property
    def global_step(self) -> int:
        return self._step

    # skip_missed and the collectives ask every optimizer these; under Horovod no rank ever misses a step.
    def catch_up(self) -> int:
        self._begin_step()
        return 0

    def take_owed(self) -> bool:
        return False

    def serve_snapshot(self) -> None:
        pass

    def close(self) -> None:
        self.record.finish(self._params, self.optimizer, self._step, self.record.elapsed())
