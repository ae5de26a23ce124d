"""`tfxp report`: the HTML report of one pipeline run (statistics, anomalies, metrics and gates, plots, training
curves, lineage), read from the run's ML Metadata under --output.

ML Metadata, TFMA and TFDV are imported inside the command, so `--help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfxp.cli.exit_codes import ExitCode, epilog


def _html_path(ctx: click.Context, param: click.Parameter, path: Path) -> Path:
    """The page to write: its folder must exist (found before any work, not after it)."""
    if not path.resolve().parent.is_dir():
        raise click.BadParameter(f"{path}: no folder {path.resolve().parent} to write it in", ctx, param)
    return path


def pipeline_name(output: Path, name: str | None) -> str:
    """--name, or the only pipeline with metadata under OUTPUT. Raises click.BadParameter naming what exists."""
    from tfxp.pipeline.run_report.collect import pipeline_names

    names = pipeline_names(output)
    if name is not None:
        return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise click.BadParameter(f"no pipeline metadata under {output / 'metadata'}: run `tfxp run --output {output}`")
    raise click.BadParameter(f"{output} holds {len(names)} pipelines ({', '.join(names)}): give --name")


def _quiet() -> None:
    """No library chatter on the console: reading results raises only deprecation notices (TFMA's
    tf_record_iterator, pyparsing's names), none about the report."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    for logger in ("tensorflow", "absl", "py.warnings"):
        logging.getLogger(logger).setLevel(logging.ERROR)


@click.command("report", epilog=epilog("report"))
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("output"),
    show_default=True,
    help="The --output of `tfxp run` (its metadata/<name>/metadata.db is read).",
)
@click.option("--name", default=None, help="Pipeline name. Default: the only pipeline under --output.")
@click.option(
    "--version",
    "version",
    default=None,
    metavar="V",
    help="Report the run that pushed version V. Default: the newest run (pushed or not).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    callback=_html_path,
    help="The page to write: one self-contained HTML file (inline SVG, no script, nothing fetched).",
)
def report(output: Path, name: str | None, version: str | None, html_file: Path) -> None:
    """Write the HTML report of a pipeline run."""
    name = pipeline_name(output, name)
    _quiet()
    from tfxp.pipeline.run_report import ReportError, write_report

    try:
        written = write_report(output, name, html_file, version)
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        click.echo(f"error: {html_file} not written: {exc}", err=True)
        sys.exit(ExitCode.FAILURE)
    click.echo(f"wrote {html_file}: run {written.run} of {name}: {written.outcome}")
