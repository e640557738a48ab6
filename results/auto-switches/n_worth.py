"""What a step's extra gradients buy in steps to target, measured by replay instead of by timed runs, and a judge of
auto against a static b built on it (results/README.md section 10, "What a step's extra gradients buy").

A run's minibatches are pure functions of (seed, rank, step) (backupsgd.data), so a run's training can be redone in
one process from the members of each step, and redone again with other members: the steps to target of two member
schedules on the same seed then differ by the members alone, with no arrival timing, no machine load and no
evaluation grid in between (each replay evaluates after every step, or every --eval-every). Three uses:

  n_worth.py runs ARM [ARM ...] [--kinds K,...] [--cut FIRST-LAST]   each recorded run (steps.jsonl) as lived, and
      with its steps at N >= 2 (of the kinds named: start, probe, measuring, rule; within the steps named) cut to the
      member that arrived first: the steps those bought, and a ledger of what their wait cost (runs_command).
  n_worth.py early FIRST-LAST K[,K...] [--config RUN]   seeds FIRST-LAST of digits at run.sh's settings (or RUN's
      config.json): N = 1 throughout on a random first rank each step, against the same with N = 2 (one more rank)
      for the first K steps, and N = 2 throughout: what early N = 2 is worth in steps.
  n_worth.py judge AUTO_ARM STATIC_ARM [...]   auto against each static b, time to target from steps bought (replays)
      and the time after K steps (runs) apart (judge_command).
  n_worth.py phases FIRST-LAST SCHEDULE [...] --config RUN [--last RANKS@FIRST-LAST] [--rows FILE]   seeds FIRST-LAST
      at RUN's workload under schedules of N by the shifting regimes' phases (e.g. 3,3,3 and 5,3,5 for steps 0-29,
      30-59, 60-), the members each step's first N of one random arrival order (the same for every schedule; ranks
      --last arrive last in those steps: the slow node): a clairvoyant schedule's steps to target (phases_command;
      results/auto-switches/oracle.py prices them).

ARM: a folder of one-run sweeps, s*/backup-* (run.sh's arms). Target: test accuracy 0.9 (digits'), `--target` to
change. Replay arithmetic: Replica's own compute and apply, the members' gradients summed from the highest rank down
as Open MPI's allreduce over the members does (tests/reference.py members_mean), so a lived replay crosses where its
run's evaluations did (printed: how many agree). Run from the repository root with .venv/bin/python.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backupsgd.config import WorkloadConfig
from backupsgd.data import load_dataset
from backupsgd.replica import Replica
from backupsgd.report.auto import paired_ratio_line

DIGITS = {"model": "mlp", "dataset": "digits", "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9,
          "steps": 250, "seed": 0, "eval_every": 10, "threads": 1}  # results/digits_one_run.sh's settings
WORKERS = 5  # early's (run.sh's ranks); a recorded run's own come from its config.json


def accuracy_curve(workload: dict, schedule: list[list[int]], until_crossed: bool = False) -> np.ndarray:
    """Test accuracy after every step, replaying `schedule` (each step's member ranks); with --eval-every E (EVERY),
    only after every E-th (nan between: a CNN's evaluation on Fashion-MNIST costs 10x its step), and after every step
    past --eval-from (EVAL_FROM: where the smoothed crossing can fall); `until_crossed`: only until both crossings
    (crossings()) are found."""
    torch.set_num_threads(1)
    config = WorkloadConfig(**workload)
    replica = Replica(config, torch.device("cpu"))
    data = load_dataset(config.dataset, config.data_dir)
    bufs = [replica.new_buffer() for _ in range(max(map(len, schedule)))]
    out = []
    for step, members in enumerate(schedule):
        ranks = sorted(members)
        for i, r in enumerate(ranks):
            replica.compute(*data.sample(config.seed, r, step, config.batch_size), bufs[i])
        total = bufs[len(ranks) - 1].copy()
        for i in reversed(range(len(ranks) - 1)):
            total += bufs[i]
        replica.apply(total, float(np.float32(1.0 / len(ranks))))
        evaluated = (step + 1) % EVERY == 0 or step + 1 > EVAL_FROM  # the grid, and every step from EVAL_FROM on
        out.append(replica.evaluate(data)["test_accuracy"] if evaluated else math.nan)
        if until_crossed and evaluated and not np.isnan(crossings(np.asarray(out), TARGET)).any():
            break  # both crossings found: the steps after them change neither
    return np.asarray(out)


def crossings(acc: np.ndarray, target: float, every: int = 10) -> tuple[float, float]:
    """(judged, smoothed) steps to target: the first multiple of `every` whose accuracy reaches it (what a run
    evaluating every `every` steps reports: evals.jsonl's step), and the first step where the mean of the last `every`
    steps' accuracy does (far less noisy: near the target digits' accuracy swings by 0.1 from one step to the next);
    nan where never."""
    grid = np.flatnonzero(acc[every - 1::every] >= target)
    smooth = np.flatnonzero(np.convolve(acc, np.ones(every) / every, "valid") >= target)
    return (float(every * (grid[0] + 1)) if grid.size else math.nan,
            float(smooth[0] + every) if smooth.size else math.nan)


def at_n(record: dict, n: int, workers: int) -> list[int]:
    """The step's members had it been decided at N = `n`: its first `n` arrivals; past the arrivals it saw, the
    lowest other ranks (any rank's minibatch is as good a draw as another's: backupsgd.data)."""
    seen = [int(r) for r in sorted(record["arrivals"], key=record["arrivals"].get)]
    return (seen + [r for r in range(workers) if r not in seen])[:n]


def workers(run: Path) -> int:
    return json.loads((run / "config.json").read_text())["workers"]


def records(run: Path) -> tuple[dict, list[dict], list[dict]]:
    """(workload, steps.jsonl's records, evals.jsonl's) of one run."""
    read = lambda name: [json.loads(line) for line in (run / name).read_text().splitlines()]  # noqa: E731
    return json.loads((run / "config.json").read_text())["workload"], read("steps.jsonl"), read("evals.jsonl")


def own_crossing(evals: list[dict]) -> int | None:
    return next((e["step"] for e in evals if e["test_accuracy"] >= TARGET), None)


KINDS = ("start", "probe", "measuring", "rule")


def kind(record: dict, before: dict | None) -> str:
    """Why a step of an auto run had its N: `start` (chosen before any noise scale had reached the coordinator, at the
    least N that measures it), a `probe`, a `measuring` step, or the `rule`'s own choice (records' `auto` fields)."""
    auto = record.get("auto", {})
    if auto.get("probe") and not auto.get("measuring"):
        return "probe"
    if auto.get("measuring"):
        return "measuring"
    noise = None if before is None else before.get("auto", {}).get("noise_scale")
    return "start" if noise is None or noise != noise else "rule"


def mean_se(xs: list[float]) -> str:
    a = np.asarray([x for x in xs if x == x], dtype=float)  # nan != nan: a run that never reached the target
    if len(a) < 2:
        return "n/a"
    return f"{a.mean():+.2f} (SE {a.std(ddof=1) / math.sqrt(len(a)):.2f}, {len(a)} runs)"


def runs_command(arms: list[Path], cut: range | None = None, kinds: tuple[str, ...] = KINDS) -> None:
    """Each run as lived and with the steps chosen (in `cut`, of `kinds`) cut to their first arrival, and a ledger of
    those steps before the run's own crossing: what their wait for more workers cost (each step's lived time less the
    run's mean step at N = 1 (within `cut` where given: a regime's phase), steps with an evaluation in them left out
    and counted at the others' mean), against what the steps they bought are worth at that mean. Under a regime that
    shifts, a whole run's ledger compares steps of one phase with N = 1 steps of another: cut a phase.
    """
    for arm in arms:
        grid, smooth, per_step, cost, worth, agree, n, cuts = [], [], [], [], [], 0, 0, []
        for run in sorted(arm.glob("s*/backup-*")):
            if not (run / "summary.json").exists():
                continue
            workload, steps, evals = records(run)
            own = own_crossing(evals)
            chosen = [len(r["members"]) > 1 and (cut is None or r["step"] in cut) and kind(r, b) in kinds
                      for r, b in zip(steps, [None] + steps[:-1])]
            lived = [r["members"] for r in steps]
            first = [at_n(r, 1, workers(run)) if c else r["members"] for r, c in zip(steps, chosen)]
            (lived_grid, lived_smooth), (first_grid, first_smooth) = (
                crossings(accuracy_curve(workload, s), TARGET) for s in (lived, first))
            n += 1
            agree += (own is None and lived_grid != lived_grid) or own == lived_grid
            grid.append(first_grid - lived_grid)
            smooth.append(first_smooth - lived_smooth)
            # the ledger, over the steps before the run's own crossing
            end = own or len(steps)
            took = {r["step"]: r["time"] - b["time"] for r, b in zip(steps[1:], steps) if r["step"] % 10}
            ones = [took[r["step"]] for r in steps[:end] if r["step"] in took and len(r["members"]) == 1
                    and (cut is None or r["step"] in cut)]  # a phase's N = 1 steps, for a phase's steps
            one = float(np.mean(ones)) if ones else math.nan  # none there: the ledger cannot price this run
            cut_steps = [r["step"] for r, c in zip(steps[:end], chosen) if c]
            timed = [took[t] for t in cut_steps if t in took]
            cost.append(len(cut_steps) * (np.mean(timed) - one) if timed else 0.0)
            worth.append((first_grid - lived_grid) * one)
            cuts.append(len(cut_steps))
            if cut_steps and first_smooth == first_smooth and lived_smooth == lived_smooth:
                per_step.append((first_smooth - lived_smooth) / len(cut_steps))
            print(f"{run.parent.name}: judged crossing lived {lived_grid:g} (its run's {own}), cut {first_grid:g}; "
                  f"smoothed {lived_smooth:g} / {first_smooth:g}; steps cut before the run's crossing "
                  f"{len(cut_steps)}, their wait {1e3 * cost[-1]:.1f} ms", flush=True)
        net = [c - w for c, w in zip(cost, worth) if w == w]
        print(f"{arm}: {n} runs; lived replays judged where their runs were: {agree}/{n}; steps cut ({', '.join(kinds)}"
              f"{'' if cut is None else f', steps {cut.start}-{cut.stop - 1}'}): {np.mean(cuts):.1f} a run before its "
              f"crossing\n  steps they bought: judged crossing {mean_se(grid)}, smoothed {mean_se(smooth)} "
              f"(per step cut {mean_se(per_step)})\n  ledger, ms a run: their wait {mean_se(1e3 * np.array(cost))}, "
              f"the judged steps bought at the run's N = 1 step {mean_se(1e3 * np.array(worth))}, "
              f"net cost {mean_se(1e3 * np.array(net))}")


def early_command(first: int, last: int, ks: list[int], workload: dict) -> None:
    """Seeds first..last: N = 1 throughout, N = 2 for the first k steps of `ks` (the same first ranks plus one more),
    and N = 2 throughout; each one's judged and smoothed steps to target, and their paired differences from N = 1."""
    arms = {"N=1": 0, **{f"N=2 first {k}": k for k in ks}, "N=2": workload["steps"]}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    for seed in range(first, last + 1):
        rng = np.random.default_rng((seed, 17))  # the first member each step, and the second one's offset
        ones = rng.integers(0, WORKERS, workload["steps"])
        seconds = (ones + rng.integers(1, WORKERS, workload["steps"])) % WORKERS
        line = []
        for name, k in arms.items():
            schedule = [[int(o), int(s)] if t < k else [int(o)] for t, (o, s) in enumerate(zip(ones, seconds))]
            got = crossings(accuracy_curve(dict(workload, seed=seed), schedule), TARGET)
            rows[name].append(got)
            line.append(f"{name} {got[0]:g}/{got[1]:g}")
        print(f"seed {seed} (judged/smoothed): " + ", ".join(line), flush=True)
    base = rows["N=1"]
    for name, got in rows.items():
        judged, smoothed = np.nanmean([g for g, _ in got]), np.nanmean([s for _, s in got])
        print(f"{name}: mean judged {judged:.1f}, smoothed {smoothed:.1f} steps; against N = 1: judged "
              f"{mean_se([g - b0 for (g, _), (b0, _) in zip(got, base)])}, "
              f"smoothed {mean_se([s - b0 for (_, s), (_, b0) in zip(got, base)])}")


