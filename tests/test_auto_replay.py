"""`--backups auto` in the simulator: its replay makes the policy's choices for the same arrivals, counts what the
coordinator's WorkerWatch counts (late arrivals, floors, busy and deep workers) from the same messages, and the
`backupsgd simulate` rows and errors under auto. The policy alone is tests/test_adaptive.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from backupsgd.adaptive import AutoPolicy
from backupsgd.auto_spec import AutoSpec
from backupsgd.sim import NetConfig, SimConfig, simulate
from backupsgd.sim.auto import replay_auto
from backupsgd.sim.cli import simulate_command
from backupsgd.sim.model import compute_times, schedule
from backupsgd.straggler import parse_straggler
from backupsgd.worker_watch import WorkerWatch

NO_NET = NetConfig(model_mb=0, latency_us=0)


def _times(spec: str, workers: int, steps: int, seed: int = 0) -> np.ndarray:
    return compute_times(parse_straggler(spec, seed), workers, 0.05, steps)


@pytest.mark.parametrize("rule", ["progress", "dbw"])
def test_simulator_replay_makes_the_policys_choices_for_the_same_arrivals(rule):
    times = _times("pareto:scale=0.01,alpha=1.5", 16, 300)
    spec = AutoSpec(rule=rule, window=10, probe_every=7)
    trace = replay_auto(times, spec, "ps-backup", NetConfig(model_mb=1, latency_us=100), batch=1, noise_scale=3.0)
    assert len(set(trace.n.tolist())) > 1  # N really changes along the run
    policy = AutoPolicy(spec, 16)
    direct = []
    for arrivals, busy, deep, late, floors, exchange, whole in zip(trace.arrivals, trace.busy, trace.deep, trace.late,
                                                                  trace.floors, trace.exchange, trace.step_s):
        direct.append(policy.choose(busy, deep))
        policy.observe(arrivals, 3.0, late, floors=floors)
        policy.exchanged(direct[-1], exchange, whole)
    assert direct == trace.n.tolist()
    # all four inputs really occur under this tail
    assert trace.busy.any() and trace.deep.any() and any(len(x) for x in trace.late)
    assert any(len(x) for x in trace.floors)
    assert np.all(trace.n <= 16 - trace.deep)  # no step waits for a worker deep in a delay
    assert [len(a) for a in trace.arrivals] == direct  # the coordinator sees exactly N arrivals


def test_a_paused_steps_arrivals_and_its_late_readys_are_not_learnt():
    """Closed form: after steps whose arrivals were 0.1-0.4 s, a step every rank began 0.8 s late (an evaluation)
    and the late READYs of it that come with the next step change no E[T_(k)]; learnt from, they lift T_(3) and
    T_(4) by half."""
    def fed(paused: bool) -> np.ndarray:
        policy = AutoPolicy(AutoSpec(window=4, margin=0.0, probe_every=0), 4)
        for _ in range(3):
            policy.observe([0.1, 0.2, 0.3, 0.4], 2.0)
        policy.observe([0.9], 2.0, paused=paused)  # decided at N = 1, its first READY 0.8 s late
        policy.observe([0.1, 0.2], 2.0, late=[1.0, 1.1])  # that step's late READYs, timed with its pause
        return policy.arrivals.expected()

    np.testing.assert_allclose(fed(paused=True), [0.1, 0.2, 0.3, 0.4])
    # learnt (EMA weight 0.4): the late READYs extend the paused step's [0.9] to [0.9, 1.0, 1.1], so T_(3) takes
    # 1.1, and T_(4), kept at least T_(3), follows
    learnt = fed(paused=False)
    np.testing.assert_allclose(learnt[2:], [0.3 + 0.4 * (1.1 - 0.3)] * 2)


def test_a_dropped_workers_late_arrival_counts_its_own_compute_not_the_lag_it_carries():
    """P = 3, N = 2 throughout, no network: workers 0 and 1 compute for 0.1 s, worker 2 for 0.15 s, so step t
    starts at 0.1 t. Dropped every step, worker 2 begins each step where its previous one ended: its READYs come
    0.15 s into step 0, 0.2 s into step 1 (both before the next decision, so fed as `late`), 0.25 s into step 2
    (after step 3's decision: never fed; it sits step 3 out), and 0.2 s into step 4. Waiting for it would take
    0.15 s every step, which is what `late` says each time, and so E[T_(3)]; counted from the step's start the late
    arrivals would say 0.15, 0.2, 0.2 and grow with every step it carries a lag. At step 3's decision (0.4 s) it has
    computed step 2 for 0.1 s, since its READY for step 1 at 0.3 s: that is its floor (0.2 s counted from step 2's
    start, above the 0.15 it takes)."""
    steps = 6
    times = np.tile([0.1, 0.1, 0.15], (steps, 1))
    spec = AutoSpec(min_backups=1, max_backups=1, probe_every=0)  # N = 2 at P = 3
    trace = replay_auto(times, spec, "backup", NO_NET, batch=1, noise_scale=1.0)
    assert trace.n.tolist() == [2] * steps
    assert [len(x) for x in trace.late] == [0, 1, 1, 0, 0, 1]  # fed at steps 1, 2, 5: step 0's, 1's, 4's
    assert [x.tolist() for x in trace.floors] == [[], [], [], [pytest.approx(0.1)], [], []]
    assert trace.busy.tolist() == [0, 1, 1, 1, 1, 1]  # still on its previous step whenever one starts
    assert all(late[0] == pytest.approx(0.15) for late in trace.late if len(late))
    policy = AutoPolicy(spec, 3)
    for arrivals, late, floors in zip(trace.arrivals, trace.late, trace.floors):
        policy.observe(arrivals, 1.0, late, floors=floors)
    np.testing.assert_allclose(policy.arrivals.expected(), [0.1, 0.1, 0.15])
    # the coordinator's WorkerWatch, fed the messages of that run in the order they come, hands the policy the same
    watch, censored = WorkerWatch(3), []
    offers_of_2 = {1: [(0, 0.15)], 2: [(1, 0.3)], 4: [(2, 0.45)], 5: [(4, 0.6)]}  # heard by step t's decision
    for t in range(steps):
        for step, when in offers_of_2.get(t, []):
            watch.heard(2, step, when, 0.15)
        watch.heard(0, t, 0.1 * t + 0.1, 0.1)
        watch.heard(1, t, 0.1 * t + 0.1, 0.1)
        censored.append(watch.decided(t, 0.1 * t, {0, 1}, [0.0, 0.0], now=0.1 * t + 0.1))
    assert [c.late for c in censored] == [pytest.approx(x.tolist()) for x in trace.late]
    assert [c.floors for c in censored] == [pytest.approx(x.tolist()) for x in trace.floors]


def test_readys_in_time_but_past_n_are_handed_on_as_arrivals_past_n_not_left_to_the_floors():
    """P = 3, N = 1: step 0 starts at 0, rank 0's READY comes at 0.1 s and rank 1's at 0.12 s, both before the decision
    at 0.13 s (drained together); rank 2 is silent. Rank 1's READY is T_(2) of step 0, handed on with step 1's
    decision as a late READY (its compute 0.12 s plus the members' start lag, 0): so E[T_(2)] is 0.12 s. Had it been
    left out, rank 2's floor (0.31 s, silent since step 0 began) would have been the second of the sample that
    bounds step 0's T_(2) from below."""
    watch = WorkerWatch(3)
    watch.heard(0, 0, 0.1, 0.1)
    watch.heard(1, 0, 0.12, 0.12)
    assert watch.decided(0, 0.0, {0, 1}, [0.0], now=0.13, unchosen=[(0.12, 0.12)]) == ([], [])
    watch.heard(0, 1, 0.3, 0.1)
    censored = watch.decided(1, 0.2, {0}, [0.0], now=0.31)
    assert censored.late == [pytest.approx(0.12)] and censored.floors == [pytest.approx(0.31)]
    policy = AutoPolicy(AutoSpec(min_backups=0, max_backups=2, probe_every=0), 3)
    policy.observe([0.1], 1.0)
    policy.observe([0.1], 1.0, censored.late, floors=censored.floors)
    np.testing.assert_allclose(policy.arrivals.expected()[:2], [0.1, 0.12])


def test_busy_and_deep_workers_counted_alike_by_the_simulator_and_the_coordinator():
    """P = 3, N = 2, every compute 0.1 s but worker 2's first (0.45 s), no network, a fixed overhead of 0.025 s in
    the policy: steps start at 0.1 t, and a worker silent for longer than 2 (E[T_(2)] + 0.025) = 0.25 s is deep.
    Worker 2 is busy from step 1 on: first deep in its long step (silent since 0 at steps 3 and 4, 0.3 and 0.4 s
    in), then, its READY for step 0 in at 0.45 s, only a lagging one (0.05 s behind, heard from every step: busy,
    never deep). Its silence gives floors of 0.2, 0.3, 0.4 s at the decisions of steps 1-3 (computing since 0);
    its READY for step 0, long after that step's decision, is no late arrival; those for steps 4 and 5 are (0.1 s).
    The coordinator's WorkerWatch, fed the messages of that run in the order they come, counts the same."""
    steps = 7
    times = np.full((steps, 3), 0.1)
    times[0, 2] = 0.45
    spec = AutoSpec(min_backups=1, max_backups=1, probe_every=0, overhead_s=0.025)
    trace = replay_auto(times, spec, "backup", NO_NET, 1, 1.0)
    assert trace.busy.tolist() == [0, 1, 1, 1, 1, 1, 1]
    assert trace.deep.tolist() == [0, 0, 0, 1, 1, 0, 0]

    watch, busy, deep, censored = WorkerWatch(3), [], [], []
    for t in range(steps):
        busy.append(len(watch.busy(set())))
        deep.append(len(watch.deep(set(), now=0.1 * t, after_s=2 * (0.1 + 0.025))))
        if t == 4:  # worker 2's READY for step 0, at 0.45 s: long after that step's decision, so not late
            watch.heard(2, 0, 0.45, 0.45)
        if t >= 5:  # its READY for step t - 1, at 0.1 t + 0.05: after that step's decision (late)
            watch.heard(2, t - 1, 0.1 * t + 0.05, 0.1)
        watch.heard(0, t, 0.1 * t + 0.1, 0.1)
        watch.heard(1, t, 0.1 * t + 0.1, 0.1)
        censored.append(watch.decided(t, 0.1 * t, {0, 1}, [0.0, 0.0], now=0.1 * t + 0.1))
    assert busy == trace.busy.tolist() and deep == trace.deep.tolist()
    late = [[]] * 5 + [[pytest.approx(0.1)]] * 2
    assert [x.tolist() for x in trace.late] == late == [c.late for c in censored]
    floors = [[], [pytest.approx(0.2)], [pytest.approx(0.3)], [pytest.approx(0.4)], [], [], []]
    assert [x.tolist() for x in trace.floors] == floors == [c.floors for c in censored]
    assert watch.deep({1}, now=0.7, after_s=float("nan")) == {1}  # a rank behind cannot offer either
    policy = AutoPolicy(spec, 3)
    policy.observe([0.1, 0.1], 1.0)
    assert policy.deep_after_s() == pytest.approx(0.25)


@pytest.mark.parametrize("restart", [False, True])
def test_auto_pinned_to_one_n_replays_as_the_static_schedule(restart):
    times = _times("exp:mean=0.02", 12, 200)
    trace = replay_auto(times, AutoSpec(min_backups=3, max_backups=3), "backup", NO_NET, 1, 2.0, restart)
    np.testing.assert_array_equal(trace.n, 9)
    np.testing.assert_allclose(trace.applied_s, schedule(times, 9, 0.0, restart).applied_s)


def test_auto_beats_every_static_b_when_the_regime_shifts():
    # 100 steps with 4 ranks 5x slow (the best N is 12), then none (the best N is P = 16, with this much noise;
    # auto's default bounds keep one backup, so it goes to 15 and still beats every static b over the run)
    spec = "phases:slow:ranks=0+1+2+3,factor=5@0-100;none@100-"
    config = SimConfig(workers=(16,), backups=(0, 2, 4, 6), modes=("backup",), straggler=spec, steps=300,
                       net=NO_NET, noise_scale=64.0, auto=(AutoSpec(),))
    rows = simulate(config).predictions
    auto = next(r for r in rows if r.backups == "auto")
    static = [r for r in rows if r.backups != "auto"]
    # a static row's progress per second is g(N) over its mean step
    for r in static:
        assert r.progress_per_s == pytest.approx(r.n / (r.n + 64.0) / r.step_s)
    assert auto.progress_per_s > max(r.progress_per_s for r in static)
    trace = replay_auto(_times(spec, 16, 300), AutoSpec(), "backup", NO_NET, 1, 64.0)
    probes = trace.n == 14  # a probe waits for two workers more
    # the slow ranks are dropped from the start: steps 0 and 1 wait for 2 (the noise scale's N), step 0's late
    # READYs (the other fast ranks', tied with its decision) show T_(12) at step 1's, and step 2 waits for 12
    assert trace.n[:2].tolist() == [2, 2] and np.all(trace.n[2:100][~probes[2:100]] == 12)
    assert np.all(trace.n[200:] == 15)  # a probe found the regime without stragglers, then N climbed to P - 1


def test_cli_reports_auto_rows_and_progress_per_s(tmp_path):
    out = tmp_path / "sim.json"
    args = ["--workers", "16", "--backups", "auto:min=0,max=4,auto-dbw,0,2", "--modes", "backup", "--steps", "50",
            "--noise-scale", "8", "--batch-size", "2", "--json", str(out)]
    result = CliRunner().invoke(simulate_command, args)
    assert result.exit_code == 0, result.output
    assert "progress/s" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["backups"] for r in rows] == [0, 2, "auto:min=0,max=4", "auto-dbw"]
    assert all(r["progress_per_s"] > 0 for r in rows)
    assert 12 <= rows[2]["N"] <= 16
    static = rows[0]
    assert static["progress_per_s"] == pytest.approx(16 * 2 / (16 * 2 + 8) / static["step_s"])


@pytest.mark.parametrize("args,fix", [
    (["--backups", "auto"], "needs --noise-scale"),
    (["--backups", "auto:max=20", "--noise-scale", "1"], "give max <= 15"),
    (["--backups", "auto", "--noise-scale", "1", "--modes", "sync"], "needs a voting mode"),
    (["--backups", "auto", "--noise-scale", "1", "--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_cli_bad_auto_input_is_one_line_exit_2(args, fix):
    result = CliRunner().invoke(simulate_command, ["--workers", "16", "--steps", "5", *args])
    assert result.exit_code == 2 and fix in result.output and len(result.output.strip().splitlines()) == 1
