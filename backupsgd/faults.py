"""Faults: the ones a run stops on (RunFault), and injected ones for tests (`--fault` specs).

Injected faults are keyed by (rank, step) only, so a run with the same spec and seed meets the same
faults at the same steps, in every mode.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from mpi4py import MPI

from backupsgd.errors import ConfigError

EXAMPLES = ("e.g. nan:ranks=2,steps=3-6 or hang:rank=1,step=5 or crash:rank=1,step=5[,phase=reduce[,round=1]] or "
            "freeze:rank=1,step=5,phase=reduce,seconds=4[,round=1] (several joined by ';')")
FREEZE_S = 5.0  # how long `freeze` stops the engine thread unless seconds=... says otherwise


class RunFault(RuntimeError):
    """A fault the run cannot go on through: reported as one line naming the rank(s) and step, then the job aborts."""

    # True where every survivor reaches the verdict itself and just exits: under ULFM an MPI_Abort
    # from a survivor sometimes left the launcher waiting forever on the dead.
    exit_without_abort = False


def rank_names(ranks) -> str:
    """'rank 3', 'ranks 1, 3' or 'no rank', sorted: how messages name a set of ranks."""
    ranks = sorted(ranks)
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks)) if ranks else "no rank"


@dataclass(frozen=True)
class Fault:
    kind: str  # nan: non-finite gradient | hang: SIGSTOP itself | crash: SIGKILL itself | perturb: change a parameter
    # | freeze: stop the engine thread inside the step's reduction (after this rank posted its part)
    ranks: tuple[int, ...]
    steps: tuple[tuple[int, int], ...]  # inclusive ranges
    seconds: float = 0.0  # freeze only: how long the engine thread stays stopped
    # crash only: "" kills the rank as the step starts; "reduce" kills it on its engine thread inside the step's
    # reduction (on the coordinator: just after it sent the step's decision), so survivors may hold the step
    phase: str = ""
    # phase=reduce only: which form of the step (0: as first decided; R: as decided again the R-th time after a
    # member timed out), so a test can stop or kill a rank inside a re-decided round
    round: int = 0

    def hits(self, rank: int, step: int, round_: int = 0) -> bool:
        return rank in self.ranks and any(lo <= step <= hi for lo, hi in self.steps) and round_ == self.round


# kind -> (rank key, step key): nan takes lists and ranges, the others one rank at one step.
_KEYS = {"nan": ("ranks", "steps"), "hang": ("rank", "step"), "crash": ("rank", "step"),
         "perturb": ("rank", "step"), "freeze": ("rank", "step")}  # perturb: a hidden kind that tests the replica check
# further keys a kind takes (freeze: phase=reduce is required)
_EXTRA = {"freeze": ("phase", "seconds", "round"), "crash": ("phase", "round")}


def _int(text: str, what: str, spec: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"fault spec {spec!r}: {what} {text!r} is not an integer >= 0; {EXAMPLES}")
    return int(text)


def _parse_one(item: str, spec: str) -> Fault:
    kind, sep, body = item.strip().partition(":")
    if kind not in _KEYS or not sep:
        raise ConfigError(f"unknown fault {item.strip()!r}; use --fault with one of nan, hang, crash, freeze: "
                          f"{EXAMPLES}")
    rank_key, step_key = _KEYS[kind]
    extra = _EXTRA.get(kind, ())
    params: dict[str, str] = {}
    for pair in filter(None, body.split(",")):
        key, eq, value = pair.partition("=")
        if not eq or key not in (rank_key, step_key, *extra) or key in params:
            raise ConfigError(f"fault spec {spec!r}: {pair!r} is not one {rank_key}=... or {step_key}=..."
                              f"{''.join(f' or {k}=...' for k in extra)}; {EXAMPLES}")
        params[key] = value
    missing = [k for k in (rank_key, step_key) if k not in params]
    if missing:
        raise ConfigError(f"fault spec {spec!r}: {kind} needs {missing[0]}=...; {EXAMPLES}")
    if kind == "nan":
        ranks = tuple(sorted({_int(r, "rank", spec) for r in params["ranks"].split("+")}))
        steps = []
        for part in params["steps"].split("+"):
            lo, dash, hi = part.partition("-")
            first = _int(lo, "step", spec)
            last = _int(hi, "step", spec) if dash else first
            if last < first:
                raise ConfigError(f"fault spec {spec!r}: step range {part!r} runs backwards; write LOW-HIGH")
            steps.append((first, last))
        return Fault(kind, ranks, tuple(steps))
    step = _int(params["step"], "step", spec)
    seconds = 0.0
    if kind == "crash" and params.get("phase", "reduce") != "reduce":
        raise ConfigError(f"fault spec {spec!r}: crash takes phase=reduce or no phase; {EXAMPLES}")
    if kind == "freeze":
        if params.get("phase") != "reduce":  # the one moment a frozen engine thread could stall the others
            raise ConfigError(f"fault spec {spec!r}: freeze needs phase=reduce; {EXAMPLES}")
        seconds = _seconds(params.get("seconds", str(FREEZE_S)), spec)
    if "round" in params and params.get("phase") != "reduce":
        raise ConfigError(f"fault spec {spec!r}: round=... needs phase=reduce (a round is a form of the step's "
                          f"reduction); {EXAMPLES}")
    round_ = _int(params.get("round", "0"), "round", spec)
    return Fault(kind, (_int(params["rank"], "rank", spec),), ((step, step),), seconds, params.get("phase", ""),
                 round_)


def _seconds(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value < 3600):
        raise ConfigError(f"fault spec {spec!r}: seconds={text.strip()!r} must be a number of seconds in (0, 3600); "
                          f"{EXAMPLES}")
    return value


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """The faults a `--fault` spec injects; '' or 'none' injects none."""
    if not isinstance(spec, str):
        raise ConfigError(f"fault spec must be a string, got {spec!r}; {EXAMPLES}")
    if spec.strip() in ("", "none"):
        return ()
    return tuple(_parse_one(item, spec) for item in spec.split(";") if item.strip())


def check_fault_world(faults: tuple[Fault, ...], workers: int) -> None:
    for f in faults:
        outside = [r for r in f.ranks if r >= workers]
        if outside:
            raise ConfigError(f"fault rank {outside[0]} is outside the world of {workers} workers; "
                              f"name ranks 0..{workers - 1} in --fault")


class FaultInjector:
    """Applies the faults aimed at one rank; every hook is a no-op when none is."""

    def __init__(self, faults: tuple[Fault, ...], rank: int) -> None:
        self.rank = rank
        self._faults = [f for f in faults if rank in f.ranks]
        self._latest = -1  # the latest step started
        self._frozen: set[tuple[int, int]] = set()  # (step, round)s frozen already: a standby taking over a step
        # calls reduce_freeze again for the round its blocked thread froze in

    def _hit(self, kind: str, step: int, phase: str = "", round_: int = 0) -> bool:
        return any(f.kind == kind and f.phase == phase and f.hits(self.rank, step, round_) for f in self._faults)

    def at_step_start(self, step: int) -> None:
        if step <= self._latest:  # a step can be started twice (a wait cut short by a resync): strike once
            return
        self._latest = step
        if self._hit("crash", step):
            say(f"injected crash at step {step} (SIGKILL)", self.rank)
            os.kill(os.getpid(), signal.SIGKILL)
        if self._hit("hang", step):  # every thread stops, the engine's too: a frozen node
            say(f"injected hang at step {step} (SIGSTOP; kill -CONT {os.getpid()} resumes it)", self.rank)
            os.kill(os.getpid(), signal.SIGSTOP)

    def reduce_freeze(self, step: int, round_: int = 0) -> float:
        """Seconds to stop this rank's reduction of `step` in its form `round_` for (an injected freeze), once,
        else 0. The engine stops its thread there and holds back this rank's part of the reduction as long.
        An injected crash in the reduce phase kills this rank here instead."""
        form = f"step {step}" + (f" (decided again, round {round_})" if round_ else "")
        if self._hit("crash", step, "reduce", round_):
            say(f"injected crash inside the reduction of {form} (SIGKILL)", self.rank)
            os.kill(os.getpid(), signal.SIGKILL)
        for f in self._faults:
            if f.kind == "freeze" and f.hits(self.rank, step, round_) and (step, round_) not in self._frozen:
                self._frozen.add((step, round_))
                say(f"injected freeze inside the reduction of {form} for {f.seconds:g} s", self.rank)
                return f.seconds
        return 0.0

    def corrupt(self, step: int, buf: np.ndarray) -> None:
        if self._hit("nan", step):
            buf[0] = np.nan

    def after_apply(self, step: int, params: list) -> None:
        if self._hit("perturb", step):  # this replica alone drifts: what the replica check must catch
            params[0].data.view(-1)[0] += 1e-3


def say(message: str, rank: int) -> None:
    print(f"backupsgd: rank {rank}: {message}", file=sys.stderr, flush=True)


def fault_in(exc: BaseException | None) -> RunFault | None:
    """The RunFault behind `exc` (following its causes), if there is one."""
    while exc is not None:
        if isinstance(exc, RunFault):
            return exc
        exc = exc.__cause__
    return None


@contextlib.contextmanager
def stop_on_fault(comm: MPI.Comm) -> Iterator[None]:
    """A RunFault (raised here or on the engine thread) ends the job with one line, not a traceback."""
    try:
        yield
    except Exception as exc:
        fault = fault_in(exc)
        if fault is None:
            raise
        say(f"stopping the run: {fault}", comm.rank)
        if fault.exit_without_abort:
            sys.stderr.flush()
            os._exit(1)
        comm.Abort(1)
