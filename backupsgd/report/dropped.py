"""Who was dropped when: for one seed of each configuration, every worker against the steps of its run.

A cell says what became of worker r's gradient for step t: applied (a member), dropped after it was
computed (too late), or dropped without being computed (the worker was still behind on an earlier
step, so it skipped this one and only applied its update). Workers are named as the run directory
names them: ranks in the allreduce modes, worker indices in the parameter-server modes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from backupsgd.report.aggregate import GroupStats  # noqa: E402
from backupsgd.report.plots import DPI  # noqa: E402
from backupsgd.report.runs import Run  # noqa: E402

MEMBER, LATE, SKIPPED, OTHER = range(4)
STATES = {  # state: (legend, colour)
    MEMBER: ("applied (member)", "#c7e3c3"),
    LATE: ("dropped: computed, too late", "#d62728"),
    SKIPPED: ("dropped: skipped (still behind, never computed it)", "#5b0f10"),
    OTHER: ("not in this update (ps-async applies one push per update)", "#f2f2f2"),
}
WINDOW = 200  # steps drawn per run: each stays a few pixels wide, so a single dropped step still shows


def membership(run: Run) -> np.ndarray:
    """(workers, steps) array of states (MEMBER, LATE, SKIPPED, OTHER), from steps.jsonl and ranks.jsonl."""
    steps = sorted(run.steps, key=lambda s: s["step"])
    if not steps:
        return np.empty((run.workers, 0), dtype=int)
    first = steps[0]["step"]
    out = np.full((run.workers, steps[-1]["step"] + 1 - first), OTHER, dtype=int)
    # ps run directories written before workers were named by index there list MPI ranks k..k+W-1
    named = [r for s in steps for key in ("members", "dropped") for r in s.get(key, [])]
    legacy = run.mode.startswith("ps-") and max(named, default=0) >= run.workers
    shift = int(run.config.get("servers") or 0) if legacy else 0
    for s in steps:
        for state, key in ((MEMBER, "members"), (LATE, "dropped")):
            for r in s.get(key, []):
                out[r - shift, s["step"] - first] = state
    # A null compute time in ranks.jsonl: that rank never computed the step (allreduce modes only: the
    # parameter servers' workers record per pull, not per step). The lists end with the run's last step.
    for record in run.ranks:
        compute = record.get("compute_s")
        if record.get("role") is not None or not compute or record["rank"] >= run.workers:
            continue
        offset = out.shape[1] - len(compute)
        for i, c in enumerate(compute):
            if c is None and 0 <= offset + i and out[record["rank"], offset + i] == LATE:
                out[record["rank"], offset + i] = SKIPPED
    return out


def who_was_dropped(stats: list[GroupStats], path: Path) -> Path | None:
    """One panel per configuration (its lowest seed): workers down, the first WINDOW steps across, and
    each worker's count of dropped gradients over the whole run at the right."""
    runs = [(s.group.label, s.group.first) for s in stats]
    maps = [(label, run, membership(run)) for label, run in runs]
    maps = [(label, run, m) for label, run, m in maps if m.size]
    if not maps:
        return None
    heights = [0.9 + 0.28 * m.shape[0] for _, _, m in maps]
    fig, axes = plt.subplots(len(maps), 1, figsize=(11, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    cmap = ListedColormap([STATES[k][1] for k in sorted(STATES)])
    for ax, (label, run, m) in zip(axes[:, 0], maps):
        shown = m[:, :WINDOW]
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=len(STATES) - 1, aspect="auto", interpolation="nearest",
                  extent=(-0.5, shown.shape[1] - 0.5, m.shape[0] - 0.5, -0.5))
        workers = "worker" if run.mode.startswith("ps-") else "rank"
        ax.set_yticks(range(m.shape[0]), [f"{workers} {r}" for r in range(m.shape[0])], fontsize=8)
        span = f"steps 0-{shown.shape[1] - 1} of {m.shape[1]}" if m.shape[1] > WINDOW else f"{m.shape[1]} steps"
        ax.set_title(f"{label}: seed {run.seed}, {span}", fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
        ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
        ax.grid(which="minor", axis="y", color="white", lw=1.5)
        ax.tick_params(which="minor", length=0)
        dropped = ((m == LATE) | (m == SKIPPED)).sum(axis=1)
        for r, n in enumerate(dropped):
            ax.text(1.01, r, f"{n} dropped ({100 * n / m.shape[1]:.0f}%)", transform=ax.get_yaxis_transform(),
                    va="center", fontsize=8, color=STATES[LATE][1] if n else "0.35")
    axes[-1, 0].set_xlabel("step")
    present = sorted({int(v) for _, _, m in maps for v in np.unique(m)} | {MEMBER, LATE})
    fig.tight_layout()
    # below the figure (the saved picture grows to hold it), so it can never cover the last x label
    fig.legend(handles=[Patch(color=STATES[k][1], label=STATES[k][0]) for k in present], loc="upper center",
               ncol=len(present), fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
