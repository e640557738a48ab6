"""What the vote's coordinator knows of each worker's whereabouts, for `--backups auto`: who is still on a step
decided without it (busy), who of those has been silent for longer than the policy's deep_after_s() (deep in a
delay), the READYs that came after the decision of the step decided last (late arrivals, timed as the policy wants
them), and for each worker still silent, how long it has been computing (a floor on its arrival, `Censored`).

No MPI here: the Coordinator (backupsgd.coordinator) calls `heard()` for every READY or NONFINITE it receives, its own
included, and `decided()` when it decides a step; the simulator's replay (backupsgd.sim.auto) models the same
two counts from drawn compute times, so that it makes the coordinator's choices.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, NamedTuple, Sequence


class Censored(NamedTuple):
    """What a decision adds to the previous step's first N arrivals (seconds into that step, as the policy wants
    them): `late`, its READYs heard since its decision (uncensored arrivals past N); `floors`,
    for every rank silent since then, how long it has computed by this decision (its arrival is later than that)."""

    late: list[float]
    floors: list[float]


class WorkerWatch:
    """Per-worker bookkeeping of the coordinator under `--backups auto` (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self._unheard: set[int] = set()  # dropped from a decided step and not heard from since
        self._heard_at: list[float | None] = [None] * size  # when each rank was last heard from (None: not yet)
        self._last_decided = -1
        self._late: list[float] = []  # the step decided last's READYs that came after its decision
        self._began = [0.0] * size  # when each rank began the computation it is on, as far as the coordinator knows
        self._last_start = 0.0  # when that step started
        self._start_lag = 0.0  # how long after its start its members began computing it (median)

    def heard(self, rank: int, step: int, when: float, took_s: float | None, late_counts: bool = True) -> None:
        """`rank` sent a READY (or NONFINITE) for `step` at `when`, having computed for `took_s`: it is free again.
        If `step` is the one decided last, the READY is a late arrival (`late_counts` False: one that says nothing
        of the ranks' speed, from a rank brought back from behind or a NONFINITE). A READY for an older step is not
        one: counted as an arrival past N of the step decided last, the simulator's shifting regime lost 1.2-1.3
        points at P = 16 and 100 (results/README section 7): a worker back from a long Pareto delay reported it as
        one step's arrival, and N stayed low after the worker was free; its floors told of it while it lasted."""
        self._unheard.discard(rank)
        self._heard_at[rank] = when
        if late_counts and step == self._last_decided:
            self._late.append(self._late_arrival(when, took_s))

    def _late_arrival(self, when: float, took_s: float | None) -> float:
        """A late READY as seconds into its step, had its rank begun the step when the members did.

        A dropped rank was still on an older step when this one started, so its READY's time from the step's start
        also counts that lag, which exists only because it was dropped: waiting for it every step would not have
        left it behind. Counted in, the late arrivals overstate T_(k) for k > N, and a policy that drops workers
        then never finds it worth waiting for them again. So the rank's own compute time counts, plus the members'
        usual delay between the step's start and their own (`took_s` None: a rank that did not measure it)."""
        if took_s is None:
            return when - self._last_start
        return self._start_lag + took_s

    def decided(self, step: int, step_start: float, offered: Iterable[int], member_lags: Sequence[float],
                now: float, unchosen: Sequence[tuple[float, float | None]] = ()) -> Censored:
        """`step` (started at `step_start`) was decided at `now`; `offered`: the ranks that offered or declined it by
        then; `member_lags`: its members' arrival less their compute time (seconds after the step's start each
        began); `unchosen`: (when, took_s) of its READYs that came in time but past its first N. Returns what the
        policy learns of the step decided before it, with this one: its late READYs, and a floor for each rank
        silent since its decision.

        A READY in time but past the first N is an arrival past N as much as a late one is, and it is handed on
        with the next decision as one (the simulator's ties are too). Left out, the floors of the ranks still silent
        stood in for it: the k-th of the known arrivals and the floors bounds T_(k) from below only if every rank is
        among them. On digits at N = 1 the coordinator often drains two or three READYs at once (its engine thread
        waits for the GIL about a millisecond into each step), and under a node 30 ms slow the two slow ranks' floors
        lifted E[T_(2)] from 3 to 7-9 ms while the fast ranks' READYs said 3: N = 1 held for a hundred steps.

        A floor is the time since the rank began its computation: at the step's start if it was free then, else
        when its READY for an older step came (it takes up the step under way at once). A floor counted from the
        previous step's start instead (as one common floor did) put a worker that began late, because it was
        dropped, a step's time above its compute: on the Python manual's gpt, E[T_(4)] read 289-298 ms against
        225-236 measured at N = 4, and auto kept N at 2-3 where every N cost the same (results/README section 10).
        The time from a rank's READY to its computing again is taken as the members' start lag, which the late
        arrivals add (see _late_arrival): so the floor needs neither."""
        offered = set(offered)
        late, self._late = self._late, []
        floors = [now - self._began[r] for r in sorted(self._unheard - offered)]  # silent since the last decision
        # a rank not heard from before the first decision counts as silent from the first step's start, not from
        # whenever this watch was made (start-up can take seconds)
        self._heard_at = [step_start if t is None else t for t in self._heard_at]
        for r in range(len(self._began)):  # each rank not offered by now is computing: since when?
            if r not in offered and r not in self._unheard:  # free when the step started, or heard since
                self._began[r] = max(self._heard_at[r], step_start)
        self._last_decided, self._last_start = step, step_start
        # statistics.median, not numpy's: the same value (the middle one, or the mean of the two), and this runs on
        # the coordinator between its decision and its part of the reduction, which every rank waits for; on a
        # handful of lags numpy's took 38 us of the 150-185 us a step of auto's bookkeeping (quiet machine)
        self._start_lag = float(statistics.median(member_lags)) if len(member_lags) else 0.0
        self._unheard = set(range(len(self._heard_at))) - offered  # still on this step, or on an older one
        self._late = [self._late_arrival(when, took_s) for when, took_s in unchosen]
        return Censored(late, floors)

    def busy(self, behind: set[int]) -> set[int]:
        """Ranks still on a step decided without them (as far as the coordinator knows), or behind."""
        return self._unheard | behind

    def deep(self, behind: set[int], now: float, after_s: float) -> set[int]:
        """The busy ranks silent at `now` for longer than `after_s` (AutoPolicy.deep_after_s; nan: none), and the
        ranks behind (brought back before they can offer again)."""
        if math.isnan(after_s):
            return set(behind)
        return {r for r in self._unheard if now - self._heard_at[r] > after_s} | behind
