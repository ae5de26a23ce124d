"""`tfxp`: the command line. Heavy imports (TensorFlow, TFX) happen inside commands."""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import click

from tfxp.pipeline.config import DEFAULT_BEAM_WORKERS, DEFAULT_DATA, DEFAULT_SCHEMA

EXIT_CODES_HELP = """\b
Exit codes:
  0  model pushed
  1  unexpected failure (see the log file named in the output)
  2  usage error (also: another tfxp run holds --output; a --data folder
     without *.csv; a schema whose FLOAT features allow NaN)
  3  bad data, nothing pushed: an unreadable CSV file (file:line named),
     no rows, or anomalies against schema/schema.pbtxt
  4  model not blessed by the Evaluator; nothing pushed"""


# setup.py's `name`: --version asks importlib.metadata for it, so the answer is the
# installed version and needs no TensorFlow import.
DISTRIBUTION = "tfxp"


class _Group(click.Group):
    """A group whose command list wraps each command's purpose instead of cutting it.

    Click's Group.format_commands cuts a purpose at (help width - 6 - longest
    command name) characters and adds "...": 58 on an 80-column terminal, fewer on
    a narrower one. Each command's first docstring line is its purpose, kept within
    58 characters so it fits one line at 80 columns (tests/pipeline/test_cli.py).
    """

    group_class = type  # subgroups (`tfxp schema`) list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # A limit no first line reaches: the first sentence, whole.
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="tfxp", message="%(prog)s %(version)s")
def main() -> None:
    """Taxi tips with TFX: train, gate and push a model; serve it.

    Start with `tfxp run`; `tfxp COMMAND --help` describes a command and
    its exit codes. README.md covers the whole project.
    """


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
@click.option("--beam-workers", type=click.IntRange(min=1), default=DEFAULT_BEAM_WORKERS, show_default=True,
              help="Local Beam parallelism: 1 runs Beam in this process (fastest on small data, see "
                   "bench/results/scale.json); N > 1 uses N worker processes (multi-processing DirectRunner).")
@click.option("--beam-arg", "beam_args", multiple=True, metavar="ARG",
              help="A Beam pipeline option, repeatable; added after --beam-workers' options and wins over them "
                   "(e.g. --beam-arg=--runner=PortableRunner).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def run(data: Path, output: Path, name: str, train_steps: int, beam_workers: int, beam_args: tuple[str, ...],
        as_json: bool) -> None:
    """Run the pipeline end to end and push a blessed model."""
    from tfxp.pipeline import report
    from tfxp.pipeline.config import PipelineConfig, direct_runner_args
    from tfxp.pipeline.console import quiet_libraries
    from tfxp.pipeline.runner import run as run_pipeline

    if not _valid_name(name):
        raise click.BadParameter("use letters, digits, '-' and '_' only", param_hint="--name")
    from tfxp.pipeline.csv_files import NoCsvFilesError, list_csv_files

    try:
        list_csv_files(data)
    except NoCsvFilesError as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from None
    quiet_libraries()
    config = PipelineConfig(
        name=name, data=data, output=output, train_steps=train_steps,
        beam_args=(*direct_runner_args(beam_workers), *beam_args),
    )
    outcome = run_pipeline(config, on_event=report.print_event)
    if as_json:
        click.echo(json.dumps(report.as_json(outcome), indent=2, allow_nan=False))
    else:
        report.print_summary(outcome)
    sys.exit(int(outcome.exit_code))


COMPILE_EXIT_CODES_HELP = """\b
Exit codes:
  0  pipeline JSON written
  1  compiling failed (the reason is printed)
  2  usage error"""


@main.command("compile", epilog=COMPILE_EXIT_CODES_HELP)
@click.option("--target", type=click.Choice(["vertex"]), required=True,
              help="vertex: a Vertex AI Pipelines PipelineJob JSON (KubeflowV2DagRunner).")
