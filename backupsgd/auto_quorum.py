"""`--backups auto` on the coordinator: the policy (backupsgd.adaptive) fed what rank 0 sees, and what it chose;
and the writer's count of each step's N (`QuorumTally`), auto or not, for steps.jsonl and the summary.

Rank 0's engine thread asks `choose()` before each step's vote and calls `decided()` when it decides the
step, with the READY arrivals of the step's members (the first N; later ones are censored, as
ArrivalEstimate expects); the policy learns them in `catch_up()`, after the step's reduction. The smoothed
gradient noise scale is measured on rank 0's training thread, after it applies a step: it posts it with
`post_noise()`, and the engine thread takes the latest one posted when it observes a step. So the noise scale a
choice used is whatever had been posted by then, which depends on thread timing: each step's record (`record()`,
for steps.jsonl) says which value it was, the previous step's exchange and whole time as measured (the policy's
overhead(N) and step times learn them), how many ranks were busy when the step started, the previous step's late
READYs and the floors on its arrivals still missing (all depend on message timing too), and whether the step was
marked paused (`pause()`: its arrivals include an evaluation and are not learnt from, but for how far apart
they came beyond the latest evaluation's length on rank 0, `post_pause()`), so that feeding what is recorded to a
fresh AutoPolicy (`replay_choices`) makes the same choices.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from backupsgd.adaptive import WARM_UP_STEPS, AutoPolicy
from backupsgd.auto_spec import AutoSpec


class AutoQuorum:
    """The coordinator's `--backups auto` state (one per run, on rank 0); see the module docstring.

    The per-step overhead the rule adds to the wait for the N-th arrival is measured: the time from a step's
    decision to the next step's start on the coordinator (its reduction), which the policy learns per N
    (AutoPolicy.exchanged) unless the spec fixes `overhead`.
    """

    def __init__(self, spec: AutoSpec, workers: int, batch: int, keep_records: bool = True) -> None:
        self.policy = AutoPolicy(spec, workers, batch, measured_noise=True)
        self.n_min, self.n_max = self.policy.n_min, self.policy.n_max
        self._keep = keep_records
        self._lock = threading.Lock()  # the noise scale and the records cross from one thread to the other
        self._noise = math.nan
        self._pause_s = math.nan  # the latest evaluation's length on rank 0 (post_pause)
        self._records: dict[int, dict] = {}
        self._paused: set[int] = set()  # steps every rank began late (an evaluation before them)
        self._pending: deque[tuple[int, list[float], list[float], list[float]]] = deque()  # decided(), not learnt
        self._decided_at: float | None = None  # when the last step observed was decided ...
        self._decided_n = 0  # ... and at which N
        self._started_at: float | None = None  # when the step last chosen for began, on the coordinator
        self._pause_decided_at = -math.inf  # when the last paused step was decided (see decided())

    # --- rank 0's training thread --------------------------------------------------------------
    def post_noise(self, noise_scale: float | None) -> None:
        """The latest smoothed B_noise (examples); None or nan: not known yet."""
        with self._lock:
            self._noise = math.nan if noise_scale is None else float(noise_scale)

    def post_pause(self, seconds: float) -> None:
        """Rank 0's latest evaluation took `seconds`: every rank evaluates alike, so the ranks' arrivals on the step
        after one can be apart by about that much for the evaluation's sake alone (AutoPolicy.observe)."""
        with self._lock:
            self._pause_s = float(seconds)

    def pause(self, step: int) -> None:
        """Every rank pauses before computing `step` (an evaluation): its arrival times would count the pause as
        the workers' own, so the policy does not learn them. Mark it before `step` can be decided (the CLI marks
        every such step before the run; a script's hvd.log_eval after its evaluation, once the step's N is chosen,
        so a probe due then is not moved: the record's `pause_known` says which); a step decided first is learnt
        from as usual."""
        with self._lock:
            self._paused.add(step)

    def record(self, step: int) -> dict:
        """steps.jsonl's fields for `step` (once): the N chosen (`quorum`) and `auto`, the estimates behind
        it and after it; {} if none was kept (a step not decided by this coordinator)."""
        self.catch_up()
        with self._lock:
            return self._records.pop(step, {})

    # --- the engine thread (the coordinator) ------------------------------------------------------
    def choose(self, step: int, size: int, busy: int = 0, deep: int = 0, started: float | None = None) -> int:
        """N for `step`, at most `size` (the ranks still living); `busy`: ranks still on a step decided without
        them (a probe does not wait for them); `deep`: those silent for longer than deep_after_s() (no step waits
        for them), as AutoPolicy.choose takes them; `started`: when the step began on the coordinator (its
        perf_counter; None: now), the instant its arrivals are timed from.

        The previous step's exchange ends, and its whole time is counted to, where this step began, not at this
        call: in between the coordinator learns from the previous step (catch_up(); about 1 ms a step on digits'
        5 ranks on 2 cores), while this step's READYs already arrive and count in its T_(N). Counted to this call,
        that time was in both T_(N) and overhead(N), and E[T_(N)] + overhead(N) came out 1.3 ms above the whole
        3.6 ms steps measured."""
        started = time.perf_counter() if started is None else started
        took = None if self._decided_at is None else started - self._decided_at
        whole = None if took is None or self._started_at is None else started - self._started_at
        if took is not None:
            self.policy.exchanged(self._decided_n, took, whole)
        self._decided_at, self._started_at = None, started
        with self._lock:
            paused = step in self._paused
        n = min(self.policy.choose(busy, deep, paused), size)
        if self._keep:
            with self._lock:
                self._records[step] = {"quorum": n, "auto": {
                    "last_exchange_s": took, "last_step_s": whole, "overhead_s": float(self.policy.overheads()[n - 1]),
                    "busy": busy, "deep": deep, "pause_known": paused,
                    # above the rule's choice: a probe, or (`measuring`) a step of 2 that measures the noise scale
                    "probe": n > self.policy.n, "measuring": self.policy.measuring and n > self.policy.n,
                    "held": self.policy.held}}  # a climb or a measuring step that waited for free workers
        return n

    def deep_after_s(self) -> float:
        return self.policy.deep_after_s()

    def observe(self, step: int, arrivals: Iterable[float], late: Sequence[float] = (),
                floors: Sequence[float] = ()) -> None:
        """`step` was decided with these members' READY times (seconds into the step); `late`, `floors`: what its
        decision says of step - 1's arrivals past its N (backupsgd.worker_watch.Censored, seconds into step - 1).
        decided() and catch_up() at once."""
        self.decided(step, arrivals, late, floors)
        self.catch_up()

    def decided(self, step: int, arrivals: Iterable[float], late: Sequence[float] = (),
                floors: Sequence[float] = ()) -> None:
        """`step` was decided now, as observe() takes it, but learnt from later (catch_up()): the coordinator
        calls this as it sends the decision, when every rank waits for its part of the reduction, and the policy's
        update (0.15 ms a step, on digits' 6-10 ms steps on 2 cores) would hold them all up.

        No floor exceeds the time since the last paused step's decision: a worker silent since before an evaluation
        spent it evaluating, not computing (on the Python manual's gpt, floors of 1.1-1.9 s after each evaluation
        against 0.2-0.3 s computes lifted E[T_(5)] from 365 to 578 ms)."""
        arrivals = [float(x) for x in arrivals]
        now = time.perf_counter()
        self._decided_at, self._decided_n = now, len(arrivals)
        with self._lock:
            since_pause = now - self._pause_decided_at
            if step in self._paused:
                self._pause_decided_at = now
            floors = [min(float(x), since_pause) for x in floors]
            self._pending.append((step, arrivals, [float(x) for x in late], floors))

    def catch_up(self) -> None:
        """Learn from the steps decided() since: the coordinator's engine thread calls it before it chooses the
        next N (after its reduction), record() before it hands out a step's record (a writer may ask first), so
        every choice and every record sees the policy as observe() would have left it. Either thread may run it;
        the engine thread touches the policy only after its own catch_up(), with nothing pending."""
        with self._lock:
            while self._pending:
                self._learn(*self._pending.popleft())

    def _learn(self, step: int, arrivals: list[float], late: list[float], floors: list[float]) -> None:
        """Fold one decided step into the policy and its record (the lock held).

        The first WARM_UP_STEPS steps observed are not learnt from, as a paused one is not. The first: the ranks
        begin it unsynchronised (from start-up, a resume or a takeover) and its compute is a warm-up (digits: 18 ms
        against 1.4 ms a step after it), so its arrivals (T_(1..5) 22-46 ms against ~1-12 ms) lingered in E[T_(k)]
        for the N not chosen since. The second: the workers dropped from the first are still finishing it as it
        starts (digits, 5 ranks: its second READY 2.1 ms behind its first at the 75th percentile, 0.4 ms later on)
        and its exchange is the first at its N (3.0 ms median against 2.3 ms later); learnt, overhead(2) kept N = 2
        looking dearer than N = 1 for a window, and 3 of 15 runs sat at N = 1 from step 2 to the first probe."""
        noise = self._noise
        warm_up = self.policy.steps < WARM_UP_STEPS  # its arrivals say nothing, paused or not
        paused = step in self._paused or warm_up
        pause_s = self._pause_s if paused and not warm_up else math.nan
        self._paused.discard(step)  # each step is observed once; rebuilding the set cost O(marks) a step
        self.policy.observe(arrivals, noise, late, paused, floors, pause_s)
        if not self._keep:
            return
        values = self.policy.values()
        after = self.policy.n
        auto = self._records.setdefault(step, {"auto": {}})["auto"]
        auto.update({"noise_scale": noise, "late": late, "floors": floors, "paused": paused,
                     "pause_s": None if math.isnan(pause_s) else pause_s,
                     "expected_s": self.policy.arrivals.expected().tolist(),
                     "times_s": self.policy.times().tolist(),  # a step at each N, as the rule took it
                     "next": after, "value": float(values[after - 1])})


