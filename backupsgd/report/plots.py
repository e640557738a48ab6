"""The report's PNG figures (matplotlib, Agg backend: no display needed). One panel per (straggler, P)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from backupsgd.report.aggregate import GroupStats, panels  # noqa: E402
from backupsgd.report.arrivals import UNSTEPPED, coordinator_kth, ecdf, kth_arrivals  # noqa: E402
from backupsgd.report.target import Target  # noqa: E402
from backupsgd.sim.calibrate import TOLERANCE, Calibration  # noqa: E402

DPI = 110
PANEL_W, PANEL_H = 5.2, 3.8
PANEL_TITLE_WIDTH = 46  # characters a panel's title line takes at the default size over PANEL_W


def wrap_title(text: str, width: int) -> str:
    """`text` in lines of at most `width` characters, broken at spaces and after a straggler spec's ';' (its
    phases), never inside a word: a shifting regime's spec runs to 60-70 characters, and side by side the panels'
    one-line titles ran into each other."""
    return textwrap.fill(text.replace(";", "; "), width, break_on_hyphens=False)


def _panel_title(panel: tuple[str, int]) -> str:
    straggler, workers = panel
    return wrap_title(f"P={workers}, straggler {straggler}", PANEL_TITLE_WIDTH)


def _grid(n: int, rows_per_panel: int = 1) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows * rows_per_panel, cols, figsize=(PANEL_W * cols, PANEL_H * rows * rows_per_panel),
                             squeeze=False)
    return fig, axes


# Where a legend drawn below its axes starts (axes fraction): under the x label, not on it.
LEGEND_BELOW = (0.5, -0.24)


def save(fig: plt.Figure, path: Path, *, whole_legend: bool = False) -> Path:
    """Lay out, write and close a figure; `whole_legend` keeps legends drawn below the axes in the picture."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if whole_legend else None)
    plt.close(fig)
    return path


def _finish(fig: plt.Figure, axes: np.ndarray, used: int, path: Path) -> Path:
    for ax in axes.flat[used:]:
        ax.set_visible(False)
    return save(fig, path, whole_legend=True)


def _colors(stats: list[GroupStats]) -> dict[str, tuple]:
    """One colour per configuration label, stable across every figure."""
    labels = list(dict.fromkeys(s.group.short for s in stats))
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def metric_plot_name(stats: list[GroupStats]) -> str:
    """accuracy_vs_time.png for test accuracy targets, loss_vs_time.png for test loss, ..."""
    metrics = {s.target.metric for s in stats}
    metric = metrics.pop().removeprefix("test_") if len(metrics) == 1 else "target_metric"
    return f"{metric}_vs_time.png"


def metric_ylim(ax: plt.Axes, target: Target, values: list[np.ndarray]) -> None:
    """An accuracy on [target - 0.5, 1]; any other metric from its curves and the target, so a loss that
    starts at 2.3 and ends at 0.1 fills the panel and the target line is always in it."""
    if target.is_fraction:
        ax.set_ylim(max(0.0, target.value - 0.5), 1.0)
        return
    finite = np.concatenate([v[np.isfinite(v)] for v in values] + [np.array([target.value])])
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
    ax.set_ylim(lo - pad, hi + pad)


