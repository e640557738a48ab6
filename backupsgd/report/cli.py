"""`backupsgd report DIR`: tables and plots of every finished run under DIR, written into DIR."""

from __future__ import annotations

from pathlib import Path

import click

from backupsgd.report.target import Target, defaults_help, parse_target

TARGET_HELP = ("What time to target is measured to: METRIC>=VALUE for a metric that goes up, METRIC<=VALUE for one "
               "that goes down, METRIC any key of evals.jsonl, e.g. 'test_accuracy>=0.9', 'test_loss<=1.2'; a bare "
               "number is a test accuracy. Default per dataset: ")


def _target(ctx: click.Context, param: click.Parameter, value: str | None) -> Target | None:
    return None if value is None else parse_target(value)  # a ConfigError: one line, exit 2


@click.command("report")
@click.argument("run_root", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--target", type=str, default=None, callback=_target, help=TARGET_HELP + defaults_help() + ".")
@click.option("--scale/--no-scale", default=True, help="Add the simulator's projection to 100-1,000 workers.")
@click.option("--training-time", is_flag=True,
              help="Times to target leave out the pauses for evaluations (each evaluation's time less the step's it "
                   "follows): for a workload whose evaluation is not cheap against a step, as Fashion-MNIST's.")
@click.option("--interpolate", is_flag=True,
              help="Times to target are where the metric crossed the target, linearly between the first evaluation "
                   "that reached it and the one before, instead of that evaluation's time (which is quantised to "
                   "eval_every steps).")
def report_command(run_root: Path, target: Target | None, scale: bool, training_time: bool, interpolate: bool) -> None:
    """Write DIR/report.md, DIR/report.json and PNG plots from the run directories under DIR.

    e.g. backupsgd report results/smoke --target 'test_loss<=1.2'
    """
    from backupsgd.report.build import build_report  # matplotlib loads only when a report is asked for

    report = build_report(run_root, target, scale, training_time, interpolate)
    ok, n = report.calibration_within
    click.echo(f"{report.runs} runs in {report.groups} configurations; simulator within 15% on {ok}/{n} runs")
    click.echo(f"wrote {report.markdown} and {', '.join(f.name for f in report.figures)}")


@click.command("timeline")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Trace file to write (default: RUN_DIR/timeline.json).")
def timeline_command(run_dir: Path, out: Path | None) -> None:
    """Write a run's steps on every rank as a Chrome trace (open it in ui.perfetto.dev or chrome://tracing).

    e.g. backupsgd timeline results/demo/backup
    """
    from backupsgd.report.timeline import write_timeline

    path = write_timeline(run_dir, out)
    click.echo(f"wrote {path} (open it in https://ui.perfetto.dev or chrome://tracing)")


@click.command("compare")
@click.argument("run_dirs", metavar="RUN_DIR RUN_DIR...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", type=str, default=None, callback=_target, help=TARGET_HELP + defaults_help() + ".")
def compare_command(run_dirs: tuple[Path, ...], target: Target | None) -> None:
    """Finished runs side by side: steps per second, time to a target (a test accuracy, a loss), gradients dropped.

    e.g. backupsgd compare results/demo/sync results/demo/backup
    """
    from backupsgd.report.compare import compare, compare_table

    click.echo(compare_table(compare(list(run_dirs), target)))
