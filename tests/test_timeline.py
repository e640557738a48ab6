"""`backupsgd timeline` and `backupsgd compare` on hand-made run directories whose every time is known."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backupsgd.cli import main
from backupsgd.errors import ConfigError
from backupsgd.report.compare import compare, compare_table
from backupsgd.report.timeline import BEST_EFFORT, MEASURED, PS_LAYOUT, build_trace

STEPS = 4
# Ranks 0 and 1 start step t at 10 ms * t on their own clocks: compute 2 ms, wait 6 ms, apply 1 ms.
# Rank 2 is the straggler: a 20 ms delay after each compute, so it is dropped every step; it computes
# steps 0 and 2 and only applies steps 1 and 3, which were decided without it.
FAST = {"step_start_s": [0.010 * t for t in range(STEPS)], "compute_s": [0.002] * STEPS,
        "delay_s": [0.0] * STEPS, "exchange_s": [0.006] * STEPS, "apply_s": [0.001] * STEPS}
SLOW = {"step_start_s": [0.0, None, 0.025, None], "compute_s": [0.002, None, 0.002, None],
        "delay_s": [0.020, None, 0.020, None], "exchange_s": [0.001, None, 0.001, None], "apply_s": [0.001] * STEPS}


def _write(path: Path, name: str, records: list[dict]) -> None:
    (path / name).write_text("".join(json.dumps(r) + "\n" for r in records))


def make_run(root: Path, name: str = "run", offsets=(0.0, 0.0, 0.0), measured: bool = True) -> Path:
    """A backup run of 3 ranks (b = 1) as `backupsgd train` writes it, with clock offsets per rank."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "mode": {"mode": "backup", "backups": 1},
        "workload": {"model": "mlp", "dataset": "digits", "steps": STEPS, "seed": 0, "eval_every": 2},
        "straggler": {"straggler": "slow:ranks=2,delay=0.02"}, "workers": 3, "quorum": 2}))
    # rank 0 logs step t after its apply, at 10 ms * t + 9 ms; vote 1 ms, reduce 2 ms before its apply
    _write(run, "steps.jsonl", [{
        "step": t, "time": 0.010 * t + 0.009, "members": [0, 1], "dropped": [2], "loss": 1.0,
        "compute_s": 0.002, "delay_s": 0.0, "exchange_s": 0.006, "vote_s": 0.001, "reduce_s": 0.002,
        "arrivals": {"0": 0.002, "1": 0.0021}, "nonfinite": [], "behind": []} for t in range(STEPS)])
    records = []
    for rank, (timings, offset) in enumerate(zip((FAST, FAST, SLOW), offsets)):
        record = {"rank": rank, **copy.deepcopy(timings), "nonfinite_steps": []}
        if measured:
            record["clock_offset_s"] = offset
        else:
            for key in ("step_start_s", "exchange_s", "apply_s"):
                del record[key]
        records.append(record)
    _write(run, "ranks.jsonl", records)
    _write(run, "evals.jsonl", [{"step": 2, "time": 0.03, "test_accuracy": 0.5}])
    return run


def check_format(trace: dict) -> None:
    """The trace-event format's required keys: complete events carry name, ph, ts, dur (microseconds),
    pid, tid and args; metadata events name the process and every track."""
    json.loads(json.dumps(trace))  # plain JSON, no NaN
    assert trace["displayTimeUnit"] == "ms"
    names = set()
    for e in trace["traceEvents"]:
        assert e["ph"] in ("X", "M"), e
        if e["ph"] == "X":
            assert {"name", "ph", "ts", "dur", "pid", "tid", "args"} <= e.keys(), e
            assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0, e
        else:
            assert e["name"] in ("process_name", "process_labels", "thread_name", "thread_sort_index"), e
            if e["name"] == "thread_name":
                names.add(e["tid"])
    assert {e["tid"] for e in trace["traceEvents"] if e["ph"] == "X"} <= names, "every track is named"


def slices(trace: dict, tid: int | None = None, name: str | None = None) -> list[dict]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and (tid is None or e["tid"] == tid)
            and (name is None or e["name"] == name)]


def assert_no_overlap(trace: dict) -> None:
    for tid in {e["tid"] for e in slices(trace)}:
        track = sorted(slices(trace, tid), key=lambda e: e["ts"])
        for a, b in zip(track, track[1:]):
            assert a["ts"] + a["dur"] <= b["ts"], (a, b)


