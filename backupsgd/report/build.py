"""`backupsgd report DIR`: read every finished run under DIR, write report.md, report.json and PNGs into DIR."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from backupsgd.errors import ConfigError
from backupsgd.report import plots
from backupsgd.report.aggregate import GroupStats, check_recorded, group_runs, panels, summarise
from backupsgd.report.arrivals import kth_arrivals
from backupsgd.report.auto import auto_against_static, auto_plot, auto_table
from backupsgd.report.claims import claims_markdown, verdicts
from backupsgd.report.dropped import WINDOW, who_was_dropped
from backupsgd.report.noise_scale import calibration_table, noise_table
from backupsgd.report.runs import Run, load_runs
from backupsgd.report.scale import SCALE_WORKERS, project, projection_plot, projection_table, simulate_command
from backupsgd.report.tables import arrivals_table, configurations_table, markdown_table
from backupsgd.report.target import Target
from backupsgd.sim.calibrate import TOLERANCE, Calibration, Measured, calibrate


@dataclass(frozen=True)
class Report:
    markdown: Path
    figures: list[Path]
    runs: int
    groups: int
    calibration_within: tuple[int, int]


def measured(run: Run) -> Measured | None:
    step_s, compute_s = run.mean_step_s(), run.median_compute_s()
    if step_s is None or compute_s is None or run.is_auto:  # the calibration replays a fixed b
        return None
    return Measured(str(run.path), run.mode, run.workers, run.backups, run.straggler, run.seed,
                    int(run.config.get("steps", run.summary.get("steps", 1))), int(run.config.get("servers") or 1),
                    compute_s, step_s, eval_every=int(run.config.get("eval_every") or 0))


def build_report(root: Path, target: Target | None = None, scale: bool = True, training_time: bool = False,
                 interpolate: bool = False) -> Report:
    """`target` None: each dataset's default (backupsgd.report.target.DEFAULT_TARGETS); `training_time`: times to
    target leave out the evaluations' pauses (backupsgd.report.runs.Run.evaluation_pauses); `interpolate`: they are
    the crossings between evaluations (Run.crossing_time)."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory; pass the directory a sweep wrote (backupsgd sweep --out)")
    runs, unfinished = load_runs(root, training_time, interpolate)
    if not runs:
        raise ConfigError(f"no finished run under {root} (no summary.json); run backupsgd sweep first")
    check_recorded(target, runs)
    stats = [summarise(g, target) for g in group_runs(runs)]
    cal = calibrate([m for r in runs if (m := measured(r)) is not None])
    predicted = _predicted_by_group(stats, cal)
    figures = [f for f in (
        plots.metric_vs_time(stats, root / plots.metric_plot_name(stats)),
        plots.arrival_cdf(stats, root / "arrival_cdf.png"),
        plots.b_tradeoff(stats, root / "b_tradeoff.png", predicted),
        plots.calibration_scatter(cal, root / "calibration.png"),
        who_was_dropped(stats, root / "dropped.png"),
        auto_plot(stats, root / "auto.png"),
    ) if f is not None]
    projections = [p for gs in panels(stats).values() if (p := project(gs)) is not None] if scale else []
    if (fig := projection_plot(projections, root / "scale.png")) is not None:
        figures.append(fig)
    text = _markdown(root, runs, unfinished, stats, cal, projections, {f.name for f in figures})
    (root / "report.md").write_text(text)
    (root / "report.json").write_text(json.dumps(_as_json(stats, cal), indent=2) + "\n")
    return Report(root / "report.md", figures, len(runs), len(stats), cal.within())


def _predicted_by_group(stats: list[GroupStats], cal: Calibration) -> dict[tuple, float]:
    by_run = {r.run.name: r.predicted_s for r in cal.rows}
    out = {}
    for s in stats:
        values = [by_run[str(r.path)] for r in s.group.runs if str(r.path) in by_run]
        if values:
            out[s.group.first.config_key()] = statistics.mean(values)
    return out


def _targets(stats: list[GroupStats]) -> str:
    """Each target and the datasets it was used for: "test accuracy >= 90% (digits)"."""
    datasets: dict[Target, set[str]] = {}
    for s in stats:
        datasets.setdefault(s.target, set()).add(s.group.first.dataset or "?")
    return "; ".join(f"{t.label} ({', '.join(sorted(d))})" for t, d in datasets.items())


