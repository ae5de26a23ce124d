"""Compiling the pipeline for Vertex AI Pipelines (KubeflowV2DagRunner), offline.

The compiled job runs the same `create_pipeline` as `tfxp run`, inside the
pipeline image (Dockerfile): user code is referenced by dotted name
(`models.model.run_fn`), so compiling uploads nothing.

A project reaches the job in three ways (`remote_config`): its spec (features, label, task, slices,
gates) is compiled into the job (the Transform and Trainer `custom_config`, the Evaluator's
`eval_config`); its schema is read from the image when the project folder is inside the tfxp package,
else from a snapshot staged under the pipeline root at a content-addressed path (the user uploads it);
its label hook must be code in the image. Anything else is refused (`CompileRefusal`), never ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from tfxp.pipeline.config import (
    PACKAGE_ROOT,
    PipelineConfig,
    RemoteLayout,
    VertexTraining,
    image_path,
    is_uri,
)
from tfxp.project import PROJECT_FILE, Project, check_hook


class CompileRefusal(ValueError):
    """An option, or a project field, that a compiled job can't apply. `option`: the CLI option to name."""

    def __init__(self, option: str, problem: str):
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


@dataclass(frozen=True)
class StagedFile:
    """A file the compiled job reads from the pipeline root: `content` must be uploaded to `uri`."""

    name: str  # the file's name, e.g. schema.pbtxt
    content: bytes
    uri: str  # gs://…/projects/<name>/<sha256 of content, 16 hex>/<file name>


def staged_schema(pipeline_root: str, name: str, schema: Path) -> StagedFile:
    """The snapshot of `schema` a compiled job reads: `<root>/projects/<name>/<digest>/schema.pbtxt`.

    The path holds the content's SHA-256, so a job never reads another schema than the one it was
    compiled with: an edit means a new path, and a missing upload fails ImportSchemaGen ("not found").
    """
    content = schema.read_bytes()
    digest = hashlib.sha256(content).hexdigest()[:16]
    return StagedFile(schema.name, content, f"{pipeline_root.rstrip('/')}/projects/{name}/{digest}/{schema.name}")


def image_hook(hook: str | None, spec_file: Path | str) -> str | None:
    """The label hook as the compiled job's containers load it, or None without a hook.

    A file hook ("/abs/file.py:function") must be a file of the tfxp package, which the image holds
    (rebased to /pipeline/tfxp/…); a module hook ("package.module:function") must be a module of the
    tfxp package (the image installs requirements.lock and tfxp, nothing else).

    Raises:
        CompileRefusal: (option "--project") a hook the image does not hold, naming the fix.
    """
    if hook is None:
        return None
    target, function = check_hook(hook)
    fix = (
        "put the hook's module under tfxp/ (e.g. tfxp/projects/<name>/label.py), write "
        "`hook: tfxp.projects.<name>.label:<function>` and rebuild the image (Dockerfile)"
    )
    if target.endswith(".py"):
        try:
            return f"{image_path(target)}:{function}"
        except ValueError:
            raise CompileRefusal(
                "--project",
                f"{spec_file}: label.hook {target} is not in the pipeline image (only tfxp/ is), so "
                f"Transform and the Trainer could not load it there: {fix}",
            ) from None
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        spec = None
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is None or not origin.is_relative_to(PACKAGE_ROOT):
        where = f"{origin}" if origin is not None else "not importable here"
        raise CompileRefusal(
            "--project",
            f"{spec_file}: label.hook module {target} ({where}) is not part of the tfxp package, so the "
            f"pipeline image does not have it: {fix}",
        )
    return hook


def _job_data(project: Project, data: str | None, spec_file: Path) -> str:
    """`data` (default the project's) if the compiled job can read it: gs://, or a path in the image.

    Raises CompileRefusal (option "--data") otherwise.
    """
    if data is None:
        if project.data is None:
            raise CompileRefusal("--data", f"{spec_file} names no data: give --data gs://BUCKET/…")
        data, origin = project.data, f"the project's data ({spec_file})"
    else:
        origin = "--data"
    if is_uri(data):
        if not data.startswith("gs://"):
            raise CompileRefusal("--data", f"{data}: Vertex AI reads gs:// URIs, not {data.split('://')[0]}://")
        return data
    try:
        image_path(data)
    except ValueError:
        raise CompileRefusal(
            "--data",
            f"{origin} {data} is a local path outside the tfxp package, so the pipeline image does not "
            "have it: upload it and give --data gs://BUCKET/… (a CSV file or a folder of them)",
        ) from None
    if not Path(data).exists():
        raise CompileRefusal("--data", f"{origin} {data}: no such file or folder")
    return data


@dataclass(frozen=True)
class RemoteProject:
    """What `tfxp compile` compiles: the configuration, and the files to upload before submitting."""

    config: PipelineConfig
    staged: tuple[StagedFile, ...]


