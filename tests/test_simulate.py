"""Simulator checks against closed forms: order statistics (restart model), a Markov chain and a hand-worked
schedule (carry-over model), the network formulas, and the calibration's fits."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from backupsgd.errors import ConfigError
from backupsgd.sim import NetConfig, SimConfig, predict_step_time, simulate
from backupsgd.sim.calibrate import Measured, as_measured, calibrate
from backupsgd.sim.cli import simulate_command
from backupsgd.sim.model import schedule
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


def _carry_over_moments(mean: float, p: int, n: int) -> tuple[float, float]:
    """Mean and variance of a carry-over step with exponential delays, no compute and a free network.

    Memorylessness makes every step after the first alike: at a decision the b = P - n late workers
    are each still on a stale step with an Exp(mean) remainder, and the n members start afresh. A late
    worker must finish (rate 1/mean) and then compute the new step (rate 1/mean again); the step ends
    at the n-th offer. State (s stale, f fresh, d offered): leave after Exp with rate (s + f)/mean.
    """
    @functools.cache
    def moments(s: int, f: int, d: int) -> tuple[float, float]:  # E[T], E[T^2] from this state
        if d == n:
            return 0.0, 0.0
        rate = (s + f) / mean
        m1 = m2 = 0.0
        for prob, nxt in ((s / (s + f), (s - 1, f + 1, d)), (f / (s + f), (s, f - 1, d + 1))):
            if prob:
                r1, r2 = moments(*nxt)
                m1 += prob * r1
                m2 += prob * (r2 + 2 * r1 / rate)
        return 1 / rate + m1, 2 / rate**2 + m2

    m1, m2 = moments(p - n, n, 0)
    return m1, m2 - m1 * m1


@pytest.mark.parametrize("p,n", [(10, 1), (10, 7), (16, 16), (50, 25), (50, 45)])
def test_restart_backup_matches_exponential_order_statistic(p, n):
    steps, mean = 3000, 0.02
    pred = predict_step_time("backup", p, p - n, f"exp:mean={mean}", 0.0, NO_NET, steps=steps, seed=3, restart=True)
    expected, var = _exp_order_stat(mean, p, n)
    assert pred.n == n and pred.workers == p
    assert abs(pred.step_s - expected) < 4 * math.sqrt(var / steps)


@pytest.mark.parametrize("p,n", [(2, 1), (10, 7), (16, 16), (50, 25), (50, 45)])
def test_carry_over_backup_matches_the_markov_chain(p, n):
    steps, mean = 3000, 0.02
    pred = predict_step_time("backup", p, p - n, f"exp:mean={mean}", 0.0, NO_NET, steps=steps, seed=3)
    expected, var = _carry_over_moments(mean, p, n)
    first, _ = _exp_order_stat(mean, p, n)  # step 0: nobody is late yet
    assert abs(pred.step_s - (first + (steps - 1) * expected) / steps) < 4 * math.sqrt(var / steps)
    if n < p:  # late workers are late again: slower than the restart model's order statistic
        assert expected > first


def test_carry_over_matches_a_hand_worked_schedule():
    # P = 3, N = 2, exchange 1 s; times[t][i]: what worker i takes if it computes step t.
    times = np.array([[10.0, 2, 3], [1, 4, 2], [1, 3, 5], [2, 1, 6]])
    plan = schedule(times, 2, 1.0)
    # step 0: all start at 0, offers (10, 2, 3); decided at 3 (2nd offer), applied at 4; worker 0 is
    #   late and stays on step 0 until 10.
    # step 1: workers 1, 2 start at 4: offers (-, 8, 6); decided at 8, applied at 9. Worker 0, busy
    #   until 10, never sees step 1.
    # step 2: workers 1, 2 start at 9, worker 0 at 10 (its stale step done, step 1 already decided):
    #   offers (11, 12, 14); decided at 12, applied at 13; worker 2 is late, until 14.
    # step 3: workers 0, 1 start at 13, worker 2 at 14: offers (15, 14, 20); decided at 15, applied at 16.
    np.testing.assert_array_equal(plan.applied_s, [4, 9, 13, 16])
    np.testing.assert_array_equal(plan.step_s, [4, 5, 4, 3])
    # worker 0 applies steps 0 and 1 when its stale step ends at 10, then 2 and 3 on time
    np.testing.assert_array_equal(plan.observed_s, [10, 10, 13, 16])
    # restarting every step, each step is the 2nd smallest of its row plus the exchange
    np.testing.assert_array_equal(schedule(times, 2, 1.0, restart=True).step_s, [4, 3, 4, 3])
    # read as the report reads a run with an evaluation every 2 steps: the gap into step 2 is left out
    assert as_measured(plan.observed_s, 2) == pytest.approx((0 + 3) / 2)


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
    # the exact expectation is the restart model's: every step an independent order statistic
    p, scale, alpha, compute, backups = 100, 0.01, 2.0, 0.05, (0, 2, 10, 40)
    net = NetConfig()
    config = SimConfig(workers=(p,), backups=backups, modes=("backup",),
                       straggler=f"pareto:scale={scale},alpha={alpha}", compute_s=compute, steps=400, seed=11, net=net,
                       restart=True)
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
    assert {"mode", "workers", "backups", "N", "step_s", "step_p50_s", "step_p95_s",
            "grads_per_s"} <= set(data["rows"][0])
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
        (["--ranks-per-node", "0"], "--ranks-per-node"),
        (["--step-overhead-ms", "-1"], "--step-overhead-ms"),
        (["--backups", "0,two"], "--backups auto,0,2,4; got 'two'"),
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


def test_calibration_fits_each_family_on_seeds_0_and_1_alone():
    # No stragglers: a sync step is compute + exchange overhead. ps-async's 4 workers run in lockstep,
    # each iteration compute + a round trip (nothing queues), so 4 updates land per iteration: with
    # 401 updates the 400 gaps span 100 iterations.
    c, sync_o, async_o = 0.004, 0.003, 0.002
    runs = [Measured(f"sync{s}", "sync", 4, 0, "none", s, 50, 1, c, c + sync_o) for s in range(3)]
    runs += [Measured(f"async{s}", "ps-async", 4, 0, "none", s, 401, 1, c, (c + async_o) / 4) for s in range(3)]
    runs.append(Measured("backup", "backup", 4, 1, "none", 0, 50, 1, c, 2 * (c + sync_o)))
    cal = calibrate(runs)
    assert cal.overhead_s == {(4, "ps-async"): pytest.approx(async_o), (4, "sync"): pytest.approx(sync_o)}
    assert cal.fitted_on == {(4, "ps-async"): "ps-async runs, seeds 0-1", (4, "sync"): "sync runs, seeds 0-1"}
    assert {r.run.name for r in cal.rows if r.in_sample} == {"sync0", "sync1", "async0", "async1"}
    # seed 2 of each is predicted out of sample, exactly; backup takes sync's overhead, and is 2x off here
    errors = {r.run.name: r.error for r in cal.rows if not r.in_sample}
    assert errors == {"sync2": pytest.approx(0, abs=1e-9), "async2": pytest.approx(0, abs=1e-9),
                      "backup": pytest.approx(-0.5)}
    assert cal.within(out_of_sample=True) == (2, 3)


def test_cli_restart_flag_changes_backup_rows_only():
    # a small gradient: with a slow exchange a late worker is done before the next step starts anyway
    def rows(*flags):
        args = ["--workers", "12", "--backups", "0,3", "--steps", "60", "--model-mb", "0.01", *flags]
        out = CliRunner().invoke(simulate_command, args).output
        return {tuple(line.split()[:3]): line for line in out.splitlines()[1:] if not line.startswith("recommendation")}

    carry, restart = rows(), rows("--restart")
    assert carry.keys() == restart.keys()
    for key in carry:  # only a mode that drops late workers can carry a stale step over
        assert (carry[key] == restart[key]) == (key[0] not in ("backup", "ps-backup") or key[2] == "0"), key


def test_half_duplex_links_slow_the_ring_not_the_servers_and_few_workers_are_bound_by_their_own_links():
    from backupsgd.sim.network import ps_transfer_s, ring_allreduce_s

    m_bytes, bw = 4 * 2**20, 1e9 / 8
    full, half = NetConfig(model_mb=4, bandwidth_gbps=1, latency_us=0), NetConfig(model_mb=4, bandwidth_gbps=1,
                                                                                   latency_us=0, duplex=0.5)
    assert ring_allreduce_s(4, half) == pytest.approx(2 * ring_allreduce_s(4, full), rel=1e-12)
    assert ring_allreduce_s(4, full) == pytest.approx(1.5 * m_bytes / bw, rel=1e-12)
    assert ps_transfer_s(4, 4, half) == ps_transfer_s(4, 4, full) == pytest.approx(8 * m_bytes / bw, rel=1e-12)
    # 2 workers, 4 servers: a server takes 2 quarter shards, but each worker sends its whole M through its link
    four = NetConfig(model_mb=4, bandwidth_gbps=1, latency_us=0, servers=4)
    assert ps_transfer_s(2, 2, four) == pytest.approx(2 * m_bytes / bw, rel=1e-12)
    with pytest.raises(ConfigError, match="--duplex"):
        NetConfig(duplex=0)


def test_ranks_packed_on_nodes_make_the_allreduce_hierarchical_and_share_the_workers_links():
    from backupsgd.sim.network import allreduce_s, ps_transfer_s, ring_allreduce_s

    m_bytes, bw, node_bw, a = 16 * 2**20, 1e9 / 8, 18e9 / 8, 7e-6
    flat = NetConfig(model_mb=16, bandwidth_gbps=1, latency_us=7)
    assert allreduce_s(4, flat) == ring_allreduce_s(4, flat)  # r = 1: the flat ring, as before
    # 2 nodes x 2 ranks: reduce to and broadcast from each node's leader in shared memory (one buffer in, one
    # out), then the 2 leaders' ring: M each way over the link, not the flat ring's 1.5 M
    two = NetConfig(model_mb=16, bandwidth_gbps=1, latency_us=7, ranks_per_node=2)
    assert allreduce_s(4, two) == pytest.approx(2 * m_bytes / node_bw + 2 * a + m_bytes / bw, rel=1e-12)
    # 3 nodes x 4 ranks, half duplex links: 6 buffers through each leader, a ring of 3 leaders at half the rate
    four = NetConfig(model_mb=16, bandwidth_gbps=1, latency_us=7, ranks_per_node=4, duplex=0.5)
    assert allreduce_s(12, four) == pytest.approx(6 * m_bytes / node_bw + 4 * a + 4 / 3 * m_bytes / (bw / 2),
                                                  rel=1e-12)
    # every rank on one node: shared memory only; a last node with fewer ranks still counts as a node
    assert allreduce_s(3, four) == pytest.approx(4 * m_bytes / node_bw, rel=1e-12)
    assert allreduce_s(5, four) == pytest.approx(6 * m_bytes / node_bw + 2 * a + m_bytes / (bw / 2), rel=1e-12)
    # parameter servers on nodes of their own: 2 workers per node push 2 M through their node's link
    ps4 = NetConfig(model_mb=16, bandwidth_gbps=1, latency_us=0, servers=4, ranks_per_node=2)
    assert ps_transfer_s(2, 2, ps4) == pytest.approx(2 * 2 * m_bytes / bw, rel=1e-12)
    with pytest.raises(ConfigError, match="--ranks-per-node"):
        NetConfig(ranks_per_node=0)
    with pytest.raises(ConfigError, match="--node-gbps"):
        NetConfig(node_gbps=0)


def test_the_step_overhead_adds_to_every_synchronous_step_once():
    from backupsgd.sim.model import exchange_time_s, predict_step_time

    base = NetConfig(model_mb=1, bandwidth_gbps=1, latency_us=10)
    more = NetConfig(model_mb=1, bandwidth_gbps=1, latency_us=10, step_overhead_ms=4)
    for mode, n in (("sync", 4), ("backup", 3), ("ps-sync", 4), ("ps-backup", 3)):
        assert exchange_time_s(mode, 4, n, more) == pytest.approx(exchange_time_s(mode, 4, n, base) + 4e-3, abs=1e-12)
    # sync with a fixed compute time and no straggler: compute + ring + overhead, every step
    step = predict_step_time("sync", 4, 0, "none", 0.02, more, steps=5).step_s
    assert step == pytest.approx(0.02 + 6 * 10e-6 + 1.5 * 2**20 * 8 / 1e9 + 4e-3, rel=1e-12)
    with pytest.raises(ConfigError, match="--step-overhead-ms"):
        NetConfig(step_overhead_ms=-1)


def test_open_mpi_picks_the_algorithm_of_coll_tuned_fixed_decision_by_ranks_and_size():
    from backupsgd.sim.openmpi import tuned_algorithm

    # rows of ompi/mca/coll/tuned/coll_tuned_decision_fixed.c (v5.0.x), commutative allreduce
    assert tuned_algorithm(2, 4 * 2**20) == tuned_algorithm(8, 4 * 2**20) == "rabenseifner"  # the cluster's rows
    assert tuned_algorithm(3, 100_000) == "segmented_ring" and tuned_algorithm(3, 262_144) == "rabenseifner"
    assert tuned_algorithm(2, 4) == "ring" and tuned_algorithm(4, 4000) == "recursive_doubling"
    assert tuned_algorithm(100, 68_891) == "recursive_doubling"  # the digits MLP's gradient at P = 100
    assert tuned_algorithm(300, 68_891) == tuned_algorithm(1000, 68_891) == "rabenseifner"
    assert tuned_algorithm(200, 100_000) == "nonoverlapping" and tuned_algorithm(5000, 20_000) == "recursive_doubling"


def test_open_mpis_allreduce_over_tcp_runs_exchanges_with_one_peer_half_duplex_above_the_eager_limit():
    from backupsgd.sim.network import allreduce_s, ring_allreduce_s

    m_bytes, bw, a, e = 4 * 2**20, 1e9 / 8, 6.6e-6, 65536
    net = NetConfig(model_mb=4, bandwidth_gbps=1, latency_us=6.6, allreduce="openmpi")

    def pair(s):  # a Sendrecv of s bytes with one peer by rendezvous: E together, the rests one after the other
        return (2 * s - e) / bw + 3 * a

    # Rabenseifner on 2, 4, 8 ranks: 2 exchanges of M/2, M/4, ... M/P with one peer
    assert allreduce_s(2, net) == pytest.approx(2 * pair(m_bytes / 2), rel=1e-12)
    assert allreduce_s(4, net) == pytest.approx(2 * pair(m_bytes / 2) + 2 * pair(m_bytes / 4), rel=1e-12)
    assert allreduce_s(8, net) == pytest.approx(2 * sum(pair(m_bytes / 2**k) for k in (1, 2, 3)), rel=1e-12)
    # 3 ranks: rank 1 swaps halves with rank 0, sends it its reduced half, then 2 ranks halve and double, and
    # rank 0 sends rank 1 the whole result
    assert allreduce_s(3, net) == pytest.approx(3 * pair(m_bytes / 2) + (m_bytes / 2 + m_bytes) / bw + 6 * a,
                                                rel=1e-12)
    # measured on the namespace cluster at 1 Gbit/s, one rank per node, quiet (results/cluster, 2026-12-01):
    # 66.1-66.6, 99.5-100.3, 116.9-119.9 ms and 3 ranks 156-157 ms; the ring predicts half of each
    for p, measured_ms in ((2, 66.4), (3, 156.5), (4, 99.8), (8, 117.0)):
        assert measured_ms / 1e3 == pytest.approx(allreduce_s(p, net), rel=0.15)
        assert measured_ms / 1e3 > 1.5 * ring_allreduce_s(p, net)
    # messages at or under the eager limit go at once both ways, as in the ring: 4 ranks of 128 KiB at half duplex
    small = NetConfig(model_mb=0.125, bandwidth_gbps=1, latency_us=6.6, allreduce="openmpi", duplex=0.5)
    half = 2**17 / 2 / (bw * 0.5)
    assert allreduce_s(4, small) == pytest.approx(2 * (half + a) + 2 * (half / 2 + a), rel=1e-12)
    # the ring (tuned's choice for tiny messages) sends to one neighbour and receives from the other; with 2
    # ranks both are one peer
    tiny = NetConfig(model_mb=4 / 2**20, bandwidth_gbps=1, latency_us=6.6, allreduce="openmpi")
    assert allreduce_s(3, tiny) == pytest.approx(ring_allreduce_s(3, tiny), rel=1e-12)
    # recursive doubling on 100 ranks of the digits MLP (68,891 bytes, just over E): 6 exchanges of M with one
    # peer among 64, the 36 others folded in and out by a one-way send of M each
    mlp = NetConfig(model_mb=0.0657, bandwidth_gbps=1, latency_us=6.6, allreduce="openmpi")
    assert allreduce_s(100, mlp) == pytest.approx(6 * pair(mlp.bytes) + 2 * (mlp.bytes / bw + 3 * a), rel=1e-12)


def test_ranks_packed_on_nodes_keep_the_hierarchy_whichever_allreduce_runs_among_single_ranks():
    from backupsgd.sim.network import allreduce_s

    ring = NetConfig(model_mb=16, bandwidth_gbps=1, latency_us=7, ranks_per_node=2)
    assert allreduce_s(4, replace(ring, allreduce="openmpi")) == allreduce_s(4, ring)  # HAN, not tuned, across nodes
    with pytest.raises(ConfigError, match="--allreduce must be one of ring, openmpi"):
        NetConfig(allreduce="tree")
    out = CliRunner().invoke(simulate_command, ["--workers", "4", "--modes", "sync", "--model-mb", "4", "--allreduce",
                                                "openmpi", "--bandwidth-gbps", "1", "--latency-us", "0",
                                                "--compute-s", "0", "--straggler", "none"]).output
    sync = next(line for line in out.splitlines() if line.split()[:1] == ["sync"])
    assert sync.split()[4] == "98.57"  # (3 - 1/16) x 33.55 ms: Rabenseifner at 1 Gbit/s, no latency