@click.option("--project", required=True, help="Google Cloud project id.")
@click.option("--region", required=True, help="Google Cloud region, e.g. us-central1.")
@click.option("--pipeline-root", required=True, metavar="gs://BUCKET/ROOT",
              help="Where artifacts go; pushed models land in ROOT/serving/<name> and ROOT/mobile/<name>.")
@click.option("--image", required=True, help="The pipeline image built from this project's Dockerfile.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("pipeline.json"),
              show_default=True, help="The PipelineJob JSON to write.")
@click.option("--data", default=None, metavar="gs://…|PATH",
              help="CSV file or folder: a gs:// URI, or a path inside this project (read from the image). "
                   "Default: the embedded taxi CSV in the image.")
@click.option("--name", default="taxi", show_default=True, help="Pipeline name; also the served model's name.")
@click.option("--train-steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--vertex-training", is_flag=True, help="Run the Trainer as a Vertex AI Training custom job.")
@click.option("--training-machine-type", default="n1-standard-4", show_default=True,
              help="Machine type of that job (with --vertex-training).")
@click.option("--dataflow", is_flag=True, help="Run every Beam-powered component on Dataflow.")
@click.option("--temp-location", default=None, metavar="gs://…",
              help="Dataflow's staging/temp folder (with --dataflow). Default: PIPELINE_ROOT/tmp.")
@click.option("--dataflow-max-workers", type=click.IntRange(min=1), default=None,
              help="Upper bound on Dataflow workers (with --dataflow).")
