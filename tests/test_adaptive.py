"""`--backups auto`: the policy against hand-computed choices, its bounds, hysteresis, probes and measured steps. The
spec parser: tests/test_auto_spec.py; the policy's replay in the simulator and the coordinator's bookkeeping:
tests/test_auto_replay.py."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from reference import exp_order_stats

from backupsgd.adaptive import DEEP_FACTOR, HOLD_STEPS, WARM_UP_STEPS, AutoPolicy
from backupsgd.auto_spec import AutoSpec

# E[T_(k)] of 4 exponentials of mean 1 (Renyi): sum over i < k of 1 / (4 - i)
EXP4 = [1 / 4, 1 / 4 + 1 / 3, 1 / 4 + 1 / 3 + 1 / 2, 1 / 4 + 1 / 3 + 1 / 2 + 1]


def _policy(rule="progress", noise=2.0, overhead=0.5, window=1, **keys) -> AutoPolicy:
    spec = AutoSpec(rule=rule, min_backups=0, max_backups=3, window=window, margin=0.0, probe_every=0,
                    overhead_s=overhead, **keys)
    policy = AutoPolicy(spec, workers=4)
    policy.observe(EXP4, noise)
    return policy


@pytest.mark.parametrize("rule,noise,overhead,expected", [
    # progress: N / (N + 2) / (E[T_(N)] + 0.5) = 0.444, 0.462, 0.379, 0.258 for N = 1..4
    ("progress", 2.0, 0.5, 2),
    # no gradient noise: every N makes a whole step of progress, so the fastest wins
    ("progress", 0.0, 0.5, 1),
    # B_noise = 100, no overhead: 1/101/0.25 = 0.0396, 2/102/0.583 = 0.0336, ... N = 4: 4/104/2.083 = 0.0185
    ("progress", 100.0, 0.0, 1),
    # B_noise = 100, overhead 10: 1/101/10.25 = 0.00097, 0.00185, 0.00263, 4/104/12.083 = 0.00318
    ("progress", 100.0, 10.0, 4),
    # dbw with L eta = 1: (1/2 - B_noise / (2N)) / (E[T_(N)] + 0.5) = -, 0, 0.105, 0.097
    ("dbw", 2.0, 0.5, 3),
    # dbw when every N's bound is negative (B_noise = 100 > N): wait for the most gradients
    ("dbw", 100.0, 0.5, 4),
])
def test_choice_matches_the_hand_computed_argmax(rule, noise, overhead, expected):
    assert _policy(rule, noise, overhead).choose() == expected


def test_noise_factor_scales_the_measured_noise_scale():
    # measured B_simple 100 with overhead 10 picks N = 4 (above); calibrated by 0.001 the rule sees B_noise = 0.1:
    # N / (N + 0.1) / (E[T_(N)] + 10) = 0.0887, 0.0900, 0.0873, 0.0807 for N = 1..4
    policy = _policy("progress", 100.0, 10.0, noise_factor=0.001)
    assert policy.noise_scale == pytest.approx(0.1)
    assert policy.choose() == 2


@pytest.mark.parametrize("rule,noise,max_backups,chosen", [
    ("progress", 100.0, 3, [(1, False), (2, True), (4, False)]),
    ("dbw", 100.0, 3, [(1, False), (2, True), (4, False)]),
    # B_noise = 0: N = 1 is best (no gradient is worth a wait) and a noise scale grown 2x says so too, so only the
    # settle window's last step measures
    ("progress", 0.0, 3, [(1, False), (2, True), (1, False)]),
    # N_min = 2 measures the noise scale itself: the window holds N at 2 and takes no measuring step
    ("progress", 100.0, 2, [(2, False), (2, False), (4, False)]),
])
def test_a_measured_noise_scale_raises_n_above_n_min_only_once_settle_steps_were_observed(rule, noise, max_backups,
                                                                                         chosen):
    """EXP4 arrivals, overhead 10: B_noise = 100 makes N = 4 best (progress: 0.00318 against 0.00185 at N = 2;
    DBW: every bound negative, so N_max), as above. Measured (the engine's coordinator), the noise scale may raise
    N above N_min (1 at max_backups=3 of 4 workers) only from the `settle` = 3rd step observed on, whatever each
    step's N: until then N stays N_min, but for the window's last step, which measures (2) so that the rule starts
    from a fresh noise scale. Given (the simulator), it is trusted at once. (choose(), measuring) after each step."""
    spec = AutoSpec(rule=rule, min_backups=0, max_backups=max_backups, window=1, margin=0.0, probe_every=0,
                    overhead_s=10.0, settle=3)
    settled = chosen[-1][0]
    given = AutoPolicy(spec, workers=4)
    given.observe(EXP4, noise)
    assert given.choose() == settled
    measured = AutoPolicy(spec, workers=4, measured_noise=True)
    lived = []
    for arrivals in (EXP4, EXP4[:1], EXP4):  # a step of one member counts as one observed
        measured.observe(arrivals, noise)
        lived.append((measured.choose(), measured.measuring))
    assert lived == chosen  # the first step saw every arrival, as the given policy's did
    never = AutoPolicy(replace(spec, settle=0), workers=4, measured_noise=True)
    never.observe(EXP4, noise)
    assert never.choose() == settled


def test_overhead_is_learnt_per_n_and_an_n_never_measured_takes_the_nearest():
    """EXP4 arrivals, B_noise = 2: with the exchange measured only at N = 1 (0.5 s) every N's overhead is 0.5 and
    N = 2 is best (0.444, 0.462, 0.379, 0.258, as above). Measured at N = 4 too (0 s: say, the cores are free
    once every rank has offered), N = 3 takes N = 4's (the nearest), N = 2 N = 1's: N / (N + 2) / (E[T_(N)] +
    overhead(N)) = 0.444, 0.462, 0.6 / 1.083 = 0.554, 0.667 / 2.083 = 0.320: N = 3. A spec that fixes the overhead
    learns nothing. (A window of 10 steps: N = 1's exchange stays fresh; test_arrival_estimates.py has what happens
    when it does not.)"""
    policy = _policy(overhead=0.0, window=10)
    assert policy.choose() == 1  # no exchange known yet: no overhead, and the fastest N wins
    policy.exchanged(1, 0.5)  # the first exchange learnt: the choice is made again with it
    np.testing.assert_allclose(policy.overheads(), [0.5] * 4)
    assert policy.choose() == 2
    policy.exchanged(4, 0.0)
    np.testing.assert_allclose(policy.overheads(), [0.5, 0.5, 0.0, 0.0])
    assert policy.choose() == 2  # later ones count from the next observe()
    policy.observe(EXP4, 2.0)
    assert policy.choose() == 3
    fixed = _policy(overhead=0.5)
    fixed.exchanged(4, 0.0)
    np.testing.assert_allclose(fixed.overheads(), [0.5] * 4)


def test_the_exchanges_after_the_warm_up_steps_observed_paused_are_not_learnt():
    """The engine's coordinator observes its first WARM_UP_STEPS steps paused (AutoQuorum learns nothing of them),
    and their exchanges are the run's first reductions and updates: not learnt either. EXP4 arrivals, B_noise = 2: a
    warm-up exchange of 5 s at N = 2, learnt, would be every N's overhead and make N = 3 best (3/5/6.08 = 0.099
    against 2/4/5.58 = 0.090); left out, the next exchange (0.5 s at N = 2) is every N's, and N = 2 is best, as
    above. A step paused later (an evaluation) has its exchange learnt, and a first step observed unpaused (the
    simulator's) learns its exchange as any."""
    assert WARM_UP_STEPS == 2
    spec = AutoSpec(min_backups=0, max_backups=3, window=10, margin=0.0, probe_every=0)
    policy = AutoPolicy(spec, workers=4)
    for _ in range(WARM_UP_STEPS):
        policy.observe(EXP4, 2.0, paused=True)
        policy.exchanged(2, 5.0, 6.0)
        np.testing.assert_allclose(policy.overheads(), [0.0] * 4)
    assert np.isnan(policy.step_excess.known()).all()
    policy.observe(EXP4, 2.0)
    policy.exchanged(2, 0.5)
    np.testing.assert_allclose(policy.overheads(), [0.5] * 4)
    assert policy.choose() == 2
    policy.observe(EXP4, 2.0, paused=True)
    policy.exchanged(2, 5.0)
    assert policy.overheads()[1] > 0.5
    unpaused = AutoPolicy(spec, workers=4)
    unpaused.observe(EXP4, 2.0)
    unpaused.exchanged(2, 5.0)
    np.testing.assert_allclose(unpaused.overheads(), [5.0] * 4)
    assert unpaused.choose() == 3


def test_auto_returns_from_n_2_once_a_slow_exchange_at_n_1_is_a_window_old():
    """P = 2, arrivals 1 and 2 s, B_noise = 1: N / (N + 1) / (E[T_(N)] + overhead(N)). The first exchange, 5 s at
    N = 1, is every N's: 0.5 / 6 = 0.083 against 0.667 / 7 = 0.095, so N = 2 (14% better). Measured at 0.3 s there,
    N = 2 is worth 0.29, and N = 1 0.083 for as long as its 5 s is within the window; then it takes N = 2's 0.3 s:
    0.5 / 1.3 = 0.385, and N = 1 is chosen and measured afresh at 0.3 s."""
    policy = AutoPolicy(AutoSpec(min_backups=0, max_backups=1, window=3, probe_every=0), workers=2)
    policy.observe([1.0, 2.0], 1.0)
    policy.exchanged(1, 5.0)
    chosen = []
    for _ in range(6):
        policy.observe([1.0, 2.0], 1.0)
        chosen.append(policy.choose())
        policy.exchanged(chosen[-1], 0.3)
    # N = 2 while the 5 s at N = 1 is one of the last 3 exchanges, then N = 1 for good (held, not flapping)
    assert chosen == [2, 2, 2, 1, 1, 1]


def test_an_ns_own_measured_step_stands_for_it_and_what_the_model_misses_is_added_to_the_others():
    """P = 3, arrivals 1, 2, 3 s, no exchange, B_noise = 2: the model N / (N + 2) / E[T_(N)] says 0.333, 0.25, 0.2
    for N = 1..3: N = 1. But N = 1's steps take 4 s whole (the vote's latency, say): once three are measured, the
    other N take their model plus the 3 s it missed, 0.5 / 5 = 0.1 and 0.6 / 6 = 0.1 against 1 / 3 / 4 = 0.083:
    N = 2. Its own steps take 10 s: once three are measured, N = 2 is worth 0.05, N = 3 0.6 / (3 + 8) = 0.055 and
    N = 1 (still fresh) 0.083: back to N = 1. Each choice sees the step times learnt up to the step before it; the
    first step (noise unknown) waits for 2, and one 10 s step at N = 2 is not enough to stand for it."""
    spec = AutoSpec(min_backups=0, max_backups=2, window=10, margin=0.0, probe_every=0)
    chosen, model_only = [], []
    for feed, out in ((True, chosen), (False, model_only)):
        policy = AutoPolicy(spec, workers=3)
        for _ in range(9):
            out.append(policy.choose())
            policy.observe([1.0, 2.0, 3.0], 2.0)
            policy.exchanged(out[-1], 0.0, (4.0 if out[-1] == 1 else 10.0) if feed else None)
    assert chosen == [2, 1, 1, 1, 1, 2, 2, 2, 1]
    assert model_only == [2] + [1] * 8


def test_an_ns_measured_excess_moves_with_its_arrivals_after_the_rule_left_it():
    """P = 2, no exchange, B_noise = 2, an EMA of span 10 (weight 2 / 11 from the sixth observation on; no fast
    estimate): N = 1 is worth 1 / 3 / t1 and N = 2 2 / 4 / t2, so N = 1 wins where t1 < 4 / 3 t2. Three steps at
    N = 1 of 1.5 s whole against E[T_(1)] = 1 s: an excess of 0.5 s. Three at N = 2 of 2 s against E[T_(2)] = 2 s:
    none, so t1 = 1.5 > 1.333. Then the first arrival comes at 0.2 s: after k such steps E[T_(1)] = 0.2 + 0.8 (9 /
    11)^k, and t1 that plus 0.5 s: 1.355 (N = 2 still), then 1.236 (N = 1). A whole step of 1.5 s standing for N = 1
    as measured (the policy before 2026-12-07) kept N = 2 for as long as it was fresh (a window of measurements)."""
    policy = AutoPolicy(AutoSpec(min_backups=0, max_backups=1, window=10, margin=0.0, probe_every=0, fast=0), 2)
    for n, whole in ((1, 1.5), (2, 2.0)):
        for _ in range(3):
            policy.observe([1.0, 2.0], 2.0)
            policy.exchanged(n, 0.0, whole)
    chosen = []
    for k in (1, 2, 3):
        policy.observe([0.2, 2.0], 2.0)
        np.testing.assert_allclose(policy.times(), [0.2 + 0.8 * (9 / 11) ** k + 0.5, 2.0])
        chosen.append(policy.choose())
    assert chosen == [2, 1, 1]


def test_policy_on_random_exponential_arrivals_picks_the_closed_form_best():
    p, mean, noise, overhead = 8, 1.0, 4.0, 0.5
    n = np.arange(1, p + 1)
    exact = n / (n + noise) / (exp_order_stats(mean, p) + overhead)
    spec = AutoSpec(min_backups=0, max_backups=p - 1, window=2000, margin=0.0, probe_every=0, overhead_s=overhead)
    policy = AutoPolicy(spec, p)
    rng = np.random.default_rng(5)
    for _ in range(2000):
        policy.observe(rng.exponential(mean, p), noise)  # every arrival seen, as at N = P
    # exact values 0.200, 0.434, 0.458, 0.441, 0.401 for N = 1..5: N = 3 by 4%
    assert policy.choose() == int(np.argmax(exact)) + 1 == 3


def test_bounds_are_respected_and_probes_stay_inside_them():
    spec = AutoSpec(min_backups=1, max_backups=2, window=1, margin=0.0, probe_every=3)
    policy = AutoPolicy(spec, workers=6)
    n = policy.choose()
    assert n == 4  # starts at the least N that measures the noise scale: 2, raised to P - max
    chosen = []
    for _ in range(12):
        policy.observe([0.01, 0.02, 0.03, 0.04, 1.0, 9.0][:n], 0.0)  # noise-free: the fewest would be best
        n = policy.choose()
        chosen.append(n)
        assert not policy.measuring  # a probe is no measuring step (nor is anything at N >= 2)
    assert set(chosen) <= {4, 5} and chosen[0] == 4  # N = P - max, probes go to 5 at most
    # probes (to N_max, two more capped by the bound) after 3 steps, then, as that probe changed
    # nothing, 6 steps after it: the interval doubles
    assert [i for i, n in enumerate(chosen) if n == 5] == [2, 9]


def test_a_probe_due_on_a_paused_step_waits_one_step():
    """The bounds test's run, with the step its first probe was due on (the 3rd) told paused (an evaluation before
    it: its arrivals would not be learnt): that probe comes a step later, and the doubled interval counts from it."""
    spec = AutoSpec(min_backups=1, max_backups=2, window=1, margin=0.0, probe_every=3)
    policy = AutoPolicy(spec, workers=6)
    n = policy.choose()
    chosen = []
    for i in range(12):
        policy.observe([0.01, 0.02, 0.03, 0.04, 1.0, 9.0][:n], 0.0)
        n = policy.choose(paused=i in (2, 5))  # step 5: no probe due, nothing moves
        chosen.append(n)
    assert [i for i, n in enumerate(chosen) if n == 5] == [3, 10]


def test_a_probe_is_done_when_a_step_learnt_at_its_n_came_since_it_was_last_due():
    """The bounds test's run, with the step before the first probe learnt at N = 5 (a step whose 5th arrival was
    seen, as a probe's would be): that probe waits for nobody, and is rescheduled as one that changed nothing (the
    interval doubles); the next one, with no step at 5 since, goes to 5. A paused step at 5 is no such step."""
    spec = AutoSpec(min_backups=1, max_backups=2, window=1, margin=0.0, probe_every=3)
    for paused, probes in ((False, [9]), (True, [2, 9])):
        policy = AutoPolicy(spec, workers=6)
        policy.choose()
        chosen = []
        for i in range(12):
            wide = i == 1
            arrivals = [0.01, 0.02, 0.03, 0.04, 1.0] if wide else [0.01, 0.02, 0.03, 0.04]
            policy.observe(arrivals, 0.0, paused=wide and paused)
            chosen.append(policy.choose())
        assert [i for i, n in enumerate(chosen) if n == 5] == probes


def test_noise_scale_unknown_after_the_first_step_waits_for_the_least_n_that_measures_it():
    policy = AutoPolicy(AutoSpec(window=1, probe_every=0), workers=4)
    assert policy.choose() == 2  # the first step too: its late READYs show the arrivals past 2
    policy.observe(EXP4, float("nan"))
    assert policy.choose() == 2  # two gradients measure the noise scale (backupsgd.noise); N = 4 waits 1.8x longer
    policy.observe(EXP4[:2], 2.0)
    assert policy.choose() == 2  # from then on the rule: 2 / 4 / 0.58 s beats 3 / 5 / 1.08 s and 4 / 6 / 2.08 s
    bounded = AutoPolicy(AutoSpec(min_backups=1, max_backups=1, window=1, probe_every=0), workers=4)
    bounded.observe(EXP4, float("nan"))
    assert bounded.choose() == 3  # the least N within the bounds


def test_at_n_1_a_step_of_two_measures_the_noise_scale_once_it_may_have_grown_enough_to_move_n():
    """EXP4 arrivals, overhead 0.5 s: N / (N + B) / (E[T_(N)] + 0.5), the step taking 0.75 s at N = 1 and 1.083 s at
    N = 2, so N = 2 is best from B = 1.6 (1.0833 (2 + B) = 1.5 (1 + B)). A step of one member measures no noise
    scale; once none of two or more was seen within the window (5 here), the next waits for 2 (a measuring step) if
    the noise scale in hand, grown 2x for each window since it was measured, would make N = 2 best, and the count
    starts again from it. At B = 1 that is one window (2 >= 1.6); at B = 0.5 a growth of 3.2, 2^(age / 5) >= 3.2
    from age 8.4, so the 9th step after a measurement measures; at B = 0.25 a growth of 6.4, from age 13.4.
    Bounds that allow only N = 1 leave it at 1, and so does a noise scale of 0 (no growth makes it more)."""
    def run(noise: float, steps: int = 12, **bounds) -> list[int]:
        policy = AutoPolicy(AutoSpec(window=5, margin=0.0, probe_every=0, overhead_s=0.5, **bounds), workers=4)
        policy.observe(EXP4, noise)  # N = 4 measured it
        chosen = []
        for _ in range(steps):
            chosen.append(policy.choose())
            assert policy.measuring == (chosen[-1] > policy.n)  # the record tells a measuring step by it
            policy.observe(EXP4[:chosen[-1]], noise)
        return chosen

    assert run(1.0, max_backups=3) == ([1] * 5 + [2]) * 2
    # the check weighs every N within the bounds, stale or not
    assert np.isfinite(_policy(overhead=0.5).values(4.0, fresh_only=False)).all()
    assert run(0.5, 24, max_backups=3) == ([1] * 9 + [2]) * 2 + [1] * 4
    assert run(0.25, 24, max_backups=3) == [1] * 14 + [2] + [1] * 9
    assert run(0.0, 24, max_backups=3) == [1] * 24
    assert run(1.0, min_backups=3, max_backups=3) == [1] * 12


def test_a_climb_that_needs_a_busy_worker_goes_as_far_as_the_free_ones_reach_for_at_most_hold_steps():
    """Nearly equal arrivals and much noise: the rule wants N = P = 4 once all four arrivals were seen, from the
    first step's N = 2. A step at 4 with `busy` workers still on older steps would wait for one of them (4 > P -
    busy): it goes to max(the last step's N, P - busy) instead, and climbs on as workers come free; held back
    HOLD_STEPS steps in a row, the next climbs whatever is busy. A climb that needs no busy worker goes at once, and so
    does the first step (no N in effect yet) and a step down."""
    def policy() -> AutoPolicy:  # a window of 20: T_(3), T_(4) stay fresh through the steps held at N = 2
        p = AutoPolicy(AutoSpec(min_backups=0, max_backups=3, window=20, margin=0.0, probe_every=0), 4)
        assert p.choose() == 2  # the least N that measures the noise scale: the N in effect
        p.observe([1.0, 1.0, 1.0, 1.01], 1e6)  # every arrival seen: the rule's N is 4
        assert p.n == 4
        return p

    p = policy()
    chosen = []
    for busy in (3, 2, 1, 0):
        chosen.append((p.choose(busy=busy), p.held))
        p.observe([1.0, 1.0, 1.0, 1.01][:chosen[-1][0]], 1e6)
    assert chosen == [(2, True), (2, True), (3, True), (4, False)]

    p = policy()
    waits = []
    for _ in range(HOLD_STEPS + 2):
        waits.append(p.choose(busy=3))
        assert p.n == waits[-1]  # the rule's N is the one in effect: the next step decides the climb again
        p.observe([1.0, 1.0, 1.0, 1.01][:waits[-1]], 1e6)  # T_(3), T_(4) still fresh: the rule wants 4 again
    assert waits == [2] * HOLD_STEPS + [4, 4]  # held HOLD_STEPS steps, then climbed; no climb after it

    p = policy()
    assert p.choose(busy=0) == 4 and not p.held  # every worker free
    first = AutoPolicy(AutoSpec(min_backups=0, max_backups=3, window=20, margin=0.0, probe_every=0), 4)
    first.observe([1.0, 1.0, 1.0, 1.01], 1e6)
    assert first.choose(busy=3) == 4  # no step chosen before: nothing to climb from


def test_a_measuring_step_waits_for_a_free_worker_as_a_climb_does():
    """The measuring run above (B = 1, window 5: the 6th step at N = 1 measures): with every other worker busy at a
    step's start that step stays at N = 1 (a second gradient would come from a worker still on an older step), for up
    to HOLD_STEPS steps in a row; the first step with a free worker measures."""
    def run(busy: list[int]) -> list[int]:
        policy = AutoPolicy(AutoSpec(window=5, margin=0.0, probe_every=0, overhead_s=0.5, max_backups=3), 4)
        policy.observe(EXP4, 1.0)
        chosen = []
        for b in busy:
            chosen.append(policy.choose(busy=b))
            policy.observe(EXP4[:chosen[-1]], 1.0)
        return chosen

    assert run([0] * 7) == [1] * 5 + [2, 1]
    assert run([3] * 5 + [3, 3, 2, 3]) == [1] * 7 + [2, 1]  # held at steps 6 and 7, measured at the first free one
    assert run([3] * 13) == [1] * 5 + [1] * HOLD_STEPS + [2, 1, 1]  # held HOLD_STEPS steps, then measured regardless


def test_the_plain_python_argmax_agrees_with_numpys_nan_reductions():
    # _top walks a list (numpy's nan reductions cost rank 0 ~20 us a step); the oracle is what it replaced:
    # nanargmax (first of ties), nanmax, N_max when no value is positive, None when all are nan
    policy = AutoPolicy(AutoSpec(min_backups=0, max_backups=5), workers=6)
    rng = np.random.default_rng(3)
    for _ in range(2000):
        val = rng.choice([np.nan, -1.0, 0.0, 0.5, 1.0, 2.0, np.inf], size=6) * rng.choice([1.0, -1.0])
        got = policy._top(val)
        if np.all(np.isnan(val)):
            assert got is None
            continue
        best = int(np.nanargmax(val)) + 1
        assert got == ((policy.n_max if val[best - 1] <= 0 else best), np.nanmax(val)), val


def test_deep_after_s_in_plain_python_agrees_with_numpys_nan_reductions():
    # deep_after_s walks lists too (rank 0 asks once a step); the oracle is the numpy it replaced: twice the nanmax
    # of E[T_(k)] + overhead(k) over k <= N_max, nan when none of them is finite
    policy = AutoPolicy(AutoSpec(min_backups=1, max_backups=4), workers=6)
    rng = np.random.default_rng(5)
    for _ in range(2000):
        arrivals = rng.choice([np.nan, 0.0, 0.001, 0.02, 0.5, np.inf], size=6)
        overheads = rng.choice([0.0, 0.002, 0.01], size=6)
        policy.arrivals.expected = lambda: arrivals
        policy.overheads = lambda: overheads
        slowest = arrivals[: policy.n_max] + overheads[: policy.n_max]
        want = DEEP_FACTOR * np.nanmax(slowest) if np.isfinite(slowest).any() else math.nan
        got = policy.deep_after_s()
        assert got == want or (math.isnan(got) and math.isnan(want)), (arrivals, overheads)


def test_hysteresis_keeps_n_through_near_ties():
    # P = 2, B_noise = 1: value(1) = 0.5 / T1, value(2) = 0.667 / T2; with T1 = 1 they tie at T2 = 1.333
    def run(margin: float) -> list[int]:
        policy = AutoPolicy(AutoSpec(min_backups=0, max_backups=1, window=1, margin=margin, probe_every=0), 2)
        out = []
        for t2 in [1.30, 1.36] * 5 + [1.5, 1.30, 1.36]:
            policy.observe([1.0, t2], 1.0)
            out.append(policy.choose())
        return out

    assert run(0.0)[:10] == [2, 1] * 5  # without hysteresis N flaps between the near-equal choices
    # with a 5% margin it holds N = 2 until N = 1 is 12% better (T2 = 1.5), then holds N = 1
    assert run(0.05) == [2] * 10 + [1, 1, 1]


def test_deep_after_s_falls_back_to_the_slowest_arrival_seen():
    # DEEP_FACTOR (2) times E[T_(N_max)] plus the overhead; only T_(1), T_(2) seen (a start at N = 2): T_(2) stands in
    policy = AutoPolicy(AutoSpec(min_backups=0, max_backups=3, window=1, probe_every=0, overhead_s=0.05), workers=4)
    assert np.isnan(policy.deep_after_s())  # nothing seen: nobody is deep
    policy.observe([0.1, 0.2], 1.0)
    assert policy.deep_after_s() == pytest.approx(2 * (0.2 + 0.05))
    policy.observe([0.1, 0.2, 0.3, 0.4], 1.0)
    assert policy.deep_after_s() == pytest.approx(2 * (0.4 + 0.05))


def test_no_choice_waits_for_a_worker_deep_in_a_delay():
    """Arrivals nearly equal and much noise: every gradient is worth its wait, N = P = 4. With one worker deep in a
    delay N is capped at 3; workers only busy (heard from lately: a few ms behind) do not cap it; the least N bounds
    the cap (N >= 3 with max=1: two deep workers leave N at 3, as a static b = 1 would wait for one of them)."""
    def policy(max_backups: int) -> AutoPolicy:
        p = AutoPolicy(AutoSpec(min_backups=0, max_backups=max_backups, window=1, margin=0.0, probe_every=0), 4)
        p.observe([1.0, 1.0, 1.0, 1.01], 1e6)
        return p

    assert policy(3).choose() == 4
    assert policy(3).choose(busy=1, deep=1) == 3
    assert policy(3).choose(busy=2, deep=0) == 4
    assert policy(1).choose(busy=2, deep=2) == 3
