"""`--backups auto` runs in a report: N over the steps beside who was slow (auto.png), and a table of mean N.

One panel pair per auto configuration (its lowest seed), COLUMNS to a row: on top the N the coordinator chose
each step (from steps.jsonl's `quorum`; a probe shows as a spike), below every worker's time to a ready gradient
per step (compute + injected delay, from ranks.jsonl: the stragglers the choice answered). Both share the step axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import scipy.stats

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from backupsgd.report.aggregate import GroupStats, comparable, panels  # noqa: E402
from backupsgd.report.plots import DPI, wrap_title  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.tables import markdown_table  # noqa: E402
from backupsgd.report.target import Target  # noqa: E402

MAX_SHOWN = 12  # configurations drawn; the table lists every one
COLUMNS = 4  # ... side by side, so that a sweep's 2 rules x 4 regimes make two readable rows
BOOTSTRAP_RESAMPLES = 9999
RESOLVE_WITHIN = 0.05  # issue 14's judgment: within 5% of the best static b
Z95 = 1.96  # the normal quantile of a two-sided 95% interval
LOG_SPAN = 20  # a "who was slow" panel whose times span more than this factor is coloured on a log scale
TITLE_WIDTH = 48  # characters a title line takes at 9 pt over one column (wrapped at the label's ", ")


def auto_groups(stats: list[GroupStats]) -> list[GroupStats]:
    return [s for s in stats if isinstance(s.group.backups, str)]


def auto_plot(stats: list[GroupStats], path: Path) -> Path | None:
    """auto.png, or None when no run chose N per step."""
    shown = [s for s in auto_groups(stats) if s.group.first.steps][:MAX_SHOWN]
    if not shown:
        return None
    columns, rows = min(COLUMNS, len(shown)), -(-len(shown) // COLUMNS)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(5.2 * columns, 7.0 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.3] * rows}, layout="constrained")
    for unused in range(len(shown), rows * columns):
        axes[-2, unused % columns].set_axis_off()
        axes[-1, unused % columns].set_axis_off()
    for i, s in enumerate(shown):
        run = s.group.first
        n = run.chosen_n()
        top, bottom = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        top.sharex(bottom)
        top.step(np.arange(len(n)), n, where="post", color="C0", lw=1.2)
        top.set(ylim=(0.5, run.workers + 0.5), ylabel="N chosen", yticks=range(1, run.workers + 1))
        title = wrap_title(s.group.label, TITLE_WIDTH)
        top.set_title(f"{title}\nseed {run.seed}: mean N {np.mean(n):.2f}", fontsize=9, loc="left")
        top.grid(alpha=0.3)
        ready = run.arrival_matrix()  # (steps, P) seconds; NaN where a worker skipped the step
        if ready.size:
            image = bottom.imshow(1e3 * ready.T, aspect="auto", interpolation="nearest", cmap="magma_r",
                                  norm=_delay_norm(1e3 * ready),
                                  extent=(-0.5, ready.shape[0] - 0.5, ready.shape[1] - 0.5, -0.5))
            fig.colorbar(image, ax=[top, bottom], label="compute + delay, ms", pad=0.01)  # both panels stay aligned
            bottom.set_yticks(range(ready.shape[1]), [f"rank {r}" for r in range(ready.shape[1])], fontsize=8)
        bottom.set(xlabel="step", title="who was slow: each worker's time to a ready gradient\n"
                   "(white: still behind, it never computed that step)")
        bottom.title.set_fontsize(9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _delay_norm(ms: np.ndarray) -> matplotlib.colors.Normalize | None:
    """A log colour scale where the times span more than LOG_SPAN (a heavy tail: one Pareto draw of 80 s against
    0.3 s steps left every other step the same pale colour on a linear one); None (linear) otherwise."""
    seen = ms[np.isfinite(ms) & (ms > 0)]
    if seen.size and seen.max() > LOG_SPAN * seen.min():
        return matplotlib.colors.LogNorm(vmin=seen.min(), vmax=seen.max())
    return None


def auto_table(stats: list[GroupStats]) -> str:
    """Per auto configuration: mean N over seeds (each run's mean over its steps), the range chosen, and how
    often N changed; "" when there is none."""
    rows = []
    for s in auto_groups(stats):
        chosen = [run.chosen_n() for run in s.group.runs if run.steps]
        if not chosen:
            continue
        changes = np.mean([np.count_nonzero(np.diff(n)) for n in chosen])
        rows.append([s.group.label, str(len(chosen)), f"{np.mean([n.mean() for n in chosen]):.2f}",
                     f"{int(min(n.min() for n in chosen))}..{int(max(n.max() for n in chosen))}", f"{changes:.1f}"])
    if not rows:
        return ""
    return markdown_table(["configuration", "seeds", "mean N", "N chosen", "changes of N per run"], rows,
                          align_right_from=1)


def _paired_times(auto: GroupStats, static: GroupStats) -> tuple[np.ndarray, np.ndarray] | None:
    """Both configurations' times to target on the seeds they share, seed by seed; None unless both reached the
    target on the same 3 or more seeds (a seed that never reached it has no time to pair)."""
    times = [{r.seed: r.time_to(g.target) for r in g.group.runs} for g in (auto, static)]
    seeds = sorted(set(times[0]) & set(times[1]))
    if len(seeds) < 3 or any(t[seed] is None for t in times for seed in seeds):
        return None
    x, y = (np.array([t[seed] for seed in seeds]) for t in times)
    return x, y


def paired_ratio_interval(auto: GroupStats, static: GroupStats) -> tuple[float, float] | None:
    """A 95% bootstrap interval of auto's mean time to target over `static`'s, resampling seeds in pairs: a seed
    fixes the data order, the initial weights and the straggler draws of both runs, so its luck counts once and the
    interval is about the choice of N, not the seeds. None without 3 paired seeds (`_paired_times`)."""
    if (paired := _paired_times(auto, static)) is None:
        return None
    result = scipy.stats.bootstrap(paired, lambda x, y, axis: np.mean(x, axis) / np.mean(y, axis), paired=True,
                                   vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                                   random_state=0)  # percentile: BCa fails on ratios that never vary
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def times_by_seed(folder: Path, target: Target) -> dict:
    """Each run's time to `target` under `folder` (training time: the evaluations' pauses left out), by its seed;
    None for a run that never reached it. What the paired A/B scripts under results/ compare."""
    runs, _ = load_runs(Path(folder), True)
    return seed_times(runs, target)


def seed_times(runs: list, target: Target) -> dict:
    """Each of `runs`' time to `target` by its seed (None: never reached): times_by_seed for runs already loaded,
    e.g. one configuration of a sweep."""
    return {r.seed: r.time_to(target) for r in runs}


def _t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(low, mean, high): the mean of `values` and its t interval at `level` (nan ends for fewer than 2 values)."""
    mean = float(np.mean(values))
    half = float(scipy.stats.t.ppf(0.5 + level / 2, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))
    return mean - half, mean, mean + half


