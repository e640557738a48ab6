"""Each straggler model's delays follow the documented distribution (seeded, statistical checks)."""

import math

import numpy as np
import pytest
from scipy import stats

from backupsgd.errors import ConfigError
from backupsgd.straggler import parse_straggler

STEPS, WORKERS = 400, 10  # 4,000 draws per model: a KS test at p > 0.001 rejects a wrong law reliably


def draws(spec: str, seed: int = 7) -> np.ndarray:
    model = parse_straggler(spec, seed)
    return np.concatenate([model.delays(t, np.zeros(WORKERS)) for t in range(STEPS)])


@pytest.mark.parametrize("spec,law", [
    ("exp:mean=0.02", stats.expon(scale=0.02)),
    ("lognormal:median=0.01,sigma=0.5", stats.lognorm(s=0.5, scale=0.01)),
    ("pareto:scale=0.005,alpha=2.5", stats.pareto(b=2.5, scale=0.005)),
])
def test_random_delays_follow_their_law(spec, law):
    x = draws(spec)
    assert stats.kstest(x, law.cdf).pvalue > 1e-3
    # and not some other law: a 20% wrong scale is rejected
    wrong = law.dist(*law.args, **{**law.kwds, "scale": law.kwds["scale"] * 1.2})
    assert stats.kstest(x, wrong.cdf).pvalue < 1e-3


def test_exp_mean_and_lognormal_median():
    assert abs(draws("exp:mean=0.02").mean() - 0.02) < 4 * 0.02 / math.sqrt(STEPS * WORKERS)
    assert abs(np.median(draws("lognormal:median=0.01,sigma=0.5")) / 0.01 - 1) < 0.05
    assert draws("pareto:scale=0.005,alpha=2.5").min() >= 0.005


def test_same_seed_same_delays_in_every_call_and_worker_independent_of_caller():
    a, b = parse_straggler("exp:mean=1", 3), parse_straggler("exp:mean=1", 3)
    np.testing.assert_array_equal(a.delays(5, np.zeros(8)), b.delays(5, np.zeros(8)))
    assert not np.array_equal(a.delays(5, np.zeros(8)), a.delays(6, np.zeros(8)))
    assert not np.array_equal(a.delays(5, np.zeros(8)), parse_straggler("exp:mean=1", 4).delays(5, np.zeros(8)))


def test_slow_ranks_fixed_delay_and_factor():
    compute = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(parse_straggler("slow:ranks=2+4,delay=0.05", 0).delays(3, compute),
                               [0, 0, 0.05, 0, 0.05])
    # factor 5: compute takes 5x as long, so the extra delay is 4x the measured compute
    np.testing.assert_allclose(parse_straggler("slow:ranks=1,factor=5", 0).delays(0, compute), [0, 0.8, 0, 0, 0])


def test_trace_is_replayed_cyclically(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("w0,w1,w2\n0.1,0.2,0.3\n0.4,0.5,0.6\n")
    model = parse_straggler(f"trace:{path}", 0)
    np.testing.assert_allclose(model.delays(0, np.zeros(3)), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(model.delays(3, np.zeros(2)), [0.4, 0.5])
    with pytest.raises(ConfigError, match="4 workers"):
        model.check_world(4)


@pytest.mark.parametrize("spec,fix", [
    ("gamma:mean=1", "unknown straggler kind"),
    ("slow:delay=1", "needs ranks"),
    ("slow:ranks=1", "exactly one of delay"),
    ("slow:ranks=a,delay=1", "integers"),
    ("slow:ranks=1,factor=0.5", "factor must be >= 1"),
    ("exp:mean=-1", ">= 0"),
    ("exp:mu=1", "unknown key"),
    ("exp", "needs mean"),
    ("lognormal:median=0,sigma=1", "median must be > 0"),
    ("pareto:scale=1,alpha=0", "alpha must be > 0"),
    ("trace:/nonexistent.csv", "not found"),
    ("none:x=1", "no parameters"),
])
def test_bad_specs_name_the_fix(spec, fix):
    with pytest.raises(ConfigError, match=fix):
        parse_straggler(spec, 0)


def test_rank_outside_world():
    with pytest.raises(ConfigError, match="outside the world of 4"):
        parse_straggler("slow:ranks=4,delay=1", 0).check_world(4)


PHASED = "phases:exp:mean=0.01@0-5;pareto:scale=0.02,alpha=2@5-9;slow:ranks=1,delay=0.5@9-"


def test_phases_draw_each_models_own_delays_and_switch_at_the_named_steps():
    phased = parse_straggler(PHASED, seed=11)
    laws = [("exp:mean=0.01", range(0, 5)), ("pareto:scale=0.02,alpha=2", range(5, 9)),
            ("slow:ranks=1,delay=0.5", range(9, 14))]
    compute = np.full(WORKERS, 0.05)
    for spec, steps in laws:
        alone = parse_straggler(spec, seed=11)
        for t in steps:  # bit-identical to the phase's model drawn alone at that step
            np.testing.assert_array_equal(phased.delays(t, compute), alone.delays(t, compute))
    assert phased.delays(4, compute).min() < 0.02 <= phased.delays(5, compute).min()  # pareto's minimum is its scale


def test_phases_check_every_models_world():
    with pytest.raises(ConfigError, match="outside the world of 2 workers"):
        parse_straggler("phases:none@0-3;slow:ranks=4,delay=1@3-", 0).check_world(2)


@pytest.mark.parametrize("spec,fix", [
    ("phases:exp:mean=0.01@0-5;none@6-", "it must start at 5"),
    ("phases:exp:mean=0.01@1-5;none@5-", "it must start at 0"),
    ("phases:exp:mean=0.01@0-5;none@5-9", "only the last phase is open-ended"),
    ("phases:exp:mean=0.01@0-;none@5-", "only the last phase is open-ended"),
    ("phases:exp:mean=0.01", "needs SPEC@FIRST-END"),
    ("phases:exp:mean=0.01@a-5;none@5-", "steps must be integers"),
    ("phases:exp:mean=0.01@3-3;none@3-", "it must start at 0"),
    ("phases:none@0-0;none@0-", "is empty"),
    ("phases:phases:none@0-@0-", "do not nest"),
    ("phases:exp:mena=1@0-", "unknown key 'mena'"),
])
def test_bad_phases_name_the_fix(spec, fix):
    with pytest.raises(ConfigError, match=fix):
        parse_straggler(spec, 0)
