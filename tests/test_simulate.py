"""Simulator checks against closed forms: exponential and Pareto order statistics, the network formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from backupsgd.errors import ConfigError
from backupsgd.sim import NetConfig, SimConfig, predict_step_time, simulate
from backupsgd.sim.cli import simulate_command
from backupsgd.sim.recommend import progress_per_step

NO_NET = NetConfig(model_mb=0, latency_us=0)


def _exp_order_stat(mean: float, p: int, n: int) -> tuple[float, float]:
    """Mean and variance of the n-th smallest of p exponentials (Renyi: sum of independent spacings)."""
    terms = [1 / i for i in range(p - n + 1, p + 1)]
    return mean * sum(terms), mean**2 * sum(t * t for t in terms)


def _pareto_order_stat(scale: float, alpha: float, p: int, n: int) -> float:
    """E of the n-th smallest of p classical Pareto(scale, alpha): scale * E[U_(p-n+1)^(-1/alpha)]."""
    j = p - n + 1
    lg = math.lgamma
    return scale * math.exp(lg(p + 1) + lg(j - 1 / alpha) - lg(j) - lg(p + 1 - 1 / alpha))


@pytest.mark.parametrize("p,n", [(10, 1), (10, 7), (16, 16), (50, 25), (50, 45)])
def test_backup_matches_exponential_order_statistic(p, n):
    steps, mean = 3000, 0.02
    pred = predict_step_time("backup", p, p - n, f"exp:mean={mean}", 0.0, NO_NET, steps=steps, seed=3)
    expected, var = _exp_order_stat(mean, p, n)
    assert pred.n == n and pred.workers == p
    assert abs(pred.step_s - expected) < 4 * math.sqrt(var / steps)


@pytest.mark.parametrize("p", [1, 8, 64])
def test_sync_matches_expected_maximum(p):
    steps, mean = 3000, 0.02
    pred = predict_step_time("sync", p, 0, f"exp:mean={mean}", 0.0, NO_NET, steps=steps, seed=5)
    harmonic = sum(1 / i for i in range(1, p + 1))
    se = mean * math.sqrt(sum(1 / i**2 for i in range(1, p + 1)) / steps)
    assert abs(pred.step_s - mean * harmonic) < 4 * se


def test_network_costs_equal_the_formulas():
    p, b, k, compute = 37, 5, 3, 0.01
    net = NetConfig(model_mb=7.5, bandwidth_gbps=25, latency_us=12, servers=k)
    m_bytes, bw, a = 7.5 * 2**20, 25e9 / 8, 12e-6
    ring = 2 * (p - 1) * a + 2 * (p - 1) / p * m_bytes / bw
    expected = {
        ("sync", 0): compute + ring,
        ("backup", b): compute + 2 * a + ring,
        ("ps-sync", 0): compute + 2 * p * m_bytes / (k * bw) + 2 * a,
        ("ps-backup", b): compute + ((p - b) + p) * m_bytes / (k * bw) + 2 * a,
    }
    for (mode, backups), want in expected.items():
        pred = predict_step_time(mode, p, backups, "none", compute, net, steps=5)
        assert pred.step_s == pytest.approx(want, rel=1e-12), mode
        assert pred.step_p50_s == pytest.approx(want, rel=1e-12) and pred.step_p95_s == pytest.approx(want, rel=1e-12)


def test_ps_async_single_worker_and_saturated_server():
    net = NetConfig(model_mb=4, bandwidth_gbps=1, latency_us=100, servers=2)
    shard_s, a, compute = 2 * 2**20 / (1e9 / 8), 100e-6, 0.002
    alone = predict_step_time("ps-async", 1, 0, "none", compute, net, steps=20)
    assert alone.step_s == pytest.approx(compute + 2 * a + 2 * shard_s, rel=1e-12)
    assert alone.staleness_mean == 0 and alone.n == 1
    # 200 workers push far faster than one server link drains: one update per shard transfer
    p, steps = 200, 30
    busy = predict_step_time("ps-async", p, 0, "none", compute, net, steps=steps)
    assert busy.step_s == pytest.approx(shard_s, rel=1e-9)
    assert busy.grads_per_s == pytest.approx(1 / shard_s, rel=1e-9)
    # round robin: every push after the first round saw the other P-1 applied first
    assert (p - 1) * (1 - 1 / (steps - 1)) <= busy.staleness_mean <= p - 1


def test_slow_rank_is_dropped_by_backup_but_not_by_sync():
    spec, compute = "slow:ranks=3,delay=1.0", 0.05
    assert predict_step_time("backup", 8, 1, spec, compute, NO_NET, steps=4).step_s == pytest.approx(compute)
    assert predict_step_time("sync", 8, 0, spec, compute, NO_NET, steps=4).step_s == pytest.approx(compute + 1.0)


def test_same_seed_same_output_other_seed_differs():
    def run(seed):
        config = SimConfig(workers=(20, 60), backups=(0, 3), straggler="lognormal:median=0.01,sigma=1", steps=50,
                           seed=seed, objective="time-to-accuracy", noise_scale=30)
        return json.dumps(simulate(config).as_json(config))

    assert run(1) == run(1)
    assert run(1) != run(2)
    runner = CliRunner()
    args = ["--workers", "30", "--backups", "0,2", "--steps", "40", "--seed", "9"]
    assert runner.invoke(simulate_command, args).output == runner.invoke(simulate_command, args).output


def test_recommends_no_backups_without_stragglers():
    config = SimConfig(workers=(64,), backups=(0, 1, 4, 16), straggler="none", steps=5)
    (best,) = simulate(config).best
    assert (best.prediction.mode, best.prediction.backups) == ("sync", 0)


def test_recommends_backups_under_pareto_tail_as_the_exact_expectation_does():
    p, scale, alpha, compute, backups = 100, 0.01, 2.0, 0.05, (0, 2, 10, 40)
    net = NetConfig()
    config = SimConfig(workers=(p,), backups=backups, modes=("backup",), straggler=f"pareto:scale={scale},alpha={alpha}",
                       compute_s=compute, steps=400, seed=11, net=net)
    result = simulate(config)
    ring = 2 * (p - 1) * 50e-6 + 2 * (p - 1) / p * 10 * 2**20 / 1.25e9
    exact = {b: (p - b) / (compute + _pareto_order_stat(scale, alpha, p, p - b) + ring + 100e-6) for b in backups}
    assert max(exact, key=exact.get) == 10  # sanity: the oracle itself prefers backups here
    assert result.best[0].prediction.backups == max(exact, key=exact.get)
    for pred in result.predictions:
        if pred.backups:  # with b >= 1 the order statistic has finite variance: the mean must agree
            assert pred.grads_per_s == pytest.approx(exact[pred.backups], rel=0.05)


def test_time_to_accuracy_objective_follows_the_noise_model():
    base = dict(workers=(50,), backups=(0, 5, 20), modes=("backup",), straggler="exp:mean=0.02", steps=300)
    # no gradient noise: any batch makes full progress, so the fastest step (most backups) wins
    small = simulate(SimConfig(**base, objective="time-to-accuracy", noise_scale=0))
    assert small.best[0].prediction.backups == 20
    # huge noise scale: progress is proportional to N, so it agrees with grads-per-s
    big = simulate(SimConfig(**base, objective="time-to-accuracy", noise_scale=1e9))
    gps = simulate(SimConfig(**base, objective="grads-per-s"))
    assert big.best[0].prediction.backups == gps.best[0].prediction.backups
    for c in simulate(SimConfig(**base, objective="time-to-accuracy", noise_scale=40)).ranking:
        n = c.prediction.n
        assert c.time_to_accuracy_s == pytest.approx(c.prediction.step_s * (n + 40) / n)
    assert progress_per_step(10, 30) == 0.25


def test_cli_prints_table_and_writes_json(tmp_path):
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(simulate_command, ["--workers", "20,40", "--backups", "0,2", "--steps", "20",
                                                   "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[:4] == ["mode", "P", "b", "N"]
    assert result.output.count("recommendation for P=") == 2
    data = json.loads(out.read_text())
    assert {"mode", "workers", "backups", "N", "step_s", "step_p50_s", "step_p95_s", "grads_per_s"} <= set(data["rows"][0])
    assert "staleness_mean" in next(r for r in data["rows"] if r["mode"] == "ps-async")
    assert [b["workers"] for b in data["recommendation"]["best"]] == [20, 40]


@pytest.mark.parametrize(
    "args, fix",
    [
        (["--workers", "10", "--backups", "0,10"], "--backups"),
        (["--workers", "ten"], "--workers"),
        (["--compute-s", "-1"], "--compute-s"),
        (["--latency-us", "-5"], "--latency-us"),
        (["--steps", "0"], "--steps"),
        (["--modes", "sync,bogus"], "--modes"),
        (["--straggler", "exp:mean=x"], "not a number"),
        (["--straggler", "weird"], "--straggler"),
        (["--workers", "8", "--straggler", "slow:ranks=9,delay=1"], "ranks 0..7"),
        (["--objective", "time-to-accuracy"], "--noise-scale"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, fix):
    result = CliRunner().invoke(simulate_command, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fix in lines[0], result.output
    assert isinstance(result.exception, SystemExit)


def test_bad_direct_calls_raise_config_error():
    with pytest.raises(ConfigError, match="backups"):
        predict_step_time("sync", 8, 2, "none", 0.1, NO_NET)
    with pytest.raises(ConfigError, match="bandwidth"):
        NetConfig(bandwidth_gbps=0)
    assert np.isfinite(predict_step_time("ps-async", 1, 0, "none", 0.0, NO_NET, steps=1).step_s)
