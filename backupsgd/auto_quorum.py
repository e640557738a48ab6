"""`--backups auto` on the coordinator: the policy (backupsgd.adaptive) fed what rank 0 sees, and what it chose.

Rank 0's engine thread asks `choose()` before each step's vote and calls `observe()` when it decides the
step, with the READY arrivals of the step's members (the first N; later ones are censored, as
ArrivalEstimate expects). The smoothed gradient noise scale is measured on rank 0's training thread,
after it applies a step: it posts it with `post_noise()`, and the engine thread takes the latest one
posted when it observes a step. So the noise scale a choice used is whatever had been posted by then,
which depends on thread timing: each step's record (`record()`, for steps.jsonl) says which value it
was, and the per-step overhead too, so that feeding the recorded arrivals, noise scales and overheads
to a fresh AutoPolicy (`replay_choices`) makes the same choices.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Iterable, Sequence

from backupsgd.adaptive import AutoPolicy, AutoSpec

OVERHEAD_SPAN = 20  # steps: the measured exchange time is smoothed over about this many


class AutoQuorum:
    """The coordinator's `--backups auto` state (one per run, on rank 0); see the module docstring.

    Unless the spec fixes `overhead`, the per-step overhead the rule adds to the wait for the N-th arrival is
    measured: the time from a step's decision to the next step's start on the coordinator (its reduction),
    smoothed over about OVERHEAD_SPAN steps.
    """

    def __init__(self, spec: AutoSpec, workers: int, batch: int, keep_records: bool = True) -> None:
        self.policy = AutoPolicy(spec, workers, batch)
        self.n_min, self.n_max = self.policy.n_min, self.policy.n_max
        self._measure_overhead = spec.overhead_s == 0
        self._keep = keep_records
        self._lock = threading.Lock()  # the noise scale and the records cross from one thread to the other
        self._noise = math.nan
        self._records: dict[int, dict] = {}
        self._decided_at: float | None = None
        self._overhead: float | None = None

    # --- rank 0's training thread --------------------------------------------------------------
    def post_noise(self, noise_scale: float | None) -> None:
        """The latest smoothed B_noise (examples); None or nan: not known yet."""
        with self._lock:
            self._noise = math.nan if noise_scale is None else float(noise_scale)

    def record(self, step: int) -> dict:
        """steps.jsonl's fields for `step` (once): the N chosen (`quorum`) and `auto`, the estimates behind
        it and after it; {} if none was kept (a step not decided by this coordinator)."""
        with self._lock:
            return self._records.pop(step, {})

    # --- the engine thread (the coordinator) ------------------------------------------------------
    def choose(self, step: int, size: int) -> int:
        """N for `step`, at most `size` (the ranks still living)."""
        if self._measure_overhead and self._decided_at is not None:
            took = time.perf_counter() - self._decided_at
            alpha = 2.0 / (OVERHEAD_SPAN + 1)
            self._overhead = took if self._overhead is None else self._overhead + alpha * (took - self._overhead)
            self.policy.overhead_s = self._overhead
        self._decided_at = None
        n = min(self.policy.choose(), size)
        if self._keep:
            with self._lock:
                self._records[step] = {"quorum": n, "auto": {"overhead_s": self.policy.overhead_s,
                                                             "probe": n != self.policy.n}}
        return n

    def observe(self, step: int, arrivals: Iterable[float]) -> None:
        """`step` was decided with these members' READY times (seconds into the step)."""
        self._decided_at = time.perf_counter()
        with self._lock:
            noise = self._noise
        self.policy.observe(list(arrivals), noise)
        if not self._keep:
            return
        values = self.policy.values()
        after = self.policy.n
        with self._lock:
            auto = self._records.setdefault(step, {"auto": {}})["auto"]
            auto.update({"noise_scale": noise, "expected_s": [float(x) for x in self.policy.arrivals.expected()],
                         "next": after, "value": float(values[after - 1])})


def replay_choices(spec: AutoSpec, workers: int, batch: int, steps: Sequence[dict]) -> list[int]:
    """The N a fresh policy chooses for each step, fed the arrivals, noise scales and overheads that `steps`
    (steps.jsonl records of an auto run) say the coordinator fed its own: the engine's choices, replayed."""
    policy = AutoPolicy(spec, workers, batch)
    chosen = []
    for record in steps:
        auto = record["auto"]
        policy.overhead_s = auto["overhead_s"]
        chosen.append(policy.choose())
        noise = auto["noise_scale"]
        policy.observe(list(record["arrivals"].values()), None if noise is None else noise)
    return chosen