def test_measured_trace_puts_every_phase_where_the_run_recorded_it(tmp_path):
    trace = build_trace(make_run(tmp_path))
    check_format(trace)
    assert trace["otherData"]["layout"] == MEASURED and trace["otherData"]["clipped"] == 0
    assert_no_overlap(trace)
    # one vote per step, ending at the decision: logged time - apply (1 ms) - reduce (2 ms); 1 ms long
    votes = slices(trace, 0, "vote")
    assert [(v["ts"], v["dur"]) for v in votes] == [(10_000 * t + 5_000, 1_000) for t in range(STEPS)]
    assert all(v["args"]["members"] == [0, 1] and v["args"]["dropped"] == [2] for v in votes)
    assert votes[0]["args"]["ready_ms"] == {"0": 2.0, "1": 2.1}
    # rank 1 (track 2), step 2: compute 20-22 ms, wait 22-28 ms, apply 28-29 ms; no zero delay slice
    step2 = [(e["name"], e["ts"], e["dur"]) for e in slices(trace, 2) if e["args"]["step"] == 2]
    assert step2 == [("compute", 20_000, 2_000), ("wait for decision", 22_000, 6_000), ("apply", 28_000, 1_000)]
    # the straggler: its slices say it was dropped; the steps it missed are applies right after its previous one
    slow = [(e["name"], e["ts"], e["dur"], e["args"]["step"]) for e in slices(trace, 3)]
    assert slow[:6] == [("compute (dropped)", 0, 2_000, 0), ("straggler delay (dropped)", 2_000, 20_000, 0),
                        ("wait for decision (dropped)", 22_000, 1_000, 0), ("apply (dropped)", 23_000, 1_000, 0),
                        ("apply (missed step)", 24_000, 1_000, 1), ("compute (dropped)", 25_000, 2_000, 2)]
    assert slow[-1] == ("apply (missed step)", 49_000, 1_000, 3)


def test_a_clock_offset_shifts_exactly_that_ranks_slices(tmp_path):
    base = build_trace(make_run(tmp_path, "a"))
    shifted = build_trace(make_run(tmp_path, "b", offsets=(0.0, 0.0, 0.5)))
    for tid in (0, 1, 2):  # coordinator, ranks 0 and 1: unchanged
        assert [(e["ts"], e["dur"]) for e in slices(shifted, tid)] == [(e["ts"], e["dur"]) for e in slices(base, tid)]
    moved, before = slices(shifted, 3), slices(base, 3)
    assert len(moved) == len(before) == 10
    assert all(m["ts"] - b["ts"] == 500_000 and m["dur"] == b["dur"] for m, b in zip(moved, before))
    # a negative offset (a clock ahead of rank 0's) moves them back the same way
    back = build_trace(make_run(tmp_path, "c", offsets=(0.0, -0.0125, 0.0)))
    assert [e["ts"] - 12_500 for e in slices(base, 2)] == [e["ts"] for e in slices(back, 2)]


def test_overlapping_records_are_clipped_never_overlap(tmp_path):
    run = make_run(tmp_path)
    records = [json.loads(line) for line in (run / "ranks.jsonl").read_text().splitlines()]
    records[1]["step_start_s"][3] = 0.025  # starts 4 ms before its step 2 ended (29 ms)
    _write(run, "ranks.jsonl", records)
    trace = build_trace(run)
    assert trace["otherData"]["clipped"] == 2
    assert_no_overlap(trace)
    # step 3's compute (25-27 ms) and wait (27-33 ms) start where step 2's apply ended (29 ms)
    step3 = [(e["name"], e["ts"], e["dur"]) for e in slices(trace, 2) if e["args"]["step"] == 3]
    assert step3 == [("compute", 29_000, 0), ("wait for decision", 29_000, 4_000), ("apply", 33_000, 1_000)]


def test_older_run_directories_get_a_best_effort_layout_that_says_so(tmp_path):
    trace = build_trace(make_run(tmp_path, measured=False))
    check_format(trace)
    assert trace["otherData"]["layout"] == BEST_EFFORT
    assert any(e["name"] == "process_labels" and e["args"]["labels"] == BEST_EFFORT for e in trace["traceEvents"])
    assert_no_overlap(trace)
    assert len(slices(trace, 0, "vote")) == STEPS
    # rank 0 is anchored at its logged times: its wait ends when it logged the step (apply unknown)
    waits = slices(trace, 1, "wait for decision")
    assert [w["ts"] + w["dur"] for w in waits] == [10_000 * t + 9_000 for t in range(STEPS)]
    # rank 1 starts each step when rank 0 logged the previous one
    assert [e["ts"] for e in slices(trace, 2, "compute")] == [0] + [10_000 * t - 1_000 for t in range(1, STEPS)]