def _compute_and_delay(runs) -> str:
    """A table of compute against injected delay per (model, straggler), or "" when no run recorded both."""
    cells: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in runs:
        compute, delay = run.median_compute_s(), run.mean_delay_s()
        if compute is not None and delay is not None:
            cells.setdefault((str(run.config.get("model", "?")), run.straggler), []).append((compute, delay))
    if not cells:
        return ""
    lines = ["| model | straggler | compute per step, ms | mean delay per step, ms | compute / delay |",
             "|---|---|--:|--:|--:|"]
    for (model, straggler), pairs in sorted(cells.items()):
        compute = statistics.median(c for c, _ in pairs)
        delay = statistics.median(d for _, d in pairs)
        ratio = f"{compute / delay:.2f}" if delay > 0 else "no delay"
        lines.append(f"| {model} | {straggler} | {1e3 * compute:.1f} | {1e3 * delay:.1f} | {ratio} |")
    return "\n".join(lines)


def _metric_names(stats: list[GroupStats]) -> str:
    return " / ".join(dict.fromkeys(s.target.name for s in stats))


def _markdown(root, runs, unfinished, stats, cal, projections, figures) -> str:
    training_time = any(r.training_time for r in runs)
    interpolate = any(r.interpolate for r in runs)
    flag = (" --training-time" if training_time else "") + (" --interpolate" if interpolate else "")
    out = [f"# backupsgd report: {root}", "",
           f"Generated by `backupsgd report {root}{flag}` from {len(runs)} finished runs in {len(stats)} "
           f"configurations (a configuration is everything but the seed). Target: {_targets(stats)}; a run reaches it "
           "at the first test evaluation at or past that value."]
    if interpolate:
        out.append("**Times to target are interpolated**: where the metric crossed the target, linearly in time "
                   "between the first evaluation that reached it and the one before (steps to target stay that "
                   "evaluation's).")
    if training_time:
        pauses = [p for r in runs for _, p in r.evaluation_pauses]
        median = statistics.median(pauses) if pauses else 0.0
        out.append(f"**Times to target are training time**: each evaluation's pause is left out (median {median:.3f} s "
                   "an evaluation here); the accuracy-against-time plot keeps wall-clock time.")
    if unfinished:
        out.append(f"{len(unfinished)} run directories without summary.json (unfinished or failed) are left out.")
    out += ["", "## Per configuration", "",
            "Cells are `mean [best, worst]` over seeds; best and worst follow the target's direction (for a loss, "
            "the lowest is best). Time to target: seconds from the first training step to the first test "
            "evaluation that reached the target (so its resolution is `eval_every` steps, unless interpolated); its "
            "mean and best are over the seeds that reached the target, and a worst of *not reached* means some seed "
            "never did. Final: the target's metric at the end of the run. Step time: mean training step, leaving out "
            "step 0 and steps that also ran an evaluation.",
            "", configurations_table(stats), ""]
    if (compute := _compute_and_delay(runs)):
        out += ["## Compute against injected delay", "",
                "What a step's own compute weighs against the injected stragglers, per model and straggler model "
                "(medians over runs of each run's median compute per step and mean delay per step, every rank, "
                "step 0 left out). Where compute is a small fraction of the delay, the delays decide the "
                "comparison; where it is comparable, the workload's own cost does too.", "", compute, ""]
    if (plot := plots.metric_plot_name(stats)) in figures:
        name = _metric_names(stats)
        out += [f"## {name[0].upper()}{name[1:]} against wall-clock time", "",
                f"Mean over seeds at each evaluation step (x: mean time, y: mean {name}), band: min to max "
                "over seeds; dotted: the target.", "", f"![{name} vs time]({plot})", ""]
    if "arrival_cdf.png" in figures:
        rows = []
        for (straggler, workers), gs in panels(stats).items():
            kth = kth_arrivals([s.group for s in gs])
            if kth.size:
                rows.append((f"{straggler}, P={workers}", kth))
        out += ["## Gradient arrival times", "",
                "Time until k of P gradients are in, per step. Worker side: each worker's compute + injected "
                "delay from its own step start (from `sync` runs where the panel has them, since there every "
                "worker computes every step). Coordinator: when the members' READY messages reached rank 0 "
                "(`backup` runs; includes messaging; only the N members are recorded). Median (p90), ms:", "",
                arrivals_table(rows), "", "![arrival CDF](arrival_cdf.png)", ""]
    if "dropped.png" in figures:
        out += ["## Who was dropped when", "",
                f"One seed (the lowest) of each configuration: every worker against the first {WINDOW} steps. Green: "
                "its gradient was applied; red: it was computed but too late and dropped; dark red: dropped "
                "without being computed (the worker was still behind on an earlier step). At the right: each "
                "worker's dropped gradients over the whole run. `backupsgd timeline RUN_DIR` shows one run's steps "
                "on every rank in time.", "", "![who was dropped](dropped.png)", ""]
    if (table := auto_table(stats)):
        out += ["## N chosen per step (`--backups auto`)", "",
                "The coordinator's choice of N each step (steps.jsonl `quorum`), mean over each run's steps, then "
                "over seeds. In the b plot below an auto configuration sits at its mean b (P less its mean N).", "",
                table, ""]
        if (judged := auto_against_static(stats)):
            out += ["Time to target (mean over the seeds that reached it) against the static b with the lowest "
                    "mean, chosen knowing the outcome; below 1, auto was faster. The interval is a 95% bootstrap "
                    "interval of that ratio, drawing seeds with replacement and each seed's two runs together (a seed "
                    "fixes the data order and the straggler draws of both); a ratio whose interval holds 1 is not "
                    "told apart from the best static b by these seeds. \"Seeds for +-5%\" is how many paired seeds "
                    "an interval that narrow would take at the spread of these seeds' per-seed ratios (a planning "
                    "figure: that spread is itself uncertain, and on a shared machine it holds the machine's drift "
                    "between runs as well as the training's). The last column reads the same pair at one evaluation, "
                    "where the best static b's mean over the paired seeds first reaches the target: auto's metric "
                    "less its, and the ratio of their times to that step, with 95% t intervals over the seeds. Every "
                    "seed counts there, reached or not; where a seed's runs drift apart, so that its time to the "
                    "target is mostly that drift, level in the metric at time ratio r reads as r in time to target:",
                    "", judged, ""]
        if "auto.png" in figures:
            out += ["Top: N per step (a one-step spike is a probe); bottom: every worker's compute + injected delay "
                    "per step, for the lowest seed.", "", "![N over time](auto.png)", ""]
    out += ["## Step time and time to target against b", "",
            "Mean with min-max bars over seeds; `sync` is its own marker at b=0; dashed: the calibrated simulator.",
            "", "![b trade-off](b_tradeoff.png)", "",
            *_noise_markdown(stats),
            "## Does the paper's claim hold here?", "", claims_markdown(stats), "",
            *_calibration_markdown(cal, "calibration.png" in figures, stats),
            *_scale_markdown(projections)]
    return "\n".join(out)


