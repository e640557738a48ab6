"""A run directory as a Chrome trace-event file (Perfetto, chrome://tracing): every rank's steps side by side.

The format is the one Horovod's timeline writes: a JSON object whose `traceEvents` are complete
slices (`ph` "X": `name`, `ts` and `dur` in microseconds, `pid`, `tid`, `args`) and metadata events
(`ph` "M") that name the tracks. One process holds the run; track 0 is the coordinator (rank 0's
engine: one `vote` slice per step, annotated with the members, the dropped ranks and when each
member's READY arrived, then the `reduce`), and each rank has a track of its own with its
`compute`, `straggler delay`, `wait for decision` and `apply` slices. A dropped rank's slices say
so in their args and name, so a straggler being left behind is visible at a glance.

Times are put on rank 0's clock, in seconds since rank 0's start of the run. Two layouts:
- measured: ranks.jsonl holds, per rank, `step_start_s` (on the rank's own clock, since its own
  start), `clock_offset_s` (added to put such a time on rank 0's clock, see backupsgd.clock),
  `exchange_s` and `apply_s` per step next to `compute_s` and `delay_s`;
- best effort (older run directories): steps start when rank 0 logged the previous step, and a rank
  waits until rank 0 logged the step; rank 0's slices end where steps.jsonl says. `otherData.layout`
  and the process label say which layout a file has.
Parameter-server runs lay each worker's loop (pull, compute, delay) end to end from the start, on
server 0's clock only as far as the workers started together (they leave a barrier together).
Slices on one track never overlap: they are kept in the order the rank went through them, and a slice
that would start before the previous one ends is clipped to start there (counted in `otherData.clipped`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backupsgd.errors import ConfigError
from backupsgd.report.runs import _read_jsonl, flatten_config

PID = 1
COORDINATOR = 0  # the coordinator's track id; rank (or ps worker) i is track i + 1
MEASURED = "measured"
BEST_EFFORT = ("best effort: ranks.jsonl has no step_start_s / clock_offset_s (a run directory written "
               "before they were recorded); each step is laid out from the times rank 0 logged")
PS_LAYOUT = ("parameter servers: each worker's pulls, computes and delays laid end to end from the "
             "start barrier; servers: the leader's decision per step")


def _us(seconds: float) -> int:
    return round(seconds * 1e6)


class _Track:
    """The slices of one track, as (start, end, name, args) in microseconds."""

    def __init__(self, tid: int, name: str) -> None:
        self.tid, self.name = tid, name
        self.slices: list[tuple[int, int, str, dict]] = []

    def add(self, start_us: int, end_us: int, name: str, **args: Any) -> int:
        self.slices.append((start_us, max(start_us, end_us), name, args))
        return max(start_us, end_us)

    def events(self) -> tuple[list[dict], int]:
        """Complete events in the order the rank went through them, each clipped to start no earlier than
        the previous one ended (where recorded times disagree, the order of the phases is what is sure)."""
        out, clipped, end_so_far = [], 0, None
        for start, end, name, args in self.slices:
            if end_so_far is not None and start < end_so_far:
                start, clipped = end_so_far, clipped + 1
                end = max(start, end)
            out.append({"name": name, "cat": name.split(" (")[0], "ph": "X", "ts": start, "dur": end - start,
                        "pid": PID, "tid": self.tid, "args": args})
            end_so_far = end
        return out, clipped


def _load(run_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    if not (run_dir / "config.json").is_file() or not (run_dir / "steps.jsonl").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.json and steps.jsonl); "
                          "pass the --out DIR of a backupsgd train run")
    config = flatten_config(json.loads((run_dir / "config.json").read_text()))
    steps = sorted(_read_jsonl(run_dir / "steps.jsonl"), key=lambda s: s["step"])
    if not steps:
        raise ConfigError(f"{run_dir}/steps.jsonl holds no step yet; wait for the run's first step")
    return config, steps, _read_jsonl(run_dir / "ranks.jsonl")


def _at(values: list | None, i: int) -> float | None:
    return values[i] if values is not None and i < len(values) else None


def _step_of(record: dict, steps: list[dict]) -> list[int]:
    """The step of each entry of a rank's per-step lists: they end with the run's last step (a resumed
    run's lists start at the step it resumed from)."""
    length = len(record.get("compute_s") or [])
    last = steps[-1]["step"]
    return list(range(last + 1 - length, last + 1))


def _rank_track_measured(track: _Track, record: dict, steps_by: dict[int, dict]) -> None:
    off = _us(record.get("clock_offset_s") or 0.0)
    cursor = None
    for i, step in enumerate(_step_of(record, list(steps_by.values()))):
        start, apply_s = _at(record.get("step_start_s"), i), _at(record.get("apply_s"), i)
        if start is None:  # decided without this rank: it applies the update before its next compute
            if apply_s is not None and cursor is not None:
                cursor = track.add(cursor, cursor + _us(apply_s), "apply (missed step)", step=step,
                                   placed="after this rank's previous slice: it did not compute this step")
            continue
        cursor = _lay_out_step(track, step, start, record, i, steps_by.get(step), off)


def _lay_out_step(track: _Track, step: int, start: float, record: dict, i: int, logged: dict | None,
                  off_us: int) -> int:
    """compute, delay, wait and apply of one step from `start` (seconds, this rank's clock); the boundaries
    are rounded to microseconds before the offset is added, so an offset shifts every slice exactly."""
    rank = record.get("worker", record.get("rank"))
    member = logged is None or rank in logged.get("members", [])
    tag = "" if member else " (dropped)"
    phases = [("compute", _at(record.get("compute_s"), i)), ("straggler delay", _at(record.get("delay_s"), i)),
              ("wait for decision", _at(record.get("exchange_s"), i)), ("apply", _at(record.get("apply_s"), i))]
    t = start
    for name, seconds in phases:
        if seconds is None or (seconds == 0 and name == "straggler delay"):
            continue
        track.add(_us(t) + off_us, _us(t + seconds) + off_us, name + tag, step=step, member=member)
        t += seconds
    return _us(t) + off_us


def _rank_track_best_effort(track: _Track, record: dict, steps_by: dict[int, dict]) -> None:
    """Steps start once rank 0 logged the previous one (or when this rank is done with it, if later)
    and the wait lasts until rank 0 logged the step; rank 0's own steps end where it logged them."""
    times = {s: _us(rec["time"]) for s, rec in steps_by.items()}
    cursor = 0
    for i, step in enumerate(_step_of(record, list(steps_by.values()))):
        compute, delay = _at(record.get("compute_s"), i), _at(record.get("delay_s"), i) or 0.0
        if compute is None or step not in times:
            continue
        logged = steps_by[step]
        member = record["rank"] in logged.get("members", [])
        tag = "" if member else " (dropped)"
        if record["rank"] == 0 and logged.get("exchange_s") is not None:  # anchored at rank 0's log time
            begin = times[step] - _us(logged["exchange_s"]) - _us(delay) - _us(compute)
        else:
            begin = max(cursor, times.get(step - 1, 0))
        t = track.add(begin, begin + _us(compute), "compute" + tag, step=step, member=member)
        if delay:
            t = track.add(t, t + _us(delay), "straggler delay" + tag, step=step, member=member)
        cursor = track.add(t, max(t, times[step]), "wait for decision" + tag, step=step, member=member)


def _coordinator_track(track: _Track, steps: list[dict], rank0: dict | None) -> None:
    """One `vote` slice per step, ending when the decision was made: rank 0 logged the step after the
    reduction and its own apply, so the decision is that much before the logged time."""
    index = dict(zip(_step_of(rank0, steps), range(len(rank0.get("compute_s") or [])))) if rank0 else {}
    for rec in steps:
        apply_s = _at(rank0.get("apply_s"), index[rec["step"]]) if rank0 and rec["step"] in index else None
        reduce_s = rec.get("reduce_s") or 0.0
        decided = rec["time"] - (apply_s or 0.0) - reduce_s
        args = {"step": rec["step"], "members": rec.get("members", []), "dropped": rec.get("dropped", [])}
        if rec.get("arrivals"):
            args["ready_ms"] = {r: round(1e3 * t, 3) for r, t in rec["arrivals"].items()}
        for key in ("late", "behind", "nonfinite", "staleness"):
            if rec.get(key):
                args[key] = rec[key]
        end = track.add(_us(decided - (rec.get("vote_s") or 0.0)), _us(decided), "vote", **args)
        if reduce_s:
            track.add(end, end + _us(reduce_s), "reduce", step=rec["step"])


def _ps_worker_track(track: _Track, record: dict) -> None:
    t = _us(record.get("clock_offset_s") or 0.0)
    pulls, computes, delays = record.get("pull_wait_s") or [], record["compute_s"], record.get("delay_s") or []
    for i, pull in enumerate(pulls):
        t = track.add(t, t + _us(pull), "pull (wait for parameters)", iteration=i)
        if i < len(computes):
            t = track.add(t, t + _us(computes[i]), "compute", iteration=i)
            if i < len(delays) and delays[i]:
                t = track.add(t, t + _us(delays[i]), "straggler delay", iteration=i)


def _ps_server_track(track: _Track, steps: list[dict]) -> None:
    previous = 0.0
    for rec in steps:
        applied = rec["time"] - (rec.get("reduce_s") or 0.0)
        args = {"step": rec["step"], "members": rec.get("members", []), "dropped": rec.get("dropped", []),
                "what": "from the previous step's apply until this step's pushes were in and chosen"}
        for key in ("late", "staleness"):
            if rec.get(key):
                args[key] = rec[key]
        end = track.add(_us(previous), _us(applied), "vote", **args)
        previous = rec["time"]
        track.add(end, _us(rec["time"]), "apply", step=rec["step"])


def build_trace(run_dir: Path) -> dict:
    """The trace of one run directory, as a JSON-ready dict (see the module docstring)."""
    config, steps, ranks = _load(run_dir)
    mode = str(config.get("mode", "?"))
    tracks: list[_Track] = []
    if mode.startswith("ps-"):
        layout = PS_LAYOUT
        server = _Track(COORDINATOR, "server 0 (decides each step)")
        _ps_server_track(server, steps)
        tracks.append(server)
        workers = sorted((r for r in ranks if r.get("role") == "worker"), key=lambda r: r["rank"])
        for w, record in enumerate(workers):
            track = _Track(w + 1, f"worker {record.get('worker', w)} (MPI rank {record['rank']})")
            _ps_worker_track(track, record)
            tracks.append(track)
    else:
        if not ranks:  # an unfinished run: only rank 0's own timings, from steps.jsonl
            ranks = [{"rank": 0, "compute_s": [s.get("compute_s") for s in steps],
                      "delay_s": [s.get("delay_s") for s in steps]}]
        ranks = sorted(ranks, key=lambda r: r["rank"])
        measured = all("step_start_s" in r and "clock_offset_s" in r for r in ranks)
        layout = MEASURED if measured else BEST_EFFORT
        rank0 = next((r for r in ranks if r["rank"] == 0), None)
        coordinator = _Track(COORDINATOR, "coordinator (rank 0's engine)")
        _coordinator_track(coordinator, steps, rank0 if measured else None)
        tracks.append(coordinator)
        steps_by = {s["step"]: s for s in steps}
        for record in ranks:
            track = _Track(record["rank"] + 1, f"rank {record['rank']}")
            (_rank_track_measured if measured else _rank_track_best_effort)(track, record, steps_by)
            tracks.append(track)
    events = [{"name": "process_name", "ph": "M", "pid": PID, "args": {"name": f"backupsgd {mode}: {run_dir.name}"}},
              {"name": "process_labels", "ph": "M", "pid": PID, "args": {"labels": layout}}]
    clipped = 0
    for track in tracks:
        events.append({"name": "thread_name", "ph": "M", "pid": PID, "tid": track.tid, "args": {"name": track.name}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": track.tid,
                       "args": {"sort_index": track.tid}})
        slices, n = track.events()
        events += slices
        clipped += n
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"run_dir": str(run_dir), "mode": mode, "layout": layout, "clipped": clipped,
                          "clock": "microseconds since rank 0's start of the run, on rank 0's clock"}}


def write_timeline(run_dir: Path, out: Path | None = None) -> Path:
    """Write the trace of `run_dir` to `out` (default: RUN_DIR/timeline.json)."""
    out = out or run_dir / "timeline.json"
    trace = build_trace(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trace) + "\n")
    return out
