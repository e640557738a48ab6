"""Where the survivors go on from after dead ranks were shrunk away (ULFM), rank 0 among them or not.

Every survivor applied a prefix of the same sequence of decided steps, but not the same prefix: the dead
coordinator may have sent a step's decision to some ranks only, or some ranks' training threads may not yet
have applied steps their engine holds. A decided step is final once any rank holds its result, so:

1. each survivor first applies every decided step its engine still holds (GradientEngine.held);
2. the survivors agree on the most advanced of them (the most steps applied; the lowest rank on a tie) and
   every other survivor loads its parameters and optimizer state: every decided step a survivor holds is then
   applied once, identically, by every survivor, and the run goes on from there;
3. the lowest surviving rank (rank 0 of the shrunk communicator) is the vote's coordinator from then on (the
   engine is reopened on the shrunk communicator), serves the state laggards are brought back with, and writes
   the run directory. If it was not the writer before (rank 0 died), it continues the dead writer's files in
   place, which assumes a filesystem every rank sees (one machine, or the emulated cluster): it keeps the intact
   records of steps.jsonl and evals.jsonl before the step gone on from (a torn last line, or a step logged by
   the dead writer that no survivor holds, is dropped: it is decided again) and appends the records the dead
   writer had not yet flushed from the survivors' own copies (`StepLog`, kept by every other rank). Such records
   lack the fields only the coordinator knows (`arrivals`, `nonfinite`, `redecided`; `vote_s` is that rank's
   own) and the gradient noise scale (null: it costs a pass over the buffer, which only the writer pays).
   summary.json, ranks.jsonl and params.npy are written at the end by the writer, as always.

So every step is recorded once, and the final parameters are a single process's replay of the recorded
members. A coordinator that dies just after sending a step's re-decided form is covered (no survivor holds
either form; they decide the step once more: tests/test_failover.py). Not covered: a survivor that took the
step's first form at the deadline's very edge while rank 0 decided it again without it, when rank 0 then dies
before bringing it back (the survivors may go on from that survivor's state), and a step no survivor kept a record of
(more than RECORDS_KEPT steps unflushed; it is logged with `"lost": true`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from mpi4py import MPI

from backupsgd.faults import say
from backupsgd.rundir import RunWriter
from backupsgd.survivors import ProcessFailure, dead_names, shrink, world_ranks

RECORDS_KEPT = 4096  # per rank: far more steps than a writer leaves unflushed (it flushes every second)
NO_NOISE = {"grad_sq": None, "trace_cov": None, "noise_scale": None}  # a copy's noise fields (see above)


class StepLog:
    """A rank's copy of the latest records it would write, so that any survivor can become the writer."""

    def __init__(self, keep: int = RECORDS_KEPT) -> None:
        self._keep = keep
        self.steps: OrderedDict[int, dict] = OrderedDict()
        self.evals: OrderedDict[int, dict] = OrderedDict()

    def step(self, record: dict) -> None:
        self._add(self.steps, record)

    def evaluation(self, record: dict) -> None:
        self._add(self.evals, record)

    def _add(self, records: OrderedDict, record: dict) -> None:
        records[record["step"]] = record
        while len(records) > self._keep:
            records.popitem(last=False)

    def between(self, steps: tuple[int, int], evals: tuple[int, int]) -> tuple[dict, dict]:
        """The step records with steps[0] <= step < steps[1], and the evaluations with evals[0] < step <= evals[1]."""
        return ({s: r for s, r in self.steps.items() if steps[0] <= s < steps[1]},
                {s: r for s, r in self.evals.items() if evals[0] < s <= evals[1]})


def survivors(comm: MPI.Comm, living: list[int], quorum: int, fix: str) -> tuple[MPI.Comm, list[int], list[int]]:
    """Shrink `comm` (whose rank r is world rank `living[r]`) to the survivors (collective over them).

    Returns the shrunk communicator, its world ranks and the dead's; raises ProcessFailure, one line naming the
    dead, when fewer than `quorum` (N) remain. `fix`: how the user allows more ranks to be lost, for that line.
    """
    shrunk = shrink(comm)  # revokes `comm` first: a survivor blocked on it fails now
    now = world_ranks(shrunk)
    dead = [r for r in living if r not in now]
    if len(now) < quorum:
        raise ProcessFailure(dead, f"{dead_names(dead)} died; {len(now)} workers remain, fewer than the "
                                   f"N = {quorum} every step needs ({fix} sets how many may be lost)")
    return shrunk, now, dead


def announce(dead: list[int], step: int, living: list[int], quorum: int, rank: int, took_over: bool) -> None:
    """The one line the new communicator's rank 0 prints once the survivors agreed where to go on from."""
    took = f"; rank {rank} takes over as the vote's coordinator and the writer of the run directory" if took_over \
        else ""
    say(f"{dead_names(dead)} died{took}; going on from step {step} with {len(living)} workers (ranks "
        f"{', '.join(map(str, living))}), N = {quorum}, b = {len(living) - quorum}", rank)


def go_on_from(comm: MPI.Comm, applied: int, state: Callable[[], bytes], log: StepLog,
               writer: RunWriter | None, take_over: Callable[[int], RunWriter] | None,
               name: int) -> tuple[int, bytes | None, RunWriter | None]:
    """Collective over the survivors (`comm`, just shrunk), once each has applied what its engine holds.

    Returns the step to go on from, the state to load there (None on the rank whose state it is) and this
    rank's writer: `writer` as it was, or on rank 0 of `comm` (the writer from now on) if it had none, a new one
    from `take_over(step)` continuing the dead writer's files. `take_over` None: the run writes no run
    directory (a script without BACKUPSGD_RUN_DIR). `name`: this rank's world rank, for messages.
    """
    positions = comm.allgather(applied)
    step = max(positions)
    source = positions.index(step)
    if comm.rank == 0 and writer is None and take_over is not None:
        writer = take_over(step)
    # the writer's files end where they end; every survivor sends its copies of the records from there on
    need = comm.bcast(((writer.next_step, step), (writer.last_eval, step)) if comm.rank == 0 and writer else None,
                      root=0)
    copies = comm.gather(log.between(*need), root=0) if need is not None else None
    payload = comm.bcast(state() if comm.rank == source else None, root=source)
    if comm.rank == 0 and need is not None:
        if lost := _append(writer, need, copies):
            say(f"no survivor kept the records of steps {lost[0]}..{lost[-1]}; they are logged as lost", name)
    return step, None if comm.rank == source else payload, writer


def _append(writer: RunWriter, need: tuple[tuple[int, int], tuple[int, int]],
            copies: list[tuple[dict, dict]]) -> list[int]:
    """Write the records the writer lacks up to the step gone on from, each step once, from any survivor's copy;
    returns the steps no survivor had a record of."""
    steps, evals = {}, {}
    for held_steps, held_evals in copies:
        steps.update(held_steps)
        evals.update(held_evals)
    lost = [s for s in range(*need[0]) if s not in steps]
    for s in range(*need[0]):
        writer.step(steps.get(s, {"step": s, "lost": True}))
    for s in sorted(evals):
        writer.evaluation(evals[s])
    writer.sync()
    return lost
