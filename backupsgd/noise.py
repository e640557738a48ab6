"""The gradient noise scale B_simple = tr(Sigma) / |G|^2, measured from one step's gradients.

McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training", appendix A.1.
A data-parallel step already holds gradients at two batch sizes: each member's own, over its B
examples, and the members' mean, over n * B. The expected squared norm of a gradient over a batch of
size b is |G|^2 + tr(Sigma) / b (G the true gradient, Sigma the per-example gradient covariance), so
two batch sizes give unbiased estimates of both terms:

    |G|^2    = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr Sigma = (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

with B_small = B, |G_small|^2 the mean of the members' own squared norms (averaging over members lowers
the variance and keeps the estimate unbiased), B_big = n * B and |G_big|^2 the squared norm of the
members' mean gradient. One step's ratio is noisy (its |G|^2 can even come out negative), so the paper
averages the numerator and the denominator separately over steps before dividing: `NoiseScale`, which
weighs each step by the inverse of its own scale (see there).

Pure numpy: no MPI, no torch. The training loop supplies the numbers (see `estimate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NoiseEstimate:
    grad_sq: float  # unbiased estimate of |G|^2, the true gradient's squared norm (may be < 0 on one step)
    trace_cov: float  # unbiased estimate of tr(Sigma), the per-example gradient covariance's trace
    # the members' mean own squared norm |G_small|^2, the step's scale: E = |G|^2 + tr(Sigma) / B, and exactly
    # grad_sq + trace_cov / B; never negative, and far less noisy than either term (NoiseScale weighs by it)
    member_sq: float

    @property
    def b_simple(self) -> float:
        """tr(Sigma) / |G|^2 in examples; nan when this |G|^2 estimate is not positive (use NoiseScale)."""
        return self.trace_cov / self.grad_sq if self.grad_sq > 0 else math.nan


def estimate(sum_sq_norms: float, count: int, batch: int, mean_sq_norm: float) -> NoiseEstimate:
    """|G|^2 and tr(Sigma) from one step of `count` members, each with a gradient over `batch` examples.

    sum_sq_norms: the sum over the `count` members of |g_i|^2, each g_i a member's own gradient (the
        mean over its `batch` examples of the per-example gradients: what the loss's mean reduction
        gives), squared L2 norm over all parameters. With a dense sum over all ranks, non-members add 0.
    count: n, how many members' gradients went into the sum and into the mean (>= 2).
    batch: B, examples per member (the per-worker batch size; the same for every member).
    mean_sq_norm: |(1/n) sum_i g_i|^2, the squared L2 norm of the members' mean gradient, i.e. of the
        averaged gradient the step applies (before any clipping or optimizer transformation).
    The members' gradients must be independent draws at the same parameters (true for one step of
    synchronous or backup training: which members arrive first does not depend on their gradients).
    """
    if count < 2:
        raise ValueError(f"count must be >= 2 (two batch sizes are needed), got {count}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    small, big = float(batch), float(count * batch)
    small_sq = sum_sq_norms / count  # E = |G|^2 + tr(Sigma) / B
    big_sq = mean_sq_norm  # E = |G|^2 + tr(Sigma) / (n B)
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace_cov = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    return NoiseEstimate(grad_sq, trace_cov, small_sq)


MAX_GAP_WEIGHT = 0.5  # a measurement after unmeasured steps weighs at most this (see NoiseScale)


class NoiseScale:
    """B_simple smoothed over steps: exponential moving averages of |G|^2 and of tr(Sigma), each step's terms divided
    by its own scale (member_sq), then their ratio.

    Averaging the two estimates separately (as the paper does) keeps the ratio consistent: each average
    is an unbiased estimate of its term, where the mean of per-step ratios is not. `decay` weighs the
    past per step (0.95: roughly the last 20 steps); the averages are bias-corrected as Adam's moments are, so
    the first steps are not pulled toward zero.

    Each step counts by its share, not its size: its |G|^2 and tr(Sigma) are divided by its members' mean squared
    norm (their sum divided by B is exactly that norm; a step's shares are |G|^2 / (|G|^2 + tr(Sigma) / B) and the
    rest). Plain averages were held by the largest terms in the window, and a run's gradients shrink by orders of
    magnitude: on the Python manual |G|^2 is 75-95 at step 0 and 0.2-1 from step 10 on, and the plain average read
    B_simple 8x below what 8 seeds pooled step by step gave over steps 15-30 (0.6-0.9 worker batches against 6-10;
    on Fashion-MNIST 3.7x below over steps 30-60, lagging its growth); one step's tr(Sigma) of 3,709 against ~5 held
    a run's B_simple high for tens of steps. Replayed on recorded static runs (every step measured) against that
    pooled estimate, the median |log error| after step 10 went from 0.50 to 0.35 on the Python manual (8 runs),
    0.62 to 0.24 on Fashion-MNIST (40) and 0.22-0.24 to 0.25-0.26 on digits (60), where B_simple moves less
    (results/README section 10, "A noise scale that keeps up"). Where the scale holds still the weights are equal
    and this is the plain average; with Gaussian gradients it converges to tr(Sigma) / |G|^2 as that does
    (tests/test_noise.py). A step whose members' gradients are all zero carries no share: it is not folded.

    The past decays with the steps trained, not with the measurements made: a measurement after g steps without
    one (steps of one member measure nothing) weighs 1 - decay^g. B_simple grows as training goes on, and under
    `--backups auto` a run at N = 1 measures only now and then; counted per measurement, its average still
    held the first steps' small values a hundred steps on, and N was chosen as if the gradients were far
    less noisy than they were. When every step is measured the two ways are the same.

    But one measurement never outweighs the average it joins (MAX_GAP_WEIGHT): one step's |G|^2 can come out near
    zero or negative, and after 83 unmeasured steps (weight 0.99) one such step made a digits run's B_simple 2,714
    examples against 26 the step before, and auto waited for 3 of 5 until it came back down. Replayed on recorded
    static b = 3 runs, which measure every step (results/noise-gap/replay.py), measuring only every 20th step (auto's
    measuring spacing) with the cap cut the estimates above 5x the truth by a quarter on digits and by half on
    Fashion-MNIST, with the median error about unchanged; where B_simple grows fast (Fashion-MNIST, 15x over a run)
    and measurements are rarer, the capped average lags it instead: results/noise-gap/README.md has the table
    (measured before the weighting).
    """

    def __init__(self, decay: float = 0.95, max_gap_weight: float = MAX_GAP_WEIGHT) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0.0 < max_gap_weight <= 1.0:
            raise ValueError(f"max_gap_weight must be in (0, 1] (1: no cap), got {max_gap_weight}")
        self.decay = decay
        # the least of the past a measurement after a gap keeps: 1 - the cap, or one step's decay where that is less
        self._least_keep = min(decay, 1.0 - max_gap_weight)
        self._grad_share = self._trace_share = self._scale = 0.0  # averages of |G|^2 / scale, tr(Sigma) / scale, scale
        self._weight = 0.0  # the same average of a constant 1: the bias correction (1 - decay^t, measured each step)
        self._last: int | None = None  # the step last measured

    def update(self, step: NoiseEstimate, at: int | None = None) -> NoiseEstimate:
        """Fold in one step's estimate, of step `at` (None: the step after the last one folded); returns the
        smoothed estimate: b_simple the ratio of the averaged shares, grad_sq and trace_cov those shares times the
        averaged scale (member_sq), so they keep the gradient's units."""
        if not step.member_sq > 0:  # every member's gradient zero (or nan): no shares to count
            return self.value
        gap = 1 if at is None or self._last is None else max(1, at - self._last)
        keep = max(self.decay ** gap, self._least_keep)
        self._grad_share = keep * self._grad_share + (1 - keep) * step.grad_sq / step.member_sq
        self._trace_share = keep * self._trace_share + (1 - keep) * step.trace_cov / step.member_sq
        self._scale = keep * self._scale + (1 - keep) * step.member_sq
        self._weight = keep * self._weight + (1 - keep)
        self._last = at if at is not None else (self._last or 0) + 1
        return self.value

    @property
    def value(self) -> NoiseEstimate:
        if self._weight == 0:
            return NoiseEstimate(math.nan, math.nan, math.nan)
        scale = self._scale / self._weight
        return NoiseEstimate(self._grad_share / self._weight * scale, self._trace_share / self._weight * scale, scale)


def step_fields(step: int, sum_sq_norms: float, count: int, batch: int, mean_sq_norm: float,
                smoother: NoiseScale) -> dict:
    """steps.jsonl's noise fields for decided step `step`: its own estimates of |G|^2 and tr(Sigma), and the
    smoothed B_simple in examples (`noise_scale`). A step of one member has one batch size: no estimate."""
    if count < 2:
        return {"grad_sq": None, "trace_cov": None, "noise_scale": smoother.value.b_simple}
    own = estimate(sum_sq_norms, count, batch, mean_sq_norm)
    return {"grad_sq": own.grad_sq, "trace_cov": own.trace_cov, "noise_scale": smoother.update(own, step).b_simple}
