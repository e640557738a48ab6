"""The paper's claim checked on the runs: backup workers converge faster than sync and to better
accuracy than async. Verdicts come from a fixed rule, applied to every backup configuration (no
picking the best b after the fact):

- faster than sync: the mean time to the target is lower AND the backup run is faster than the
  sync run of the same seed (the same injected stragglers) on more than half the seeds; a seed
  that never reaches the target counts as infinitely slow. Both reversed: "does not hold";
  anything else: "mixed". Neither reaching the target at all: "untested".
- better than async: the same rule on the final value of the target's metric, in the target's
  direction (a higher accuracy, a lower loss), against every async configuration of the panel,
  since async is often run with its own hyperparameters (momentum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backupsgd.report.aggregate import GroupStats, comparable, panels
from backupsgd.report.target import Target

ASYNC_MODES = ("ps-async",)
UNTESTED = "untested (neither reached the target)"
TIME, FINAL = "time to target", "final value"  # the two quantities a verdict compares (of the target's metric)


@dataclass(frozen=True)
class Verdict:
    panel: tuple[str, int]
    subject: str  # the backup configuration
    baseline: str  # what it is compared with
    quantity: str  # TIME or FINAL
    target: Target  # the subject's: its metric and direction
    subject_mean: float | None
    baseline_mean: float | None
    wins: int  # seeds on which the subject did better
    pairs: int  # seeds both have
    outcome: str  # "holds" | "does not hold" | "mixed"

    def sentence(self) -> str:
        straggler, workers = self.panel
        if self.quantity == TIME:
            fmt = lambda x: "not reached" if x is None else f"{x:.2f} s"  # noqa: E731
            better, quantity = "faster", f"time to target ({self.target.label})"
        else:
            fmt = lambda x: "n/a" if x is None else self.target.format(x, decimals=1)  # noqa: E731
            better = f"{'higher' if self.target.higher_is_better else 'lower'} {self.target.name}"
            quantity = f"final {self.target.name}"
        return (f"P={workers}, {straggler}: **{self.subject}** vs {self.baseline}, {quantity} "
                f"{fmt(self.subject_mean)} vs {fmt(self.baseline_mean)} (means); {better} on "
                f"{self.wins}/{self.pairs} paired seeds: claim **{self.outcome}**")


def _outcome(mean_better: bool | None, wins: int, pairs: int) -> str:
    if pairs == 0 or mean_better is None:
        return "mixed"
    if mean_better and 2 * wins > pairs:
        return "holds"
    if not mean_better and 2 * wins < pairs:
        return "does not hold"
    return "mixed"


def _tta(run, target: Target) -> float:
    t = run.time_to(target)
    return math.inf if t is None else t


def _final(run, target: Target) -> float:
    x = run.final_value(target)
    return target.worst() if x is None else x  # a run without the metric loses every pairing


def _compare(panel, subject: GroupStats, baseline: GroupStats, quantity: str) -> Verdict:
    theirs = {r.seed: r for r in baseline.group.runs}
    pairs = [(r, theirs[r.seed]) for r in subject.group.runs if r.seed in theirs]
    target = subject.target
    if quantity == TIME:
        wins = sum(_tta(a, target) < _tta(b, target) for a, b in pairs)
        # mean over the seeds that reached it; a configuration that never did is worse than any that did
        s = subject.time_to_target.mean if subject.time_to_target else None
        b = baseline.time_to_target.mean if baseline.time_to_target else None
        mean_better = None if s is None and b is None else (b is None or (s is not None and s < b))
    else:
        wins = sum(target.better(_final(a, target), _final(b, target)) for a, b in pairs)
        s = subject.final_value.mean if subject.final_value else None
        b = baseline.final_value.mean if baseline.final_value else None
        mean_better = None if s is None or b is None else target.better(s, b)
    outcome = _outcome(mean_better, wins, len(pairs)) if mean_better is not None else UNTESTED
    return Verdict(panel, subject.group.short, baseline.group.short, quantity, target, s, b, wins, len(pairs),
                   outcome)


def verdicts(stats: list[GroupStats]) -> list[Verdict]:
    out = []
    for panel, group_stats in panels(stats).items():
        backups = [s for s in group_stats if s.group.mode == "backup" and s.group.backups != 0]
        for subject in backups:
            for s in group_stats:
                if s.group.mode == "sync" and comparable(s.group, subject.group):
                    out.append(_compare(panel, subject, s, TIME))
            # async may be tuned apart (its own momentum, steps): every async group of the panel is a baseline
            for s in group_stats:
                if s.group.mode in ASYNC_MODES:
                    out.append(_compare(panel, subject, s, FINAL))
    return out


def claims_markdown(stats: list[GroupStats]) -> str:
    found = verdicts(stats)
    if not found:
        return ("No verdict: the runs hold no backup configuration with b > 0 beside a sync (or async) "
                "configuration of the same panel.")
    lines = [f"- {v.sentence()}" for v in found]
    for quantity, baseline in ((TIME, "sync"), (FINAL, "async")):
        some = [v for v in found if v.quantity == quantity]
        if some:
            counts = {o: sum(v.outcome == o for v in some) for o in ("holds", "does not hold", "mixed", UNTESTED)}
            lines.append(f"- **Overall vs {baseline}** ({quantity}): holds in {counts['holds']}, does not hold in "
                         f"{counts['does not hold']}, mixed in {counts['mixed']}, untested in {counts[UNTESTED]} "
                         f"of {len(some)} comparisons.")
        else:
            lines.append(f"- No {baseline} runs to compare with: the {quantity} half of the claim is untested here.")
    return "\n".join(lines)
