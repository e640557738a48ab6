"""`backupsgd report` on hand-made run directories whose every number is known in advance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from backupsgd.errors import ConfigError
from backupsgd.report.aggregate import Stat, group_runs, summarise
from backupsgd.report.arrivals import kth_arrivals
from backupsgd.report.auto import _delay_norm, by_evaluation, paired_log_ratio
from backupsgd.report.build import build_report, measured
from backupsgd.report.claims import verdicts
from backupsgd.report.plots import PANEL_TITLE_WIDTH, _panel_title
from backupsgd.report.runs import load_runs
from backupsgd.report.target import accuracy, parse_target
from backupsgd.sim.calibrate import as_measured, calibrate

P = 3
COMPUTE = 0.004  # every rank computes this long each step (powers of two would be exact; not needed)
OVERHEAD = 0.002  # sync runs step in COMPUTE + OVERHEAD: the calibration must recover it


def write_run(root: Path, name: str, *, mode: str, backups: int, seed: int, evals: list[tuple],
              final_acc: float, steps_per_s: float, step_s: float, steps: int = 12, eval_every: int = 4,
              straggler: str = "none", reducer: str = "dense", final_loss: float = 0.5) -> Path:
    """A run directory as `backupsgd train` writes it, with chosen numbers; `evals` are (step, time, accuracy)
    or (step, time, accuracy, loss), the loss 0.5 unless given."""
    run = root / name
    run.mkdir(parents=True)
    config = {"mode": {"mode": mode, "backups": backups},
              "workload": {"model": "mlp", "dataset": "digits", "batch_size": 32, "lr": 0.1, "optimizer": "sgd",
                           "momentum": 0.9, "steps": steps, "seed": seed, "eval_every": eval_every, "threads": 1},
              "straggler": {"straggler": straggler}, "output": {"out": str(run), "progress": False},
              "faults": {"reducer": reducer}, "workers": P, "quorum": P - backups}
    (run / "config.json").write_text(json.dumps(config))
    # Steps exactly `step_s` apart, except that a step logged after an evaluation also pays 1 s for it.
    t, lines = 0.0, []
    for s in range(steps):
        t += step_s + (1.0 if eval_every and s % eval_every == 0 and s else 0.0)
        members = list(range(P - backups))
        lines.append({"step": s, "time": t, "members": members, "dropped": list(range(P - backups, P)),
                      "loss": 1.0, "compute_s": COMPUTE, "delay_s": 0.0, "exchange_s": 0.001, "vote_s": 0.0,
                      "reduce_s": 0.001, "arrivals": {str(m): 0.001 * (m + 1) for m in members} if backups else {}})
    (run / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "evals.jsonl").write_text("".join(
        json.dumps({"step": e[0], "time": e[1], "test_loss": e[3] if len(e) > 3 else 0.5, "test_accuracy": e[2]})
        + "\n" for e in evals))
    # rank r computes COMPUTE and waits r ms more: the k-th arrival is COMPUTE + (k-1) ms
    (run / "ranks.jsonl").write_text("".join(json.dumps(
        {"rank": r, "compute_s": [COMPUTE] * steps, "delay_s": [0.001 * r] * steps}) + "\n" for r in range(P)))
    np.save(run / "params.npy", np.zeros(1000, dtype=np.float32))
    (run / "summary.json").write_text(json.dumps({
        "mode": mode, "workers": P, "backups": backups, "quorum": P - backups, "steps": steps,
        "wall_s": steps / steps_per_s, "steps_per_s": steps_per_s, "dropped_gradients": backups * steps,
        "dropped_fraction": backups / P, "test_loss": final_loss, "test_accuracy": final_acc, "seed": seed,
        "straggler": straggler, "model": "mlp", "param_digests": ["x"] * P, "optimizer_digests": ["y"] * P,
        "run_dir": str(run)}))
    return run


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    sync = dict(mode="sync", backups=0, step_s=COMPUTE + OVERHEAD)
    # sync: seed 0 reaches 90% at 2 s, seed 1 at 3 s, seed 2 never (85% at most)
    write_run(root, "s0", seed=0, evals=[(4, 1.0, 0.80), (8, 2.0, 0.91), (12, 3.0, 0.93)], final_acc=0.93,
              steps_per_s=10.0, **sync)
    write_run(root, "s1", seed=1, evals=[(4, 1.0, 0.70), (8, 2.0, 0.89), (12, 3.0, 0.95)], final_acc=0.95,
              steps_per_s=20.0, **sync)
    write_run(root, "deeper/s2", seed=2, evals=[(4, 1.0, 0.60), (8, 2.0, 0.80), (12, 3.0, 0.85)], final_acc=0.85,
              steps_per_s=30.0, **sync)
    # backup b=1: seeds 0 and 1 reach 90% at 1 s and 1.5 s
    backup = dict(mode="backup", backups=1, step_s=0.008)
    write_run(root, "b0", seed=0, evals=[(4, 1.0, 0.90), (8, 2.0, 0.92)], final_acc=0.92, steps_per_s=40.0, **backup)
    write_run(root, "b1", seed=1, evals=[(4, 0.5, 0.50), (8, 1.5, 0.97)], final_acc=0.97, steps_per_s=50.0, **backup)
    # an interrupted run: config and steps, no summary.json
    (root / "partial").mkdir()
    (root / "partial" / "config.json").write_text("{}")
    return root


def _stats(root: Path, target=None):
    runs, unfinished = load_runs(root)
    return {s.group.mode: s for s in (summarise(g, target) for g in group_runs(runs))}, unfinished


def test_mean_best_worst_and_time_to_target(runs_root):
    stats, unfinished = _stats(runs_root)
    assert [p.name for p in unfinished] == ["partial"]
    sync, backup = stats["sync"], stats["backup"]
    assert sync.group.seeds == [0, 1, 2] and backup.group.seeds == [0, 1]
    assert sync.target == accuracy(0.90)  # the digits default
    assert sync.time_to_target == Stat(mean=2.5, best=2.0, worst=3.0, n=2) and sync.reached == 2
    assert sync.final_value == Stat(mean=pytest.approx(0.91), best=0.95, worst=0.85, n=3)
    assert sync.steps_per_s == Stat(mean=20.0, best=30.0, worst=10.0, n=3)
    assert sync.dropped_fraction == Stat(0.0, 0.0, 0.0, 3)
    assert backup.time_to_target == Stat(mean=1.25, best=1.0, worst=1.5, n=2) and backup.reached == 2
    assert sync.steps_to_target == Stat(10.0, 8.0, 12.0, 2) and backup.steps_to_target == Stat(6.0, 4.0, 8.0, 2)
    assert backup.dropped_fraction.mean == pytest.approx(1 / 3)
    # evaluation steps (4 and 8) paid 1 s each and are left out of the step time, as is step 0
    assert sync.step_s.mean == pytest.approx(COMPUTE + OVERHEAD) and backup.step_s.mean == pytest.approx(0.008)


def test_another_target_and_one_never_reached(runs_root):
    stats, _ = _stats(runs_root, target=accuracy(0.95))
    assert stats["sync"].time_to_target == Stat(3.0, 3.0, 3.0, 1) and stats["sync"].reached == 1
    assert stats["backup"].time_to_target == Stat(1.5, 1.5, 1.5, 1)
    stats, _ = _stats(runs_root, target=accuracy(0.99))
    assert stats["sync"].time_to_target is None and stats["sync"].reached == 0


def test_claim_verdict_pairs_seeds(runs_root):
    stats, _ = _stats(runs_root)
    (v,) = verdicts(list(stats.values()))
    assert (v.subject, v.baseline, v.quantity) == ("backup b=1", "sync", "time to target")
    assert (v.subject_mean, v.baseline_mean, v.wins, v.pairs, v.outcome) == (1.25, 2.5, 2, 2, "holds")


def test_arrivals_are_order_statistics_of_compute_plus_delay(runs_root):
    stats, _ = _stats(runs_root)
    kth = kth_arrivals([stats["sync"].group, stats["backup"].group])  # sync runs only: 3 runs x 11 steps
    assert kth.shape == (33, P)
    np.testing.assert_allclose(kth, np.tile([COMPUTE, COMPUTE + 0.001, COMPUTE + 0.002], (33, 1)))


def test_calibration_recovers_the_overhead_and_predicts_backup_out_of_sample(runs_root):
    runs, _ = load_runs(runs_root)
    cal = calibrate([measured(r) for r in runs])
    assert cal.overhead_s[P, "sync"] == pytest.approx(OVERHEAD) and cal.fitted_on[P, "sync"] == "sync runs, seeds 0-1"
    rows = {(r.run.mode, r.run.seed): r for r in cal.rows}
    for seed in (0, 1, 2):
        assert rows["sync", seed].predicted_s == pytest.approx(COMPUTE + OVERHEAD)
        assert rows["sync", seed].in_sample == (seed in (0, 1))
    # backup: compute + ring (= the overhead) + a vote of zero latency, predicted out of sample
    b = rows["backup", 0]
    assert not b.in_sample
    assert b.predicted_s == pytest.approx(COMPUTE + OVERHEAD)
    assert b.error == pytest.approx((COMPUTE + OVERHEAD) / 0.008 - 1)
    assert cal.within() == (3, 5) and cal.within(out_of_sample=True) == (1, 3)  # 0.006 vs 0.008: -25%
    # the replay is read as the report reads a run: the same gaps left out of the same logged times
    for run in runs:
        logged = np.array([s["time"] for s in run.steps])
        assert as_measured(logged, run.config["eval_every"]) == pytest.approx(run.mean_step_s())


def test_report_writes_tables_and_plots(runs_root):
    report = build_report(runs_root)
    text = report.markdown.read_text()
    assert report.runs == 5 and report.groups == 2
    assert ("| sync, P=3, none | 3 | 2/3 (>= 90%) | 2.50 [2.00, not reached] | 10 [8, not reached] "
            "| 91.0% [95.0%, 85.0%] | 20.0 [30.0, 10.0] |") in text
    assert "| backup b=1, P=3, none | 2 | 2/2 (>= 90%) | 1.25 [1.00, 1.50] | 6 [4, 8] |" in text
    assert "1 run directories without summary.json" in text
    assert "claim **holds**" in text
    for name in ("accuracy_vs_time.png", "arrival_cdf.png", "b_tradeoff.png", "calibration.png", "scale.png"):
        assert (runs_root / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"({name})" in text
    data = json.loads((runs_root / "report.json").read_text())
    sync = next(c for c in data["configurations"] if c["mode"] == "sync")
    assert sync["time_to_target_s"] == {"mean": 2.5, "best": 2.0, "worst": 3.0, "n": 2}
    assert all(math.isfinite(r["error"]) for r in data["calibration"]["rows"])


def test_calibration_rows_keep_configurations_that_differ_beyond_mode_apart(runs_root):
    # the same mode and b through another reducer, stepping slower: its own row, its own error
    for seed in (0, 1):
        write_run(runs_root, f"h{seed}", mode="backup", backups=1, seed=seed, evals=[(4, 1.0, 0.9)], final_acc=0.9,
                  steps_per_s=30.0, step_s=0.012, reducer="horovod")
    text = build_report(runs_root).markdown.read_text()
    calibration = text[text.index("## Simulator calibration"):]
    predicted = COMPUTE + OVERHEAD
    for label, step_s in (("backup b=1, P=3, none", 0.008), ("backup b=1 reducer=horovod, P=3, none", 0.012)):
        error = f"{100 * (predicted - step_s) / step_s:+.1f}%"
        assert f"| {label} | 2 | " in calibration and error in calibration, (label, error)


def test_horovod_runs_are_predicted_as_sync_without_being_fitted_on(runs_root):
    write_run(runs_root, "hvd0", mode="horovod", backups=0, seed=0, evals=[(4, 1.0, 0.9)], final_acc=0.9,
              steps_per_s=30.0, step_s=2 * (COMPUTE + OVERHEAD))  # twice sync's step: a fit on it would move
    runs, _ = load_runs(runs_root)
    cal = calibrate([measured(r) for r in runs])
    assert cal.overhead_s[P, "sync"] == pytest.approx(OVERHEAD) and not cal.skipped
    row = next(r for r in cal.rows if r.run.mode == "horovod")
    assert not row.in_sample and row.predicted_s == pytest.approx(COMPUTE + OVERHEAD)
    assert row.error == pytest.approx(-0.5)


def test_report_of_nothing_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="no finished run"):
        build_report(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        build_report(tmp_path / "missing")


def test_report_states_compute_against_injected_delay(runs_root):
    """Every rank computes COMPUTE per step and rank r waits r ms: the mean delay is (P - 1) / 2 ms."""
    build_report(runs_root)
    text = (runs_root / "report.md").read_text()
    delay_ms = 0.5 * (P - 1)
    row = f"| mlp | none | {1e3 * COMPUTE:.1f} | {delay_ms:.1f} | {1e3 * COMPUTE / delay_ms:.2f} |"
    assert "## Compute against injected delay" in text and row in text, text


def _log_noise_scale(root: Path, read: float, other: float) -> None:
    """Give every run's steps the noise scale `read` before its first evaluation at >= 90% and `other` from then on;
    a run that never gets there `other` in its first half and `read` in its second. The report must read `read`:
    B_simple grows as training goes on, and what explains the steps to the target is its value before it."""
    for path in root.rglob("steps.jsonl"):
        steps = [json.loads(line) for line in path.read_text().splitlines()]
        evals = [json.loads(line) for line in (path.parent / "evals.jsonl").read_text().splitlines()]
        reached = next((e["step"] for e in evals if e["test_accuracy"] >= 0.9), None)
        for s in steps:
            reads = s["step"] < reached if reached is not None else s["step"] >= len(steps) // 2
            s["noise_scale"] = read if reads else other
        path.write_text("".join(json.dumps(s) + "\n" for s in steps))


def test_measured_noise_scale_predicts_the_b_trade_off_and_drives_the_projection(runs_root):
    """B_simple = 64 examples = 2 worker batches of 32: sync (N = 3) makes 96 / 160 = 0.6 of a noise-free step,
    backup b = 1 (N = 2) 64 / 128 = 0.5; per second, with steps of 6 and 8 ms, backup is (0.5 / 8) / (0.6 / 6)
    = 0.625 of sync. The projection uses the measured 2.0 minibatches, not a fit."""
    from backupsgd.report.noise_scale import noise_table
    from backupsgd.report.scale import project

    _log_noise_scale(runs_root, read=64.0, other=5.0)
    stats, _ = _stats(runs_root)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in noise_table(list(stats.values())).splitlines()}
    sync_row = next(v for k, v in rows.items() if k.startswith("sync"))
    backup_row = next(v for k, v in rows.items() if k.startswith("backup"))
    assert "| 3 | 64 [64, 64] | 2.00 | 0.600 | 1.00x |" in sync_row, sync_row
    assert "| 2 | 64 [64, 64] | 2.00 | 0.500 | 0.62x |" in backup_row, backup_row
    proj = project(list(stats.values()))
    assert proj.noise.source == "measured" and proj.noise.noise_scale == pytest.approx(2.0)
    assert proj.objective == "time-to-accuracy"
    build_report(runs_root, scale=False)
    assert "## Gradient noise scale and the b trade-off" in (runs_root / "report.md").read_text()


def test_calibration_fits_the_effective_noise_scale_against_the_measured_one(tmp_path):
    """Steps to target 8 at N = 3 and 9 at N = 2 fit S_min (1 + B_noise / N) with S_min = 6 and B_noise = 1 worker
    batch exactly; the runs measured B_simple = 64 examples = 2 batches of 32: auto's calibration is 1 / 2."""
    from backupsgd.report.noise_scale import calibration_table

    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, f"s{seed}", mode="sync", backups=0, seed=seed, evals=[(4, 1.0, 0.5), (8, 2.0, 0.91)],
                  final_acc=0.91, steps_per_s=10.0, step_s=0.006)
        write_run(root, f"b{seed}", mode="backup", backups=1, seed=seed, evals=[(4, 1.0, 0.5), (9, 2.0, 0.91)],
                  final_acc=0.91, steps_per_s=10.0, step_s=0.006)
    _log_noise_scale(root, read=64.0, other=5.0)
    stats, _ = _stats(root)
    table = calibration_table(list(stats.values()))
    assert "| none, P=3 | 2.00 | 1.00 (4 runs) | 0.50 | `--backups auto:noise=0.5` |" in table, table
    build_report(root, scale=False)
    assert "`--backups auto:noise=0.5`" in (root / "report.md").read_text()


