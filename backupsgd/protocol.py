"""The step protocol one rank follows, shared by the CLI's loop and `backupsgd.torch`: offer this rank's
gradient for the next step, wait for the decision, replay the steps decided without it, load the state it
is brought back with after falling too far behind.

A rank's position is `applied`, the number of decided steps it has applied; the gradient it computes next
is offered for step `applied`. Every rank applies the same decisions in the same order, so replicas stay
identical without a broadcast; a rank whose gradient came late applies the updates it missed instead of
recomputing them (TensorFlow's SyncReplicasOptimizer drops such a gradient in the same way).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from backupsgd.engine import Decision, GradientEngine, Handle, Resynced
from backupsgd.faults import RunFault


class StepProtocol:
    """Drives one rank's engine step by step. `replay(decision)` applies a step this rank did not compute;
    `load_state(step, state)` loads the state after `step` updates that a resynchronised rank is brought
    back with. The caller applies
    its own steps (the CLI logs them, the library lets user code run between reduce and update) and then
    calls `commit`."""

    def __init__(self, engine: GradientEngine, *, first_step: int, rank: int,
                 replay: Callable[[Decision], None], load_state: Callable[[int, bytes], None]) -> None:
        self.engine, self.rank = engine, rank
        self.applied = first_step  # steps applied to this replica: the next gradient is offered for this step
        self.everyone = engine.quorum == engine.size  # N = P: no step can be decided without any rank
        self._replay, self._load_state = replay, load_state
        self.last_wait_s = 0.0  # the training thread's wait for the latest decision it offered a gradient for

    def catch_up(self) -> bool:
        """Apply one step decided without this rank, or load the state it was brought back with; False when
        there is nothing to catch up on (the next step waits for this rank's gradient, or for others')."""
        if (resync := self.engine.take_resync()) is not None:
            self._load_state(resync.step, resync.state)
            self.applied = resync.step
            return True
        if (missed := self.engine.decided(self.applied)) is not None:
            self._replay(missed)
            self.commit(missed)
            return True
        return False

    def exchange(self, buf: np.ndarray, finite: bool = True) -> Decision | None:
        """Offer `buf` for step `applied` (a non-finite gradient is declined instead) and wait for the decision.

        Returns the decision, for the caller to apply and then `commit`; None when this rank was
        resynchronised meanwhile (its state is already loaded: compute the next step afresh). A gradient for
        a step decided without this rank is dropped, and the decision returned is that step's.
        """
        t0 = time.perf_counter()
        try:
            decision = self._offer(buf, finite).wait()
        except Resynced:
            self.catch_up()
            return None
        finally:
            self.last_wait_s = time.perf_counter() - t0
        return decision

    def commit(self, decision: Decision) -> None:
        """The caller applied `decision`: the engine may reuse its buffer, and the next step is this rank's."""
        self.engine.pop(decision.step)
        self.applied = decision.step + 1

    def _offer(self, buf: np.ndarray, finite: bool) -> Handle:
        if finite:
            return self.engine.submit(self.applied, buf)
        if self.everyone:
            raise RunFault(f"non-finite gradient on rank {self.rank} at step {self.applied}; with N = P every "
                           "gradient is needed (backup mode with 1 or more backups drops such a gradient instead)")
        return self.engine.reject(self.applied)
