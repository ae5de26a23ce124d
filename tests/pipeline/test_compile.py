"""`tfxp compile --target vertex`: the local pipeline, compiled offline into a Vertex AI PipelineJob JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfxp.pipeline.config import PipelineConfig, RemoteLayout, VertexTraining

PROJECT, REGION, ROOT, IMAGE = (
    "proj-1",
    "europe-west4",
    "gs://bucket/root",
    "europe-docker.pkg.dev/proj-1/tfxp/pipeline:7",
)
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")
# Vertex AI runs the baseline resolver as two metadata queries.
RESOLVER_TASKS = {
    "baseline_resolver-model-resolver": "baseline_resolver",
    "baseline_resolver-model-blessing-resolver": "baseline_resolver",
}


def _compile(tmp_path: Path, name: str, **config) -> dict:
    from tfxp.pipeline import vertex

    dataflow = config.pop("dataflow", False)
    beam_args = config.pop("beam_args", ())
    if dataflow:
        beam_args = vertex.dataflow_beam_args(vertex.DataflowSettings(PROJECT, REGION, f"{ROOT}/tmp", IMAGE))
    remote = RemoteLayout(pipeline_root=ROOT, **config)
    cfg = PipelineConfig(remote=remote, **({"beam_args": beam_args} if beam_args else {}))
    return vertex.compile_pipeline(cfg, image=IMAGE, output=tmp_path / name)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    return _compile(tmp_path_factory.mktemp("vertex"), "plain.json")


@pytest.fixture(scope="module")
def compiled_cloud(tmp_path_factory) -> dict:
    """With Dataflow for Beam and Vertex AI Training for the Trainer."""
    return _compile(
        tmp_path_factory.mktemp("vertex"),
        "cloud.json",
        dataflow=True,
        vertex_training=VertexTraining(PROJECT, REGION, IMAGE, "n1-highmem-8"),
    )


@pytest.fixture(scope="module")
def local_pipeline(tmp_path_factory):
    from tfxp.pipeline.pipeline import create_pipeline

    return create_pipeline(PipelineConfig(output=tmp_path_factory.mktemp("local")))


def _tasks(job: dict) -> dict:
    return job["pipelineSpec"]["root"]["dag"]["tasks"]


def _node(task: str) -> str:
    return RESOLVER_TASKS.get(task, task)


def _compiled_edges(job: dict) -> set[tuple[str, str]]:
    edges = set()
    for name, task in _tasks(job).items():
        producers = set(task.get("dependentTasks", []))
        producers |= {
            a["taskOutputArtifact"]["producerTask"]
            for a in task.get("inputs", {}).get("artifacts", {}).values()
            if "taskOutputArtifact" in a
        }
        edges |= {(_node(p), _node(name)) for p in producers if _node(p) != _node(name)}
    return edges


def _parameter(job: dict, task: str, name: str):
    return _tasks(job)[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]


def _executor_args(job: dict, task: str) -> list[str]:
    return job["pipelineSpec"]["deploymentSpec"]["executors"][f"{task}_executor"]["container"]["args"]


def test_every_local_component_is_compiled(compiled, local_pipeline):
    assert {_node(t) for t in _tasks(compiled)} == {c.id for c in local_pipeline.components}


def test_dag_edges_equal_the_local_pipeline(compiled, local_pipeline):
    local = {(up.id, c.id) for c in local_pipeline.components for up in c.upstream_nodes}
    # The one documented difference: locally the resolver excludes the Trainer's
    # candidate, so it waits for the Trainer; Vertex AI's stock resolver does not.
    assert ("Trainer", "baseline_resolver") in local
    assert _compiled_edges(compiled) == local - {("Trainer", "baseline_resolver")}
    assert ("DataGate", "Transform") in local  # bad data stops the run before Transform there too


def test_image_pipeline_root_and_paths_inside_the_image(compiled):
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {IMAGE}
    assert compiled["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    assert (
        _parameter(compiled, "ImportSchemaGen", "schema_file")["stringValue"]
        == "/pipeline/tfxp/projects/taxi/schema.pbtxt"
    )
    assert _parameter(compiled, "CsvExampleGen", "input_base")["stringValue"] == "/pipeline/tfxp/projects/taxi/data"
    assert _parameter(compiled, "Pusher", "serving_dir")["stringValue"] == f"{ROOT}/serving/taxi"
    assert _parameter(compiled, "MobilePusher", "mobile_dir")["stringValue"] == f"{ROOT}/mobile/taxi"
    # User code by dotted name, baked into the image: nothing to upload.
    assert _parameter(compiled, "Trainer", "run_fn")["stringValue"] == "tfxp.models.model.run_fn"
    assert (
        _parameter(compiled, "Transform", "preprocessing_fn")["stringValue"]
        == "tfxp.models.preprocessing.preprocessing_fn"
    )
    assert "module_file" not in json.dumps(_tasks(compiled))
    # Without --dataflow, Beam runs in each component's container.
    assert "--direct_running_mode=in_memory" in _executor_args(compiled, "Transform")


def test_dataflow_args_on_every_beam_component(compiled_cloud):
    expected = {
        "--runner=DataflowRunner",
        f"--project={PROJECT}",
        f"--region={REGION}",
        f"--temp_location={ROOT}/tmp",
        f"--sdk_container_image={IMAGE}",
        "--sdk_location=container",
    }
    for task in BEAM_COMPONENTS:
        args = _executor_args(compiled_cloud, task)
        assert expected <= set(args), task
        assert not any(a.startswith(("--direct_", "--setup_file")) for a in args), task


def test_vertex_training_runs_the_same_run_fn_in_the_image(compiled_cloud):
    args = _executor_args(compiled_cloud, "Trainer")
    assert args[args.index("--executor_class_path") + 1].startswith("tfx.extensions.google_cloud_ai_platform.trainer")
    custom = json.loads(_parameter(compiled_cloud, "Trainer", "custom_config")["stringValue"])
    assert custom["ai_platform_enable_vertex"] is True and custom["ai_platform_vertex_region"] == REGION
    (pool,) = custom["ai_platform_training_args"]["worker_pool_specs"]
    assert pool["container_spec"]["image_uri"] == IMAGE and pool["machine_spec"]["machine_type"] == "n1-highmem-8"
    assert custom["ai_platform_training_args"]["project"] == PROJECT
    assert "model_code" in custom  # the code fingerprint still invalidates the cache
    assert _parameter(compiled_cloud, "Trainer", "run_fn")["stringValue"] == "tfxp.models.model.run_fn"


def test_compiling_twice_gives_the_same_spec(compiled, tmp_path):
    again = _compile(tmp_path, "again.json")
    assert again == compiled


def _tfxp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    return subprocess.run(
        [sys.executable, "-m", "tfxp.pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_tfxp_compile_cli(tmp_path):
    common = ["compile", "--target", "vertex", "--project", PROJECT, "--region", REGION, "--image", IMAGE]
    out = tmp_path / "job.json"
    proc = _tfxp(
        *common,
        "--pipeline-root",
        ROOT,
        "--output",
        str(out),
        "--data",
        "gs://bucket/data/",
        "--dataflow",
        "--vertex-training",
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer["output"] == str(out) and answer["dataflow"] and answer["vertex_training"]
    job = json.loads(out.read_text())
    assert _parameter(job, "CsvExampleGen", "input_base")["stringValue"] == "gs://bucket/data"
    assert "--runner=DataflowRunner" in _executor_args(job, "StatisticsGen")
    assert proc.stderr.strip() == ""  # library warnings go to the log beside the JSON
    assert out.with_suffix(".log").exists()

    local_root = _tfxp(*common, "--pipeline-root", "/tmp/root", "--output", str(tmp_path / "x.json"), cwd=tmp_path)
    assert local_root.returncode == 2 and "gs://" in local_root.stderr
    stray = _tfxp(*common, "--pipeline-root", ROOT, "--temp-location", "gs://b/t", cwd=tmp_path)
    assert stray.returncode == 2 and "--dataflow" in stray.stderr
    assert not (tmp_path / "x.json").exists()