def metric_vs_time(stats: list[GroupStats], path: Path) -> Path:
    """The target's metric (test accuracy, test loss, ...) against wall-clock time: at each evaluation step,
    the mean time and value over seeds, with the min-max band; the dotted line is the target."""
    by_panel = panels(stats)
    colors = _colors(stats)
    fig, axes = _grid(len(by_panel))
    for ax, (panel, group_stats) in zip(axes.flat, by_panel.items()):
        target = group_stats[0].target
        drawn = []
        for s in group_stats:
            metric = s.target
            curves = [[(e["step"], e["time"], x) for e in r.evals if (x := metric.value_of(e)) is not None]
                      for r in s.group.runs]
            length = min(len(c) for c in curves)
            if length == 0:
                continue
            arr = np.array([c[:length] for c in curves])  # (seeds, evals, [step, time, value])
            t, y = arr[:, :, 1].mean(axis=0), arr[:, :, 2]
            color = colors[s.group.short]
            ax.plot(t, y.mean(axis=0), color=color, lw=1.8,
                    label=f"{s.group.short} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
            ax.fill_between(t, y.min(axis=0), y.max(axis=0), color=color, alpha=0.18, lw=0)
            drawn.append(y)
        ax.axhline(target.value, color="0.3", ls=":", lw=1, label=f"target: {target.label}")
        metric_ylim(ax, target, drawn)
        ax.set(title=_panel_title(panel), xlabel="wall-clock time, s", ylabel=target.name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=LEGEND_BELOW, ncol=1, frameon=False)
    return _finish(fig, axes, len(by_panel), path)


def arrival_cdf(stats: list[GroupStats], path: Path) -> Path | None:
    """CDF of the time until k of P gradients are in, one line per k; bottom row: coordinator-measured."""
    by_panel = {p: [s.group for s in gs] for p, gs in panels(stats).items()}
    data = {p: (kth_arrivals(g), *coordinator_kth(g)) for p, g in by_panel.items()}
    data = {p: d for p, d in data.items() if d[0].size}
    if not data:
        return None
    with_coord = any(d[1].size for d in data.values())
    fig, axes = _grid(len(data), rows_per_panel=2 if with_coord else 1)
    cols = axes.shape[1]
    for i, (panel, (worker, coord, coord_b)) in enumerate(data.items()):
        row, col = divmod(i, cols)
        top = axes[row * (2 if with_coord else 1), col]
        _cdf_lines(top, worker, worker.shape[1])
        top.set_title(f"{_panel_title(panel)}\nworker side (compute + injected delay)", fontsize=10)
        if with_coord:
            bottom = axes[row * 2 + 1, col]
            if coord.size:
                _cdf_lines(bottom, coord, worker.shape[1])
                bottom.set_title(f"{_panel_title(panel)}\ncoordinator: READY of the N={coord.shape[1]} members "
                                 f"(backup b={coord_b})", fontsize=10)
            else:
                bottom.set_visible(False)
    for ax in axes.flat:
        if not ax.lines and ax.get_visible():
            ax.set_visible(False)
    return save(fig, path)


def _cdf_lines(ax: plt.Axes, kth: np.ndarray, workers: int) -> None:
    cmap = plt.get_cmap("viridis")
    for k in range(kth.shape[1]):
        x, y = ecdf(kth[:, k])
        if len(x):  # colour by k out of P, so the same k has the same colour in both rows
            ax.step(1e3 * x, y, where="post", color=cmap(k / max(workers - 1, 1)), lw=1.5, label=f"k={k + 1}")
    ax.set(xlabel="time until k gradients are in, ms", ylabel="fraction of steps", ylim=(0, 1.02))
    finite = kth[np.isfinite(kth)]
    if finite.size:
        ax.set_xlim(0, 1e3 * np.percentile(finite, 99.5) * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncol=2)


def _family(s: GroupStats) -> str:
    """What a line of the b plot joins: one mode (and its own settings) across b."""
    k = s.group.first.config.get("servers")
    auto = s.group.backups if isinstance(s.group.backups, str) else ""  # at its mean b, a point of its own
    return " ".join(x for x in (s.group.mode, auto, f"k={k}" if k else "", s.group.extras) if x)


def _errorbars(ax: plt.Axes, members: list[GroupStats], get, scale: float, offset: float, color, label: str) -> None:
    pts = [(s.group.b_value, get(s), s) for s in members if get(s) is not None]
    if not pts:
        return
    mean = np.array([st.mean for _, st, _ in pts]) * scale
    lo = mean - np.array([min(st.best, st.worst) for _, st, _ in pts]) * scale
    hi = np.array([max(st.best, st.worst) for _, st, _ in pts]) * scale - mean
    if get is _tta and any(s.reached < s.seeds for _, _, s in pts):
        label += " (some seeds never reached it)"
    ax.errorbar(np.array([b for b, _, _ in pts]) + offset, mean, yerr=[lo, hi], fmt="o-" if len(pts) > 1 else "s",
                color=color, capsize=3, lw=1.5, label=label)


def _step(s: GroupStats):
    return s.step_s


def _tta(s: GroupStats):
    return s.time_to_target


def b_tradeoff(stats: list[GroupStats], path: Path, predicted: dict[tuple, float] | None = None) -> Path:
    """Top: step time against b; bottom: time to the target (a test accuracy, a loss) against b (mean,
    min-max bars over seeds). `sync` sits at b=0 as its own marker; the simulator's calibrated prediction
    is dashed. An async mode's "step" is one worker's push, not a synchronous step, so it appears in the
    bottom row only."""
    by_panel = panels(stats)
    fig, axes = _grid(len(by_panel), rows_per_panel=2)
    cols = axes.shape[1]
    cmap = plt.get_cmap("tab10")
    for i, (panel, group_stats) in enumerate(by_panel.items()):
        row, col = divmod(i, cols)
        top, bottom = axes[row * 2, col], axes[row * 2 + 1, col]
        families: dict[str, list[GroupStats]] = {}
        for s in group_stats:
            families.setdefault(_family(s), []).append(s)
        for j, (family, members) in enumerate(families.items()):
            members = sorted(members, key=lambda s: s.group.b_value)
            offset = 0.04 * (j - (len(families) - 1) / 2)  # keeps bars at the same b apart
            color = cmap(j % 10)
            _errorbars(bottom, members, _tta, 1.0, offset, color, family)
            if members[0].group.mode in UNSTEPPED:
                continue
            _errorbars(top, members, _step, 1e3, offset, color, family)
            pred = [(s.group.b_value, (predicted or {}).get(_key(s))) for s in members]
            pred = [(x, y) for x, y in pred if y is not None]
            if pred:
                top.plot([x + offset for x, _ in pred], [1e3 * y for _, y in pred], "x--", color=color,
                         alpha=0.7, label=f"{family} (simulated)")
        if not bottom.lines and not bottom.collections:
            bottom.text(0.5, 0.5, "no configuration reached the target", ha="center", va="center",
                        transform=bottom.transAxes, color="0.4")
        top.set(title=_panel_title(panel), xlabel="b (backup workers dropped per step)", ylabel="step time, ms")
        bottom.set(xlabel="b (backup workers dropped per step)", ylabel=f"time to {group_stats[0].target.label}, s")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if top.lines or top.collections:
            top.legend(fontsize=8)
        if bottom.lines or bottom.collections:  # below the axes: async labels are long
            bottom.legend(fontsize=8, loc="upper center", bbox_to_anchor=LEGEND_BELOW, frameon=False)
    used = {(divmod(i, cols)[0] * 2 + r, divmod(i, cols)[1]) for i in range(len(by_panel)) for r in (0, 1)}
    for (r, c), ax in np.ndenumerate(axes):
        ax.set_visible((r, c) in used)
    return save(fig, path, whole_legend=True)


def _key(s: GroupStats) -> tuple:
    return s.group.first.config_key()


def calibration_scatter(cal: Calibration, path: Path) -> Path | None:
    """Predicted against measured mean step time per run, with the +-15% band; hollow: runs that fitted
    an overhead, filled: predicted out of sample. Log axes: ps-async's updates are 10x shorter than a step."""
    if not cal.rows:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    modes = sorted({r.run.mode for r in cal.rows})
    for i, mode in enumerate(modes):
        color = f"C{i}"
        for fit in (False, True):
            rows = [r for r in cal.rows if r.run.mode == mode and r.in_sample == fit]
            if rows:
                ax.scatter([1e3 * r.run.step_s for r in rows], [1e3 * r.predicted_s for r in rows], s=24, alpha=0.8,
                           facecolors="none" if fit else color, edgecolors=color,
                           label=f"{mode} (fit)" if fit else mode)
    values = [1e3 * v for r in cal.rows for v in (r.run.step_s, r.predicted_s)]
    lo, hi = min(values) * 0.8, max(values) * 1.2
    x = np.geomspace(lo, hi, 50)
    ax.plot(x, x, color="0.2", lw=1, label="predicted = measured")
    ax.fill_between(x, x * (1 - TOLERANCE), x * (1 + TOLERANCE), color="0.5", alpha=0.15,
                    label=f"within {100 * TOLERANCE:.0f}%")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured mean step time, ms",
           ylabel="simulated mean step time, ms", title="simulator vs measured runs")
    # plain 1-2-5 ticks: the log axes' default 10^k labels overlap at this size
    ticks = [m * 10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo <= t <= hi]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ticks, [f"{t:g}" for t in ticks])
        axis.set_ticks([], minor=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)
