"""`tfxp run`, `tfxp compile` and `tfxp schema infer`: the pipeline's commands.

Heavy imports (TensorFlow, TFX, Beam) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tfxp.cli._common import CommandGroup
from tfxp.cli.exit_codes import ExitCode, epilog
from tfxp.pipeline.config import DEFAULT_BEAM_WORKERS, DEFAULT_DATA, DEFAULT_EVAL_ROWS, DEFAULT_SCHEMA

if TYPE_CHECKING:
    from tfxp.pipeline.vertex import StagedFile


def _data_option(help_text: str):
    return click.option(
        "--data",
        type=click.Path(exists=True, path_type=Path),
        default=DEFAULT_DATA,
        show_default="embedded Chicago taxi CSV",
        help=help_text,
    )


class EvalRows(click.ParamType):
    """`--eval-rows`: a positive row count, or `all` (None: no cap)."""

    name = "N|all"

    def convert(self, value, param, ctx) -> int | None:
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() == "all":
            return None
        try:
            rows = int(value)
        except ValueError:
            rows = 0
        if rows < 1:
            self.fail(f"{value!r} is neither a row count >= 1 nor 'all'", param, ctx)
        return rows


class DataPath(click.ParamType):
    """`tfxp run --data`: an existing CSV file or folder (as click.Path(exists=True) checked it), or a pattern
    (a `{SPAN}` spec or glob characters, tfxp.pipeline.spans) whose files the run's preflight lists."""

    name = "PATH|PATTERN"

    def convert(self, value, param, ctx) -> Path:
        from tfxp.pipeline.config import is_data_pattern

        if isinstance(value, Path) or not is_data_pattern(value):
            return click.Path(exists=True, path_type=Path).convert(value, param, ctx)
        return Path(value)


def _run_data(data: Path | None, project, rolling: int | None) -> Path:
    """`tfxp run`'s data: --data, else the project's; a folder must hold CSV files, a pattern be well formed
    (one {SPAN} spec, with --rolling). Raises click.BadParameter (exit 2)."""
    from tfxp.pipeline import spans
    from tfxp.pipeline.config import is_data_pattern
    from tfxp.pipeline.csv_files import NoCsvFilesError, list_csv_files

    hint = "--data"
    if data is None:
        if project.data is None:
            raise click.BadParameter("the project names no `data`: give --data", param_hint="--data")
        data, hint = Path(project.data), "project.yaml data"
        if not is_data_pattern(data) and not data.exists():
            raise click.BadParameter(f"the project's data {data} does not exist: give --data", param_hint="--data")
    problem = spans.check_pattern(str(data), rolling)
    if problem:
        raise click.BadParameter(problem, param_hint="--rolling" if rolling and not spans.has_span(data) else hint)
    if not is_data_pattern(data):
        try:
            list_csv_files(data)
        except NoCsvFilesError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
    return data


def _valid_name(name: str) -> bool:
    # A pipeline name becomes folder names under --output: no separators, no "..".
    return bool(name) and all(c.isalnum() or c in "-_" for c in name)