@click.option("--beam-arg", "beam_args", multiple=True, metavar="ARG",
              help="A Beam pipeline option for every Beam component, repeatable; added last.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
def compile_command(target: str, project: str, region: str, pipeline_root: str, image: str, output: Path,
                    data: str | None, name: str, train_steps: int, vertex_training: bool,
                    training_machine_type: str, dataflow: bool, temp_location: str | None,
                    dataflow_max_workers: int | None, beam_args: tuple[str, ...], as_json: bool) -> None:
    """Compile the pipeline for Vertex AI Pipelines, offline.

    The same DAG as `tfxp run`, as a PipelineJob JSON; nothing is uploaded.
    """
    from tfxp.pipeline.config import DEFAULT_BEAM_ARGS, PipelineConfig, RemoteLayout, VertexTraining

    if not _valid_name(name):
        raise click.BadParameter("use letters, digits, '-' and '_' only", param_hint="--name")
    if not pipeline_root.startswith("gs://"):
        raise click.BadParameter("Vertex AI needs a gs:// pipeline root", param_hint="--pipeline-root")
    if (temp_location or dataflow_max_workers) and not dataflow:
        raise click.UsageError("--temp-location and --dataflow-max-workers go with --dataflow")
    if temp_location is not None and not temp_location.startswith("gs://"):
        raise click.BadParameter("Dataflow needs a gs:// temp location", param_hint="--temp-location")
    from tfxp.pipeline import vertex

    runner_args = DEFAULT_BEAM_ARGS
    if dataflow:
        runner_args = vertex.dataflow_beam_args(
            vertex.DataflowSettings(project=project, region=region,
                                    temp_location=temp_location or f"{pipeline_root.rstrip('/')}/tmp",
                                    image=image, max_num_workers=dataflow_max_workers)
        )
    training = VertexTraining(project, region, image, training_machine_type) if vertex_training else None
    try:
        config = PipelineConfig(
            name=name, data=data or DEFAULT_DATA, train_steps=train_steps,
            beam_args=(*runner_args, *beam_args),
            remote=RemoteLayout(pipeline_root=pipeline_root, vertex_training=training),
        )
        config.data_uri  # noqa: B018  (validates --data before the slow part)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--data") from None
    from tfxp.pipeline.console import library_output_to

    try:
        with library_output_to(output.with_suffix(".log")):
            job = vertex.compile_pipeline(config, image=image, output=output)
    except Exception as exc:  # TFX's compiler raises assorted errors for unsupported pipelines
        click.echo(f"error: compiling failed: {type(exc).__name__}: {exc} (log: {output.with_suffix('.log')})",
                   err=True)
        sys.exit(1)
    tasks = sorted(job["pipelineSpec"]["root"]["dag"]["tasks"])
    answer = {"output": str(output), "target": target, "image": image, "pipeline_root": pipeline_root,
              "tasks": tasks, "vertex_training": vertex_training, "dataflow": dataflow}
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(f"wrote {output}: {len(tasks)} tasks, image {image}, pipeline root {pipeline_root}")
    click.echo("submit it (README: Scaling out):")
    click.echo(f"  python -c \"from google.cloud import aiplatform; aiplatform.init(project='{project}', "
               f"location='{region}'); aiplatform.PipelineJob(display_name='{name}', template_path='{output}', "
               f"pipeline_root='{pipeline_root}').submit(service_account='SA_EMAIL')\"")


@main.group()
def schema() -> None:
    """Schema tools: infer a starting schema from new CSV data."""


@schema.command("infer")
@_data_option("A CSV file or a folder of CSV files to infer from.")
@click.option("--output", "out", type=click.Path(path_type=Path), default=Path("schema.inferred.pbtxt"),
              show_default=True, help="Where to write the inferred schema.")
def schema_infer(data: Path, out: Path) -> None:
    """Infer a schema.pbtxt with SchemaGen, for a person to curate.

    Copy the result to schema/schema.pbtxt after tightening domains, ranges and
    presence; see README "Adapting to other data".
    """
    from tfxp.pipeline.console import library_output_to
    from tfxp.pipeline.schema_infer import infer_schema

    with library_output_to(out.with_suffix(".log")):
        infer_schema(data, out)
    click.echo(f"wrote {out} (curate it, then copy to {DEFAULT_SCHEMA.relative_to(DEFAULT_SCHEMA.parent.parent)})")


PREDICT_EXIT_CODES_HELP = """\b
Exit codes:
  0  predictions printed
  1  the server refused or failed the call (its error message is printed)
  2  usage error (bad option, unreadable rows file, a model input without a
     column in it, bad value in a row)"""

SERVE_EXIT_CODES_HELP = """\b
Exit codes:
  0  stopped by SIGINT/SIGTERM
  1  could not start (bad model config, port in use, ...)
  2  usage error"""


@main.command(epilog=PREDICT_EXIT_CODES_HELP)
@click.option("--server", "target", required=True, metavar="HOST:PORT|http://HOST:PORT",
              help="gRPC target host:port, or the REST base URL http://host:port.")
@click.option("--model", required=True, help="Served model name.")
@click.option("--rows", "rows_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Raw feature rows: a .csv with a header, or a .jsonl of objects.")
@click.option("--protocol", type=click.Choice(["grpc", "rest"]), default=None,
              help="Default: rest for http:// URLs, grpc for host:port.")
@click.option("--signature", type=click.Choice(["serving_default", "predict_raw"]), default="serving_default",
              show_default=True, help="serving_default sends tf.Examples; predict_raw sends one tensor per feature.")
@click.option("--version", type=click.IntRange(min=0), default=None, help="Ask this model version.")
@click.option("--label", default=None, help="Ask the version with this label.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds per attempt; an unavailable server is retried for up to 10 s more.")
@click.option("--allow-missing-optional", is_flag=True,
              help="Let the rows file lack columns of optional model inputs (schema/schema.pbtxt features "
                   "without a shape): read as missing in every row. Required inputs always need a column.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def predict(target: str, model: str, rows_path: Path, protocol: str | None, signature: str, version: int | None,
            label: str | None, timeout: float, allow_missing_optional: bool, as_json: bool) -> None:
    """Tip probabilities of raw rows from a TF Serving server.

    Any TF Serving compatible server: `tfxp serve` or TF Serving itself. Every
    model input needs a column in the rows file (a blank cell is a missing value).
    """
    from tfxp.serving import client as client_lib

    if version is not None and label is not None:
        raise click.UsageError("give --version or --label, not both")
    try:
        kind, address = client_lib.parse_target(target, protocol)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from None
    try:
        optional = client_lib.optional_features(DEFAULT_SCHEMA)
    except OSError:  # no schema next to an installed CLI: every input needs its column
        optional = frozenset()
    rows = _check_model_columns(_read_rows_file(rows_path), client_lib.MODEL_INPUTS, optional,
                                allow_missing_optional)
    factory = client_lib.RestClient if kind == "rest" else client_lib.GrpcClient
    try:
        with factory(address, model, version=version, label=label, timeout=timeout, signature=signature) as client:
            probabilities = client.predict(rows)
            served = client.last_version if client.last_version is not None else _latest_version(client)
    except client_lib.RowError as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from None
    except client_lib.ServingClientError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(1)
    _print_predictions(model, served, kind, probabilities, as_json)


def _read_rows_file(rows_path: Path):
    """--rows as a serving.client.RowsFile; an unreadable file is a usage error (exit 2)."""
    from tfxp.serving.client import read_rows_file

    try:
        return read_rows_file(rows_path)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from None


def _check_model_columns(rows_file, inputs, optional, allow_missing_optional: bool) -> list[dict]:
    """The rows, refused (exit 2) when the file lacks a column for a model input (see check_columns)."""
    from tfxp.serving.client import MissingColumnsError, check_columns

    try:
        check_columns(rows_file, inputs, optional, allow_missing_optional)
    except MissingColumnsError as exc:
        hint = "" if exc.required else "; --allow-missing-optional reads them as missing in every row"
        raise click.BadParameter(f"{exc}{hint}", param_hint="--rows") from None
    return rows_file.rows


def _latest_version(client) -> int | None:
    """The highest AVAILABLE version: REST predict answers do not say which version served."""
    from tfxp.serving.client import ServingClientError

    try:
        versions = [s["version"] for s in client.status() if s["state"] == "AVAILABLE"]
    except ServingClientError:
        return None
    return max(versions, default=None)


def _print_predictions(model: str, version: int | None, protocol: str, probabilities: list[float],
                       as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"model": model, "version": version, "protocol": protocol,
                               "probabilities": probabilities}))
        return
    from tabulate import tabulate

    click.echo(tabulate(list(enumerate(probabilities)), headers=["row", "probability"], floatfmt=".6g"))


