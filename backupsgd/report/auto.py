"""`--backups auto` runs in a report: N over the steps beside who was slow (auto.png), and a table of mean N.

One column per auto configuration (its lowest seed): on top the N the coordinator chose each step (from
steps.jsonl's `quorum`; a probe shows as a spike), below every worker's time to a ready gradient per step
(compute + injected delay, from ranks.jsonl: the stragglers the choice answered). Both share the step axis.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from backupsgd.report.aggregate import GroupStats, comparable, panels  # noqa: E402
from backupsgd.report.plots import DPI  # noqa: E402
from backupsgd.report.tables import markdown_table  # noqa: E402

MAX_COLUMNS = 6  # configurations drawn side by side; the table lists every one


def auto_groups(stats: list[GroupStats]) -> list[GroupStats]:
    return [s for s in stats if isinstance(s.group.backups, str)]


def auto_plot(stats: list[GroupStats], path: Path) -> Path | None:
    """auto.png, or None when no run chose N per step."""
    shown = [s for s in auto_groups(stats) if s.group.first.steps][:MAX_COLUMNS]
    if not shown:
        return None
    fig, axes = plt.subplots(2, len(shown), figsize=(5.2 * len(shown), 6.4), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [1, 1.3]}, layout="constrained")
    for col, s in enumerate(shown):
        run = s.group.first
        n = run.chosen_n()
        top, bottom = axes[0, col], axes[1, col]
        top.step(np.arange(len(n)), n, where="post", color="C0", lw=1.2)
        top.set(ylim=(0.5, run.workers + 0.5), ylabel="N chosen", yticks=range(1, run.workers + 1))
        top.set_title(f"{s.group.label}\nseed {run.seed}: mean N {np.mean(n):.2f}", fontsize=9, loc="left")
        top.grid(alpha=0.3)
        ready = run.arrival_matrix()  # (steps, P) seconds; NaN where a worker skipped the step
        if ready.size:
            image = bottom.imshow(1e3 * ready.T, aspect="auto", interpolation="nearest", cmap="magma_r",
                                  extent=(-0.5, ready.shape[0] - 0.5, ready.shape[1] - 0.5, -0.5))
            fig.colorbar(image, ax=axes[:, col], label="compute + delay, ms", pad=0.01)  # both rows stay aligned
            bottom.set_yticks(range(ready.shape[1]), [f"rank {r}" for r in range(ready.shape[1])], fontsize=8)
        bottom.set(xlabel="step", title="who was slow: each worker's time to a ready gradient\n"
                   "(white: still behind, it never computed that step)")
        bottom.title.set_fontsize(9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


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


def auto_against_static(stats: list[GroupStats]) -> str:
    """Issue 14's judgment per panel: each auto configuration's mean time to target against the best static b's
    (`backup` mode, same workload) and whether it beats every static b; "" when no panel has both."""
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
            rows.append([f"{straggler}, P={workers}", a.group.short, f"{a.reached}/{a.seeds}",
                         f"{a.time_to_target.mean:.2f}", f"b={best.group.backups} ({best.time_to_target.mean:.2f})",
                         f"{ratio:.3f}", "yes" if ratio < 1 and a.reached == a.seeds else "no",
                         ", ".join(f"b={s.group.backups}" for s in unreached) or "none"])
    if not rows:
        return ""
    return markdown_table(["panel", "auto", "reached", "time to target, s", "best static b (s)",
                           "auto / best static", "beats every static b", "static b not reaching it every seed"],
                          rows, align_right_from=2)