def _noise_markdown(stats: list[GroupStats]) -> list[str]:
    table = noise_table(stats)
    if not table:
        return []
    return ["## Gradient noise scale and the b trade-off", "",
            "The noise scale each run measured (B_simple from the members' gradient norms, steps.jsonl "
            "`noise_scale`; median over the steps before the run reached the target, or its second half if it never "
            "did, since it grows as training goes on), and what it "
            "predicts: a step of N worker batches of B examples makes N B / (N B + B_simple) of a noise-free "
            "step's progress. Predicted speed vs sync: that progress per measured step time, relative to sync's; "
            "measured: sync's mean time to target over this configuration's. Where they agree, the noise scale "
            "and the step times explain the trade-off; the noise model ignores everything else that differs "
            "(momentum's response to a smaller batch, evaluation resolution).", "", table, "",
            *_calibration_lines(stats)]


def _calibration_lines(stats: list[GroupStats]) -> list[str]:
    table = calibration_table(stats)
    if not table:
        return []
    return ["B_simple is the noise scale of a model that tunes the learning rate for every batch size; at a fixed "
            "learning rate a small batch can cost much less (or more) than it says. The static runs' steps to "
            "target, fitted to S_min (1 + B_noise / N), give the effective B_noise; its ratio to the measured "
            "B_simple calibrates `--backups auto`'s noise model to this workload (`noise=`, "
            "backupsgd/adaptive.py):", "", table, ""]


