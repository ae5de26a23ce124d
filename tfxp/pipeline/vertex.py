"""Compiling the pipeline for Vertex AI Pipelines (KubeflowV2DagRunner), offline.

The compiled job runs the same `create_pipeline` as `tfxp run`, inside the
pipeline image (Dockerfile): user code is referenced by dotted name
(`models.model.run_fn`), so compiling uploads nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tfxp.pipeline.config import PipelineConfig, VertexTraining


@dataclass(frozen=True)
class DataflowSettings:
    """Beam on Dataflow for every Beam-powered component."""

    project: str
    region: str
    temp_location: str  # gs:// folder for Dataflow's staging and temp files
    image: str  # the pipeline image, used as the workers' SDK container
    max_num_workers: int | None = None


def dataflow_beam_args(settings: DataflowSettings) -> tuple[str, ...]:
    """DataflowRunner options.

    Workers start from the pipeline image (it carries Beam's boot program, see
    the Dockerfile), so they run the locked dependencies and this project's code
    without installing anything at start-up.
    """
    args = [
        "--runner=DataflowRunner",
        f"--project={settings.project}",
        f"--region={settings.region}",
        f"--temp_location={settings.temp_location}",
        f"--sdk_container_image={settings.image}",
        # The SDK is already in the image: don't stage Beam's tarball.
        "--sdk_location=container",
    ]
    if settings.max_num_workers:
        args.append(f"--max_num_workers={settings.max_num_workers}")
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
    """Writes the Vertex AI PipelineJob JSON for `config` to `output`; returns it as a dict."""
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
    return json.loads(output.read_text())
