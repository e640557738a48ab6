"""Runs grouped by configuration (everything but the seed) and summarised over seeds: mean, best, worst."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from backupsgd.errors import ConfigError
from backupsgd.report.runs import NOT_CONFIG, Run
from backupsgd.report.target import Target, default_target

# Table and legend order; modes not listed (added later) follow, alphabetically.
MODE_ORDER = ("sync", "backup", "horovod", "ps-sync", "ps-backup", "ps-async")
# Keys a group's label always shows in its own way (or never: they follow from the others); they
# also say how gradients are aggregated, not what is trained, so groups differing only in them compare.
LABELLED = ("mode", "backups", "servers", "workers", "quorum", "quorum_bounds", "straggler", "seed", *NOT_CONFIG)


@dataclass(frozen=True)
class Stat:
    """Mean, best and worst of one quantity over the seeds of a configuration."""

    mean: float
    best: float
    worst: float
    n: int  # how many seeds had a value

    @staticmethod
    def of(values: Iterable[float | None], lower_is_better: bool) -> "Stat | None":
        xs = [float(v) for v in values if v is not None]
        if not xs:
            return None
        lo, hi = min(xs), max(xs)
        return Stat(float(np.mean(xs)), lo if lower_is_better else hi, hi if lower_is_better else lo, len(xs))


@dataclass
class Group:
    runs: list[Run]  # the seeds of one configuration, in seed order
    extras: str = ""  # the options that tell this group from others with the same mode and b

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def mode(self) -> str:
        return self.first.mode

    @property
    def backups(self) -> int | str:
        return self.first.backups

    @property
    def b_value(self) -> float:
        """b as a number for axes and fits: under auto, the mean over seeds of each run's mean b."""
        return float(np.mean([r.b_value for r in self.runs]))

    @property
    def order(self) -> tuple:
        """Where b sorts: every fixed b, then the auto variants by name."""
        b = self.backups
        return (1, 0, b) if isinstance(b, str) else (0, b, "")

    @property
    def panel(self) -> tuple[str, int]:
        """(straggler, P): the runs one plot panel compares."""
        return self.first.straggler, self.first.workers

    @property
    def short(self) -> str:
        """The label inside a panel: mode and b, and whatever else varies."""
        base = f"{self.mode} b={self.backups}" if "backup" in self.mode else self.mode
        if self.first.config.get("servers"):
            base += f" k={self.first.config['servers']}"  # parameter-server ranks
        return f"{base} {self.extras}".strip()

    @property
    def label(self) -> str:
        straggler, workers = self.panel
        return f"{self.short}, P={workers}, {straggler}"

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]


@dataclass(frozen=True)
class GroupStats:
    group: Group
    target: Target  # what the time to target is measured to (a metric of evals.jsonl and a direction)
    time_to_target: Stat | None  # over the seeds that reached the target
    steps_to_target: Stat | None  # updates applied by then, over the same seeds
    reached: int  # seeds that reached it
    final_value: Stat | None  # the target's metric at the end; best and worst follow its direction
    steps_per_s: Stat | None
    step_s: Stat | None  # mean training step time per run (evaluation steps left out)
    dropped_fraction: Stat | None

    @property
    def seeds(self) -> int:
        return len(self.group.runs)


def mode_rank(mode: str) -> tuple[int, str]:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def group_runs(runs: list[Run]) -> list[Group]:
    """Repeats of one configuration together; ordered by panel, then mode, then b."""
    by_key: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        by_key[run.config_key()].append(run)
    groups = [Group(sorted(rs, key=lambda r: r.seed)) for rs in by_key.values()]
    # A label names what sets a group apart from most others in its panel (say ps-async's own momentum
    # and steps), so that a grid that fixes those per mode still gets short, unambiguous labels.
    by_panel: dict[tuple, list[Group]] = defaultdict(list)
    for g in groups:
        by_panel[g.panel].append(g)
    for siblings in by_panel.values():
        keys = sorted({k for g in siblings for k in g.first.config} - set(LABELLED))
        usual = {k: Counter(repr(g.first.config.get(k)) for g in siblings).most_common(1)[0][0] for k in keys}
        for g in siblings:
            g.extras = " ".join(f"{k}={g.first.config.get(k)}" for k in keys
                                if repr(g.first.config.get(k)) != usual[k])
    return sorted(groups, key=lambda g: (g.panel, mode_rank(g.mode), g.order, g.extras))


def comparable(a: Group, b: Group) -> bool:
    """Whether two groups differ only in how gradients are aggregated (mode, b, servers), not in the workload."""
    def rest(g: Group) -> dict:
        return {k: v for k, v in g.first.config.items() if k not in LABELLED}

    return a.panel == b.panel and rest(a) == rest(b)


def target_for(group: Group, target: Target | None) -> Target:
    """The target asked for, else the default of the group's dataset."""
    return target if target is not None else default_target(group.first.dataset)


def check_recorded(target: Target | None, runs: list[Run]) -> None:
    """Refuse a target whose metric no run recorded: a typo would otherwise read as "never reached"."""
    if target is None or not runs:
        return
    recorded = set().union(*(r.metrics() for r in runs))
    if target.metric not in recorded:
        keys = ", ".join(sorted(recorded)) or "none"
        raise ConfigError(f"--target '{target.spec}': no run recorded {target.metric} in evals.jsonl (its keys: "
                          f"{keys}); name one of those")


def summarise(group: Group, target: Target | None = None) -> GroupStats:
    runs = group.runs
    goal = target_for(group, target)
    times = [r.time_to(goal) for r in runs]
    return GroupStats(
        group=group,
        target=goal,
        time_to_target=Stat.of(times, lower_is_better=True),
        steps_to_target=Stat.of((r.steps_to(goal) for r in runs), lower_is_better=True),
        reached=sum(t is not None for t in times),
        final_value=Stat.of((r.final_value(goal) for r in runs), lower_is_better=not goal.higher_is_better),
        steps_per_s=Stat.of((r.summary.get("steps_per_s") for r in runs), lower_is_better=False),
        step_s=Stat.of((r.mean_step_s() for r in runs), lower_is_better=True),
        dropped_fraction=Stat.of((r.summary.get("dropped_fraction") for r in runs), lower_is_better=True),
    )


def panels(stats: list[GroupStats]) -> dict[tuple[str, int], list[GroupStats]]:
    """Group statistics by (straggler, P), in table order."""
    out: dict[tuple[str, int], list[GroupStats]] = defaultdict(list)
    for s in stats:
        out[s.group.panel].append(s)
    return dict(out)