PHASE_STARTS = (0, 30, 60)  # the shifting regimes' phases (run.sh's fashion-slow and fashion-noisy, digits' noisy)


def arrival_orders(seed: int, steps: int, ranks: int, last: tuple[set, range] | None) -> list[list[int]]:
    """Each step's order of arrival, drawn at random (any rank's minibatch is as good a draw as another's:
    backupsgd.data); in the steps of `last`, its ranks after the others (a slow node's ranks arrive last)."""
    rng = np.random.default_rng((seed, 23))
    orders = []
    for step in range(steps):
        order = [int(r) for r in rng.permutation(ranks)]
        if last is not None and step in last[1]:
            order = [r for r in order if r not in last[0]] + [r for r in order if r in last[0]]
        orders.append(order)
    return orders


def phases_command(first: int, last_seed: int, schedules: list[tuple[int, ...]], workload: dict, ranks: int,
                   last: tuple[set, range] | None, rows_file: Path | None) -> None:
    """Seeds first..last_seed under each schedule of N by phase (PHASE_STARTS), every schedule on the same arrival
    orders (a larger N's members hold a smaller one's): each one's judged and smoothed steps to target, and their
    paired differences from the first schedule's. With `rows_file`, one JSON row per seed and schedule."""
    names = [",".join(map(str, s)) for s in schedules]
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    out = None if rows_file is None else rows_file.open("a")
    for seed in range(first, last_seed + 1):
        orders = arrival_orders(seed, workload["steps"], ranks, last)
        line = []
        for name, schedule in zip(names, schedules):
            n_at = lambda step: schedule[sum(step >= start for start in PHASE_STARTS) - 1]  # noqa: E731
            got = crossings(accuracy_curve(dict(workload, seed=seed),
                                           [order[:n_at(step)] for step, order in enumerate(orders)], True), TARGET)
            rows[name].append(got)
            line.append(f"{name} {got[0]:g}/{got[1]:g}")
            if out is not None:
                out.write(json.dumps({"seed": seed, "schedule": list(schedule), "judged": got[0], "smoothed": got[1],
                                      "phase_starts": list(PHASE_STARTS), "target": TARGET}) + "\n")
                out.flush()
        print(f"seed {seed} (judged/smoothed): " + ", ".join(line), flush=True)
    base = rows[names[0]]
    for name, got in rows.items():
        print(f"{name}: mean judged {np.nanmean([g for g, _ in got]):.1f}, smoothed "
              f"{np.nanmean([s for _, s in got]):.1f} steps; against {names[0]}: judged "
              f"{mean_se([g - b0 for (g, _), (b0, _) in zip(got, base)])}, "
              f"smoothed {mean_se([s - b0 for (_, s), (_, b0) in zip(got, base)])}")


