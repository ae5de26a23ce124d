"""`tfxp`: the command line. Heavy imports (TensorFlow, TFX) happen inside commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pipeline.config import DEFAULT_BEAM_ARGS, DEFAULT_DATA, DEFAULT_SCHEMA

EXIT_CODES_HELP = """\b
Exit codes:
  0  model pushed
  1  unexpected failure (see the log file named in the output)
  2  usage error
  3  data anomalies: the data does not match schema/schema.pbtxt; nothing pushed
  4  model not blessed by the Evaluator; nothing pushed"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Taxi TFX pipeline: run it, infer a schema for new data."""


def _data_option(help_text: str):
    return click.option(
        "--data",
        type=click.Path(exists=True, path_type=Path),
        default=DEFAULT_DATA,
        show_default="embedded Chicago taxi CSV",
        help=help_text,
    )


@main.command(epilog=EXIT_CODES_HELP)
@_data_option("A CSV file or a folder of CSV files.")
@click.option("--output", type=click.Path(path_type=Path), default=Path("output"), show_default=True,
              help="Root for pipelines/, metadata/, serving/ and logs/.")
@click.option("--name", default="taxi", show_default=True, help="Pipeline name; also the served model's name.")
@click.option("--train-steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--beam-arg", "beam_args", multiple=True, metavar="ARG",
              help=f"A Beam pipeline option, repeatable. Default: {' '.join(DEFAULT_BEAM_ARGS)}")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def run(data: Path, output: Path, name: str, train_steps: int, beam_args: tuple[str, ...], as_json: bool) -> None:
    """Run the pipeline end to end and push a blessed model."""
    from pipeline import report
    from pipeline.config import PipelineConfig
    from pipeline.runner import quiet_libraries, run as run_pipeline

    if not _valid_name(name):
        raise click.BadParameter("use letters, digits, '-' and '_' only", param_hint="--name")
    quiet_libraries()
    config = PipelineConfig(
        name=name, data=data, output=output, train_steps=train_steps,
        beam_args=beam_args or DEFAULT_BEAM_ARGS,
    )
    outcome = run_pipeline(config, on_event=report.print_event)
    if as_json:
        click.echo(json.dumps(report.as_json(outcome), indent=2, allow_nan=False))
    else:
        report.print_summary(outcome)
    sys.exit(int(outcome.exit_code))


@main.group()
def schema() -> None:
    """Schema tools."""


@schema.command("infer")
@_data_option("A CSV file or a folder of CSV files to infer from.")
@click.option("--output", "out", type=click.Path(path_type=Path), default=Path("schema.inferred.pbtxt"),
              show_default=True, help="Where to write the inferred schema.")
def schema_infer(data: Path, out: Path) -> None:
    """Infer a starting schema.pbtxt with SchemaGen, for a person to curate.

    Copy the result to schema/schema.pbtxt after tightening domains, ranges and
    presence; see README "Adapting to other data".
    """
    from pipeline.runner import quiet_libraries, route_library_logs
    from pipeline.schema_infer import infer_schema

    quiet_libraries()
    route_library_logs(out.with_suffix(".log"))
    infer_schema(data, out)
    click.echo(f"wrote {out} (curate it, then copy to {DEFAULT_SCHEMA.relative_to(DEFAULT_SCHEMA.parent.parent)})")


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_" for c in name)


if __name__ == "__main__":
    main()