def test_training_time_leaves_out_the_evaluations_pauses(tmp_path):
    """Steps 0.1 s apart; an evaluation after steps 4 and 8 takes 1 s (logged 1 s after the step it follows, and the
    next step pays it, as train.py's clock runs): reaching the target at the second, 2.8 s of wall-clock time are
    8 steps x 0.1 s = 0.8 s of training."""
    root = tmp_path / "runs"
    write_run(root, "t", mode="sync", backups=0, seed=0, evals=[(4, 1.4, 0.5), (8, 2.8, 0.91)], final_acc=0.91,
              steps_per_s=10.0, step_s=0.1, steps=12, eval_every=4)
    (wall,), _ = load_runs(root)
    (training,), _ = load_runs(root, training_time=True)
    assert wall.time_to(accuracy(0.9)) == pytest.approx(2.8)
    assert training.evaluation_pauses == [(4, pytest.approx(1.0)), (8, pytest.approx(1.0))]
    assert training.time_to(accuracy(0.9)) == pytest.approx(0.8)
    build_report(root, scale=False, training_time=True)
    text = (root / "report.md").read_text()
    assert "--training-time" in text and "Times to target are training time" in text
    assert "| 0.80 [0.80, 0.80] |" in text, text


def test_a_fenced_run_charges_an_evaluation_all_it_held_training_up_beyond_an_ordinary_step(tmp_path):
    """The run of the test above, but the fence after each evaluation waits 0.3 s more for the last rank to finish
    evaluating (rank 0's own pause is still 1 s): an evaluation costs the 1.3 s from the step it follows to the step
    after it less an ordinary 0.1 s step, and the target is still reached at 8 steps x 0.1 s = 0.8 s of training.
    Charged rank 0's own pause (a run without the fence's mark), the same records read 1.1 s."""
    root = tmp_path / "runs"
    run = write_run(root, "t", mode="sync", backups=0, seed=0, evals=[(4, 1.4, 0.5), (8, 3.1, 0.91)], final_acc=0.91,
                    steps_per_s=10.0, step_s=0.1, steps=12, eval_every=4)
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    for s in steps:
        s["time"] += 0.3 * (s["step"] >= 4) + 0.3 * (s["step"] >= 8)
    (run / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    (unmarked,), _ = load_runs(root, training_time=True)
    assert unmarked.time_to(accuracy(0.9)) == pytest.approx(1.1)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"evaluation_fence": True}))
    (fenced,), _ = load_runs(root, training_time=True)
    assert fenced.evaluation_pauses == [(4, pytest.approx(1.3)), (8, pytest.approx(1.3))]
    assert fenced.time_to(accuracy(0.9)) == pytest.approx(0.8)
    assert fenced.time_to(accuracy(0.5)) == pytest.approx(0.4)