@main.command(epilog=SERVE_EXIT_CODES_HELP)
@click.option("--model-base-path", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Serve one model from DIR/<version>/ (e.g. output/serving/taxi).")
@click.option("--model-name", default=None, help="Name of that model. Default: the base path's folder name.")
@click.option("--model-config-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A text ModelServerConfig naming several models (instead of --model-base-path).")
@click.option("--model-config-file-poll-wait-seconds", "config_poll_seconds", type=click.FloatRange(min=0),
              default=0.0, show_default=True,
              help="Re-read --model-config-file every N seconds and apply what changed (models, version policies, "
                   "labels); 0 reads it once. TF Serving's --model_config_file_poll_wait_seconds.")
@click.option("--disable-reload-config-request", is_flag=True,
              help="Answer gRPC ModelService/HandleReloadConfigRequest with UNIMPLEMENTED. Without it (as in TF "
                   "Serving) any client that reaches the gRPC port can make the server load any path it can read.")
@click.option("--rest-port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="0 picks a free port.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=8500, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 for all interfaces.")
@click.option("--poll-seconds", type=float, default=1.0, show_default=True,
              help="File system poll for new versions; 0 loads once, < 0 never.")
@click.option("--enable-signature-method-name-check", is_flag=True,
              help="Classify and Regress run only signatures with their method names (TF Serving's flag, off by "
                   "default there too: TF2 SavedModels name every signature a predict method).")
@click.option("--enable-batching", is_flag=True, help="Batch concurrent requests together.")
@click.option("--batching-parameters-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Text BatchingParameters (needs --enable-batching).")
@click.option("--request-log", "request_log", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write sampled requests as PredictionLog TFRecords here.")
@click.option("--log-sampling", type=click.FloatRange(0, 1), default=None,
              help="Fraction of requests logged (needs --request-log). Default with --request-log: 1.")
@click.option("--max-request-bytes", type=click.IntRange(min=1), default=64 * 1024 * 1024, show_default=True)
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a REST request may take.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              show_default="$XDG_STATE_HOME/tfxp/serve.log, else ~/.local/state/tfxp/serve.log",
              help="Appended to: TensorFlow's own log lines (C++ included), every logged line with tracebacks. "
                   "The console gets only the server's lines: versions loaded, unloaded or failed, warnings.")
def serve(model_base_path: Path | None, model_name: str | None, model_config_file: Path | None,
          config_poll_seconds: float, disable_reload_config_request: bool, rest_port: int,
          grpc_port: int, host: str, poll_seconds: float, enable_signature_method_name_check: bool,
          enable_batching: bool,
          batching_parameters_file: Path | None, request_log: Path | None, log_sampling: float | None,
          max_request_bytes: int, request_timeout: float, log_file: Path | None) -> None:
    """Serve pushed models over TF Serving's REST and gRPC APIs.

    Runs until interrupted. Both ports are bound before models load, so a
    port in use fails at once.
    """
    from tfxp.serving.options import ServerOptions

    if (model_base_path is None) == (model_config_file is None):
        raise click.UsageError("give exactly one of --model-base-path and --model-config-file")
    if model_config_file is not None and model_name is not None:
        raise click.UsageError("--model-name goes with --model-base-path; the config file names its models")
    if config_poll_seconds and model_config_file is None:
        raise click.UsageError("--model-config-file-poll-wait-seconds needs --model-config-file")
    if batching_parameters_file is not None and not enable_batching:
        raise click.UsageError("--batching-parameters-file needs --enable-batching")
    if log_sampling is not None and request_log is None:
        raise click.UsageError("--log-sampling needs --request-log")
    if rest_port and rest_port == grpc_port:
        raise click.UsageError("--rest-port and --grpc-port must differ")
    name = model_name
    if model_base_path is not None:
        name = model_name or model_base_path.resolve().name
        if not _valid_model_name(name):
            raise click.BadParameter(f"{name!r}: use letters, digits, '.', '-' and '_', starting with a letter "
                                     "or digit", param_hint="--model-name")
    options = ServerOptions(
        model_base_path=model_base_path,
        model_name=name or ServerOptions.model_name,
        model_config_file=model_config_file,
        model_config_file_poll_seconds=config_poll_seconds,
        enable_reload_config_request=not disable_reload_config_request,
        host=host,
        rest_port=rest_port,
        grpc_port=grpc_port,
        poll_seconds=poll_seconds,
        enable_signature_method_name_check=enable_signature_method_name_check,
        enable_batching=enable_batching,
        batching_parameters_file=batching_parameters_file,
        request_log_dir=request_log,
        log_sampling=(1.0 if log_sampling is None else log_sampling) if request_log is not None else 0.0,
        max_request_bytes=max_request_bytes,
        request_timeout_seconds=request_timeout,
    )
    if log_file is None:  # the XDG base directory spec's place for logs: writable, not the model folders
        import os

        log_file = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tfxp" / "serve.log"
    _run_server(options, log_file)


def _run_server(options, log_file: Path) -> None:
    """Runs the server with library output (TF's C++ log lines included) in `log_file`.

    The console keeps the server's own lines (serving.server.console_handler) and
    its start-up line; a failure to start exits 1 with its reason.
    """
    import logging
    import os

    from tfxp.pipeline.console import library_output_to

    # TF's C++ warnings and errors belong in the log file; quiet_libraries' default would drop them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        click.echo(f"error: can't create the log file's folder: {exc} (give --log-file)", err=True)
        sys.exit(1)
    failure = None
    with library_output_to(log_file):
        from tfxp.serving import server

        console = server.console_handler(sys.stderr)  # the console, while descriptor 2 is the log file
        serving_log = logging.getLogger("tfxp.serving")
        serving_log.addHandler(console)
        click.echo(f"tfxp serve: log file {log_file} (TensorFlow's own log lines, tracebacks)", err=True)
        try:
            server.run(options)
        except (OSError, ValueError) as exc:
            # Bad config files (ValueError, incl. serving.config.ConfigError) and busy ports (OSError).
            logging.getLogger(__name__).error("tfxp serve could not start: %s", exc)
            failure = exc
        finally:
            serving_log.removeHandler(console)
    if failure is not None:
        click.echo(f"error: {failure}", err=True)
        sys.exit(1)


CONVERT_EXIT_CODES_HELP = """\b
Exit codes:
  0  every variant converted, checked and written
  1  conversion failed (nothing written; the reason is printed)
  2  usage error
  3  a variant failed its checks (non-builtin op or parity) and was not written"""

MOBILE_PREDICT_EXIT_CODES_HELP = """\b
Exit codes:
  0  predictions printed
  1  the model folder cannot be used (model_spec.json, .tflite, no TFLite interpreter)
  2  usage error (bad option, unreadable rows file, a model input without a
     column in it, bad value in a row)"""


@main.command(epilog=CONVERT_EXIT_CODES_HELP)
@click.option("--saved-model", "saved_model", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A SavedModel saved by the Trainer (e.g. a pushed output/serving/<name>/<version>).")
@click.option("--transform-output", "transform_output", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The Transform component's transform_graph folder for that model. Default: the copy the "
                   "SavedModel carries in assets.extra/transform_output/ (models saved by this project's Trainer).")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for model.tflite, model_quant.tflite and model_spec.json.")
@click.option("--rows", "rows_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Raw eval rows (.csv or .jsonl, with tips) for the parity gate. Without it no parity is checked.")
@click.option("--version", "model_version", type=click.IntRange(min=0), default=None,
              help="Model version for model_spec.json. Default: the SavedModel folder's name if it is a number.")
@click.option("--name", "model_name", default=None,
              help="Model name for model_spec.json. Default: the parent folder's name when the version is inferred.")
@click.option("--no-bytes-signature", "no_bytes_signature", is_flag=True,
              help="Leave out serving_bytes (strings as bytes, for TensorFlowLiteSwift); saves ~40 KB per file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def convert(saved_model: Path, transform_output: Path | None, output: Path, rows_path: Path | None,
            model_version: int | None, model_name: str | None, no_bytes_signature: bool, as_json: bool) -> None:
    """Convert a SavedModel to TFLite models for mobile apps.

    Builtin ops only; the models take the raw features.
    """
    from tfxp.models import features as F
    from tfxp.serving import client as client_lib

    rows = None
    if rows_path is not None:
        # The parity gate needs every model input and the label: a file lacking one would be
        # read as "missing in every row" and gate on the wrong question.
        rows = _check_model_columns(_read_rows_file(rows_path), [*client_lib.MODEL_INPUTS, F.TIPS],
                                    optional=(), allow_missing_optional=False)
    resolved = saved_model.resolve()
    if model_version is None and resolved.name.isascii() and resolved.name.isdigit():
        model_version = int(resolved.name)
        model_name = model_name or resolved.parent.name
    from tfxp.mobile import convert as convert_lib
    from tfxp.pipeline.console import library_output_to
    from tfxp.serving.client import RowError

    log_file = _log_beside(output)
    try:
        with library_output_to(log_file):  # the converter's C++ log lines included
            if transform_output is None:
                try:
                    transform_output = Path(convert_lib.find_transform_output(saved_model))
                except convert_lib.ConversionError as exc:
                    raise click.BadParameter(str(exc), param_hint="--transform-output") from None
            result = convert_lib.convert(saved_model, output, transform_output_dir=transform_output,
                                         eval_rows=rows, model_version=model_version, model_name=model_name,
                                         bytes_signature=not no_bytes_signature)
    except click.ClickException:
        raise
    except RowError as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from None
    except Exception as exc:  # converter, transform and SavedModel loading errors
        click.echo(f"error: conversion failed: {type(exc).__name__}: {exc} (log: {log_file})", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_conversion(result, checked=rows is not None)
    sys.exit(0 if result.ok else 3)


def _log_beside(path: Path) -> Path:
    """`<path>.log` next to an output file or folder: library logs of one command."""
    path = path.resolve()
    return path.with_name(path.name + ".log")


def _print_conversion(result, checked: bool) -> None:
    for name, variant in result.variants.items():
        if variant.written:
            line = f"{name:6} {variant.file} {variant.size_bytes / 1024:.1f} KiB"
            if variant.parity is not None:
                p = variant.parity
                line += (f"  parity on {p.rows} rows: max|dp| {p.max_abs_diff:.3g}, AUC {_fmt(p.auc)} "
                         f"(SavedModel {_fmt(p.reference_auc)})")
            click.echo(line)
        else:
            click.echo(f"{name:6} NOT WRITTEN: {'; '.join(variant.reasons)}")
    if not checked:
        click.echo("parity not checked (give --rows to gate each variant against the SavedModel)")
    click.echo(f"wrote {result.spec_path}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@main.command("mobile-predict", epilog=MOBILE_PREDICT_EXIT_CODES_HELP)
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A converted model folder (model_spec.json and .tflite files).")
@click.option("--rows", "rows_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Raw feature rows: a .csv with a header, or a .jsonl of objects.")
@click.option("--variant", type=click.Choice(["float", "quant"]), default=None,
              help="Which .tflite to run. Default: model_spec.json's default_variant.")
@click.option("--allow-missing-optional", is_flag=True,
              help="Let the rows file lack columns of optional inputs (required: false in model_spec.json): "
                   "read as missing in every row. Required inputs always need a column.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def mobile_predict(model_dir: Path, rows_path: Path, variant: str | None, allow_missing_optional: bool,
                   as_json: bool) -> None:
    """Tip probabilities of raw rows from a TFLite model.

    Runs a converted model on the TFLite runtime, without TensorFlow. Every
    model input needs a column in the rows file; a row missing a required value
    gets no probability (null in --json, nan in the table).
    """
    import math

    from tfxp.mobile.runtime import MobileModel, ModelSpecError
    from tfxp.serving.client import RowError

    rows_file = _read_rows_file(rows_path)
    try:
        model = MobileModel(model_dir, variant)
    except (ModelSpecError, ImportError, OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    rows = _check_model_columns(rows_file, [i["name"] for i in model.inputs],
                                [i["name"] for i in model.inputs if not i.get("required", True)],
                                allow_missing_optional)
    try:
        probabilities = model.predict(rows)
    except RowError as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from None
    if as_json:
        click.echo(json.dumps({"model": model.spec.get("model_name"), "version": model.version,
                               "variant": model.variant,
                               "probabilities": [None if math.isnan(p) else p for p in probabilities]}))
        return
    from tabulate import tabulate

    click.echo(tabulate(list(enumerate(probabilities)), headers=["row", "probability"], floatfmt=".6g"))


def _valid_model_name(name: str) -> bool:
    # The server's rule (serving/server.py), checked here so a bad name is a usage error, not a crash.
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) is not None


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_" for c in name)


if __name__ == "__main__":
    main()