def survivors_spec(spec: AutoSpec, living: int, least: int) -> AutoSpec:
    """`spec` for a coordinator that takes over with `living` workers: its least N stays `least` (the N a run
    was launched to keep), and its most is the living workers less `spec`'s minimum backups."""
    fewest = None if spec.min_backups is None else min(spec.min_backups, living - least)
    return replace(spec, max_backups=living - least, min_backups=fewest)


def successor(spec: AutoSpec, living: int, least: int, batch: int) -> AutoQuorum:
    """The policy of a coordinator that takes over from a dead one (backupsgd.failover), for `backupsgd train`
    and scripts alike: it starts afresh (the dead one's estimates died with it), on the `living` workers, and
    keeps the least N the run was launched with."""
    return AutoQuorum(survivors_spec(spec, living, least), living, batch)


class QuorumTally:
    """The writer's count of each step's N and of the gradients dropped (one for `backupsgd train` and the
    library): `fields()` gives a step's record its N (under auto, with the coordinator's estimates), `count()`
    takes each record as written, `summary()` states the mean N and the dropped count. A writer that takes
    over after a failover `recount()`s the steps.jsonl it continues, so the summary covers the whole run."""

    def __init__(self, quorum: int, auto: AutoQuorum | None = None, bounds: tuple[int, int] | None = None) -> None:
        self.quorum, self.auto = quorum, auto  # quorum: the fixed N, or under auto the least
        self.bounds = bounds  # under auto, (N_min, N_max) as launched; None: a fixed N
        self.chosen: list[int] = []
        self.dropped = 0

    def stated(self, members: int) -> dict:
        """The `quorum` of a record without the coordinator's choice (a non-writer's copy, or a step decided by a
        coordinator that died since): under auto its members' count, else the fixed N."""
        return {"quorum": members if self.bounds else self.quorum}

    def fields(self, step: int, noise_scale: float | None, members: int) -> dict:
        """The step's `quorum` (and under auto `auto`) for its record; hands the coordinator the noise scale."""
        fields = self.stated(members)
        if self.auto is not None:
            self.auto.post_noise(noise_scale)
            fields |= self.auto.record(step)
        return fields

    def count(self, record: dict) -> None:
        """One steps.jsonl record; a lost one (no survivor kept it, see failover) counts nothing."""
        if "members" in record:
            self.chosen.append(record.get("quorum", len(record["members"])))
            self.dropped += len(record["dropped"])

    def recount(self, steps_jsonl: Path) -> None:
        """Count afresh from the records a run directory holds (a writer taking over continues them)."""
        self.chosen, self.dropped = [], 0
        for line in steps_jsonl.read_text().splitlines():
            self.count(json.loads(line))

    def summary(self, workers: int, steps: int) -> dict:
        """The summary's fields: `quorum` (under auto the mean N chosen, and its bounds) and the dropped count."""
        out = {"quorum": float(np.mean(self.chosen)) if self.bounds and self.chosen else self.quorum}
        if self.bounds:
            out["quorum_bounds"] = list(self.bounds)
        return out | {"dropped_gradients": self.dropped, "dropped_fraction": self.dropped / max(1, workers * steps)}