def test_the_crossing_time_interpolates_between_the_evaluation_that_reached_the_target_and_the_one_before(tmp_path):
    """The run of the test above (evaluations after steps 4 and 8, at 0.4 s and 0.8 s of training, 1.4 s and 2.8 s of
    wall-clock time; accuracy 0.5 then 0.91, loss 1.5 then 0.68): 0.9 is crossed (0.9 - 0.5) / (0.91 - 0.5) of the way
    from the one to the other, in either clock; a loss target going down (<= 1.0) (1.5 - 1.0) / (1.5 - 0.68) of the
    way. A target the first evaluation reached is crossed at it; one never reached, never."""
    root = tmp_path / "runs"
    write_run(root, "t", mode="sync", backups=0, seed=0, evals=[(4, 1.4, 0.5, 1.5), (8, 2.8, 0.91, 0.68)],
              final_acc=0.91, steps_per_s=10.0, step_s=0.1, steps=12, eval_every=4)
    (wall,), _ = load_runs(root)
    (training,), _ = load_runs(root, training_time=True)
    share = (0.9 - 0.5) / (0.91 - 0.5)
    assert training.crossing_time(accuracy(0.9)) == pytest.approx(0.4 + share * 0.4)
    assert wall.crossing_time(accuracy(0.9)) == pytest.approx(1.4 + share * 1.4)
    assert training.crossing_time(parse_target("test_loss<=1.0")) == pytest.approx(0.4 + (0.5 / 0.82) * 0.4)
    assert training.crossing_time(accuracy(0.5)) == training.time_to(accuracy(0.5)) == pytest.approx(0.4)
    assert training.crossing_time(accuracy(0.95)) is None and training.time_to(accuracy(0.95)) is None
    # the first evaluation to reach it bounds the crossing from above, the one before from below
    assert training.time_to(accuracy(0.9)) == pytest.approx(0.8)
    (crossing,), _ = load_runs(root, training_time=True, interpolate=True)  # every time to target, the report's too
    assert crossing.time_to(accuracy(0.9)) == pytest.approx(0.4 + share * 0.4)
    build_report(root, scale=False, training_time=True, interpolate=True)
    text = (root / "report.md").read_text()
    assert "--training-time --interpolate" in text and "Times to target are interpolated" in text
    assert "| 0.79 [0.79, 0.79] |" in text, text


