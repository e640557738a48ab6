"""Markdown tables of the grouped statistics: one row per configuration, cells `mean [best, worst]`."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from backupsgd.report.aggregate import GroupStats, Stat

NOT_REACHED = "not reached"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int = 1) -> str:
    sep = ["---" if i < align_right_from else "---:" for i in range(len(header))]
    lines = [header, sep, *rows]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines)


def stat_cell(stat: Stat | None, fmt: Callable[[float], str], missing_worst: bool = False) -> str:
    """`mean [best, worst]`; a worst that some seed never reached is shown as such, not as a number."""
    if stat is None:
        return NOT_REACHED if missing_worst else "n/a"
    worst = NOT_REACHED if missing_worst else fmt(stat.worst)
    return f"{fmt(stat.mean)} [{fmt(stat.best)}, {worst}]"


def _s(x: float) -> str:
    return f"{x:.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _steps(x: float) -> str:
    return f"{x:.0f}"


def _ms(x: float) -> str:
    return f"{1e3 * x:.1f}"


def _rate(x: float) -> str:
    return f"{x:.1f}"


def final_header(stats: list[GroupStats]) -> str:
    """"final test accuracy" when every row's target has one metric; defaults of several datasets may not."""
    names = {s.target.name for s in stats}
    return f"final {names.pop()}" if len(names) == 1 else "final value of the target's metric"


def configurations_table(stats: list[GroupStats]) -> str:
    """Per configuration, over its seeds: time and steps to target, the final value of the target's metric,
    steps/s, step time, dropped gradients."""
    header = ["configuration", "seeds", "reached target", "time to target, s", "steps to target", final_header(stats),
              "steps/s", "step time, ms", "dropped gradients"]
    rows = []
    for s in stats:
        target = s.target
        rows.append([
            s.group.label,
            str(s.seeds),
            f"{s.reached}/{s.seeds} ({target.op} {target.format(target.value)})",
            stat_cell(s.time_to_target, _s, missing_worst=s.reached < s.seeds),
            stat_cell(s.steps_to_target, _steps, missing_worst=s.reached < s.seeds),
            stat_cell(s.final_value, lambda x: target.format(x, decimals=1)),  # noqa: B023 (called at once)
            stat_cell(s.steps_per_s, _rate),
            stat_cell(s.step_s, _ms),
            "n/a" if s.dropped_fraction is None else _pct(s.dropped_fraction.mean),
        ])
    return markdown_table(header, rows, align_right_from=1)


def arrivals_table(rows: list[tuple[str, np.ndarray]]) -> str:
    """Median (p90) seconds until k of P gradients are in, per panel; `rows` are (panel label, k-th times)."""
    width = max((m.shape[1] for _, m in rows), default=0)
    header = ["straggler, P", *(f"k={k}" for k in range(1, width + 1))]
    body = []
    for label, kth in rows:
        cells = []
        for k in range(width):
            col = kth[:, k] if k < kth.shape[1] else np.array([])
            col = col[np.isfinite(col)]
            cells.append(f"{_ms(np.median(col))} ({_ms(np.percentile(col, 90))})" if len(col) else "")
        body.append([label, *cells])
    return markdown_table(header, body)