def remote_config(
    project: Project,
    *,
    pipeline_root: str,
    name: str | None = None,
    data: str | None = None,
    **settings,
) -> RemoteProject:
    """The compiled job's configuration of `project`, checked so that the job runs *that* project.

    Args:
        project: a loaded project (tfxp.project.load), e.g. the embedded taxi one.
        pipeline_root: gs:// root of the job's artifacts (and of staged files).
        name: pipeline and model name; default the project's.
        data: CSV file or folder the job reads: gs://, or a path inside the tfxp package (in the image);
            default the project's `data`.
        settings: other PipelineConfig fields (train_steps, beam_args) and `vertex_training`.

    Returns:
        RemoteProject: the config (problem with the hook as the image loads it; schema from the image
        or staged) and the staged files (the schema of a project outside the package).

    Raises:
        CompileRefusal: data that is local and outside the image, a missing packaged data file, a hook
            the image does not hold.
        ValueError: a project without a folder (not loaded from a project.yaml).
    """
    if project.dir is None:
        raise ValueError(f"project {project.name} has no folder: load it from its project.yaml (tfxp.project.load)")
    vertex_training = settings.pop("vertex_training", None)
    name = name or project.name
    spec_file = project.dir / PROJECT_FILE
    data = _job_data(project, data, spec_file)
    problem = project.problem()
    hook = image_hook(problem.label.hook, spec_file)
    problem = dataclasses.replace(problem, label=dataclasses.replace(problem.label, hook=hook))
    staged: tuple[StagedFile, ...] = ()
    schema_uri = None
    schema = project.schema_path
    if not schema.resolve().is_relative_to(PACKAGE_ROOT):
        staged = (staged_schema(pipeline_root, name, schema),)
        schema_uri = staged[0].uri
    config = PipelineConfig.for_project(
        project,
        name=name,
        data=data,
        problem=problem,
        remote=RemoteLayout(pipeline_root=pipeline_root, vertex_training=vertex_training, schema_uri=schema_uri),
        **settings,
    )
    return RemoteProject(config, staged)


@dataclass(frozen=True)
class DataflowSettings:
    """Beam on Dataflow for every Beam-powered component."""

    project: str
    region: str
    temp_location: str  # gs:// folder for Dataflow's staging and temp files
    image: str  # the pipeline image, used as the workers' SDK container
    max_num_workers: int | None = None
    machine_type: str | None = None  # Dataflow's default (n1-standard-1 for batch) when None
    disk_size_gb: int | None = None  # per worker; Dataflow's default (250 GB for batch) when None


def dataflow_beam_args(settings: DataflowSettings) -> tuple[str, ...]:
    """DataflowRunner options.

    Workers start from the pipeline image (it carries Beam's boot program, see
    the Dockerfile), so they run the locked dependencies and this project's code
    without installing anything at start-up: the package is in the container, not staged as an sdist
    (`--setup_file` would make every worker pip-install it; tensorflow/tfx#4764, #3761 are workers without
    it). A custom SDK container needs Dataflow Runner v2 (`--experiments=use_runner_v2`, Dataflow's
    "Use custom containers"); its Beam and Python must match the launcher's (the Dockerfile copies
    apache/beam_python3.10_sdk:2.60.0 for the locked apache-beam 2.60.0: tests/test_dockerfile.py).
    """
    args = [
        "--runner=DataflowRunner",
        f"--project={settings.project}",
        f"--region={settings.region}",
        f"--temp_location={settings.temp_location}",
        f"--sdk_container_image={settings.image}",
        # The SDK is already in the image: don't stage Beam's tarball.
        "--sdk_location=container",
        "--experiments=use_runner_v2",
    ]
    if settings.max_num_workers:
        args.append(f"--max_num_workers={settings.max_num_workers}")
    if settings.machine_type:
        args.append(f"--machine_type={settings.machine_type}")
    if settings.disk_size_gb:
        args.append(f"--disk_size_gb={settings.disk_size_gb}")
    return tuple(args)


def training_custom_config(vertex: VertexTraining) -> dict:
    """Trainer custom_config for TFX's Google Cloud extension: one Vertex AI CustomJob in the pipeline image."""
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor

    return {
        constants.ENABLE_VERTEX_KEY: True,
        constants.VERTEX_REGION_KEY: vertex.region,
        executor.TRAINING_ARGS_KEY: {
            "project": vertex.project,
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": vertex.machine_type},
                    "replica_count": 1,
                    "container_spec": {"image_uri": vertex.image},
                }
            ],
        },
    }


def compile_pipeline(config: PipelineConfig, image: str, output: Path) -> dict:
    """Writes the Vertex AI PipelineJob JSON for `config` to `output`; returns it as a dict.

    An `output` named .yaml/.yml gets the PipelineSpec YAML instead (KubeflowV2DagRunner's choice by name), which
    the open-source Kubeflow Pipelines client reads (kfp 2.5 `client._extract_pipeline_yaml`), with the
    pipeline root as its `defaultPipelineRoot`; returned as {"pipelineSpec": spec}, the JSON's shape.
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from tfxp.pipeline.pipeline import create_pipeline

    if config.remote is None:
        raise ValueError("compiling needs a remote layout (config.remote): the pipeline root and the image paths")
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(output.parent.resolve()),
        output_filename=output.name,
    )
    runner.run(create_pipeline(config), write_out=True)
    if output.suffix in (".yaml", ".yml"):
        import yaml

        with open(output, "a") as f:  # a top-level key after TFX's; its header comments stay
            f.write(yaml.safe_dump({"defaultPipelineRoot": config.pipeline_root}))
        return {"pipelineSpec": yaml.safe_load(output.read_text())}
    return json.loads(output.read_text())