@click.command(epilog=epilog("run"))
@click.option(
    "--project",
    "project_dir",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A project folder (project.yaml + schema.pbtxt, written by `tfxp init`). Default: the embedded taxi project.",
)
@click.option(
    "--data",
    type=DataPath(),
    default=None,
    help="A CSV file, a folder of CSV files, or a pattern: 'DIR/span-{SPAN}/*.csv' trains on the latest span "
    "(TFX's {SPAN} spec; docs/continuous-training.md). Default: the project's `data`.",
)
@click.option(
    "--rolling",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With a {SPAN} pattern in --data: train on the latest N spans (TFX's RangeConfig rolling_range). "
    "A span missing inside the window, or data older than the served model's, stops the run (exit 3).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("output"),
    show_default=True,
    help="Root for pipelines/, metadata/, serving/ and logs/.",
)
@click.option("--name", default=None, help="Pipeline name; also the served model's name. Default: the project's.")
@click.option("--train-steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option(
    "--beam-workers",
    type=click.IntRange(min=1),
    default=DEFAULT_BEAM_WORKERS,
    show_default=True,
    help="Local Beam parallelism: 1 runs Beam in this process (fastest on small data, see "
    "bench/results/scale.json); N > 1 uses N worker processes (multi-processing DirectRunner).",
)
@click.option(
    "--beam-arg",
    "beam_args",
    multiple=True,
    metavar="ARG",
    help="A Beam pipeline option, repeatable; added after --beam-workers' options and wins over them "
    "(e.g. --beam-arg=--runner=PortableRunner).",
)
@click.option(
    "--eval-rows",
    type=EvalRows(),
    default=str(DEFAULT_EVAL_ROWS),
    show_default=True,
    metavar="N|all",
    help="Cap the eval split at about N rows: a hash-chosen part of TFX's 2:1 eval split, the rest trains. "
    "The Evaluator's time grows with its rows (TFMA: ~0.4 ms of CPU per row with 3 slicings); data up to "
    "3N rows is split 2:1 as usual. `all`: no cap.",
)
@click.option(
    "--accept-drift",
    "accept_drift",
    multiple=True,
    metavar="FEATURE",
    help="Accept this input's drift from the served model's training data (a unit change, a shifted "
    "category the data really has now); repeatable. Without it such a run stops with exit 3.",
)
@click.option(
    "--infra-docker",
    is_flag=True,
    help="Also replay the InfraValidator's requests against tensorflow/serving:2.16.1 in Docker (needs `docker`).",
)
@click.option(
    "--push-mode",
    type=click.Choice(["replace", "canary"]),
    default="replace",
    show_default=True,
    help="replace: the pushed version is served at once (TF Serving's latest policy). canary: the versions served "
    "now are pinned in --model-config-file before the run and the new one is put beside them, to be labelled "
    "`canary` (docs/release.md).",
)
@click.option(
    "--model-config-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The TF Serving model config file the server polls (needed by --push-mode canary); its model named like "
    "the run, with the run's serving folder as base_path.",
)
@click.option(
    "--tune",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Search the model's hyperparameters first (TFX's Tuner, KerasTuner): N trials. Later runs without it "
    "train with the latest tuned values of this output.",
)
@click.option(
    "--tuner",
    type=click.Choice(["random", "bayesian", "hyperband"]),
    default=None,
    help="The search (with --tune). Default: random.",
)
@click.option(
    "--tune-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Most training steps of a full trial (with --tune; early stopping may end it sooner). Default: --train-steps.",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="ID",
    help="Run only this pipeline node (repeatable; TFX's partial run): its other inputs come from the previous "
    "run under --output. How `tfxp compile --target airflow` runs one task per node.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def run(
    project_dir: Path | None,
    data: Path | None,
    rolling: int | None,
    output: Path,
    name: str | None,
    train_steps: int,
    beam_workers: int,
    beam_args: tuple[str, ...],
    eval_rows: int | None,
    accept_drift: tuple[str, ...],
    infra_docker: bool,
    push_mode: str,
    model_config_file: Path | None,
    tune: int | None,
    tuner: str | None,
    tune_steps: int | None,
    nodes: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run the pipeline end to end and push a blessed model."""
    _check_option_pairs(tune, tuner, tune_steps, push_mode, model_config_file, infra_docker)
    from tfxp import project as project_lib
    from tfxp.pipeline import report
    from tfxp.pipeline.config import PipelineConfig, direct_runner_args
    from tfxp.pipeline.console import quiet_libraries
    from tfxp.pipeline.runner import run as run_pipeline
    from tfxp.projects import TAXI

    try:
        project = project_lib.load(project_dir or TAXI)
    except project_lib.ProjectError as exc:
        raise click.BadParameter(str(exc), param_hint="--project") from None
    name = name or project.name
    if not _valid_name(name):
        raise click.BadParameter("use letters, digits, '-' and '_' only", param_hint="--name")
    data = _run_data(data, project, rolling)
    quiet_libraries()
    config = PipelineConfig.for_project(
        project,
        name=name,
        data=data,
        output=output,
        train_steps=train_steps,
        beam_args=(*direct_runner_args(beam_workers), *beam_args),
        eval_rows=eval_rows,
        accept_drift=accept_drift,
        rolling=rolling,
        push_mode=push_mode,
        tune=tune or 0,
        tuner=tuner or "random",
        tune_steps=tune_steps,
        model_config_file=str(model_config_file.resolve()) if model_config_file is not None else None,
        run_nodes=nodes,
    )
    unknown = sorted(set(accept_drift) - {f.name for f in config.problem.features})
    if unknown:
        inputs = ", ".join(f.name for f in config.problem.features)
        raise click.BadParameter(f"{', '.join(unknown)}: not a model input ({inputs})", param_hint="--accept-drift")
    _check_nodes(config)
    from tfxp.pipeline.config import with_project_dependency

    try:  # how Beam workers get this package: refused before any component runs
        with_project_dependency(config.beam_args, config.project_root)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    outcome = run_pipeline(config, on_event=report.print_event)
    run_report = _write_run_report(outcome, output, name)
    if as_json:
        # The run's local Beam parallelism and eval cap ride along: benchmarks record what ran.
        settings = {"beam_workers": beam_workers, "eval_rows": eval_rows, "report": run_report}
        click.echo(json.dumps({**report.as_json(outcome), **settings}, indent=2, allow_nan=False))
    else:
        report.print_summary(outcome)
        if run_report is not None:
            click.echo(f"report: {run_report}")
    # runner.ExitCode has this table's values (tests/pipeline/test_cli.py): one code, one meaning.
    sys.exit(ExitCode(outcome.exit_code))


def _check_nodes(config) -> None:
    """`--node`: each a node of create_pipeline (click.BadParameter naming the nodes there are)."""
    if not config.run_nodes:
        return
    from tfxp.pipeline.pipeline import node_graph

    nodes = node_graph(config)
    unknown = [node for node in config.run_nodes if node not in nodes]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}: not a node of this pipeline ({', '.join(nodes)})", param_hint="--node"
        )


def _check_option_pairs(
    tune: int | None,
    tuner: str | None,
    tune_steps: int | None,
    push_mode: str,
    model_config_file: Path | None,
    infra_docker: bool,
) -> None:
    """Options that only go together, refused (click.UsageError, exit 2) before anything runs."""
    import shutil

    if tune is None and (tuner is not None or tune_steps is not None):
        raise click.UsageError("--tuner and --tune-steps go with --tune N")
    if (push_mode == "canary") != (model_config_file is not None):
        raise click.UsageError("--push-mode canary and --model-config-file go together")
    if infra_docker and shutil.which("docker") is None:
        # Refused before any component runs, as TFX's LocalDockerConfig would fail at the InfraValidator.
        raise click.UsageError("--infra-docker needs `docker` on PATH; it was not found")
    if infra_docker:
        # Not silently ignored: the replay against tensorflow/serving:2.16.1 is not built yet (issue 22).
        raise click.UsageError("--infra-docker: the replay against tensorflow/serving:2.16.1 is not implemented yet")


def _write_run_report(outcome, output: Path, name: str) -> str | None:
    """Writes the run's HTML report to OUTPUT/reports/<name>/<run>.html (tfxp.pipeline.run_report); returns its
    path, or None when the pipeline did not run (a preflight refusal: nothing in ML Metadata) or the report
    failed, which is said on stderr and does not change the run's exit code."""
    if not outcome.summary.components:
        return None
    from tfxp.pipeline.run_report import ReportError, collect_run, render_html

    try:
        run = collect_run(output, name)
        path = output / "reports" / name / (run.run.replace(":", "-") + ".html")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(run), encoding="utf-8")
    except (ReportError, OSError, ValueError) as exc:
        click.echo(f"report: not written: {exc}", err=True)
        return None
    return str(path)