def _calibration_markdown(cal: Calibration, has_plot: bool, stats: list[GroupStats]) -> list[str]:
    if not cal.rows:
        return ["## Simulator calibration", "", "No run could be predicted.", ""]
    what = {"sync": "exchange per step, for the synchronous modes", "ps-async": "round trip per push, for ps-async"}
    fitted = "; ".join(f"P={p}, {what[family]}: {1e3 * o:.2f} ms (fitted on {cal.fitted_on[p, family]})"
                       for (p, family), o in cal.overhead_s.items())
    ok, n = cal.within()
    ok_out, n_out = cal.within(out_of_sample=True)
    # One row per configuration of the report, so options beyond mode and b (a reducer, say) stay apart.
    row_of = {r.run.name: r for r in cal.rows}
    rows = []
    for s in stats:
        rs = [row_of[str(run.path)] for run in s.group.runs if str(run.path) in row_of]
        if not rs:
            continue
        meas = statistics.mean(r.run.step_s for r in rs)
        pred = statistics.mean(r.predicted_s for r in rs)
        worst = max(rs, key=lambda r: abs(r.error)).error
        held_out = [r.error for r in rs if not r.in_sample]
        fit = sum(r.in_sample for r in rs)
        rows.append([s.group.label, f"{len(rs)} ({fit} fit)" if fit else str(len(rs)),
                     f"{1e3 * statistics.mean(r.run.compute_s for r in rs):.2f}",
                     f"{1e3 * meas:.2f}", f"{1e3 * pred:.2f}", f"{100 * (pred - meas) / meas:+.1f}%",
                     f"{100 * worst:+.1f}%", f"{100 * max(held_out, key=abs):+.1f}%" if held_out else "none"])
    table = markdown_table(["configuration", "runs", "compute, ms", "measured step, ms", "simulated step, ms",
                            "error of means", "worst run", "worst out-of-sample run"], rows)
    lines = ["## Simulator calibration", "",
             "Each run replayed by the simulator (`backupsgd.sim.calibrate`) with its own straggler spec and seed "
             "(the delays it injected) and its measured median compute time. As in the training loop, a dropped "
             "worker finishes its stale step and joins the first undecided one; the replay's mean step time is "
             "read as the run's is (the logger's apply times, leaving out step 0 and the evaluation intervals). "
             f"Everything else is one fitted overhead per P and family: {fitted}. Only the runs counted as `fit` "
             "fitted an overhead; every other run is predicted out of sample. "
             f"Within {100 * TOLERANCE:.0f}%: {ok}/{n} runs; out of sample (not used in any fit): {ok_out}/{n_out}.",
             "", table, ""]
    if cal.skipped:
        lines += [f"Not predicted: {len(cal.skipped)} runs ({cal.skipped[0][1]}).", ""]
    if has_plot:
        lines += ["![calibration](calibration.png)", ""]
    return lines


def _scale_markdown(projections) -> list[str]:
    if not projections:
        return []
    lines = [f"## Choosing N and b at {SCALE_WORKERS[0]} to {SCALE_WORKERS[-1]:,} workers (simulated)", "",
             "`backupsgd simulate`'s model with each panel's measured median compute time, the model's gradient "
             "size, and the simulator's default network (10 Gbit/s, 50 us, ring allreduce); 200 steps, seed 0.", ""]
    for proj in projections:
        noise = _noise_sentence(proj)
        lines += [f"### straggler {proj.straggler}", "",
                  f"compute {1e3 * proj.compute_s:.2f} ms, gradient {proj.model_mb:.3f} MiB; {noise}.", "",
                  projection_table(proj), "", "Reproduce one P with:", "", "```",
                  *(simulate_command(proj, p) for p in SCALE_WORKERS), "```", ""]
    lines += ["![simulated scale](scale.png)", ""]
    return lines


def _noise_sentence(proj) -> str:
    fitted = (f"fitted from steps to target: B_noise = {proj.fitted.noise_scale:.2f} workers' minibatches, "
              f"S_min = {proj.fitted.s_min:.0f} steps ({proj.fitted.points} runs)" if proj.fitted
              else "no fit from steps to target (the runs cover one N, or the fit was not physical)")
    if proj.noise is not None and proj.noise.source == "measured":
        return (f"gradient-noise scale measured (B_simple, median over the steps before the target of "
                f"{proj.noise.points} runs): {proj.noise.noise_scale:.2f} workers' minibatches, used below; {fitted}")
    return f"gradient-noise scale {fitted}"


def _as_json(stats: list[GroupStats], cal: Calibration) -> dict:
    def stat(s):
        return None if s is None else asdict(s)

    return {
        "configurations": [{
            "label": s.group.label, "mode": s.group.mode, "backups": s.group.backups,
            "workers": s.group.first.workers, "straggler": s.group.first.straggler, "seeds": s.group.seeds,
            "runs": [str(r.path) for r in s.group.runs], "target": asdict(s.target) | {"label": s.target.label},
            "reached": s.reached, "time_to_target_s": stat(s.time_to_target),
            "steps_to_target": stat(s.steps_to_target), "final_value": stat(s.final_value),
            "steps_per_s": stat(s.steps_per_s), "step_s": stat(s.step_s), "dropped_fraction": stat(s.dropped_fraction),
        } for s in stats],
        "claims": [asdict(v) for v in verdicts(stats)],
        "calibration": {
            "overhead_s": {f"P={p} {family}": o for (p, family), o in cal.overhead_s.items()},
            "fitted_on": {f"P={p} {family}": on for (p, family), on in cal.fitted_on.items()},
            "rows": [asdict(r.run) | {"predicted_s": r.predicted_s, "error": r.error, "in_sample": r.in_sample}
                     for r in cal.rows],
            "skipped": cal.skipped,
        },
    }