def test_a_shifting_regimes_panel_title_is_wrapped_at_its_phases_and_keeps_every_character():
    # side by side, the one-line titles of the two shifting regimes' panels ran into each other (auto-digits-shifts)
    spec = "phases:none@0-30;slow:ranks=3+4,delay=0.03@30-60;none@60-"
    lines = _panel_title((spec, 5)).split("\n")
    assert len(lines) > 1 and all(len(line) <= PANEL_TITLE_WIDTH for line in lines)
    assert " ".join(lines).replace("; ", ";") == f"P=5, straggler {spec}"  # broken at spaces, never in a word


def test_paired_log_ratio_is_the_geometric_mean_ratio_with_a_t_interval():
    """Log ratios ln 2, ln 2, ln 8 (seed 3 never reached the target on one side, so it pairs nothing): geometric mean
    exp(ln 32 / 3) = 3.175; sd of the logs = ln 4 / sqrt(3) (deviations -ln 4 / 3 twice and 2 ln 4 / 3), so the
    95% half-width is t(0.975, 2) = 4.303 times ln 4 / 3 (and the 99% one t(0.995, 2) = 9.925 times it)."""
    num, den = {0: 2.0, 1: 4.0, 2: 8.0, 3: None}, {0: 1.0, 1: 2.0, 2: 1.0, 3: 5.0}
    seeds, ratio, low, high = paired_log_ratio(num, den)
    half = 4.302653 * math.log(4) / 3
    assert seeds == [0, 1, 2]
    assert ratio == pytest.approx(32 ** (1 / 3))
    assert (low, high) == pytest.approx((32 ** (1 / 3) * math.exp(-half), 32 ** (1 / 3) * math.exp(half)))
    # at another level (paired.py --looks: a later look at a row), t(0.995, 2) = 9.925 in place of 4.303
    _, _, low, high = paired_log_ratio(num, den, level=0.99)
    assert high / 32 ** (1 / 3) == pytest.approx(math.exp(9.924843 * math.log(4) / 3))