def paired_log_ratio(num: dict, den: dict, level: float = 0.95) -> tuple[list, float, float, float]:
    """(seeds, ratio, low, high): the geometric mean over the seeds both reached (times by seed, as times_by_seed
    gives) of num / den, and its t interval at `level` from the per-seed log ratios. The paired A/B scripts'
    statistic; the report's own judgment is paired_ratio_interval (a bootstrap of the ratio of means)."""
    seeds = sorted(s for s in set(num) & set(den) if num[s] and den[s])
    low, mean, high = _t_interval(np.array([math.log(num[s] / den[s]) for s in seeds]), level)
    return seeds, math.exp(mean), math.exp(low), math.exp(high)


def paired_ratio_line(num: dict, den: dict, label: str) -> str:
    """One line of a paired A/B script: `label`, the seeds, both mean times and paired_log_ratio with its interval."""
    seeds, ratio, low, high = paired_log_ratio(num, den)
    means = f"{np.mean([num[s] for s in seeds]):.3f} s / {np.mean([den[s] for s in seeds]):.3f} s"
    return f"{label}: {len(seeds)} seeds, {means}, ratio {ratio:.3f} [{low:.3f}, {high:.3f}]"


def seeds_to_resolve(auto: GroupStats, static: GroupStats, within: float = RESOLVE_WITHIN) -> int | None:
    """How many paired seeds a 95% interval of the ratio would need to be +-`within` wide, judging by these seeds'
    spread: ceil((1.96 sd / ln(1 + within))^2), sd the spread of the per-seed log ratios, never fewer than the 3
    an interval needs. A planning figure, not a test: the spread of 3-5 seeds is itself uncertain, and on a shared
    machine it holds the machine's drift between runs as well as the training's (results/README section 10)."""
    if (paired := _paired_times(auto, static)) is None:
        return None
    spread = float(np.std(np.log(paired[0] / paired[1]), ddof=1))
    return max(3, math.ceil((Z95 * spread / math.log1p(within)) ** 2))


