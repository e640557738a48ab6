"""`--backups auto`: choose N online from recent arrival times and the gradient noise scale.

A pure module (numpy only, no MPI, no torch), shared by the engine's coordinator and by
`backupsgd simulate`, so the simulator's replay of `auto` makes the coordinator's choices.

Each step the coordinator sees the READY arrivals of that step (seconds into the step, as
steps.jsonl's `arrivals` records them): the k-th smallest is T_(k), and only the first N are
seen when the step decides at N (later ones are censored). Two rules, behind one protocol:

- "progress" (the default): a step that averages N gradients of B examples each makes
  N B / (N B + B_noise) of a noise-free step's progress (McCandlish et al. 2018, arXiv 1812.06162),
  and takes E[T_(N)] + overhead(N) seconds, or N's own measured steps where those are longer
  (AutoPolicy.times); pick the N that maximises their ratio.
- "dbw": Xu, Neglia, Sebastianelli, "Dynamic Backup Workers" (arXiv 2004.14696), as faithfully as
  we could reconstruct it: see `DbwRule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from backupsgd.arrival_estimates import ArrivalEstimate, ExchangeEstimate, StepExcessEstimate
from backupsgd.auto_spec import AutoSpec
from backupsgd.errors import ConfigError

DEEP_FACTOR = 2.0  # silent this many times the slowest usual step, a worker is deep in a delay (deep_after_s)
MAX_PROBE_BACKOFF = 8  # probes that change nothing grow rarer, up to this many times probe_every apart
HOLD_STEPS = 5  # a climb of N (or a measuring step) waits at most this many steps for enough free workers (choose())
# The engine's coordinator learns nothing of the first steps it observes (AutoQuorum marks them paused): the ranks
# begin the first unsynchronised, and the workers dropped from it are still finishing it as the second starts.
WARM_UP_STEPS = 2


def progress_fraction(n: np.ndarray | int, batch: int, noise_scale: float) -> np.ndarray | float:
    """N B / (N B + B_noise): the share of a noise-free step's progress an N-gradient step makes."""
    return n * batch / (n * batch + noise_scale)


class Rule(Protocol):
    def value(self, n: np.ndarray, time_s: np.ndarray, batch: int, noise_scale: float) -> np.ndarray:
        """Expected progress per second of each candidate N taking `time_s` seconds."""


@dataclass(frozen=True)
class ProgressRule:
    """Progress per second under the noise model: N B / (N B + B_noise) / (E[T_(N)] + overhead(N))."""

    def value(self, n, time_s, batch, noise_scale):
        return progress_fraction(n, batch, noise_scale) / time_s


@dataclass(frozen=True)
class DbwRule:
    """DBW's objective as we reconstruct it: the expected loss decrease of one SGD step per second.

    For an L-smooth loss and step size eta, one step averaging k gradients of batch B each decreases
    the loss in expectation by at least eta |G|^2 (1 - L eta / 2) - L eta^2 tr(Sigma) / (2 k B);
    DBW picks the k that maximises that bound over E[T_(k)] (plus overhead), afresh every iteration.
    Divided by eta |G|^2 and with B_noise = tr(Sigma) / |G|^2 it reads
    (1 - lr_l / 2) - (lr_l / 2) B_noise / (k B), lr_l = L eta. Guessed: the paper estimates L (and
    |G|^2, sigma^2) at the server; our coordinator measures B_noise but not L, so lr_l is a setting.
    """

    lr_l: float = 1.0

    def value(self, n, time_s, batch, noise_scale):
        h = self.lr_l / 2
        return ((1 - h) - h * noise_scale / (n * batch)) / time_s


