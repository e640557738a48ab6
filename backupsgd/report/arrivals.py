"""Gradient arrival times: the time until k of P gradients are in, pooled over a panel's runs.

Worker-side times come from ranks.jsonl (compute + injected delay, from each worker's own step
start). They are taken from `sync` runs where a panel has them: there every worker computes every
step, while in `backup` runs a worker that fell far behind skips steps, and its arrival is
undefined (counted as never). Coordinator-side times come from steps.jsonl's `arrivals` of `backup`
runs: when each member's READY reached the coordinator, which adds the messaging; only the N
members are recorded.
"""

from __future__ import annotations

import numpy as np

from backupsgd.report.aggregate import Group

# Modes without synchronous steps: each worker pushes on its own clock, so "k of P in a step" means nothing.
UNSTEPPED = ("ps-async",)


def kth_arrivals(groups: list[Group]) -> np.ndarray:
    """(steps pooled over runs, P): row t sorted, so column k-1 is the time until k gradients are in."""
    runs = [r for g in groups for r in g.runs if r.mode not in UNSTEPPED]
    sync = [r for r in runs if r.mode == "sync"]
    rows = [r.arrival_matrix()[1:] for r in (sync or runs)]  # step 0 is warm-up
    rows = [m for m in rows if m.size]
    if not rows:
        return np.empty((0, 0))
    width = min(m.shape[1] for m in rows)
    return np.sort(np.concatenate([m[:, :width] for m in rows]), axis=1)  # NaN (never) sorts last


def coordinator_kth(groups: list[Group]) -> tuple[np.ndarray, int | None]:
    """(steps pooled over runs, N): the coordinator's sorted READY times of the members, from the
    panel's `backup` runs with the fewest backups (the most members to show), and that b."""
    voting = [g for g in groups if g.mode == "backup" and not isinstance(g.backups, str)]  # a fixed N: one width
    if not voting:
        return np.empty((0, 0)), None
    b = min(g.backups for g in voting)
    rows = [r.coordinator_arrivals()[1:] for g in voting if g.backups == b for r in g.runs]
    rows = [m for m in rows if m.size]
    if not rows:
        return np.empty((0, 0)), None
    width = min(m.shape[1] for m in rows)
    return np.concatenate([m[:, :width] for m in rows]), b


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF over all entries; NaN entries (never arrived) count in the denominator only."""
    finite = np.sort(values[np.isfinite(values)])
    return finite, np.arange(1, len(finite) + 1) / max(len(values), 1)