def test_by_evaluation_pairs_seeds_where_the_static_mean_first_reaches_the_target(tmp_path):
    """b = 1 stands for the static b: its mean accuracy is 0.80 at step 4 and 0.91 at step 8, so the comparison is
    at step 8. b = 0 (standing for auto) is 1, 2, 3 points higher there at 1.1, 1.2, 1.3x the time: means 2 points
    and 1.2, each +- t(0.975, 2) x sd / sqrt(3) = 4.303 x 0.01 (0.1) / 1.732."""
    common = dict(final_acc=0.93, steps_per_s=10.0, step_s=COMPUTE)
    for seed, (acc, gain, slower) in enumerate([(0.90, 0.01, 1.1), (0.91, 0.02, 1.2), (0.92, 0.03, 1.3)]):
        write_run(tmp_path, f"b1-s{seed}", mode="backup", backups=1, seed=seed,
                  evals=[(4, 1.0, 0.80), (8, 2.0, acc), (12, 3.0, 0.95)], **common)
        write_run(tmp_path, f"b0-s{seed}", mode="backup", backups=0, seed=seed,
                  evals=[(4, 1.0, 0.70), (8, 2.0 * slower, acc + gain), (12, 3.0 * slower, 0.95)], **common)
        # b = 2 never reaches 90% at an evaluation; seeds 7-8 of b = 2 are the only ones a b = 3 shares
        write_run(tmp_path, f"b2-s{seed}", mode="backup", backups=2, seed=seed, evals=[(4, 1.0, 0.5), (8, 2.0, 0.89)],
                  **common)
    for seed in (7, 8):
        for b in (2, 3):
            write_run(tmp_path, f"b{b}-s{seed}", mode="backup", backups=b, seed=seed, evals=[(4, 1.0, 0.95)], **common)
    runs, _ = load_runs(tmp_path)
    stats = {s.group.backups: s for s in (summarise(g) for g in group_runs(runs))}
    result = by_evaluation(stats[0], stats[1])
    half = 4.302653 / math.sqrt(3)
    assert result.step == 8
    assert result.difference == pytest.approx((0.02 - 0.01 * half, 0.02, 0.02 + 0.01 * half), abs=1e-6)
    assert result.time_ratio == pytest.approx((1.2 - 0.1 * half, 1.2, 1.2 + 0.1 * half), abs=1e-6)
    assert by_evaluation(stats[0], stats[2]) is None  # b = 2's mean over seeds 0-2 never reaches 90%
    assert by_evaluation(stats[3], stats[2]) is None  # only 2 seeds shared


def test_who_was_slow_is_coloured_on_a_log_scale_only_under_a_heavy_tail():
    """One 80 s Pareto draw among 0.2-0.4 s steps (the Python manual, seed 32) left every other step one pale colour
    on a linear scale; times within a factor 20 stay linear. NaN (a skipped step) and 0 are left out of the range."""
    heavy = np.array([[200.0, 300.0], [400.0, 80_000.0], [np.nan, 0.0]])
    norm = _delay_norm(heavy)
    assert norm is not None and norm.vmin == 200.0 and norm.vmax == 80_000.0
    assert norm(2_000.0) == pytest.approx(math.log(10) / math.log(400))  # a decade of the 400-fold span
    assert _delay_norm(np.array([[4.0, 5.0], [np.nan, 60.0]])) is None
    assert _delay_norm(np.full((2, 2), np.nan)) is None