@dataclass(frozen=True)
class SeedPair:
    """One seed of `judge`: the static run's steps to target, auto's replay's at the static N, the steps auto's choices
    bought (that replay's less its lived one's), both runs' evaluations and their times after each step."""
    static_steps: float
    auto_at_n: float
    bought: float
    bought_smoothed: float  # the same on the smoothed crossings (nan with --eval-every > 1)
    auto_evals: list
    static_evals: list
    auto_times: list
    static_times: list


def judge_command(auto_arm: Path, static_arms: list[Path], resamples: int = 4000) -> None:
    """Auto's time to target against each static b's, from its two parts measured apart: near the target digits'
    accuracy swings by 0.1 from one step to the next, so a run's steps to target hang on which workers' minibatches
    its steps took (60 paired seeds leave the runs' own time ratio +-4%), while the steps the policy's choice of N
    bought are measured on the same minibatches by replaying each auto run at the static b's N (its first arrivals),
    and the time after K steps varies less from run to run. Estimates
        E[time to target] = T_auto(S_N - bought)   (auto)   and   T_static(S_N)   (the static b at N),
    S_N: the mean steps to target at N over the static runs and the auto runs' replays at N (the same draws of
    minibatches: iid over ranks and steps); bought: the auto runs' replays at N less their lived replays; T_arm(K): the
    arm's mean time after K steps (steps.jsonl's `time`, evaluations included as in the runs' own times),
    interpolated. It takes a run's time after K steps as independent of how many steps it needs (its data, not its
    delays); a 95% interval by resampling seeds. Printed beside the paired ratio of the runs' own times (paired.py's),
    and again with the steps bought read on the smoothed crossings: on the 10-step grid one step bought moves a
    crossing by 0 or 10, so there the steps bought carry most of the noise left (SE 1.6-3.2 steps over 20 seeds
    against 0.8-1.4 smoothed); a shift of the accuracy curve moves both crossings alike, so both estimate the same
    steps bought.
    """
    autos = {run.parent.name: run for run in auto_arm.glob("s*/backup-*") if (run / "summary.json").exists()}
    for static_arm in static_arms:
        statics = {run.parent.name: run for run in static_arm.glob("s*/backup-*") if (run / "summary.json").exists()}
        seeds = sorted(set(autos) & set(statics))
        if len(seeds) < 2:
            print(f"{static_arm}: fewer than 2 seeds shared with {auto_arm}")
            continue
        n = len(records(statics[seeds[0]])[1][0]["members"])  # a static b's N
        pairs = []
        for seed in seeds:
            workload, steps, evals = records(autos[seed])
            lived, lived_smoothed = crossings(accuracy_curve(workload, [r["members"] for r in steps]), TARGET)
            at_static, at_static_smoothed = crossings(
                accuracy_curve(workload, [at_n(r, n, workers(autos[seed])) for r in steps]), TARGET)
            static_steps, static_evals = records(statics[seed])[1:]
            own = own_crossing(static_evals)
            pairs.append(SeedPair(math.nan if own is None else own, at_static, at_static - lived,
                                  at_static_smoothed - lived_smoothed, evals, static_evals,
                                  [r["time"] for r in steps], [r["time"] for r in static_steps]))
            print(f"  {seed}: static {own}, auto lived {lived:g}, auto at N = {n} {at_static:g}", flush=True)

        def estimate(idx: np.ndarray, smoothed: bool = False) -> tuple[float, float, float]:
            """(auto / static time to target, the same at the static's steps, steps bought) over the seeds `idx`;
            `smoothed`: the steps bought read on the smoothed crossings."""
            s_n = float(np.nanmean([pairs[i].static_steps for i in idx] + [pairs[i].auto_at_n for i in idx]))
            bought = float(np.nanmean([pairs[i].bought_smoothed if smoothed else pairs[i].bought for i in idx]))
            auto_curve = np.mean([pairs[i].auto_times for i in idx], axis=0)
            static_curve = np.mean([pairs[i].static_times for i in idx], axis=0)
            after = lambda curve, k: float(np.interp(k - 1, np.arange(len(curve)), curve))  # noqa: E731
            t_auto, t_static = after(auto_curve, s_n - bought), after(static_curve, s_n)
            return t_auto / t_static, after(auto_curve, s_n) / t_static, bought

        rng = np.random.default_rng(0)
        draws = [rng.integers(0, len(pairs), len(pairs)) for _ in range(resamples)]

        def judged(smoothed: bool) -> tuple[tuple[float, float, float], np.ndarray]:
            """estimate() over every seed, and its 95% interval over the same resampled seeds either way."""
            return estimate(np.arange(len(pairs)), smoothed), np.percentile(
                [estimate(d, smoothed)[0] for d in draws], [2.5, 97.5])

        (whole, (low, high)), (whole_s, (low_s, high_s)) = judged(False), judged(True)
        first_at = lambda evals: next((e["time"] for e in evals if e["test_accuracy"] >= TARGET), None)  # noqa: E731
        own = {seed: first_at(pair.auto_evals) for seed, pair in zip(seeds, pairs)}
        static_own = {seed: first_at(pair.static_evals) for seed, pair in zip(seeds, pairs)}
        # the estimator's assumption, checked where it can be: the static runs' time after K steps against their
        # steps to target (auto's steps to target move with its choices, which move its time)
        k = int(round(np.nanmean([p.static_steps for p in pairs] + [p.auto_at_n for p in pairs])))
        reached = [(p.static_steps, p.static_times[k - 1]) for p in pairs if p.static_steps == p.static_steps]
        r_check = np.corrcoef(np.array(reached).T)[0, 1]
        print(f"  the static runs' time after {k} steps against their steps to target: r = {r_check:+.2f} "
              f"({len(reached)} runs; independence reads 0 +- {2 / math.sqrt(len(reached)):.2f})")
        print(f"{auto_arm.name} / {static_arm.name} (N = {n}), {len(seeds)} seeds: decomposed {whole[0]:.3f} "
              f"[{low:.3f}, {high:.3f}] (at the same step {whole[1]:.3f}, steps bought {whole[2]:+.2f}); "
              f"with the steps bought on the smoothed crossings {whole_s[0]:.3f} [{low_s:.3f}, {high_s:.3f}] "
              f"({whole_s[2]:+.2f}); " + paired_ratio_line(own, static_own, "the runs' own times"))


