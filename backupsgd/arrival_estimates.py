"""What `--backups auto`'s policy (backupsgd.adaptive) knows of time: E[T_(k)], the k-th READY arrival of a step
(`ArrivalEstimate`), and overhead(N), a step's exchange after a decision at N (`ExchangeEstimate`), both smoothed
over recent steps. No MPI: the engine's coordinator and the simulator's replay feed them alike."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

EXCHANGE_SPAN = 20  # steps at one N: its measured exchange time is smoothed over about this many


@functools.lru_cache(maxsize=4096)
def _decay(alpha: float, age: int, array_power: bool = True) -> float:
    """(1 - alpha)^age as numpy's power computed it when these estimates were numpy arrays (ArrivalEstimate's) or
    numpy scalars (PerNEstimate's, `array_power=False`): Python's pow differs in the last bit for ~5% of ages, and
    numpy's scalar power from its array power for one (age 2 at span 20), so the plain-Python updates keep every
    estimate they gave, to the bit (replayed over recorded runs, results/auto-fast/coordinator-cost.txt)."""
    if array_power:
        return float(((1.0 - alpha) ** np.array([age], dtype=np.int64))[0])
    return float((1.0 - alpha) ** np.int64(age))


def _weight(alpha: float, age: int, count: int, array_power: bool = True) -> float:
    """The weight of a new observation in an EMA of step `alpha` last fed `age` steps ago (1: the step before), as if
    each step missed had brought the same value: 1 - (1 - alpha)^age; and at least 1 / `count` (the observations so
    far, this one included), so the first few make a plain mean."""
    return max(1.0 - _decay(alpha, age, array_power), 1.0 / count)


def _squared(miss: float) -> float:
    """A miss's square; 0 for nan (a first observation misses nothing)."""
    return miss * miss if miss == miss else 0.0


class ArrivalEstimate:
    """E[T_(k)] for k = 1..P from recent steps: one exponential moving average per k, fed only by
    the steps that saw the k-th arrival (a censored one says only "later than the decision").

    An estimate not fed for a while weighs less than a fresh observation: its weight decays with
    its age in steps, not in observations, so after a stretch at small N one probe step mostly
    replaces the stale values for larger k instead of nudging them. Until k has been seen `window`
    times the average is the plain mean of what was seen, so the first value does not linger.

    With `fast` (AutoSpec.fast, 5 by default) each k also keeps an EMA of that span, and each EMA's squared miss of
    the next observation is averaged (span `window`); where the fast one's weighs less, it stands for E[T_(k)]. Over
    independent draws an EMA of span s misses by var x (1 + 1 / s) on average, so in a steady regime the long one
    stands (drawn exponential delays: the fast one on 0.1-0.5% of the steps; digits' recorded runs under exponential
    delays, about 1%); after a shift the long one misses by the shift and the fast one takes over in 3-4 steps. A
    span-20 average alone holds 0.905^t of what it knew t steps ago: once digits' noisy neighbour left, E[T_(k)] for
    k >= 2 took 12-15 steps to come down from 9-18 ms, and N stayed at 1 where 4 cost the same (results/README.md
    section 10, "A second, fast arrival estimate"). A shorter window for everything (`window=10`) did that too, at a
    cost under steady delays; this one keeps the long memory wherever it foretells as well.
    """

    def __init__(self, workers: int, window: int, fast: int = 0) -> None:
        self.workers = workers
        self.alpha = 2.0 / (window + 1)  # EMA span `window`, as pandas' ewm(span=window)
        # a second EMA of span `fast` (0: none), for the k whose recent observations it foretold better (current())
        self.fast_alpha = 2.0 / (fast + 1) if fast else 0.0
        # Plain Python lists, one value per k, updated k by k: the coordinator's rank updates them every step, and at
        # P = 5 numpy's ~1 us a call (not its arithmetic) made 42 of the coordinator's 130 us a step
        # (results/auto-fast/coordinator-cost.txt); on 5 ranks sharing 2 cores a quiet step pays about twice its CPU
        # (results/README section 10, "What auto's machinery costs a quiet step is its CPU"). The simulator's large P
        # pays instead: section 7's runs (P up to 1,000) took 35.5 s against 22.9.
        self._mean = [math.nan] * workers
        self._fast = [math.nan] * workers
        self._miss = [0.0] * workers  # EMA (span `window`) of each mean's squared miss of the next observation
        self._fast_miss = [0.0] * workers  # ... of each fast mean's
        self._last = [0] * workers  # step at which each k was last observed
        self._count = [0] * workers  # how often each k was observed
        self.steps = 0
        self._previous: list[float] | None = None  # the latest step's first N arrivals, sorted
        self._expected: np.ndarray | None = None  # expected(), until the means change (see expected())

    # numpy copies of the per-k state, for readers (the policy's freshness mask, tests)
    mean = property(lambda self: np.array(self._mean))
    fast = property(lambda self: np.array(self._fast))
    miss = property(lambda self: np.array(self._miss))
    fast_miss = property(lambda self: np.array(self._fast_miss))
    last = property(lambda self: np.array(self._last, dtype=np.int64))
    count = property(lambda self: np.array(self._count, dtype=np.int64))

    def observe(self, arrivals: Sequence[float], late: Sequence[float] = (), floors: Sequence[float] = ()) -> None:
        """Fold in one decided step's first N arrivals (any order), after what this step's decision says of the step
        observed before it (seconds into that step, backupsgd.worker_watch.Censored): `late`, its READYs that came
        after its decision, which extend its first N to its first N + len(late) arrivals (uncensored order
        statistics past N, which keep T_(k) for k > N fresh without a probe); `floors`, for each worker still
        silent, a time its arrival is known to exceed.

        Those floors raise the estimates of the order statistics still missing: had the silent workers arrived
        at their floors, that step's sample would have been the known arrivals and the floors, and each order
        statistic of the true sample is at least that one's (`_raise`). Left out, the late READYs fed T_(k) only
        on the steps where the k-th came quickly, so E[T_(k)] for k > N was an average of the fast ones: under a
        heavy tail (digits, Pareto) N = 2 looked cheap at N = 1 and its steps took 15-28 ms against 8-12."""
        if self._previous is not None:
            both = sorted(self._previous + [float(x) for x in late])[: self.workers]
            if len(late):
                self._fold(len(self._previous), both)
            if len(floors):
                bound = sorted(both + [float(x) for x in floors])[: self.workers]
                self._raise(len(both), bound)
        self.steps += 1
        seen = sorted(float(x) for x in arrivals)[: self.workers]
        self._previous = seen
        self._fold(0, seen)

    def skip(self, arrivals: Sequence[float] = (), pause_s: float = math.nan) -> None:
        """A decided step whose arrival times count a pause of every rank before it (an evaluation): they are not
        folded, and its late READYs, which the next observe() would bring, are dropped too (timed from the same
        start). What it still says is how far apart the workers came: the ranks' evaluations, `pause_s` long,
        leave them at most about that far apart, so the k-th arrival's lead past the first beyond `pause_s` is the
        workers' own, and E[T_(1)] plus it is a floor on T_(k) (`_raise`: one EMA step up, not an observation).
        Not learnt from at all, a node turned slow at an evaluation cost runs at N = 4 on digits (evaluations of
        1 ms) a second step of 30 ms after the paused one, which had waited for it. Not the arrivals' spread alone:
        on the Python manual (evaluations of 0.6-0.9 s against 0.2 s steps, 5 ranks on 2 cores) the ranks come out
        of them up to 0.4 s apart with no worker slow, which read as a floor of that would lift E[T_(4)] 30 ms."""
        self._previous = None
        seen = sorted(float(x) for x in arrivals)[: self.workers]
        first = self.current()[0]
        if len(seen) >= 2 and math.isfinite(pause_s) and first == first:  # nan != nan
            self._raise(1, [x - seen[0] - pause_s + first for x in seen])

    def _fold(self, first: int, seen: list[float]) -> None:
        """EMA-update T_(k) for k = first+1..len(seen) with seen[first:]."""
        mean, fast, miss, fast_miss = self._mean, self._fast, self._miss, self._fast_miss
        for k in range(first, len(seen)):
            x = seen[k]
            self._count[k] += 1
            age, count = self.steps - self._last[k], self._count[k]
            old = mean[k]
            mean[k] = x if old != old else old + _weight(self.alpha, age, count) * (x - old)
            if self.fast_alpha:
                # The long mean's miss is measured after this observation is folded in ((1 - weight)^2 of its miss
                # before), the fast one's before: not what the class docstring says, but so it was when this was
                # numpy (its `old` a view of the updated means), and fast=5 was judged so (results/README section
                # 10). Measuring both before moved section 7's simulator ratios little: steady rows up to 0.005
                # slower, the heavy shift up to 0.012 faster. Not judged on the engine's workloads, so it stays.
                miss[k] += self.alpha * (_squared(x - mean[k]) - miss[k])
                fast_miss[k] += self.alpha * (_squared(x - fast[k]) - fast_miss[k])
                f = fast[k]
                fast[k] = x if f != f else f + _weight(self.fast_alpha, age, count) * (x - f)
            self._last[k] = self.steps
        self._expected = None

    def _raise(self, first: int, bound: list[float]) -> None:
        """T_(k) for k = first+1..len(bound) is known only to exceed bound[k-1] (censored): move each estimate below
        it toward it by one EMA step. It is not an observation: neither the count nor the freshness of those k
        changes."""
        for means, alpha in ((self._mean, self.alpha), (self._fast, self.fast_alpha)):
            for k in range(first, len(bound)):
                if means[k] < bound[k]:  # nan (never seen) stays nan
                    means[k] += alpha * (bound[k] - means[k])
        self._expected = None

    def current(self) -> list[float]:
        """Each k's mean, or its fast mean where that foretold the observations of late better (no order kept)."""
        if not self.fast_alpha:
            return self._mean
        return [fast if fast_miss < miss else mean
                for mean, fast, miss, fast_miss in zip(self._mean, self._fast, self._miss, self._fast_miss)]

    def expected(self) -> np.ndarray:
        """E[T_(k)] for k = 1..P, nondecreasing in k; nan where k was never seen. Read-only, and kept until the
        means change: the coordinator's policy reads it several times a step, and on a 2-core host its engine
        thread's time is the step's (the policy took 0.28 ms a step, against 5 ms steps on digits)."""
        if self._expected is None:
            out, top = [], math.nan
            for mean in self.current():  # EMAs of different ages can cross; T_(k) cannot: a running max
                if mean != mean:  # never seen: nan
                    out.append(mean)
                    continue
                top = mean if not top >= mean else top  # (not >=: a nan top is replaced)
                out.append(top)
            self._expected = np.array(out)
            self._expected.flags.writeable = False
        return self._expected


class PerNEstimate:
    """One EMA per N of something measured only on the steps decided at that N, forgotten once not measured for
    `fresh_within` measurements: an N measured again after that long starts its average afresh, and one measured
    after a shorter gap weighs as much as the EMA steps it missed (_weight, as ArrivalEstimate's)."""

    def __init__(self, workers: int, span: int, fresh_within: int) -> None:
        if fresh_within < 1:
            raise ValueError(f"fresh_within must be >= 1, got {fresh_within}")
        self.alpha = 2.0 / (span + 1)
        self.fresh_within = fresh_within
        self.mean = np.full(workers, np.nan)
        self.count = np.zeros(workers, dtype=np.int64)
        self.last = np.zeros(workers, dtype=np.int64)  # the measurement (counted from 1) at which each N last was
        self.measurements = 0
        self._expected = None  # what the subclass's reading of the means gives, until observe()

    def observe(self, n: int, seconds: float) -> None:
        """A step decided at N = `n` measured `seconds`."""
        # Python scalars, not numpy's (about 1 us an operation at P = 5; the coordinator observes twice a step)
        k = n - 1
        self.measurements += 1
        age = self.measurements - int(self.last[k])  # measurements since N was last measured
        kept = age < self.fresh_within  # else its old value was not used meanwhile: start it afresh
        count = int(self.count[k]) + 1 if kept else 1
        old = float(self.mean[k]) if kept else math.nan
        # after measurements at other N, the new one weighs as much as the steps it missed
        self.mean[k] = seconds if old != old else old + _weight(self.alpha, age, count, False) * (seconds - old)
        self.count[k] = count
        self.last[k] = self.measurements
        self._expected = None

    def fresh(self) -> np.ndarray:
        """Which N were measured within the last `fresh_within` measurements."""
        return ~np.isnan(self.mean) & (self.last > self.measurements - self.fresh_within)


class ExchangeEstimate(PerNEstimate):
    """overhead(N): the time from a step's decision at N to the next step's start (its exchange), measured per N.

    One number for every N was wrong where the exchange depends on N: the members-only reducer reduces over a
    group of N, and on a shared host the cores are shared with the non-members. Digits, 5 ranks on 2 cores (static
    runs at 32a2c31, medians): under exponential delays 0.66 / 1.25 / 1.95 / 2.31 ms at N = 1..4 (the non-members
    sleep in their delays and leave the cores to the exchange); in a quiet phase 3.49 / 2.25 / 2.38 / 2.68 ms (at
    N = 1 the dense reduction waits for the non-members' engine threads to get a core, i.e. for much of their
    compute), so every N from 1 to 5 took 3.5-4.6 ms a step there, while E[T_(5)] plus the overhead measured at
    N = 1 said N = 5 cost 40% more. An N never measured takes the nearest measured N's value (the lower one on a
    tie): a probe or a change of N measures it.

    An N is measured only while it is chosen, so a value that makes it look slow would never be corrected below
    the choice, where probes (which wait for more workers) do not go. Digits under exponential delays
    (results/auto-digits-exp60-cap, seed 17): one exchange of 14.5 ms at N = 1 in the 6th step (1-3 ms usually)
    took overhead(1) to 7.5 ms; auto moved to N = 2 and held it for 90 of the 100 steps to its target, and five
    more of the 60 runs held N >= 2 for 31-80 of their steps to the target. So the N below every N measured within
    the last `fresh_within` exchanges take the least such N's value (and an N not measured for that long starts
    afresh, PerNEstimate).
    """

    def __init__(self, workers: int, fresh_within: int = EXCHANGE_SPAN) -> None:
        super().__init__(workers, EXCHANGE_SPAN, fresh_within)

    def expected(self, default: float) -> np.ndarray:
        """overhead(N) for N = 1..P: as measured (below every freshly measured N, the least such N's; never measured,
        the nearest measured N's); `default` everywhere until one is. Read-only, and kept until the next observe()
        (as ArrivalEstimate.expected() is)."""
        if self._expected is not None and self._expected[0] == default:
            return self._expected[1]
        seen = ~np.isnan(self.mean)
        if not seen.any():
            out = np.full(len(self.mean), default)
        else:
            k = np.arange(len(self.mean))
            mean = self.mean.copy()
            fresh = self.fresh()
            if fresh.any():  # the N below every fresh one take the least fresh one's (see the class docstring)
                least = int(np.argmax(fresh))  # the first True
                mean[:least] = mean[least]
            below = np.maximum.accumulate(np.where(seen, k, -1))  # the nearest measured N at or below (-1: none)
            above = np.minimum.accumulate(np.where(seen, k, len(k))[::-1])[::-1]  # ... at or above (len: none)
            use_below = (below >= 0) & ((above == len(k)) | (k - below <= above - k))
            out = mean[np.where(use_below, below, above)]
        out.flags.writeable = False
        self._expected = (default, out)
        return out


class StepExcessEstimate(PerNEstimate):
    """How much longer the whole step at N, as the coordinator lived it from one step's start to the next's, took
    than the model's E[T_(N)] + overhead(N) said as it ended, measured per N (AutoPolicy.exchanged, AutoPolicy.times).

    E[T_(N)] + overhead(N) leaves out what happens between the N-th READY's arrival and the decision (the engine
    thread getting the GIL and a core: 0.1-2.5 ms a step on digits' 5 ms quiet steps, 5 ranks on 2 cores), and it
    learns T_(N) from steps decided at other N, where the workers share the cores differently (results/README.md
    section 10, the shifting regimes). So an N's own steps say what the model misses there. An excess, not the
    whole step: a whole step measured at an N the rule then left stood for that N for a window after the arrivals
    had moved. Under fashion-slow4 (results/README section 10), N = 1's steps measured in the quiet phase (88.7 ms
    on average, every rank computing on 2 cores) priced N = 1 for up to a window of measurements into the slowed
    phase, where the rule sat at N = 2-4 and the arrivals said ~35-80 ms (seed 591: read at step 16, used until step
    42); replayed over the window's 20 runs, the rule's steps at N >= 2 in steps 35-59
    fell from 3.25 a run to 0.90 with the excess. An N needs `least` steps of its own within the window first: one
    step under exponential delays says little (a probe's single slow step would otherwise price its N out for a
    window)."""

    def __init__(self, workers: int, window: int, least: int = 3) -> None:
        super().__init__(workers, window, window)
        self.least = least

    def known(self) -> np.ndarray:
        """The measured excess of every N seen at least `least` times within the window; nan elsewhere.
        Read-only, and kept until the next observe()."""
        if self._expected is None:
            self._expected = np.where(self.fresh() & (self.count >= self.least), self.mean, np.nan)
            self._expected.flags.writeable = False
        return self._expected