def replay_choices(spec: AutoSpec, workers: int, batch: int, steps: Sequence[dict]) -> list[int]:
    """The N a fresh policy chooses for each step, fed the arrivals, noise scales and exchange times that `steps`
    (steps.jsonl records of an auto run) say the coordinator fed its own: the engine's choices, replayed."""
    policy = AutoPolicy(spec, workers, batch, measured_noise=True)
    return [policy.choose(**choice) for _, choice in replay_feed(policy, steps)]


def replay_feed(policy, steps: Sequence[dict]) -> Iterator[tuple[dict, dict]]:
    """Feed `policy` (an AutoPolicy, or one of an earlier revision) what the records `steps` say the coordinator fed
    its own, step by step: yields each record and the arguments of its choice, for the caller to choose() with
    before the next item, which first folds that step in (observe()). replay_choices() chooses; a caller that
    looks at the policy around each choice (results/auto-late-probe/exploration.py) replays the same way."""
    decided_n = 0
    for record in steps:
        auto = record["auto"]
        if auto.get("last_exchange_s") is not None:  # the previous step's, decided at decided_n
            policy.exchanged(decided_n, auto["last_exchange_s"], auto.get("last_step_s"))
        # what the choice knew of an evaluation before the step: a script marks it only after it evaluated
        # (hvd.log_eval), after the choice; records from before pause_known was kept have the CLI's up-front marks
        known = auto.get("pause_known", auto.get("paused", False))
        yield record, {"busy": auto.get("busy", 0), "deep": auto.get("deep", 0), "paused": known}
        decided_n = len(record["arrivals"])
        noise = auto["noise_scale"]
        pause_s = auto.get("pause_s")
        policy.observe(list(record["arrivals"].values()), None if noise is None else noise, auto.get("late", ()),
                       auto.get("paused", False), auto.get("floors", ()), math.nan if pause_s is None else pause_s)
