"""What `--backups auto`'s policy knows of time (backupsgd.arrival_estimates): E[T_(k)] against the exponential
order statistics and under censoring, and overhead(N) as measured per N, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from reference import exp_order_stats

from backupsgd.arrival_estimates import ArrivalEstimate, ExchangeEstimate, StepExcessEstimate


def test_exchange_estimate_is_the_mean_of_the_first_then_an_average_of_span_20():
    est = ExchangeEstimate(3)
    for took in (1.0, 2.0, 3.0):
        est.observe(2, took)
    np.testing.assert_allclose(est.expected(0.0), [2.0] * 3)  # the plain mean; N = 1 and 3 take N = 2's
    for _ in range(200):
        est.observe(2, 5.0)
    assert est.expected(0.0)[1] == pytest.approx(5.0)
    est.observe(2, 26.0)  # weight 2 / 21 once the average has settled
    assert est.expected(0.0)[1] == pytest.approx(5.0 + 2 / 21 * 21.0)


def test_a_step_time_is_known_after_three_of_its_own_and_forgotten_after_a_window_without_one():
    est = StepExcessEstimate(3, window=4)
    est.observe(2, 6.0)
    est.observe(2, 9.0)
    assert np.isnan(est.known()).all()  # two steps at N = 2: not yet
    est.observe(2, 3.0)
    # the mean of the first two (7.5), then the span of 4's weight 2 / 5 (more than 1 / 3) toward 3
    np.testing.assert_allclose(est.known(), [np.nan, 5.7, np.nan])
    for i in range(4):
        est.observe(1, 1.0)
        # N = 2 stays known while its last step is one of the last 4 measured; N = 1 from its third step
        np.testing.assert_allclose(est.known(), [np.nan if i < 2 else 1.0, 5.7 if i < 3 else np.nan, np.nan])
    est.observe(2, 5.0)  # measured again after a window: afresh, one step is not enough
    assert np.isnan(est.known()[1])


def test_an_exchange_below_every_fresh_n_takes_the_least_fresh_ones_and_starts_afresh_when_measured_again():
    # exp60-cap seed 17: one slow exchange at N = 1 and N = 1 was never measured again while N = 2 was chosen
    est = ExchangeEstimate(3, fresh_within=4)
    for took in (2.0, 2.0, 2.0, 14.0):
        est.observe(1, took)
    assert est.expected(0.0)[0] == pytest.approx(5.0)  # the plain mean of the first four
    for i in range(4):
        est.observe(2, 3.0)
        # N = 1 is fresh for 3 more exchanges (the 4th exchange back is the last kept), then takes N = 2's
        assert est.expected(0.0)[0] == pytest.approx(5.0 if i < 3 else 3.0)
    est.observe(3, 4.0)  # a probe: N = 2 is still the least fresh N, and N = 3 above it keeps its own
    np.testing.assert_allclose(est.expected(0.0), [3.0, 3.0, 4.0])
    est.observe(1, 2.0)  # 6 exchanges since N = 1's last: its average starts afresh
    np.testing.assert_allclose(est.expected(0.0), [2.0, 3.0, 4.0])
    est.observe(2, 6.0)  # 3 exchanges since N = 2's last (4 measurements): weight max(1 - (19/21)^3, 1/5)
    assert est.expected(0.0)[1] == pytest.approx(3.0 + (1 - (19 / 21) ** 3) * 3.0)


def test_a_paused_step_raises_the_estimates_only_by_the_lead_past_its_pause():
    """Window 3 (EMA weight 0.5) after arrivals 0.1, 0.2, 0.3 s. A step after an evaluation of 0.2 s, its arrivals
    1.0, 1.1, 1.6 s (each counts the pause): the second came 0.1 after the first, within the pause, and says
    nothing; the third 0.6 after it, 0.4 past the pause: T_(3) >= E[T_(1)] + 0.4 = 0.5, and E[T_(3)] moves half way
    from 0.3 (0.4). Unfolded: E[T_(1)] stays 0.1. With the pause unknown (nan), nothing is learnt."""
    def after(pause_s):
        est = ArrivalEstimate(3, window=3)
        est.observe([0.1, 0.2, 0.3])
        est.skip([1.6, 1.0, 1.1], pause_s)
        return est.expected()

    np.testing.assert_allclose(after(0.2), [0.1, 0.2, 0.4])
    np.testing.assert_allclose(after(np.nan), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(after(0.7), [0.1, 0.2, 0.3])  # the third's lead within a longer pause


def test_arrival_estimate_converges_to_the_exponential_order_statistics():
    p, mean = 8, 0.02
    rng = np.random.default_rng(3)
    est = ArrivalEstimate(p, window=4000)  # span far beyond the run: close to the plain mean
    for _ in range(4000):
        est.observe(rng.exponential(mean, p))
    np.testing.assert_allclose(est.expected(), exp_order_stats(mean, p), rtol=0.05)


def test_censored_steps_do_not_pull_later_estimates_down():
    first = exp_order_stats(1.0, 4)
    est = ArrivalEstimate(4, window=1)
    est.observe(first)
    est.observe([0.1])  # a step decided at N = 1 says nothing about T_(2..4)
    np.testing.assert_allclose(est.expected(), [0.1, *first[1:]])


def test_arrivals_still_missing_at_the_next_decision_raise_the_estimates_below_their_floors():
    """Window 3 (EMA weight 0.5). After a step seeing T = 0.1, 0.2, 0.3 s, a step decided at N = 1 at 0.1 s; the
    next decision says how long each worker still silent on it had computed (its floor). Floors of 0.25 and 0.35 s:
    had they arrived then, T_(2), T_(3) would have been 0.25, 0.35, so both are at least that, and the estimates
    below move half way (0.225, 0.325). Floors of 0.15 and 0.25 (one worker began that step late, as a dropped one
    does) say nothing the estimates do not: one common floor (the time since the step's start, 0.25 for both) would
    have raised T_(2). A late READY at 0.12 s (the second arrival) leaves one floor for T_(3). Fed only the late
    READYs that come quickly, E[T_(2)] would stay low."""
    def estimate(late=(), floors=()) -> np.ndarray:
        est = ArrivalEstimate(3, window=3)
        est.observe([0.1, 0.2, 0.3])
        est.observe([0.1])
        est.observe([0.1], late, floors)
        return est.expected()

    np.testing.assert_allclose(estimate(floors=[0.35, 0.25]), [0.1, 0.225, 0.325])
    np.testing.assert_allclose(estimate(), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(estimate(floors=[0.25, 0.15]), [0.1, 0.2, 0.3])
    late = estimate(late=[0.12], floors=[0.35])
    assert late[2] == pytest.approx(0.325) and late[1] < 0.2


def test_a_fast_estimate_follows_a_regime_that_changed_and_stays_out_of_a_steady_one():
    rng = np.random.default_rng(4)
    quiet, slow = exp_order_stats(0.001, 5), exp_order_stats(0.02, 5)
    plain, both = ArrivalEstimate(5, window=20), ArrivalEstimate(5, window=20, fast=5)
    taken = []
    for step in range(400):  # steady: the span-20 average foretells the next draw better, and stands
        draw = rng.exponential(0.02, 5)
        plain.observe(draw)
        both.observe(draw)
        if step >= 50:
            taken.append(both.fast_miss < both.miss)
    assert np.mean(taken) < 0.05  # (an EMA of span s misses an iid draw by var x (1 + 1 / s) on average)
    np.testing.assert_allclose(both.expected(), slow, rtol=0.35)
    used = 0
    for step in range(10):  # the workers' delays fall 20-fold
        draw = rng.exponential(0.001, 5)
        plain.observe(draw)
        both.observe(draw)
        used += int(both.fast_miss[3] < both.miss[3])
    # after 10 steps the span-20 average still holds 0.905^10 = 37% of the old E[T_(4)] (13 ms of the new 1.3);
    # the fast one 0.67^10 = 2%, taken once its misses weigh less
    assert plain.expected()[3] > 0.3 * slow[3]
    assert both.expected()[3] < 0.1 * slow[3] and abs(both.expected()[3] - quiet[3]) < 3 * quiet[3]
    assert used >= 5
