"""`backupsgd report DIR`: tables and plots of every finished run under DIR, written into DIR."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_root", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--target", type=click.FloatRange(0, 1), default=None,
              help="Target test accuracy for time-to-target (default per dataset: digits 0.90, synthetic 0.80, "
                   "cifar 0.50).")
@click.option("--scale/--no-scale", default=True, help="Add the simulator's projection to 100-1,000 workers.")
def report_command(run_root: Path, target: float | None, scale: bool) -> None:
    """Write DIR/report.md, DIR/report.json and PNG plots from the run directories under DIR.

    e.g. backupsgd report results/smoke
    """
    from backupsgd.report.build import build_report  # matplotlib loads only when a report is asked for

    report = build_report(run_root, target, scale)
    ok, n = report.calibration_within
    click.echo(f"{report.runs} runs in {report.groups} configurations; simulator within 15% on {ok}/{n} runs")
    click.echo(f"wrote {report.markdown} and {', '.join(f.name for f in report.figures)}")
