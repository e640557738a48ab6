"""`backupsgd compare RUN_DIR RUN_DIR ...`: finished runs side by side, one column per run (make demo's table)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backupsgd.errors import ConfigError
from backupsgd.report.aggregate import check_recorded
from backupsgd.report.runs import Run, flatten_config
from backupsgd.report.target import Target, default_target
from backupsgd.report.tables import markdown_table


@dataclass(frozen=True)
class Column:
    """What the table shows of one run."""

    path: Path
    label: str
    steps: int
    wall_s: float
    steps_per_s: float
    median_step_s: float | None  # robust to the few steps a loaded machine stalls, which the mean is not
    target: Target
    time_to_target_s: float | None  # None: never reached (at the resolution of eval_every)
    steps_to_target: int | None
    dropped: int  # gradients computed, or due, and not applied
    dropped_fraction: float
    final_value: float | None  # the target's metric at the end of the run


def load_run(path: Path) -> Run:
    """One finished run directory (summary.json present), or a ConfigError naming the fix."""
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a run directory (no config.json); "
                          "pass the --out DIR of a backupsgd train run")
    if not (path / "summary.json").is_file():
        raise ConfigError(f"{path} has no summary.json: the run did not finish; let it finish or rerun it")
    config = flatten_config(json.loads((path / "config.json").read_text()))
    return Run(path, config, json.loads((path / "summary.json").read_text()))


def _label(run: Run) -> str:
    label = f"{run.mode} b={run.backups}" if "backup" in run.mode else run.mode
    return f"{label} ({run.path.name})"


def column(run: Run, target: Target | None = None) -> Column:
    goal = target if target is not None else default_target(run.dataset)
    s = run.summary
    durations = run.step_durations()
    median = float(np.median(durations)) if len(durations) else None
    return Column(run.path, _label(run), int(s["steps"]), float(s["wall_s"]), float(s["steps_per_s"]), median, goal,
                  run.time_to(goal), run.steps_to(goal), int(s.get("dropped_gradients") or 0),
                  float(s.get("dropped_fraction") or 0.0), run.final_value(goal))


def compare(paths: list[Path], target: Target | None = None) -> list[Column]:
    if len(paths) < 2:
        raise ConfigError("give two or more run directories to compare, e.g. backupsgd compare SYNC_DIR BACKUP_DIR")
    runs = [load_run(p) for p in paths]
    check_recorded(target, runs)
    columns = [column(run, target) for run in runs]
    if len({c.target for c in columns}) > 1:
        raise ConfigError("the runs train different datasets, so their default targets differ; "
                          "pass one with --target, e.g. --target 'test_loss<=1.2'")
    return columns


def _ratio(first: float | None, last: float | None, fmt: str) -> str:
    return fmt.format(first / last) if first and last else "n/a"


def compare_table(columns: list[Column]) -> str:
    """Markdown: a row per quantity, a column per run; with two runs, how the second compares to the first."""
    target = columns[0].target
    rows = [
        ["steps per second", *(f"{c.steps_per_s:.1f}" for c in columns)],
        ["median step time, ms", *("n/a" if c.median_step_s is None else f"{1e3 * c.median_step_s:.2f}"
                                   for c in columns)],
        [f"time to {target.label}, s",
         *("not reached" if c.time_to_target_s is None else f"{c.time_to_target_s:.2f} (step {c.steps_to_target})"
           for c in columns)],
        ["gradients dropped", *(f"{c.dropped} ({100 * c.dropped_fraction:.1f}%)" for c in columns)],
        [f"final {target.name}", *("n/a" if c.final_value is None else target.format(c.final_value, decimals=2)
                                   for c in columns)],
        ["wall-clock time, s", *(f"{c.wall_s:.2f}" for c in columns)],
    ]
    header = ["", *(c.label for c in columns)]
    if len(columns) == 2:
        first, second = columns
        header.append("second / first")
        rows[0].append(_ratio(second.steps_per_s, first.steps_per_s, "{:.2f}x"))
        rows[1].append(_ratio(second.median_step_s, first.median_step_s, "{:.2f}x"))
        rows[2].append(_ratio(second.time_to_target_s, first.time_to_target_s, "{:.2f}x"))
        rows[3].append("")
        rows[4].append("")
        rows[5].append(_ratio(second.wall_s, first.wall_s, "{:.2f}x"))
    return markdown_table(header, rows)