class AutoPolicy:
    """Chooses N for the next step: `observe(arrivals, noise_scale)` after each step, `choose()` before.

    While the noise scale is unknown (nan), the first step included, wait for the least N that measures it (2 where
    the bounds allow; backupsgd.noise needs two batch sizes); in the engine the first measurement reaches the
    coordinator a step or two late (rank 0's training thread posts it after applying step 0). The first step used to
    wait for N_max, to see every arrival: in the engine that step is a warm-up (AutoQuorum does not learn
    from it) and its N_max-th arrival came 20-70 ms after its first on digits, 2-8% of a run's time to target; in
    the simulator at 1,000 workers under Pareto delays it waited out the slowest of 1,000 and cost 8% of a run's
    progress per second. The late READYs of the steps after it show the arrivals past 2.
    Switch to the best N only when its predicted value beats the current N's by `margin` (hysteresis,
    so near ties do not flap), and never to an N whose arrival was not seen within the window. Every
    `probe_every` steps, wait for max(2, 5% of P) more workers than the choice (at most N_max) for one
    step: a way to see arrivals past the current N. A probe costs a slow step under a heavy
    tail, so each probe that leaves N unchanged doubles the interval (up to MAX_PROBE_BACKOFF times),
    and a change of N resets it.

    Two more inputs keep a return to a large N from waiting for those probes (the shifting regime,
    results/README.md section 7): the READYs of dropped workers that came after their step's decision
    (`late`: uncensored arrivals past N, so T_(k) for k > N stays fresh while those workers keep up),
    and how many workers are `busy` when a step starts (dropped from an earlier step and not heard
    from since: still computing a step already decided). Only the P - busy others can offer this
    step soon, so a probe waits for no more than them; and no choice waits for the workers silent for
    longer than deep_after_s() (`deep` in a delay, see choose()).

    A step of one member measures no noise scale (backupsgd.noise needs two batch sizes), and B_simple grows as
    training goes on: at N = 1 the noise scale the rule used was the first steps' (a digits run measured it on 5
    of 250 steps, its B_simple 2-8x below a static b = 3 run's), so N looked worth less than it was. So when no
    step of two or more members was seen within the window, and a noise scale grown by 2x for every window since it
    was measured would make another N best, the next step waits for 2 (a measuring step).

    `measured_noise`: the noise scale observe() is given is measured as the run goes (the engine's coordinator), not
    known (the simulator is given it). A measured one raises N above N_min only once `settle` steps have been observed
    (until then N stays N_min, but for the first steps, the probes and the window's last step, which measure): the
    first steps' B_simple is an average of few noisy ratios taken before training has found its footing, and high where
    a larger N does not pay. Counted in steps, not in measurements: a run at N = 1 measures only now and then. Until
    2026-12-06 the window held N at 2, the least N that measures, and the rule chose between 1 and 2 (on Fashion-MNIST
    nearly always 2). Replayed with the steps 0-29 at N >= 2 at their first arrival instead, Fashion-MNIST's runs (the
    noisy neighbourhood's quiet start, 20 runs) reached 80% 4.0 steps sooner (SE 1.84); with the window's steps at the
    rule's N >= 2 so cut, digits' reached 90% 0.7 (SE 0.4, noisy neighbourhood) and 0.9 (SE 0.8, Pareto) steps sooner
    and as soon under exponential delays (0.0, SE 0.5; smoothed crossings), where the cut steps had waited 25 and 12 ms
    a run under Pareto and exponential delays (results/README section 10, "A settle window at N = 1").
    On Fashion-MNIST under
    Pareto delays (40 seeds of auto and of b = 3, N = 2) it read (as the plain average before 51eebb2) about 1 worker
    batch over steps 0-8, 0.15-0.2 over steps 11-25 (after the loss's early spike), and grew to ~0.6 by step 60 (the
    weighted average reads 0.4-0.7 over steps 10-40 and 1.4 at 60); auto, at its `noise=2.5`, waited for 2.9
    workers on average over steps 2-10 and stood 0.18 higher in test loss than b = 3 at step 20 (0.04 at step 40);
    static runs at N = 3 stood 0.11 above N = 2 at step 20 as well (seeds 0-9) and pulled ahead only from step 50 on.
    """

    def __init__(self, spec: AutoSpec, workers: int, batch: int = 1, measured_noise: bool = False) -> None:
        if batch < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {batch}")
        self.spec, self.workers, self.batch = spec, workers, batch
        # observe() counts self.steps: below this many, a measured noise scale may not raise N above 2 (see above)
        self._settle = spec.settle if measured_noise else 0
        self.n_min, self.n_max = spec.bounds(workers)
        self._candidates = np.arange(1, workers + 1)  # every N, for values()
        self._out_of_bounds = (self._candidates < self.n_min) | (self._candidates > self.n_max)
        self._least_measuring = max(self.n_min, min(2, self.n_max))  # the least N that measures the noise scale
        self.rule: Rule = RULE_REGISTRY[spec.rule](spec)
        self.hysteresis = spec.margin if spec.rule == "progress" else 0.0  # DBW re-chooses every iteration
        self.arrivals = ArrivalEstimate(workers, spec.window, spec.fast)
        self.noise_scale = math.nan
        # overhead(N), unless the spec fixes one (see exchanged()); trusted as long as the arrival estimates are
        self.exchanges = ExchangeEstimate(workers, fresh_within=spec.window)
        self.step_excess = StepExcessEstimate(workers, spec.window)  # each N's whole step over the model (times())
        self._observed_paused = True  # whether the step observed last was paused (its whole step is not learnt)
        self.steps = 0
        self._probe_gap = spec.probe_every
        self._next_probe = spec.probe_every
        self._measured = 0  # self.steps after the last step of two or more members (one that measured the noise)
        self._waited_for = np.zeros(workers, dtype=np.int64)  # [k - 1]: self.steps after the last step learnt at N >= k
        self.measuring = False  # whether the last choose() answered a measuring step (the records tell it from a probe)
        self.held = False  # whether the last choose() held back a climb (or a measuring step) for lack of free workers
        self._in_effect: int | None = None  # the rule's N as the last choose() used it (None: no step chosen yet)
        self._held_steps = 0  # steps in a row held back so
        self._values: tuple | None = None  # values()'s last answer and what it was computed from
        self._times: tuple | None = None  # times()'s, likewise
        self.n = self._best()  # the current choice, before probing (see the class docstring for the first steps)

    def observe(self, arrivals: Sequence[float], noise_scale: float | None, late: Sequence[float] = (),
                paused: bool = False, floors: Sequence[float] = (), pause_s: float = math.nan) -> None:
        """Fold in one decided step: its READY arrival times (any order) and the smoothed measured B_simple;
        `late`, `floors`: what this step's decision says of the previous step's arrivals past its N (the READYs
        that came after its decision, and how long each worker still silent has computed; see ArrivalEstimate);
        `paused`: the step's arrivals include a pause of every rank before it (an evaluation), so they are not
        folded (ArrivalEstimate.skip). Folded, one evaluation of 0.8 s against 0.1 s steps made every E[T_(k)]
        equal (they are kept nondecreasing), N = P looked free, and a Fashion-MNIST run waited 34 s at N = P.
        `pause_s`: how long that evaluation took (rank 0's); arrivals further apart than that raise the estimates
        (ArrivalEstimate.skip), nan: nothing is learnt from the step.

        The rules use `noise_factor` times B_simple. B_simple is the noise scale of McCandlish et al.'s model,
        which tunes the learning rate for every batch size; at a fixed learning rate (and with momentum) a
        smaller batch can cost far less than that model says: fitted from steps to target, the effective
        B_noise is 0.10x B_simple on digits, 0.16x on Fashion-MNIST, 1.45x on pydocs with Adam
        (results/README.md section 10; against the plain average before 51eebb2, which read B_simple before the target
        1.15x, 2.3x and 1.4x lower than the weighted one). So the factor is a workload's calibration, fitted from a
        static sweep by `backupsgd report` (its "Gradient noise scale and the b trade-off")."""
        self._observed_paused = paused
        if paused:
            self.arrivals.skip(arrivals, pause_s)
        else:
            self.arrivals.observe(arrivals, late, floors)
        if noise_scale is not None and math.isfinite(noise_scale):
            # a negative estimate means "no noise"
            self.noise_scale = max(float(noise_scale), 0.0) * self.spec.noise_factor
        self.steps += 1
        if len(arrivals) >= 2:
            self._measured = self.steps
        if not paused:
            self._waited_for[: len(arrivals)] = self.steps
        before, self.n = self.n, self._best()
        if self.steps > self._next_probe:  # the probe (if any) is done: when is the next one?
            # A probe that changed nothing was exploration wasted: back off, up to MAX_PROBE_BACKOFF times the
            # interval; a change of N (a new regime, perhaps) resets it.
            self._probe_gap = self.spec.probe_every if self.n != before else \
                min(2 * self._probe_gap, MAX_PROBE_BACKOFF * self.spec.probe_every)
            self._next_probe = self.steps + self._probe_gap

    def choose(self, busy: int = 0, deep: int = 0, paused: bool = False) -> int:
        """N for the next step (the decision message carries it); `busy`: workers still on a step decided without
        them, which a probe does not wait for (one may be deep in a heavy-tailed delay); `deep`: those of them silent
        for longer than deep_after_s(), which no step waits for (N <= P - deep, but never below N_min).

        Why two kinds: a worker a few milliseconds behind (dropped from the previous step, its late READY on the way)
        is busy at nearly every step's start while it catches up, and capping N by it kept N from ever climbing
        back; a worker silent for twice the slowest usual step is in a delay of its own, and an N that needs it
        waits that delay out: a Fashion-MNIST run chose N = P with one worker 34 s into a Pareto delay.

        `paused`: the step will be observed paused (an evaluation before it), so its arrivals are not learnt; a probe
        due then moves to the next step. With probe_every and eval_every both 10 (every judged sweep) the first
        probe of every run fell on the step after the first evaluation: it waited for two more workers and learnt
        nothing (a pydocs run: 2.3 s for that step against ~1.3 s for the other evaluated ones).

        `busy` also holds a climb back: a step at an N above the last step's that would need a worker still on an older
        step (N > P - busy) goes only as far as the free workers reach, for up to HOLD_STEPS steps in a row (`held`;
        the rule's N is then the one in effect, and the next step decides the climb again), and so does a measuring
        step. E[T_(k)] is learnt from workers that each began the step at its start (a late
        READY counts its own compute, WorkerWatch), which a busy worker did not: it finishes its older step first.
        Over the digits rows' records (results/README section 10, "A climb that needs a busy worker"), the rule's
        climbs from N = 1 that needed one lived 16.3 ms against 12.2 foretold under Pareto delays (30 runs, 48 climbs),
        14.1 against 8.9 under exponential ones and 13.6 against 8.0 in the noisy neighbourhood, while those with the
        workers free lived 13.1 against 12.2, 11.5 against 9.2 and 4.7 against 4.7, as the steps at an unchanged N.
        Not held for good: a worker a few milliseconds behind is busy at many steps' starts (above), and an N that pays
        is worth its wait; at N = 1 under digits' delays a second worker was free at 39-45% of the steps' starts."""
        n = self.n
        free = self.workers - busy  # the workers not still on an older step
        may_hold = self._held_steps < HOLD_STEPS
        self.held = may_hold and self._in_effect is not None and n > max(self._in_effect, free)
        if self.held:
            # As far as the free workers reach, and that is the rule's N now: the next step decides the rest of the
            # climb afresh, its hysteresis counted from the N in effect. Kept as the rule's N instead (e9753ff), a
            # climb the estimates wanted for a step stayed wanted through the hold (the margin held it) and went ahead
            # after HOLD_STEPS: the noisy neighbourhood's noisy phase took 7.4 steps a run at N >= 2 against 5.2 at
            # the code before the hold.
            n = self.n = max(self._in_effect, free)
        self._in_effect = n
        probe = bool(self.spec.probe_every) and self.steps == self._next_probe
        if probe and paused:
            self._next_probe, probe = self._next_probe + 1, False
        if probe:
            wider = max(n, min(self.n_max, n + max(2, round(0.05 * self.workers)), free))
            # A step learnt at `wider` or more since the last probe was due saw what this one would (it refreshed the
            # arrivals up to there, and their exchange and whole step): the probe is done. Digits' slow node came at
            # an evaluation and runs at N = 4 learnt it a step late (the paused step is not learnt from); the probe
            # due then waited for the slow node a third time (30 ms) after the step at N = 4 had just seen it.
            # The dropped workers' late READYs had shown nearly every probe's arrivals too (all but 1 of 305 probes,
            # replayed), but a policy that took them as a probe's (1d742e7) took no less time on digits' three rows
            # and chose N = 2 in more long stretches (results/README section 10, "Probes done by late READYs"):
            # reverted, the probe still measures its N's exchange and whole step.
            if self._waited_for[wider - 1] <= self.steps - self._probe_gap:
                n = wider
        # the settle window's last step measures too: the rule then starts from a noise scale of the window's end, not
        # of its first steps or its probes' (the class docstring)
        self.measuring = not probe and n < 2 <= self.n_max and (
            self.steps == self._settle - 1 or self._noise_could_move_n(self.steps - self._measured))
        if self.measuring and 2 > free and may_hold:
            self.measuring, self.held = False, True  # it waits for a free worker as a climb does (above)
        if self.measuring:
            n = 2  # a measuring step: the noise scale is no older than the window, as the arrivals are
        self._held_steps = self._held_steps + 1 if self.held else 0
        return max(self.n_min, min(n, self.workers - deep))

    def exchanged(self, n: int, took_s: float, step_s: float | None = None) -> None:
        """The step decided at `n` took `took_s` seconds from its decision to the next step's start (the engine's
        coordinator measures it; the simulator models it): overhead(n) learns it, unless the spec fixes the
        overhead, and the choice is made again with it. `step_s`: the whole of that step, from its start to the
        next one's (StepExcessEstimate learns how much longer it was than E[T_(n)] + overhead(n) read then, overhead(n)
        having learnt `took_s`; not from a paused step). Call it before the next choose().

        The exchange of a step is known only as the next one starts, after observe() chose, so the rule's first
        choice took the overhead as 0; the first exchange learnt makes it again, without holding the N chosen so
        (hysteresis would): at 1,000 simulated workers, where N climbs back only as far as probes and late READYs
        have seen, a first N of 309 (552 with the overhead) stayed and cost 3% of progress per second.

        Not learnt: the exchanges of the first WARM_UP_STEPS steps where they were observed paused, the engine's
        warm-up (AutoQuorum learns nothing of them): the first's reduction and update are the run's first (digits,
        5 ranks on 2 cores: 4.8 ms against 1.7-2.5 ms for every later exchange, paused or not; 20 runs), and
        overhead(2) read from it kept N = 2 and above looking 1.5 ms dearer than N = 1 for a window, so in a quiet
        phase half the runs went to N = 1 at step 2 and stayed until the first probe at step 11, where N = 4 costs
        next to nothing more; the second's was still 3.0 ms against 2.3 later. The simulator's first step is not
        paused, and its exchanges are modelled: learnt as any."""
        if self.spec.overhead_s == 0:
            if self.steps <= WARM_UP_STEPS and self._observed_paused:
                return  # the exchange of an engine's warm-up step (see above)
            first = not self.exchanges.count.any()
            self.exchanges.observe(n, took_s)
            if step_s is not None and not self._observed_paused:
                model = self.arrivals.expected()[n - 1] + self.overheads()[n - 1]
                self.step_excess.observe(n, step_s - float(model))
            if first and not math.isnan(self.noise_scale):
                self.n = self._best(hold=False)

    def times(self) -> np.ndarray:
        """The seconds a step at N takes, N = 1..P: E[T_(N)] + overhead(N) plus what that model missed of the N's
        own measured steps (StepExcessEstimate) where it has them, elsewhere of the current N's (the vote's latency,
        as the current N lives it); never less than the model. With a fixed overhead in the spec, the model alone
        (that spec says what a step costs beside its wait): exchanged() then learns no steps.

        The model plus the excess, not the measured step: a step's whole time is learnt only as the next one starts
        (exchanged()), after observe() chose, and it is an average over the window, so when a worker turns slow the
        arrivals say so first. Taking the measured step alone, runs at N = 4 on digits waited for a node turned 30 ms
        slow for three steps after its first (the 3.5 ms measured steps of the quiet phase stood for N = 4 while
        E[T_(4)] + overhead(4) was already 7 ms), 100 ms a run. Until 2026-12-07 an N's time was the longer of its
        measured step and the model, and a measured step stood for its N unmoved while the rule was elsewhere
        (StepExcessEstimate says what that cost).

        Read-only, and kept until an estimate or the current N changes: the rule and the step's record both ask."""
        estimates = (self.arrivals.expected(), self.overheads(), self.step_excess.known())  # each kept until it changes
        cached = self._times
        if cached is not None and cached[0] == self.n and all(x is y for x, y in zip(cached[1], estimates)):
            return cached[2]
        arrivals, overheads, excess = estimates
        lent = float(excess[self.n - 1])  # the current N's, for the N with none of their own (nan: none, so 0)
        out = arrivals + overheads + np.where(np.isnan(excess), lent if lent > 0 else 0.0, np.fmax(excess, 0.0))
        out.flags.writeable = False
        self._times = (self.n, estimates, out)
        return out

    def overheads(self) -> np.ndarray:
        """overhead(N) for N = 1..P, seconds: the spec's fixed one, else as measured (ExchangeEstimate; 0 until
        a step's exchange was)."""
        return self.exchanges.expected(self.spec.overhead_s)

    def deep_after_s(self) -> float:
        """How long a worker may go unheard before it counts as deep in a delay: DEEP_FACTOR times E[T_(N_max)]
        plus the overhead, the slowest step this policy may wait for (from its last READY a worker also waits for
        the decision and the update before computing again); the largest E[T_(k)] seen for k <= N_max stands in
        until T_(N_max) is (a run that starts at N = 2 may not see it for a while). Counted in time, not in
        decisions: at N = 1 steps can be decided within a millisecond of each other, and a worker of ordinary speed
        misses several. nan (no worker is deep) until an arrival has been seen.
        Plain Python over the N_max values, as _top: rank 0 asks once a step, before the vote."""
        slowest = [a + o for a, o in zip(self.arrivals.expected()[: self.n_max].tolist(),
                                         self.overheads()[: self.n_max].tolist())]
        if not any(math.isfinite(s) for s in slowest):
            return math.nan
        return DEEP_FACTOR * max(s for s in slowest if s == s)  # nan != nan

    def values(self, noise_scale: float | None = None, fresh_only: bool = True) -> np.ndarray:
        """The rule's value of every N in 1..P (nan where unknown or out of bounds), at the noise scale in hand
        or at `noise_scale`; `fresh_only`: only the N whose arrival was seen within the window (see below)."""
        noise = self.noise_scale if noise_scale is None else noise_scale
        times = self.times()  # kept until an estimate or the current N changes
        key = (noise, fresh_only, self.arrivals.steps)
        cached = self._values
        if cached is not None and cached[0] == key and cached[1] is times:
            return cached[2]  # asked again before anything changed (a step asks two or three times)
        with np.errstate(divide="ignore"):  # a step of zero seconds (no compute, no network) is worth inf
            val = self.rule.value(self._candidates, times, self.batch, noise)
        val[self._out_of_bounds] = np.nan
        if fresh_only:
            # Trust only estimates seen within the window: an old T_(k) predates whatever has happened since (a
            # worker stuck in a long stale step is invisible until a step waits for it), so N rises only to what
            # the current N or a recent probe has seen.
            val[self.arrivals.last < self.arrivals.steps - self.spec.window] = np.nan
        val.flags.writeable = False
        self._values = (key, times, val)
        return val

    def _noise_could_move_n(self, age: int) -> bool:
        """Whether the noise scale in hand, measured `age` steps ago, is at least a window old and, grown 2x for every
        window of that age (how far it may have grown unseen), would move the best N off the current one, on every
        arrival estimate kept, fresh or not: if not, measuring it again (a step of two at N = 1) buys nothing.

        Under steady exponential delays on digits N = 1 stays best at twice the noise, and a measuring step every
        window cost about 3% of the time to target; B_simple about doubles over digits' first hundred steps. But on the
        Python manual it grows 100-fold over steps 5-20 (0.05 worker batches to 6-10, pooled over 8 seeds): a run that
        went to N = 1 at step 3 (seed 18, `noise=0.2`) kept its first steps' noise scale, which twice over still made
        N = 1 best, took two probes' measurements in 200 steps, and ended at 4.96 bits per byte against b = 2's 4.22
        (results/README section 10, "A noise scale that keeps up")."""
        if age < self.spec.window:
            return False
        if math.isnan(self.noise_scale):
            return True
        top = self._top(self.values(2.0 ** (age / self.spec.window) * self.noise_scale, fresh_only=False))
        return top is not None and top[0] != self.n

    def _top(self, val: np.ndarray) -> tuple[int, float] | None:
        """(N, value) of the largest value (ties go to the smaller N); the N is N_max when no value is positive
        (DBW: every step would raise the loss bound, so wait for the most gradients); None if all are unknown.
        Plain Python over the P values: numpy's nan reductions (np.all(np.isnan), nanargmax, nanmax) cost more than
        the values they reduce at P = 5; replaying a recorded digits run, rank 0's policy took 93 us a step with
        them and 72 without (quiet machine; on 2 shared cores under load about twice that, against ~9 ms steps)."""
        known = [(v, n) for n, v in enumerate(val.tolist(), 1) if v == v]  # nan != nan
        if not known:
            return None
        top, best = max(known, key=lambda vn: vn[0])  # max keeps the first of equal values: the smaller N
        return (self.n_max if top <= 0 else best), top

    def _best(self, hold: bool = True) -> int:
        """The N to choose now; `hold`: keep the current N through a near tie (the hysteresis)."""
        if math.isnan(self.noise_scale):
            return self._least_measuring
        if self.steps < self._settle:
            return self.n_min  # a noise scale too young to pay for any N above the least (the class docstring)
        val = self.values()
        found = self._top(val)
        if found is None:
            return self.n
        best, top = found
        # hold the current N through a near tie (a nan current value compares False); not when every value is
        # negative (DBW), where _top's N_max is the answer whatever the current N's value
        return self.n if hold and 0 < top <= float(val[self.n - 1]) * (1 + self.hysteresis) else best


RULE_REGISTRY: dict[str, Callable[[AutoSpec], Rule]] = {
    "progress": lambda spec: ProgressRule(),
    "dbw": lambda spec: DbwRule(spec.lr_l),
}

