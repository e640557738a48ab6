"""`--backups auto` in the simulator: the carry-over replay with N chosen each step by the policy.

The replay hands the policy what the engine's coordinator sees: the READY arrivals of the decided
step (the first N offers, seconds after the step started, i.e. after the previous update was
applied), the previous step's offers that came after its decision but before this one (late: as seconds
into that step had those workers begun it when its members did, as backupsgd.worker_watch does), for each worker
silent since the previous decision how long it has computed (floors), how
many workers are still on a step decided without them when a step starts (busy), how many of those have
been silent for longer than the policy's deep_after_s() (deep), the smoothed noise scale, and the step's
exchange (from its decision to the next step's start: the mode's modelled exchange at its N) and the whole step
(from its start to the next one's). So the
simulator makes the coordinator's choices for the same arrivals (tests/test_auto_replay.py feeds a trace's
arrivals to a fresh policy to check it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backupsgd.adaptive import AutoPolicy, progress_fraction
from backupsgd.auto_spec import AutoSpec
from backupsgd.sim.model import Prediction, exchange_time_s, summary
from backupsgd.sim.network import NetConfig

AUTO_MODES = ("backup", "ps-backup")  # the modes whose N a vote decides


@dataclass(frozen=True)
class AutoTrace:
    """One replay: per step, the N chosen, what the policy saw, and when the update was applied."""

    n: np.ndarray  # N_t chosen before step t
    arrivals: list[np.ndarray]  # the first N_t arrivals of step t, seconds into the step, ascending
    applied_s: np.ndarray  # when step t's update is applied
    busy: np.ndarray  # workers still on a step decided without them when step t started
    deep: np.ndarray  # ... of them, those whose last offer came longer than the policy's deep_after_s() before
    late: list[np.ndarray]  # step t-1's arrivals after its decision and before step t's, seconds into t-1 as if
    # those workers had begun t-1 with its members (their own compute time plus the members' median start lag)
    floors: list[np.ndarray]  # at step t's decision, how long each worker silent since step t-1's has computed
    exchange: np.ndarray  # step t's exchange, seconds: what the policy's overhead(N_t) learnt after step t

    @property
    def step_s(self) -> np.ndarray:
        return np.diff(self.applied_s, prepend=0.0)

    def progress(self, batch: int, noise_scale: float) -> float:
        """Total progress under the noise model, in noise-free steps."""
        return float(np.sum(progress_fraction(self.n, batch, noise_scale)))


def replay_auto(times: np.ndarray, spec: AutoSpec, mode: str, net: NetConfig, batch: int, noise_scale: float,
                restart: bool = False) -> AutoTrace:
    """Replay `times` (steps x P, as backupsgd.sim.model.schedule takes it) with N from the policy.

    The policy learns each step's exchange at its N (the mode's, modelled) as overhead(N), unless the spec sets
    one: the coordinator measures it as the time from a step's decision to the next step's start.
    """
    steps, workers = times.shape
    policy = AutoPolicy(spec, workers, batch)  # given its noise scale, not measuring it: no settling (AutoPolicy)
    free = np.zeros(workers)  # when each worker offers the step it is on (its latest offer, once made)
    last = 0.0
    chosen = np.empty(steps, dtype=np.int64)
    seen: list[np.ndarray] = []
    applied = np.empty(steps)
    busy_at = np.zeros(steps, dtype=np.int64)
    deep_at = np.zeros(steps, dtype=np.int64)
    exchanges = np.empty(steps)
    heard = np.zeros(workers)  # when each worker last offered, before the computation it is on (0: the start)
    began = np.zeros(workers)  # when it began the computation it is on
    took = np.zeros(workers)  # ... and how long that computation takes
    unheard = np.zeros(workers, dtype=bool)  # not heard from since the previous decision (its offer still to come)
    dropped = np.zeros(workers, dtype=bool)  # the previous step's workers whose offer for it came after its decision
    start_lag = 0.0  # the previous step's members' median start lag
    lates: list[np.ndarray] = []
    floors: list[np.ndarray] = []
    for t in range(steps):
        start = last
        # what the coordinator knows at the step's start: who is still on a step decided without it
        still_on = np.zeros(workers, dtype=bool) if restart else free > start
        busy = busy_at[t] = int(np.sum(still_on))
        if busy:  # (a nan deep_after_s compares False: nobody is deep)
            deep_at[t] = np.sum(still_on & (start - heard > policy.deep_after_s()))
        n = policy.choose(busy, int(deep_at[t]))
        exchange = exchanges[t] = exchange_time_s(mode, workers, n, net)
        offers = (start if restart else np.maximum(free, start)) + times[t]
        decided = np.partition(offers, n - 1)[n - 1]
        # the coordinator takes the first n READY messages (ties: any n of them, all at `decided`)
        first = np.argsort(offers, kind="stable")[:n]
        arrivals = offers[first] - start
        late, floor = np.empty(0), np.empty(0)
        if not restart:
            # the previous step's offers heard by this decision, and the workers still silent (as WorkerWatch)
            late = np.sort(start_lag + took[dropped & (free <= decided)])
            floor = decided - began[unheard & (free > decided)]
            computing = free <= decided  # the others are still on an older step: this offer is not made
            dropped = computing.copy()  # the others' offers come after the decision, a tie's at it
            dropped[first] = False
            unheard = dropped | ~computing
            start_lag = float(np.median(arrivals - times[t][first]))  # when the members began, after the start
            heard = np.where(computing, free, heard)  # its previous offer (0: none yet)
            began = np.where(computing, np.maximum(free, start), began)
            took = np.where(computing, times[t], took)
            free = np.where(computing, offers, free)
        last = applied[t] = decided + exchange
        chosen[t] = n
        seen.append(arrivals)
        lates.append(late)
        floors.append(floor)
        policy.observe(arrivals, noise_scale, late, floors=floor)
        policy.exchanged(n, exchange, last - start)
    return AutoTrace(chosen, seen, applied, busy_at, deep_at, lates, floors, exchanges)


def predict_auto(times: np.ndarray, spec: AutoSpec, mode: str, net: NetConfig, batch: int, noise_scale: float,
                 restart: bool = False) -> Prediction:
    """A row for the table: N is the mean N chosen, backups the spec's label (e.g. 'auto')."""
    trace = replay_auto(times, spec, mode, net, batch, noise_scale, restart)
    row = summary(mode, times.shape[1], spec.label, float(trace.n.mean()), trace.step_s)
    return row.with_progress(trace.progress(batch, noise_scale) / float(trace.applied_s[-1]))
