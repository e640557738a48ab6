"""The gradient noise scale estimator against closed forms (McCandlish et al. 2018, appendix A.1)."""

import math

import numpy as np
import pytest

from backupsgd.noise import NoiseEstimate, NoiseScale, estimate


def _problem(dim: int = 40, seed: int = 0):
    """A true gradient G and a full per-example covariance Sigma = A A^T / dim, with their closed forms."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=dim) * 0.3
    a = rng.normal(size=(dim, dim))
    sigma = a @ a.T / dim
    return g, sigma, float(g @ g), float(np.trace(sigma))


def _draw_steps(g, sigma, workers: int, batch: int, steps: int, seed: int):
    """Per step: the members' summed squared norms and the squared norm of their mean gradient.

    Each member's gradient is the mean of `batch` per-example gradients drawn from N(G, Sigma), that
    is a draw from N(G, Sigma / batch), drawn here directly through Sigma's Cholesky factor.
    """
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(sigma)
    own = g + rng.standard_normal((steps, workers, len(g))) @ chol.T / math.sqrt(batch)
    sum_sq = (own ** 2).sum(axis=(1, 2))
    mean_sq = (own.mean(axis=1) ** 2).sum(axis=1)
    return sum_sq, mean_sq


def test_exact_expectations_give_the_exact_terms():
    # Fed the expected squared norms E|g_B|^2 = |G|^2 + tr(Sigma)/B, the two-batch formulas are exact.
    grad_sq, trace, n, b = 2.5, 40.0, 4, 8
    est = estimate(n * (grad_sq + trace / b), n, b, grad_sq + trace / (n * b))
    assert est.grad_sq == pytest.approx(grad_sq, rel=1e-12)
    assert est.trace_cov == pytest.approx(trace, rel=1e-12)
    assert est.b_simple == pytest.approx(trace / grad_sq, rel=1e-12)
    assert est.member_sq == pytest.approx(grad_sq + trace / b, rel=1e-12)  # the members' own squared norm


@pytest.mark.parametrize("workers,batch", [(2, 4), (4, 16)])
def test_gaussian_gradients_converge_to_the_closed_form(workers, batch):
    g, sigma, grad_sq, trace = _problem()
    steps = 20000
    sum_sq, mean_sq = _draw_steps(g, sigma, workers, batch, steps, seed=workers)
    per_step = [estimate(s, workers, batch, m) for s, m in zip(sum_sq, mean_sq)]
    g_hat = np.array([e.grad_sq for e in per_step])
    s_hat = np.array([e.trace_cov for e in per_step])
    # Unbiased: each mean lies within 4 standard errors of the truth, and the errors are small.
    for values, truth in ((g_hat, grad_sq), (s_hat, trace)):
        se = values.std(ddof=1) / math.sqrt(steps)
        assert abs(values.mean() - truth) < 4 * se
        assert abs(values.mean() - truth) < 0.05 * truth
    # B_simple from the averaged terms: within 5% of tr(Sigma) / |G|^2 (= 11.7 here).
    assert s_hat.mean() / g_hat.mean() == pytest.approx(trace / grad_sq, rel=0.05)


def test_smoothed_form_tracks_the_closed_form_where_one_step_does_not():
    g, sigma, grad_sq, trace = _problem(seed=1)
    workers, batch = 4, 4
    sum_sq, mean_sq = _draw_steps(g, sigma, workers, batch, 3000, seed=7)
    smoother = NoiseScale(decay=0.999)
    singles = []
    for s, m in zip(sum_sq, mean_sq):
        step = estimate(s, workers, batch, m)
        singles.append(step.b_simple)
        smoothed = smoother.update(step)
    truth = trace / grad_sq
    assert smoothed.b_simple == pytest.approx(truth, rel=0.1)
    # One step's ratio scatters widely (here |G|^2 is small next to tr(Sigma)/B): the reason to smooth.
    finite = np.array([x for x in singles if np.isfinite(x)])
    assert np.mean(np.abs(finite - truth) > 0.5 * truth) > 0.2


def test_smoothing_is_the_ratio_of_bias_corrected_averages_of_each_steps_shares():
    smoother = NoiseScale(decay=0.5)
    assert math.isnan(smoother.value.b_simple)
    first = smoother.update(NoiseEstimate(2.0, 10.0, 4.0))
    assert (first.grad_sq, first.trace_cov, first.b_simple) == (2.0, 10.0, 5.0)  # no pull toward 0
    second = smoother.update(NoiseEstimate(4.0, 10.0, 2.0))
    # shares |G|^2 / scale 0.5 then 2, tr(Sigma) / scale 2.5 then 5: EMAs 0.25 * 0.5 + 0.5 * 2 = 1.125 and
    # 0.25 * 2.5 + 0.5 * 5 = 3.125, scale 0.25 * 4 + 0.5 * 2 = 2, bias correction 1 - 0.5^2 = 0.75
    assert second.b_simple == pytest.approx(3.125 / 1.125)  # 2.78; plain averages (scale ignored) read 3.0
    assert second.member_sq == pytest.approx(2.0 / 0.75)
    assert second.grad_sq == pytest.approx(1.125 / 0.75 * 2.0 / 0.75)  # the share in the averaged scale's units
    assert second.trace_cov == pytest.approx(3.125 / 0.75 * 2.0 / 0.75)
    # a step of all-zero gradients has no shares: not folded
    assert smoother.update(NoiseEstimate(0.0, 0.0, 0.0)) == second


def test_a_gradient_that_shrinks_a_hundredfold_counts_by_its_share_not_its_size():
    """As the Python manual's first steps: |G|^2 100 for 10 steps, then 1, tr(Sigma) 10 throughout (B = 1, so each
    step's scale is |G|^2 + 10). Twenty steps on B_simple is 10. The plain average is still held by the first
    steps' |G|^2 and reads 0.52, 19x low; weighing each step by its scale reads 3.16 (closed forms below: the
    first ten steps keep 0.95^20 (1 - 0.95^10) = 0.1437 of the weight, the last twenty 1 - 0.95^20 = 0.6415)."""
    smoother = NoiseScale()
    for step in range(30):
        grad_sq = 100.0 if step < 10 else 1.0
        value = smoother.update(NoiseEstimate(grad_sq, 10.0, grad_sq + 10.0), at=step)
    old, new = 0.95 ** 20 * (1 - 0.95 ** 10), 1 - 0.95 ** 20
    assert value.b_simple == pytest.approx((old * 10 / 110 + new * 10 / 11) / (old * 100 / 110 + new * 1 / 11))
    assert 3.0 < value.b_simple < 3.3
    plain = (old + new) * 10 / (old * 100 + new * 1)
    assert plain == pytest.approx(0.52, abs=0.01)  # what the smoother read before it weighed steps


def test_a_measurement_after_unmeasured_steps_weighs_as_if_each_had_measured_it():
    """Steps of one member measure nothing: the past decays with the steps trained, so a measurement of step 2
    after one of step 0 folds in as the same estimate at steps 1 and 2 would (what the average should hold
    when nothing newer is known), not as one step's worth (below the cap on a gap's weight, 0.36 < 0.5 here)."""
    gapped, every = NoiseScale(decay=0.8), NoiseScale(decay=0.8)  # scale 1 throughout: equal weights, plain averages
    gapped.update(NoiseEstimate(2.0, 10.0, 1.0), at=0)
    every.update(NoiseEstimate(2.0, 10.0, 1.0), at=0)
    late = gapped.update(NoiseEstimate(4.0, 40.0, 1.0), at=2)
    for step in (1, 2):
        each = every.update(NoiseEstimate(4.0, 40.0, 1.0), at=step)
    assert (late.grad_sq, late.trace_cov) == pytest.approx((each.grad_sq, each.trace_cov))
    # closed form: averages 0.64 * 0.4 + 0.36 * 4 = 1.696 and 0.64 * 2 + 0.36 * 40 = 15.68, weight 0.488
    assert (late.grad_sq, late.trace_cov) == pytest.approx((1.696 / 0.488, 15.68 / 0.488))
    # B_simple 9.25, near the fresh 10; counted per measurement (averages 1.12 and 9.6) it would read 8.57
    assert late.b_simple == pytest.approx(15.68 / 1.696)


def test_a_measurement_after_a_long_gap_weighs_at_most_half():
    """After 83 unmeasured steps 1 - 0.95^83 = 0.986 would let one step's estimate replace the average; one whose
    |G|^2 came out near zero then read B_simple 875 against 5. Capped at half, it reads 95: still pulled, no longer
    replaced (closed form: first fold 0.05 * (2, 10), weight 0.05; then halves)."""
    capped, uncapped = NoiseScale(), NoiseScale(max_gap_weight=1.0)
    for smoother in (capped, uncapped):
        smoother.update(NoiseEstimate(2.0, 10.0, 1.0), at=0)
    near_zero = NoiseEstimate(0.01, 10.0, 1.0)
    halved = capped.update(near_zero, at=83)
    assert (halved.grad_sq, halved.trace_cov) == pytest.approx(((0.05 + 0.005) / 0.525, (0.25 + 5.0) / 0.525))
    keep = 0.95 ** 83
    replaced = uncapped.update(near_zero, at=83)
    assert replaced.b_simple == pytest.approx((keep * 0.5 + (1 - keep) * 10.0) / (keep * 0.1 + (1 - keep) * 0.01))
    assert replaced.b_simple > 800 and halved.b_simple < 100


def test_the_cap_keeps_sparse_measurements_nearer_the_closed_form():
    """Measured every 40th step (auto at N = 1 measures that rarely), the uncapped average is nearly one step's
    ratio, which scatters widely; capped, it stays within 2x of tr(Sigma) / |G|^2 on more of the measurements."""
    g, sigma, grad_sq, trace = _problem(seed=1)
    truth, workers, batch, every = trace / grad_sq, 2, 4, 40
    sum_sq, mean_sq = _draw_steps(g, sigma, workers, batch, 20000, seed=3)
    share_within = {}
    for cap in (1.0, 0.5):
        smoother, within = NoiseScale(max_gap_weight=cap), []
        for step in range(0, len(sum_sq), every):
            value = smoother.update(estimate(sum_sq[step], workers, batch, mean_sq[step]), at=step).b_simple
            within.append(bool(np.isfinite(value) and truth / 2 <= value <= 2 * truth))
        share_within[cap] = np.mean(within[5:])
    assert share_within[0.5] > share_within[1.0] + 0.08, share_within


def test_bad_inputs():
    assert math.isnan(NoiseEstimate(-1.0, 5.0, 4.0).b_simple)
    with pytest.raises(ValueError, match="count must be >= 2"):
        estimate(1.0, 1, 8, 1.0)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        estimate(1.0, 2, 0, 1.0)
    with pytest.raises(ValueError, match="decay"):
        NoiseScale(decay=1.0)
    with pytest.raises(ValueError, match="max_gap_weight"):
        NoiseScale(max_gap_weight=0.0)
