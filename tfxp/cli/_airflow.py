"""`tfxp compile --target airflow`: checks the options, writes the DAG file (tfxp.pipeline.airflow_dag)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from tfxp.project import Project

# Options that only the Airflow target reads, and the Vertex/KFP options it refuses (click parameter names).
AIRFLOW_ONLY = ("schedule", "retries", "retry_delay_minutes", "namespace", "volume_claim", "tfxp_command")
NOT_AIRFLOW = (
    "gcp_project",
    "region",
    "vertex_training",
    "training_machine_type",
    "dataflow",
    "temp_location",
    "dataflow_max_workers",
    "dataflow_machine_type",
    "dataflow_disk_size_gb",
    "beam_args",
)


@dataclass(frozen=True)
class AirflowRequest:
    """`tfxp compile --target airflow`'s values, as given."""

    loaded: Project | None  # None: the embedded taxi project
    pipeline_root: str
    output: Path | None
    data: str | None
    name: str | None
    train_steps: int
    image: str | None
    schedule: str
    retries: int
    retry_delay_minutes: float
    namespace: str
    volume_claim: str | None
    tfxp_command: str


def check_target_options(ctx: click.Context, target: str) -> None:
    """Each target's own options refused on the others, naming them (click.UsageError)."""
    given = {name for name in (*AIRFLOW_ONLY, *NOT_AIRFLOW) if _given(ctx, name)}
    flag = {name: "--" + name.replace("_", "-") for name in given}
    if target != "airflow" and given & set(AIRFLOW_ONLY):
        names = ", ".join(sorted(flag[name] for name in given & set(AIRFLOW_ONLY)))
        raise click.UsageError(f"{names}: only with --target airflow")
    if target == "airflow" and given & set(NOT_AIRFLOW):
        names = ", ".join(sorted(flag[name] for name in given & set(NOT_AIRFLOW)))
        raise click.UsageError(
            f"{names}: not with --target airflow (its tasks run `tfxp run` with the local Beam runner; "
            "for Google Cloud use --target vertex or kfp)"
        )


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def compile_airflow(request: AirflowRequest, as_json: bool) -> None:
    """Writes the DAG file and says what it holds; click.UsageError / BadParameter on options that can't work."""
    from tfxp import project as project_lib
    from tfxp.pipeline.airflow_dag import AirflowSettings, dag_source, run_arguments
    from tfxp.pipeline.config import PipelineConfig
    from tfxp.pipeline.console import library_output_to
    from tfxp.pipeline.pipeline import node_graph
    from tfxp.projects import TAXI

    root = _pipeline_root(request)
    project = request.loaded or project_lib.load(TAXI)
    name = request.name or project.name
    project_path = _task_path(request, "project", str(project.dir), root)
    data = _task_path(request, "data", str(Path(request.data).resolve()), root) if request.data else None
    if data is None and project.data is not None and "://" not in str(project.data):
        _task_path(request, "data", str(project.data), root)  # read by the tasks through project.yaml
    config = PipelineConfig.for_project(project, name=name, output=Path(root), train_steps=request.train_steps)
    output = request.output or Path(f"{name}_dag.py")
    with library_output_to(output.with_suffix(".log")):  # TFX's and Google Cloud's import-time chatter
        nodes = node_graph(config)
    settings = AirflowSettings(
        schedule=None if request.schedule == "none" else request.schedule,
        retries=request.retries,
        retry_delay_minutes=request.retry_delay_minutes,
        image=request.image,
        namespace=request.namespace,
        volume_claim=request.volume_claim,
        tfxp_command=request.tfxp_command,
    )
    arguments = run_arguments(project_path, root, name, data, request.train_steps)
    output.write_text(dag_source(name, nodes, arguments, settings), encoding="utf-8")
    answer = {
        "output": str(output),
        "target": "airflow",
        "project": project_path,
        "name": name,
        "pipeline_root": root,
        "image": request.image,
        "schedule": settings.schedule,
        "retries": settings.retries,
        "tasks": list(nodes),
    }
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    runs = f"pods of {request.image} in namespace {request.namespace}" if request.image else "BashOperator tasks"
    click.echo(
        f"wrote {output} (Airflow DAG {name!r}): {len(nodes)} tasks, one per pipeline node, as {runs}; "
        f"schedule {settings.schedule or 'none (trigger it)'}, {settings.retries} retries; pipeline root {root}"
    )
    click.echo("put it in your Airflow's dags folder (docs/scaling-out.md, Airflow)")


def _pipeline_root(request: AirflowRequest) -> str:
    """The pipeline root as the tasks see it: an absolute POSIX path (ML Metadata is a SQLite file in it)."""
    if "://" in request.pipeline_root:
        raise click.BadParameter(
            "Airflow tasks share ML Metadata's SQLite file under the pipeline root: a local or mounted path "
            "(with --image, the --volume-claim's mount), not a URI",
            param_hint="--pipeline-root",
        )
    if request.image is None:
        if request.volume_claim is not None or request.namespace != "default":
            raise click.UsageError("--volume-claim and --namespace go with --image (KubernetesPodOperator pods)")
        return str(Path(request.pipeline_root).resolve())
    if request.volume_claim is None:
        raise click.UsageError(
            "--image needs --volume-claim: the pods share the pipeline root (ML Metadata, artifacts) through a "
            "PersistentVolumeClaim mounted there"
        )
    if not request.pipeline_root.startswith("/"):
        raise click.BadParameter("with --image: an absolute path in the pod (the mount)", param_hint="--pipeline-root")
    return request.pipeline_root


def _task_path(request: AirflowRequest, what: str, path: str, root: str) -> str:
    """`path` as the tasks see it. Without --image, the same path (Airflow runs on this file system); with it,
    the image's copy of a file of the tfxp package (tfxp/projects/…) or a path under the pipeline root, which
    is on the volume; anything else is refused (click.BadParameter)."""
    if request.image is None:
        return path
    from tfxp.pipeline.config import PACKAGE_ROOT, image_path

    if Path(path).resolve().is_relative_to(PACKAGE_ROOT):
        return image_path(path)
    if Path(path).is_relative_to(root):
        return path
    raise click.BadParameter(
        f"the {what} {path} is neither in the image (tfxp/projects/) nor under the pipeline root {root} on the "
        "volume: copy it onto the volume and give that path",
        param_hint="--data" if what == "data" and request.data else "--project",
    )
