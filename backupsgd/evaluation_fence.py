"""The fence after an evaluation: the step after one is decided only once every rank has offered it.

Every rank evaluates the test set at the same steps, but they do not finish together (Fashion-MNIST's evaluation
took ~2 s on 5 ranks sharing 2 cores, and the ranks finished up to ~0.7 s apart). Without a fence the
step after an evaluation is decided as soon as its first N READYs are in, so under a small N the ranks done first
train on through the slower ones' evaluation: rank 0 (the writer) then applied ~3.2 steps in a burst after each
evaluation at N = 1, ~0.7 at N = 2-3. A run's time less its evaluations (its training time) counted those steps free,
more the smaller N was, which moved Fashion-MNIST's ratios between arms by up to 7%.

With the fence the coordinator decides that step only once every rank not behind has offered it (READY or
declined); its members are still the first N, so what a step averages is unchanged. No rank then trains through
another's evaluation by more than one gradient, and every arm pays alike for the slowest rank's evaluation. A
rank still silent once the coordinator's own evaluation's length has passed since its own READY is not waited
for (a frozen, dead or deeply delayed rank costs a fenced step at most that).
"""

from __future__ import annotations

from typing import Callable


class EvaluationFence:
    """Which steps follow an evaluation (`follows(step)`), and how long this rank's latest evaluation took
    (`evaluated()`, posted by the training thread; read by the coordinator on the engine thread: a float
    assignment, which the GIL makes atomic)."""

    def __init__(self, follows_evaluation: Callable[[int], bool]) -> None:
        self.follows = follows_evaluation
        self._evaluation_s = 0.0

    def evaluated(self, seconds: float) -> None:
        self._evaluation_s = float(seconds)

    def holds(self, silent: int, own_ready_at: float | None, now: float) -> bool:
        """Whether a step that follows an evaluation, its first N READYs in, waits on: `silent` ranks not behind
        have not offered it yet, and the coordinator's own READY (its perf_counter; None: not yet; -inf: it
        declined) came less than its evaluation's length ago or not at all."""
        return silent > 0 and (own_ready_at is None or now - own_ready_at < self._evaluation_s)