def _compile_project(ctx: click.Context, param: click.Parameter, value: str | None):
    """`compile --project`: a project folder, as for `tfxp run`; None = the embedded taxi project.

    Until issue 17 this option was the Google Cloud project id: a value that is no project folder says so.
    """
    if value is None:
        return None
    from tfxp import project as project_lib

    folder = project_lib.project_dir(value)
    if not (folder / project_lib.PROJECT_FILE).is_file():
        raise click.BadParameter(
            f"{value!r} is not a project folder (no {folder / project_lib.PROJECT_FILE}). --project is the project "
            "folder (project.yaml + schema.pbtxt), as in `tfxp run`; the Google Cloud project id is --gcp-project",
            ctx,
            param,
        )
    try:
        return project_lib.load(folder)
    except project_lib.ProjectError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("compile", epilog=epilog("compile"))
@click.option(
    "--target",
    type=click.Choice(["vertex", "kfp", "airflow"]),
    required=True,
    help="vertex: a Vertex AI Pipelines PipelineJob JSON; kfp: a PipelineSpec YAML for open-source Kubeflow "
    "Pipelines' client (both KubeflowV2DagRunner); airflow: an Airflow DAG file, one task per pipeline node.",
)
@click.option(
    "--project",
    "loaded",
    metavar="DIR",
    default=None,
    callback=_compile_project,
    help="A project folder (project.yaml + schema.pbtxt), as for `tfxp run`. Default: the embedded taxi project.",
)
@click.option(
    "--gcp-project", default=None, metavar="ID", help="Google Cloud project id (vertex; kfp with --dataflow)."
)
@click.option("--region", default=None, help="Google Cloud region, e.g. us-central1 (vertex; kfp with --dataflow).")
@click.option(
    "--pipeline-root",
    required=True,
    metavar="gs://BUCKET/ROOT|DIR",
    help="Where artifacts go; pushed models land in ROOT/serving/<name> and ROOT/mobile/<name>, "
    "the schema of a project outside tfxp/ is read from ROOT/projects/<name>/<digest>/. airflow: a folder "
    "every task sees (`tfxp run --output`), not gs://.",
)
@click.option(
    "--image",
    default=None,
    help="The pipeline image built from this project's Dockerfile (vertex, kfp; airflow: run the tasks as "
    "KubernetesPodOperator pods of it).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file to write: vertex pipeline.json, kfp pipeline.yaml by default (files to upload go to "
    "OUTPUT's name + .staged/).",
)
@click.option(
    "--data",
    default=None,
    metavar="gs://…|PATH",
    help="CSV file or folder: a gs:// URI, or a path inside the tfxp package (read from the image). "
    "Default: the project's `data`, which must be one of those too.",
)
@click.option(
    "--name",
    default=None,
    help="Pipeline name; also the served model's name. Default: the project's (needs --project to differ from taxi).",
)
@click.option("--train-steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--vertex-training", is_flag=True, help="Run the Trainer as a Vertex AI Training custom job.")
@click.option(
    "--training-machine-type",
    default="n1-standard-4",
    show_default=True,
    help="Machine type of that job (with --vertex-training only).",
)
@click.option("--dataflow", is_flag=True, help="Run every Beam-powered component on Dataflow.")
@click.option(
    "--temp-location",
    default=None,
    metavar="gs://…",
    help="Dataflow's staging/temp folder (with --dataflow). Default: PIPELINE_ROOT/tmp.",
)
@click.option(
    "--dataflow-max-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Upper bound on Dataflow workers (with --dataflow).",
)
@click.option(
    "--dataflow-machine-type",
    default=None,
    metavar="TYPE",
    help="Dataflow workers' machine type, e.g. n1-highmem-4 (with --dataflow). Default: Dataflow's.",
)
@click.option(
    "--dataflow-disk-size-gb",
    type=click.IntRange(min=1),
    default=None,
    help="Disk per Dataflow worker in GB (with --dataflow). Default: Dataflow's.",
)
@click.option(
    "--beam-arg",
    "beam_args",
    multiple=True,
    metavar="ARG",
    help="A Beam pipeline option for every Beam component, repeatable; added last.",
)
@click.option(
    "--schedule",
    default="@daily",
    show_default=True,
    help="airflow: the DAG's schedule, a cron expression or preset; `none`: only when triggered.",
)
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True, help="airflow: retries per task.")
@click.option(
    "--retry-delay-minutes",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="airflow: wait before a retry.",
)
@click.option("--namespace", default="default", show_default=True, help="airflow with --image: the pods' namespace.")
@click.option(
    "--volume-claim",
    default=None,
    metavar="PVC",
    help="airflow with --image: the PersistentVolumeClaim mounted at --pipeline-root in every pod (needed).",
)
@click.option(
    "--tfxp-command",
    default="tfxp",
    show_default=True,
    help="airflow without --image: how the Airflow worker calls tfxp (e.g. /opt/venv/bin/tfxp).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
@click.pass_context
def compile_command(
    ctx: click.Context,
    target: str,
    loaded,
    gcp_project: str | None,
    region: str | None,
    pipeline_root: str,
    image: str | None,
    output: Path | None,
    data: str | None,
    name: str | None,
    train_steps: int,
    vertex_training: bool,
    training_machine_type: str,
    dataflow: bool,
    temp_location: str | None,
    dataflow_max_workers: int | None,
    dataflow_machine_type: str | None,
    dataflow_disk_size_gb: int | None,
    beam_args: tuple[str, ...],
    schedule: str,
    retries: int,
    retry_delay_minutes: float,
    namespace: str,
    volume_claim: str | None,
    tfxp_command: str,
    as_json: bool,
) -> None:
    """Compile the pipeline for Vertex AI, Kubeflow or Airflow.

    The same DAG as `tfxp run --project DIR`: a PipelineJob JSON (vertex), a PipelineSpec YAML (kfp) or a
    DAG file with one task per node (airflow); nothing is uploaded. For vertex and kfp the project's spec is
    compiled into the job, its schema comes from the image (a project under tfxp/) or from the pipeline root
    (the upload command is printed), its label hook from the image.
    """
    # Long because click passes each of the options as a parameter; the rules and the printout are
    # in _check_compile_options and _print_compiled (tfxp.cli._airflow for airflow).
    from tfxp.cli import _airflow

    _airflow.check_target_options(ctx, target)
    if target == "airflow":
        _check_compile_options(ctx, loaded, name, None, False, {})
        request = _airflow.AirflowRequest(
            loaded, pipeline_root, output, data, name, train_steps, image, schedule, retries,
            retry_delay_minutes, namespace, volume_claim, tfxp_command,
        )  # fmt: skip
        _airflow.compile_airflow(request, as_json)
        return
    if image is None:
        raise click.UsageError(f"--image: --target {target} runs every component in the pipeline image")
    from tfxp.pipeline.config import DEFAULT_BEAM_ARGS, VertexTraining

    dataflow_only = {
        "--temp-location": temp_location,
        "--dataflow-max-workers": dataflow_max_workers,
        "--dataflow-machine-type": dataflow_machine_type,
        "--dataflow-disk-size-gb": dataflow_disk_size_gb,
    }
    _check_compile_options(ctx, loaded, name, pipeline_root, dataflow, dataflow_only)
    output = _check_target(target, output, gcp_project, region, dataflow, vertex_training)
    if ctx.get_parameter_source("training_machine_type") is not click.core.ParameterSource.DEFAULT and not (
        vertex_training
    ):
        raise click.UsageError("--training-machine-type goes with --vertex-training (the Trainer's custom job)")
    from tfxp.pipeline import vertex

    runner_args = DEFAULT_BEAM_ARGS
    gcp_project, region = gcp_project or "", region or ""  # given wherever used: _check_target
    if dataflow:
        temp = temp_location or f"{pipeline_root.rstrip('/')}/tmp"
        settings = vertex.DataflowSettings(
            gcp_project, region, temp, image, dataflow_max_workers, dataflow_machine_type, dataflow_disk_size_gb
        )
        runner_args = vertex.dataflow_beam_args(settings)
    if loaded is None:
        from tfxp import project as project_lib
        from tfxp.projects import TAXI

        loaded = project_lib.load(TAXI)
    training = VertexTraining(gcp_project, region, image, training_machine_type) if vertex_training else None
    try:
        remote = vertex.remote_config(
            loaded,
            pipeline_root=pipeline_root,
            name=name,
            data=data,
            train_steps=train_steps,
            beam_args=(*runner_args, *beam_args),
            vertex_training=training,
        )
    except vertex.CompileRefusal as exc:
        raise click.BadParameter(exc.problem, param_hint=exc.option) from None
    config = remote.config
    from tfxp.pipeline.console import library_output_to

    try:
        with library_output_to(output.with_suffix(".log")):
            job = vertex.compile_pipeline(config, image=image, output=output)
    except Exception as exc:  # noqa: BLE001 - TFX's compiler raises assorted errors for unsupported pipelines
        click.echo(
            f"error: compiling failed: {type(exc).__name__}: {exc} (log: {output.with_suffix('.log')})", err=True
        )
        sys.exit(ExitCode.FAILURE)
    staged = _write_staged(remote.staged, output.with_suffix(".staged"))
    answer = {
        "output": str(output),
        "target": target,
        "project": str(loaded.dir),
        **_compiled_facts(config, job, staged),
        "gcp_project": gcp_project or None,
        "image": image,
        "pipeline_root": pipeline_root,
        "vertex_training": vertex_training,
        "dataflow": dataflow,
    }
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif target == "kfp":
        _print_compiled_kfp(answer, staged)
    else:
        _print_compiled(answer, staged, region)


def _compiled_facts(config, job: dict, staged: list) -> dict:
    """What the compiled job holds: name, data, schema, label hook, files to upload, tasks."""
    return {
        "name": config.name,
        "data": config.data_uri,
        "schema": config.schema_file,
        "label_hook": config.problem.label.hook,
        "stage": [{"from": str(path), "to": file.uri} for path, file in staged],
        "tasks": sorted(job["pipelineSpec"]["root"]["dag"]["tasks"]),
    }


def _check_target(
    target: str, output: Path | None, gcp_project: str | None, region: str | None, dataflow: bool, vertex: bool
) -> Path:
    """The options each `--target` needs or refuses; returns the output file (the target's default when None).
    Raises click.UsageError / BadParameter."""
    if target == "kfp":
        if vertex:
            raise click.UsageError("--vertex-training: only with --target vertex (a Vertex AI Training job)")
        output = output or Path("pipeline.yaml")
        if output.suffix not in (".yaml", ".yml"):
            raise click.BadParameter(
                "Kubeflow Pipelines' client reads PipelineSpec YAML: name it .yaml", param_hint="--output"
            )
    cloud = target == "vertex" or dataflow
    if cloud and (gcp_project is None or region is None):
        needs = "Vertex AI" if target == "vertex" else "Dataflow"
        raise click.UsageError(f"--gcp-project and --region: {needs} needs both")
    return output or Path("pipeline.json")


def _check_compile_options(
    ctx: click.Context,
    loaded,
    name: str | None,
    pipeline_root: str | None,
    dataflow: bool,
    dataflow_only: Mapping[str, object],
) -> None:
    """`tfxp compile`'s option rules that click can't state; raises click.BadParameter / UsageError.
    `pipeline_root`: None when it needs no gs:// (airflow). `dataflow_only`: the options that go with
    --dataflow, by name, None when not given."""
    if name is not None and not _valid_name(name):
        raise click.BadParameter("use letters, digits, '-' and '_' only", param_hint="--name")
    if loaded is None and name not in (None, "taxi"):
        raise click.BadParameter(
            f"without --project this compiles the embedded taxi project; it would be named {name!r}: "
            "give --project DIR to compile your project",
            param_hint="--name",
        )
    if pipeline_root is not None and not pipeline_root.startswith("gs://"):
        raise click.BadParameter(
            "the components read and write it with TensorFlow's file system: a gs:// pipeline root",
            param_hint="--pipeline-root",
        )
    given = [option for option, value in dataflow_only.items() if value is not None]
    if given and not dataflow:
        raise click.UsageError(f"{', '.join(given)}: only with --dataflow (Beam's options for Dataflow workers)")
    temp_location = dataflow_only.get("--temp-location")
    if isinstance(temp_location, str) and not temp_location.startswith("gs://"):
        raise click.BadParameter("Dataflow needs a gs:// temp location", param_hint="--temp-location")


def _print_compiled_kfp(answer: dict, staged: list) -> None:
    """What `tfxp compile --target kfp` wrote and how to submit it to a Kubeflow Pipelines host."""
    click.echo(
        f"wrote {answer['output']} (PipelineSpec YAML): project {answer['project']} as {answer['name']!r}, "
        f"{len(answer['tasks'])} tasks, image {answer['image']}, pipeline root {answer['pipeline_root']}"
    )
    for path, file in staged:
        click.echo(f"upload first: gsutil cp {path} {file.uri}")
    click.echo("submit it (docs/scaling-out.md, Kubeflow Pipelines):")
    click.echo(
        f"  python -c \"import kfp; kfp.Client(host='http://KFP_HOST').create_run_from_pipeline_package("
        f"'{answer['output']}', arguments={{}})\""
    )


def _print_compiled(answer: dict, staged: list, region: str | None) -> None:
    """What `tfxp compile` wrote, what to upload and how to submit it, for a person."""
    click.echo(
        f"wrote {answer['output']}: project {answer['project']} as {answer['name']!r}, {len(answer['tasks'])} tasks, "
        f"image {answer['image']}, pipeline root {answer['pipeline_root']}"
    )
    if staged:
        click.echo("upload before submitting (the job reads these from the pipeline root):")
        for path, file in staged:
            click.echo(f"  gsutil cp {path} {file.uri}")
    click.echo("submit it (docs/scaling-out.md):")
    click.echo(
        f"  python -c \"from google.cloud import aiplatform; aiplatform.init(project='{answer['gcp_project']}', "
        f"location='{region}'); aiplatform.PipelineJob(display_name='{answer['name']}', "
        f"template_path='{answer['output']}', pipeline_root='{answer['pipeline_root']}')"
        f".submit(service_account='SA_EMAIL')\""
    )


def _write_staged(files: Sequence[StagedFile], folder: Path) -> list[tuple[Path, StagedFile]]:
    """Writes each staged file's snapshot into `folder`; returns (local path, StagedFile) pairs."""
    written = []
    for file in files:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file.name
        path.write_bytes(file.content)
        written.append((path, file))
    return written


@click.group(cls=CommandGroup)
def schema() -> None:
    """Schema tools: infer a starting schema from new CSV data."""


@schema.command("infer", epilog=epilog("schema infer"))
@_data_option("A CSV file or a folder of CSV files to infer from.")
@click.option(
    "--output",
    "out",
    type=click.Path(path_type=Path),
    default=Path("schema.inferred.pbtxt"),
    show_default=True,
    help="Where to write the inferred schema.",
)
def schema_infer(data: Path, out: Path) -> None:
    """Infer a schema.pbtxt with SchemaGen, for a person to curate.

    After tightening domains, ranges and presence, copy the result to the
    project's schema.pbtxt, beside its project.yaml (the embedded taxi
    project's is tfxp/projects/taxi/schema.pbtxt); see
    docs/bring-your-own-data.md (or let `tfxp init` do it).
    """
    from tfxp.pipeline.console import library_output_to
    from tfxp.schema.infer import infer_schema

    with library_output_to(out.with_suffix(".log")):
        infer_schema(data, out)
    click.echo(f"wrote {out} (curate it, then copy it to the project's schema.pbtxt, e.g. {DEFAULT_SCHEMA})")
