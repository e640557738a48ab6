"""`--target` for any metric of evals.jsonl, going up or going down: parsed, refused, and followed by
the report and compare on hand-made run directories whose every number is worked out below."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from click.testing import CliRunner
from test_report import write_run

from backupsgd.cli import main
from backupsgd.errors import ConfigError
from backupsgd.report.aggregate import Stat, group_runs, summarise
from backupsgd.report.claims import FINAL, TIME, verdicts
from backupsgd.report.compare import compare, compare_table
from backupsgd.report.plots import metric_ylim, metric_plot_name
from backupsgd.report.runs import load_runs
from backupsgd.report.target import FALLBACK_TARGET, Target, accuracy, default_target, parse_target

LOSS = parse_target("test_loss<=1.2")

# --- parsing ----------------------------------------------------------------------------------


def test_parse_both_directions_and_the_bare_number():
    up = parse_target("test_accuracy>=0.9")
    assert up == Target("test_accuracy", ">=", 0.9) == accuracy(0.9) == parse_target("0.9")
    assert up.higher_is_better and up.label == "test accuracy >= 90%" and up.spec == "test_accuracy>=0.9"
    assert LOSS == Target("test_loss", "<=", 1.2) == parse_target("  test_loss <= 1.2 ")
    assert not LOSS.higher_is_better and LOSS.label == "test loss <= 1.2"
    bpb = parse_target("test_bits_per_byte<=2.5")
    assert bpb.label == "test bits per byte <= 2.5" and bpb.spec == "test_bits_per_byte<=2.5"


def test_reached_at_the_value_and_past_it_in_the_targets_direction():
    assert [LOSS.reached({"test_loss": x}) for x in (1.3, 1.2, 0.4)] == [False, True, True]
    assert [accuracy(0.9).reached({"test_accuracy": x}) for x in (0.89, 0.9, 0.95)] == [False, True, True]
    for record in ({}, {"test_loss": None}, {"test_loss": math.nan}, {"test_accuracy": 0.1}):
        assert not LOSS.reached(record)  # not recorded is not reached


@pytest.mark.parametrize("text, fix", [
    ("test_accuracy>0.9", "use >= or <="),
    ("test_loss<1.2", "use >= or <="),
    ("test_loss=1.2", "use >= or <="),
    ("test_loss=<1.2", "use >= or <="),
    ("accuracy>=x", "'x' is not a number"),
    ("test_loss<=", "'' is not a number"),
    (">=0.9", "names no metric"),
    ("test loss<=1.2", "not a metric name"),
    ("test_loss", "write METRIC>=VALUE or METRIC<=VALUE"),
    ("", "write METRIC>=VALUE or METRIC<=VALUE"),
    ("test_accuracy>=90", "write 0.9 for 90%"),
    ("1.5", r"a bare number is a test accuracy in \[0, 1\]"),
    ("test_loss<=nan", "finite"),
])
def test_refusals_name_the_fix(text, fix):
    with pytest.raises(ConfigError, match=fix):
        parse_target(text)


def test_a_dataset_without_a_default_falls_back_to_test_accuracy():
    assert default_target("digits") == accuracy(0.90) and default_target("synthetic") == accuracy(0.80)
    assert default_target("cifar") == accuracy(0.50)
    assert default_target("pkg.data:factory") == FALLBACK_TARGET == accuracy(0.90)


# --- the report following a loss --------------------------------------------------------------

@pytest.fixture
def loss_root(tmp_path: Path) -> Path:
    """Test losses (the 4th number of each evaluation) chosen so that every statistic is a round number.
    Accuracies stay at 50%, so an accuracy target would be reached by no run: only the loss can count."""
    root = tmp_path / "runs"
    sync = dict(mode="sync", backups=0, step_s=0.006, final_acc=0.5, steps_per_s=10.0)
    # seed 0 reaches 1.2 at 2 s (step 8); seed 1 exactly at 1.2 at 3 s (step 12); seed 2 never
    write_run(root, "s0", seed=0, evals=[(4, 1.0, 0.5, 2.0), (8, 2.0, 0.5, 1.1), (12, 3.0, 0.5, 0.9)],
              final_loss=0.9, **sync)
    write_run(root, "s1", seed=1, evals=[(4, 1.0, 0.5, 1.5), (8, 2.0, 0.5, 1.3), (12, 3.0, 0.5, 1.2)],
              final_loss=1.2, **sync)
    write_run(root, "s2", seed=2, evals=[(4, 1.0, 0.5, 2.2), (8, 2.0, 0.5, 1.9), (12, 3.0, 0.5, 1.6)],
              final_loss=1.6, **sync)
    backup = dict(mode="backup", backups=1, step_s=0.008, final_acc=0.5, steps_per_s=20.0)
    # seed 0 at 1 s (step 4), seed 1 at 1.5 s (step 8)
    write_run(root, "b0", seed=0, evals=[(4, 1.0, 0.5, 1.0), (8, 2.0, 0.5, 0.8)], final_loss=0.8, **backup)
    write_run(root, "b1", seed=1, evals=[(4, 0.5, 0.5, 1.4), (8, 1.5, 0.5, 0.7)], final_loss=0.7, **backup)
    return root


def _stats(root: Path, target: Target | None) -> dict[str, object]:
    runs, _ = load_runs(root)
    return {s.group.mode: s for s in (summarise(g, target) for g in group_runs(runs))}


def test_time_steps_reached_and_final_loss_with_the_lowest_best(loss_root):
    stats = _stats(loss_root, LOSS)
    sync, backup = stats["sync"], stats["backup"]
    assert sync.target == LOSS
    assert sync.time_to_target == Stat(2.5, 2.0, 3.0, 2) and sync.reached == 2
    assert sync.steps_to_target == Stat(10.0, 8.0, 12.0, 2)
    # a loss: best is the lowest final value, worst the highest (an accuracy would have them the other way)
    assert sync.final_value == Stat(pytest.approx((0.9 + 1.2 + 1.6) / 3), 0.9, 1.6, 3)
    assert backup.time_to_target == Stat(1.25, 1.0, 1.5, 2) and backup.reached == 2
    assert backup.steps_to_target == Stat(6.0, 4.0, 8.0, 2)
    assert backup.final_value == Stat(pytest.approx(0.75), 0.7, 0.8, 2)
    # a tighter loss: of sync only s0 gets to 0.9 or below (at its last evaluation); b0 (0.8) and b1 (0.7) do too
    tight = _stats(loss_root, parse_target("test_loss<=0.9"))
    assert tight["sync"].time_to_target == Stat(3.0, 3.0, 3.0, 1) and tight["sync"].steps_to_target.mean == 12
    assert tight["backup"].time_to_target == Stat(1.75, 1.5, 2.0, 2)  # b0 at 0.8 (2 s), b1 at 0.7 (1.5 s)
    # the same runs against the default target, test accuracy >= 90%: never reached, best final the highest
    default = _stats(loss_root, None)["sync"]
    assert default.reached == 0 and default.time_to_target is None and default.final_value == Stat(0.5, 0.5, 0.5, 3)


def test_upward_target_on_another_metric_and_final_value_from_evals(tmp_path):
    # a script's run: its evals record only test_f1 and its summary none of it, so the final value is
    # the last evaluation's
    run = write_run(tmp_path, "f", mode="sync", backups=0, seed=0, evals=[(4, 1.0, 0.5)], final_acc=0.5,
                    steps_per_s=10.0, step_s=0.006)
    (run / "evals.jsonl").write_text("".join(json.dumps({"step": s, "time": t, "test_f1": f}) + "\n"
                                             for s, t, f in ((4, 1.0, 0.3), (8, 2.0, 0.7), (12, 3.0, 0.6))))
    (group,) = group_runs(load_runs(tmp_path)[0])
    s = summarise(group, parse_target("test_f1>=0.65"))
    assert (s.time_to_target, s.steps_to_target, s.reached) == (Stat(2.0, 2.0, 2.0, 1), Stat(8.0, 8.0, 8.0, 1), 1)
    assert s.final_value == Stat(0.6, 0.6, 0.6, 1)


def test_claims_follow_the_direction_of_a_loss(loss_root):
    # ps-async ends at a higher loss than backup on both seeds (1.0 > 0.8, 0.9 > 0.7): backup is better
    for seed, final in ((0, 1.0), (1, 0.9)):
        write_run(loss_root, f"a{seed}", mode="ps-async", backups=0, seed=seed, final_acc=0.5, steps_per_s=30.0,
                  step_s=0.004, evals=[(4, 1.0, 0.5, 1.5), (12, 3.0, 0.5, final)], final_loss=final)
    found = {v.quantity: v for v in verdicts(list(_stats(loss_root, LOSS).values()))}
    time, final = found[TIME], found[FINAL]
    assert (time.subject_mean, time.baseline_mean, time.wins, time.pairs, time.outcome) == (1.25, 2.5, 2, 2, "holds")
    assert (final.baseline, final.wins, final.pairs, final.outcome) == ("ps-async", 2, 2, "holds")
    assert (final.subject_mean, final.baseline_mean) == (pytest.approx(0.75), pytest.approx(0.95))
    assert "final test loss 0.75 vs 0.95 (means); lower test loss on 2/2" in final.sentence()


def test_report_builds_with_a_loss_target(loss_root):
    result = CliRunner().invoke(main, ["report", str(loss_root), "--target", "test_loss<=1.2", "--no-scale"])
    assert result.exit_code == 0, result.output
    text = (loss_root / "report.md").read_text()
    assert "Target: test loss <= 1.2 (digits)" in text
    assert "| final test loss |" in text
    assert ("| sync, P=3, none | 3 | 2/3 (<= 1.2) | 2.50 [2.00, not reached] | 10 [8, not reached] "
            "| 1.233 [0.9, 1.6] |") in text
    assert "| backup b=1, P=3, none | 2 | 2/2 (<= 1.2) | 1.25 [1.00, 1.50] | 6 [4, 8] | 0.75 [0.7, 0.8] |" in text
    assert "## Test loss against wall-clock time" in text and "(loss_vs_time.png)" in text
    assert (loss_root / "loss_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (loss_root / "accuracy_vs_time.png").exists()
    sync = next(c for c in json.loads((loss_root / "report.json").read_text())["configurations"]
                if c["mode"] == "sync")
    assert sync["target"] == {"metric": "test_loss", "op": "<=", "value": 1.2, "label": "test loss <= 1.2"}
    assert sync["final_value"] == {"mean": pytest.approx(3.7 / 3), "best": 0.9, "worst": 1.6, "n": 3}


def test_report_refuses_a_metric_no_run_recorded_and_a_bad_target(loss_root):
    result = CliRunner().invoke(main, ["report", str(loss_root), "--target", "test_los<=1.2"])
    assert isinstance(result.exception, ConfigError)
    assert "no run recorded test_los in evals.jsonl (its keys: test_accuracy, test_loss)" in str(result.exception)
    result = CliRunner().invoke(main, ["report", str(loss_root), "--target", "test_accuracy>0.9"])
    assert isinstance(result.exception, ConfigError) and "use >= or <=" in str(result.exception)
    assert not (loss_root / "report.md").exists()


def test_metric_plot_limits_and_name(loss_root):
    stats = list(_stats(loss_root, LOSS).values())
    assert metric_plot_name(stats) == "loss_vs_time.png"
    assert metric_plot_name(list(_stats(loss_root, None).values())) == "accuracy_vs_time.png"
    fig, ax = plt.subplots()
    try:
        metric_ylim(ax, LOSS, [np.array([[2.2, 1.9], [1.4, 0.7]])])  # from 0.7 to 2.2, 5% of 1.5 either side
        assert ax.get_ylim() == pytest.approx((0.625, 2.275))
        metric_ylim(ax, parse_target("test_loss<=3"), [np.array([1.0, 2.0])])  # the target line stays inside
        assert ax.get_ylim() == pytest.approx((0.9, 3.1))
        metric_ylim(ax, accuracy(0.9), [np.array([0.1, 0.95])])  # an accuracy: as before, target - 0.5 to 1
        assert ax.get_ylim() == pytest.approx((0.4, 1.0))
    finally:
        plt.close(fig)


# --- compare ----------------------------------------------------------------------------------

def test_compare_with_a_loss_target(loss_root):
    a, b = compare([loss_root / "s0", loss_root / "b0"], LOSS)
    assert (a.time_to_target_s, a.steps_to_target, a.final_value) == (2.0, 8, 0.9)
    assert (b.time_to_target_s, b.steps_to_target, b.final_value) == (1.0, 4, 0.8)
    lines = compare_table([a, b]).splitlines()
    assert "| time to test loss <= 1.2, s | 2.00 (step 8) | 1.00 (step 4) | 0.50x |" in lines
    assert "| final test loss | 0.9 | 0.8 |  |" in lines
    result = CliRunner().invoke(main, ["compare", str(loss_root / "s2"), str(loss_root / "b1"),
                                       "--target", "test_loss<=1.2"])
    assert result.exit_code == 0 and "| time to test loss <= 1.2, s | not reached | 1.50 (step 8) | n/a |" \
        in result.output, result.output
    result = CliRunner().invoke(main, ["compare", str(loss_root / "s0"), str(loss_root / "b0"), "--target", "x<=1"])
    assert isinstance(result.exception, ConfigError) and "no run recorded x" in str(result.exception)