@dataclass(frozen=True)
class ByEvaluation:
    """Auto against a static b where the static b's seed-averaged metric first reaches the target: the paired
    difference in the metric there and the ratio of the times to that evaluation (as the report counts time: less the
    evaluations' pauses under --training-time), each a mean over the shared seeds with its 95% t interval (low, mean,
    high)."""

    step: int
    difference: tuple[float, float, float]  # auto's metric less the static b's
    time_ratio: tuple[float, float, float]  # auto's time to the step over the static b's, mean of per-seed ratios


def by_evaluation(auto: GroupStats, static: GroupStats) -> ByEvaluation | None:
    """Auto against `static` evaluation by evaluation (ByEvaluation), over the seeds both ran; None without 3 such
    seeds or if the static b's mean never reaches the target at an evaluation every one of them made.

    Why beside the time to target: where the same seed's two runs drift apart (the Python manual: its two arms'
    bits per byte differ by sd ~0.25 at step 150, where their means differ by 0.01, and the curves fall 0.004 a step)
    each seed's time to the target is mostly that drift, and a seed one configuration never brought there drops out
    of the paired ratio. At a fixed evaluation every seed counts: level in the metric at a time ratio r reads as r in
    time to the target (results/README section 10, "The Python manual evaluation by evaluation")."""
    target = static.target
    theirs = {r.seed: r for r in static.group.runs}
    pairs = [(a, theirs[a.seed]) for a in auto.group.runs if a.seed in theirs]
    if len(pairs) < 3:
        return None
    evals = [tuple({int(e["step"]): e for e in run.evals if target.value_of(e) is not None} for run in pair)
             for pair in pairs]
    steps = sorted(set.intersection(*(set(mine) & set(other) for mine, other in evals)))
    step = next((s for s in steps if target.reached({target.metric: np.mean([o[s][target.metric] for _, o in evals])})),
                None)
    if step is None:
        return None
    difference = np.array([target.value_of(m[step]) - target.value_of(o[step]) for m, o in evals])
    ratio = np.array([a.time_of(m[step]) / b.time_of(o[step]) for (a, b), (m, o) in zip(pairs, evals)])
    return ByEvaluation(step, _t_interval(difference), _t_interval(ratio))


def auto_against_static(stats: list[GroupStats]) -> str:
    """Issue 14's judgment per panel: each auto configuration's mean time to target against the best static b's
    (`backup` mode, same workload), with a paired 95% interval of that ratio over seeds, and whether it beats every
    static b; "" when no panel has both."""
    rows = []
    for (straggler, workers), group_stats in panels(stats).items():
        for a in auto_groups(group_stats):
            static = [s for s in group_stats if s.group.mode == "backup" and not isinstance(s.group.backups, str)
                      and comparable(s.group, a.group) and s.time_to_target is not None]
            if a.time_to_target is None or not static:
                continue
            best = min(static, key=lambda s: s.time_to_target.mean)
            ratio = a.time_to_target.mean / best.time_to_target.mean
            unreached = [s for s in static if s.reached < s.seeds]
            interval = paired_ratio_interval(a, best)
            needed = seeds_to_resolve(a, best)
            evaluation = by_evaluation(a, best)
            rows.append([f"{straggler}, P={workers}", a.group.short, f"{a.reached}/{a.seeds}",
                         f"{a.time_to_target.mean:.2f}", f"b={best.group.backups} ({best.time_to_target.mean:.2f})",
                         f"{ratio:.3f}", "n/a" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}",
                         "n/a" if needed is None else str(needed),
                         "yes" if ratio < 1 and a.reached == a.seeds else "no",
                         ", ".join(f"b={s.group.backups}" for s in unreached) or "none",
                         "n/a" if evaluation is None else _evaluation_cell(evaluation, best.target)])
    if not rows:
        return ""
    return markdown_table(["panel", "auto", "reached", "time to target, s", "best static b (s)",
                           "auto / best static", "95% interval, paired seeds", f"seeds for +-{RESOLVE_WITHIN:.0%}",
                           "beats every static b",
                           "static b not reaching it every seed",
                           "where the best static b's mean reaches it: auto - b, time ratio (95%, paired seeds)"],
                          rows, align_right_from=2)


def _evaluation_cell(e: ByEvaluation, target: Target) -> str:
    """e.g. "step 150: +0.007 [-0.102, +0.116], time 1.034 [1.009, 1.059]"; an accuracy in percentage points."""
    scale, unit, form = (100.0, " pp", "{:+.1f}") if target.is_fraction else (1.0, "", "{:+.3f}")
    low, mean, high = (form.format(scale * x) for x in e.difference)
    return (f"step {e.step}: {mean}{unit} [{low}, {high}], "
            f"time {e.time_ratio[1]:.3f} [{e.time_ratio[0]:.3f}, {e.time_ratio[2]:.3f}]")
