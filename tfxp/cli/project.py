"""`tfxp init`: a project folder (project.yaml + schema.pbtxt) from a CSV and a label column.

Heavy imports (TFDV, Beam) happen inside the command, so `--help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfxp.cli._common import log_beside
from tfxp.cli.exit_codes import ExitCode, epilog


@click.command("init", epilog=epilog("init"))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A CSV file or a folder of CSV files (with a header row).",
)
@click.option("--label", required=True, help="The label column: what the model learns to predict.")
@click.option(
    "--task",
    type=click.Choice(["auto", "binary", "multiclass", "regression"]),
    default="auto",
    show_default=True,
    help="auto: binary for two label values, multiclass for a few, regression for numbers with many.",
)
@click.option("--positive", default=None, help="Binary: the label value that is the positive class, as in the CSV.")
@click.option("--name", default=None, help="Project (pipeline and model) name. Default: from the data's name.")
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The project folder to write. Default: ./<name>/. The library log goes to <dir>.log beside it.",
)
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="COLUMN",
    help="Make COLUMN kind: ignored (validated, not a model input), e.g. a name TensorFlow refuses. Repeatable.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("output"),
    show_default=True,
    help="Where `tfxp run` will push (its --output): init warns when a model of this name is already there.",
)
def init(
    data: Path,
    label: str,
    task: str,
    positive: str | None,
    name: str | None,
    out_dir: Path | None,
    ignore: tuple[str, ...],
    output: Path,
) -> None:
    """Start a project: a spec and schema from a CSV and its label.

    Statistics of the data decide each column's kind (numeric, bucketized,
    small-int categorical, vocabulary, or ignored: ids, counters, timestamps,
    dates, free text), placeholder cells ("?", "NA") read as missing, whether it
    is required, the task, and blessing thresholds strictly better than the
    naive predictor. Edit the files, then `tfxp run --project DIR`.
    """
    from tfxp.pipeline.console import library_output_to
    from tfxp.pipeline.csv_files import DataFileError, NoCsvFilesError
    from tfxp.pipeline.init_project import InitError, default_name, init_project
    from tfxp.project import ProjectError

    # <dir>.log beside the project folder (its default is ./<name>/).
    log_file = log_beside(out_dir or Path(name or default_name(data)))
    try:
        with library_output_to(log_file):  # TFDV's and TensorFlow's log lines
            result = init_project(
                data, label, task=task, positive=positive, name=name, dir=out_dir, ignore=ignore, output=output
            )
    except (InitError, ProjectError, NoCsvFilesError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    except DataFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.CHECK_FAILED)
    for line in result.report_lines():
        click.echo(line)
    click.echo(f"library log: {log_file}")