def main() -> None:
    global TARGET, EVERY, EVAL_FROM
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("runs", "early", "judge", "phases"))
    p.add_argument("args", nargs="+")
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate the replays only every this many steps "
                   "(10: the judged crossing alone, as the runs evaluate; the smoothed one needs 1)")
    p.add_argument("--eval-from", type=int, default=10**9, help="evaluate the replays after every step past this "
                   "one too (the smoothed crossing, where --eval-every > 1 leaves it out elsewhere)")
    p.add_argument("--config", type=Path, help="early, phases: a run directory whose config.json's workload (and "
                   "workers) to use")
    p.add_argument("--last", help="phases: RANKS@FIRST-LAST, ranks that arrive last in those steps (e.g. 3,4@30-59)")
    p.add_argument("--rows", type=Path, help="phases: append one JSON row per seed and schedule to this file")
    p.add_argument("--cut", help="runs: cut to the first arrival only the steps FIRST-LAST (e.g. a regime's phase)")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"runs: cut only the steps of these kinds ({', '.join(KINDS)}; see kind())")
    a = p.parse_args()
    TARGET, EVERY, EVAL_FROM = a.target, a.eval_every, a.eval_from
    if a.what == "runs":
        cut = None if a.cut is None else range(int(a.cut.split("-")[0]), int(a.cut.split("-")[1]) + 1)
        kinds = tuple(a.kinds.split(","))
        if not set(kinds) <= set(KINDS):
            p.error(f"--kinds takes some of {','.join(KINDS)}, got {a.kinds!r}")
        runs_command([Path(x) for x in a.args], cut, kinds)
        return
    if a.what == "judge":
        if len(a.args) < 2:
            p.error("judge takes AUTO_ARM STATIC_ARM [STATIC_ARM ...]")
        judge_command(Path(a.args[0]), [Path(x) for x in a.args[1:]])
        return
    if a.what == "phases":
        if len(a.args) < 2 or "-" not in a.args[0] or a.config is None:
            p.error("phases takes SEEDS (FIRST-LAST), SCHEDULE [SCHEDULE ...] (N by phase, e.g. 3,3,3 5,3,5) "
                    "and --config RUN")
        schedules = [tuple(int(n) for n in s.split(",")) for s in a.args[1:]]
        if any(len(s) != len(PHASE_STARTS) for s in schedules):
            p.error(f"a SCHEDULE gives N for each of the {len(PHASE_STARTS)} phases starting at steps {PHASE_STARTS}")
        if any(not 1 <= n <= workers(a.config) for s in schedules for n in s):
            p.error(f"every N of a SCHEDULE must be 1..{workers(a.config)} (the ranks of {a.config})")
        last = None
        if a.last:
            ranks_text, steps_text = a.last.split("@")
            start, end = (int(x) for x in steps_text.split("-"))
            last = ({int(r) for r in ranks_text.split(",")}, range(start, end + 1))
        first, last_seed = (int(x) for x in a.args[0].split("-"))
        phases_command(first, last_seed, schedules, records(a.config)[0], workers(a.config), last, a.rows)
        return
    if len(a.args) != 2 or "-" not in a.args[0]:
        p.error("early takes SEEDS (FIRST-LAST) and K[,K...], e.g. early 0-99 5,10,30")
    first, last = (int(x) for x in a.args[0].split("-"))
    workload = DIGITS if a.config is None else json.loads((a.config / "config.json").read_text())["workload"]
    early_command(first, last, [int(k) for k in a.args[1].split(",")], workload)


TARGET, EVERY, EVAL_FROM = 0.9, 1, 10**9
if __name__ == "__main__":
    main()