def test_ps_runs_name_workers_as_the_straggler_spec_does(tmp_path):
    run = tmp_path / "ps"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"mode": {"mode": "ps-backup", "backups": 1, "servers": 2},
                                                 "workload": {"steps": 2}, "workers": 2, "quorum": 1}))
    _write(run, "steps.jsonl", [{"step": t, "time": 0.01 * (t + 1), "members": [0], "dropped": [1], "late": [],
                                 "reduce_s": 0.001} for t in range(2)])
    _write(run, "ranks.jsonl", [{"rank": 0, "role": "server"}, {"rank": 1, "role": "server"},
                                {"rank": 2, "role": "worker", "worker": 0, "compute_s": [0.002, 0.002],
                                 "delay_s": [0.0, 0.0], "pull_wait_s": [0.001, 0.003, 0.004]},
                                {"rank": 3, "role": "worker", "worker": 1, "compute_s": [0.002],
                                 "delay_s": [0.05], "pull_wait_s": [0.001, 0.001]}])
    trace = build_trace(run)
    check_format(trace)
    assert trace["otherData"]["layout"] == PS_LAYOUT
    assert_no_overlap(trace)
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {0: "server 0 (decides each step)", 1: "worker 0 (MPI rank 2)", 2: "worker 1 (MPI rank 3)"}
    assert [v["args"]["dropped"] for v in slices(trace, 0, "vote")] == [[1], [1]]
    # worker 1's loop end to end: pull 1 ms, compute 2 ms, delay 50 ms, pull 1 ms
    assert [(e["ts"], e["dur"]) for e in slices(trace, 2)] == [(0, 1000), (1000, 2000), (3000, 50000), (53000, 1000)]


def test_timeline_command_writes_the_file_and_refuses_a_non_run(tmp_path):
    run = make_run(tmp_path)
    result = CliRunner().invoke(main, ["timeline", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "timeline.json").read_text()) == build_trace(run)
    out = tmp_path / "elsewhere" / "t.json"
    assert CliRunner().invoke(main, ["timeline", str(run), "-o", str(out)]).exit_code == 0 and out.is_file()
    result = CliRunner().invoke(main, ["timeline", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "pass the --out DIR" in str(result.exception)


# --- compare ----------------------------------------------------------------------------------

def finish(run: Path, *, mode: str, backups: int, steps_per_s: float, dropped: int, evals: list[tuple]) -> Path:
    config = json.loads((run / "config.json").read_text())
    config["mode"] = {"mode": mode, "backups": backups}
    (run / "config.json").write_text(json.dumps(config))
    _write(run, "evals.jsonl", [{"step": s, "time": t, "test_accuracy": a} for s, t, a in evals])
    (run / "summary.json").write_text(json.dumps({
        "mode": mode, "backups": backups, "workers": 3, "steps": STEPS, "wall_s": STEPS / steps_per_s,
        "steps_per_s": steps_per_s, "dropped_gradients": dropped, "dropped_fraction": dropped / (3 * STEPS),
        "test_accuracy": evals[-1][2]}))
    return run


def test_compare_table_from_two_run_directories(tmp_path):
    sync = finish(make_run(tmp_path, "sync"), mode="sync", backups=0, steps_per_s=40.0, dropped=0,
                  evals=[(2, 0.5, 0.85), (4, 1.0, 0.92)])
    backup = finish(make_run(tmp_path, "backup"), mode="backup", backups=1, steps_per_s=100.0, dropped=4,
                    evals=[(2, 0.2, 0.91), (4, 0.4, 0.95)])
    a, b = compare([sync, backup])
    assert (a.steps_per_s, a.time_to_target_s, a.steps_to_target, a.dropped, a.target.spec) == \
        (40.0, 1.0, 4, 0, "test_accuracy>=0.9")
    assert (b.steps_per_s, b.time_to_target_s, b.steps_to_target, b.dropped) == (100.0, 0.2, 2, 4)
    lines = compare_table([a, b]).splitlines()
    assert lines[0] == "|  | sync (sync) | backup b=1 (backup) | second / first |"
    assert lines[2] == "| steps per second | 40.0 | 100.0 | 2.50x |"
    # steps logged 10 ms apart (make_run), step 2 left out as it paid for an evaluation (eval_every 2)
    assert lines[3] == "| median step time, ms | 10.00 | 10.00 | 1.00x |"
    assert lines[4] == "| time to test accuracy >= 90%, s | 1.00 (step 4) | 0.20 (step 2) | 0.20x |"
    assert lines[5] == "| gradients dropped | 0 (0.0%) | 4 (33.3%) |  |"
    result = CliRunner().invoke(main, ["compare", str(sync), str(backup), "--target", "0.95"])
    assert result.exit_code == 0 and "| time to test accuracy >= 95%, s | not reached | 0.40 (step 4) | n/a |" \
        in result.output, result.output


def test_compare_refuses_unfinished_runs_and_a_single_run(tmp_path):
    with pytest.raises(ConfigError, match="did not finish"):
        compare([make_run(tmp_path, "a"), make_run(tmp_path, "b")])
    with pytest.raises(ConfigError, match="two or more"):
        compare([tmp_path / "a"])
