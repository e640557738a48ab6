"""The report's who-was-dropped picture: the state of every worker's gradient per step, from hand-made runs."""

from __future__ import annotations

import json

import numpy as np
from test_report import P, runs_root, write_run  # noqa: F401  (runs_root is a fixture)

from backupsgd.report.build import build_report
from backupsgd.report.dropped import LATE, MEMBER, OTHER, SKIPPED, membership
from backupsgd.report.runs import load_runs


def _run(root, name):
    runs, _ = load_runs(root)
    return next(r for r in runs if r.path.name == name)


def test_membership_marks_applied_late_and_skipped(runs_root):
    # b0: rank 2 dropped every step (write_run's backup layout); say it never computed steps 5 and 6
    ranks = runs_root / "b0" / "ranks.jsonl"
    records = [json.loads(line) for line in ranks.read_text().splitlines()]
    records[2]["compute_s"][5] = records[2]["compute_s"][6] = None
    ranks.write_text("".join(json.dumps(r) + "\n" for r in records))
    m = membership(_run(runs_root, "b0"))
    expected = np.full((P, 12), MEMBER)
    expected[2, :] = LATE
    expected[2, 5:7] = SKIPPED
    np.testing.assert_array_equal(m, expected)
    np.testing.assert_array_equal(membership(_run(runs_root, "s0")), np.full((P, 12), MEMBER))


def test_ps_async_updates_leave_the_other_workers_out(tmp_path):
    run = write_run(tmp_path, "a0", mode="ps-async", backups=0, seed=0, evals=[(4, 1.0, 0.9)], final_acc=0.9,
                    steps_per_s=10.0, step_s=0.01)
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    for s in steps:  # each update applies one push, worker (step mod P); nothing is dropped
        s["members"], s["dropped"] = [s["step"] % P], []
    (run / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    m = membership(_run(tmp_path, "a0"))
    assert [list(np.flatnonzero(m[:, t] == MEMBER)) for t in range(12)] == [[t % P] for t in range(12)]
    assert (m != MEMBER).sum() == (m == OTHER).sum() == 12 * (P - 1)


def test_report_draws_it_and_links_it(runs_root):
    report = build_report(runs_root, scale=False)
    png = runs_root / "dropped.png"
    assert png in report.figures and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.markdown.read_text()
    assert "## Who was dropped when" in text and "![who was dropped](dropped.png)" in text


def test_older_ps_runs_that_named_workers_by_mpi_rank_map_to_worker_indices(tmp_path):
    run = write_run(tmp_path, "p0", mode="ps-backup", backups=1, seed=0, evals=[(4, 1.0, 0.9)], final_acc=0.9,
                    steps_per_s=10.0, step_s=0.01)
    config = json.loads((run / "config.json").read_text())
    config["mode"]["servers"] = 2
    (run / "config.json").write_text(json.dumps(config))
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    for s in steps:  # worker 2 (MPI rank 4) dropped, as such a run logged it
        s["members"], s["dropped"] = [2, 3], [4]
    (run / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    m = membership(_run(tmp_path, "p0"))
    assert (m[:2] == MEMBER).all() and (m[2] == LATE).all()
