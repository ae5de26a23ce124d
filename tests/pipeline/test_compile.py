"""`tfxp compile --target vertex`: the local pipeline, compiled offline into a Vertex AI PipelineJob JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_harness import init_project

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
        # A custom SDK container needs Runner v2; the package is in the container, so nothing is staged.
        "--experiments=use_runner_v2",
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
    common = ["compile", "--target", "vertex", "--gcp-project", PROJECT, "--region", REGION, "--image", IMAGE]
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
    stray = _tfxp(*common, "--pipeline-root", ROOT, "--dataflow-machine-type", "n1-highmem-4", cwd=tmp_path)
    assert stray.returncode == 2 and "--dataflow-machine-type: only with --dataflow" in stray.stderr
    assert not (tmp_path / "x.json").exists()


def test_dataflow_worker_options_reach_every_beam_component(tmp_path):
    """The flags users ask about (machine type, max workers, disk size) as Beam's Dataflow options."""
    common = ["compile", "--target", "vertex", "--gcp-project", PROJECT, "--region", REGION, "--image", IMAGE]
    out = tmp_path / "job.json"
    proc = _tfxp(
        *common, "--pipeline-root", ROOT, "--output", str(out), "--dataflow", "--dataflow-max-workers", "8",
        "--dataflow-machine-type", "n1-highmem-4", "--dataflow-disk-size-gb", "100", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads(out.read_text())
    expected = {"--max_num_workers=8", "--machine_type=n1-highmem-4", "--disk_size_gb=100", f"--region={REGION}"}
    for task in BEAM_COMPONENTS:
        assert expected <= set(_executor_args(job, task)), task


# ------------------------------------------------------------------- a user's project (issue 17, kind 8)

USER_SPEC = """\
name: shapes
data: data/shapes.csv
label:
  column: kind
  task: multiclass
  classes: [disc, ring, star]
features:
  - {name: width, dtype: float, kind: numeric}
  - {name: level, dtype: int, kind: categorical_int, size: 4}
  - {name: colour, dtype: string, kind: vocabulary, required: false}
slices: [colour]
thresholds:
  - {metric: SparseCategoricalAccuracy, bound: 0.41, max_change: 0.03}
"""
USER_SCHEMA = """\
feature { name: "width" type: FLOAT float_domain { disallow_nan: true disallow_inf: true } shape { dim { size: 1 } } }
feature { name: "level" type: INT int_domain { min: 0 max: 3 } shape { dim { size: 1 } } }
feature { name: "colour" type: BYTES }
feature {
  name: "kind" type: BYTES string_domain { name: "kind" value: "disc" value: "ring" value: "star" }
  shape { dim { size: 1 } } not_in_environment: "SERVING"
}
default_environment: "TRAINING"
default_environment: "SERVING"
"""


def _user_project(folder: Path, spec: str = USER_SPEC) -> Path:
    """A project written by hand, outside the tfxp package (so not in the pipeline image)."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "shapes.csv").write_text("width,level,colour,kind\n1.5,0,red,disc\n2.5,3,,star\n")
    (folder / "project.yaml").write_text(spec)
    (folder / "schema.pbtxt").write_text(USER_SCHEMA)
    return folder


def test_compile_compiles_the_users_project(tmp_path):
    import hashlib

    project = _user_project(tmp_path / "shapes")
    out = tmp_path / "job.json"
    proc = _tfxp(
        "compile", "--target", "vertex", "--project", str(project), "--gcp-project", PROJECT, "--region", REGION,
        "--image", IMAGE, "--pipeline-root", ROOT, "--output", str(out), "--data", "gs://bucket/shapes/s.csv",
        "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    job = json.loads(out.read_text())
    assert "taxi" not in json.dumps(job)  # nothing of the embedded project is left
    # The schema: a snapshot staged under the pipeline root, at a path holding its SHA-256.
    digest = hashlib.sha256(USER_SCHEMA.encode()).hexdigest()[:16]
    schema_uri = f"{ROOT}/projects/shapes/{digest}/schema.pbtxt"
    assert _parameter(job, "ImportSchemaGen", "schema_file")["stringValue"] == schema_uri
    (stage,) = answer["stage"]
    assert stage["to"] == schema_uri and Path(stage["from"]).read_text() == USER_SCHEMA
    assert Path(stage["from"]) == tmp_path / "job.staged" / "schema.pbtxt"
    # The spec: problem in Transform's and the Trainer's custom_config, gates and slices in eval_config.
    for task in ("Transform", "Trainer"):
        problem = json.loads(_parameter(job, task, "custom_config")["stringValue"])["problem"]
        assert [(f["name"], f["kind"], f["size"]) for f in problem["features"]] == [
            ("width", "numeric", 0),
            ("level", "categorical_int", 4),
            ("colour", "vocabulary", 0),
        ]
        assert problem["label"] == {
            "column": "kind",
            "dtype": "string",
            "task": "multiclass",
            "classes": ["disc", "ring", "star"],
            "hook": None,
        }
        assert problem["slices"] == ["colour"]
    eval_config = json.loads(_parameter(job, "Evaluator", "eval_config")["stringValue"])
    assert {"feature_keys": ["colour"]} in eval_config["slicing_specs"]
    (gate,) = [m for spec in eval_config["metrics_specs"] for m in spec["metrics"] if "per_slice_thresholds" in m]
    assert gate["class_name"] == "SparseCategoricalAccuracy"
    threshold = gate["per_slice_thresholds"][0]["threshold"]
    assert threshold["value_threshold"]["lower_bound"] == 0.41
    assert threshold["change_threshold"]["absolute"] == -0.03
    # Data, name and outputs are the project's.
    assert _parameter(job, "CsvExampleGen", "input_base")["stringValue"] == "gs://bucket/shapes"
    assert _parameter(job, "Pusher", "serving_dir")["stringValue"] == f"{ROOT}/serving/shapes"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "shapes"
    assert answer["name"] == "shapes" and answer["project"] == str(project)


def _compile_refusal(tmp_path: Path, *args: str) -> str:
    """Runs `tfxp compile` in process; asserts exit 2 and that nothing was written; returns the output."""
    from click.testing import CliRunner

    from tfxp.cli import main

    out = tmp_path / "refused.json"
    base = ["compile", "--target", "vertex", "--region", REGION, "--image", IMAGE, "--pipeline-root", ROOT]
    result = CliRunner().invoke(main, [*base, "--output", str(out), *args])
    assert result.exit_code == 2, result.output
    assert not out.exists() and not out.with_suffix(".staged").exists()
    return " ".join(result.output.split())


def test_compile_refuses_what_cannot_apply(tmp_path):
    project = str(_user_project(tmp_path / "shapes"))
    gcp = ("--gcp-project", PROJECT)
    # --project was the Google Cloud project id: an id is no project folder, and the error says both meanings.
    old = _compile_refusal(tmp_path, "--project", PROJECT, *gcp)
    assert "'proj-1' is not a project folder" in old and "--gcp-project" in old
    # The project's data is a local file: not in the image.
    local = _compile_refusal(tmp_path, "--project", project, *gcp)
    assert "--data" in local and "shapes.csv is a local path outside the tfxp package" in local
    assert "--data" in _compile_refusal(tmp_path, "--project", project, *gcp, "--data", str(tmp_path))
    assert "gs://" in _compile_refusal(tmp_path, "--project", project, *gcp, "--data", "s3://bucket/x.csv")
    # --name or --data without --project would compile the taxi project under a user's name.
    named = _compile_refusal(tmp_path, *gcp, "--name", "mine", "--data", "gs://bucket/mine.csv")
    assert "--name" in named and "taxi" in named and "--project" in named
    machine = _compile_refusal(tmp_path, *gcp, "--training-machine-type", "n1-highmem-8")
    assert "--vertex-training" in machine


@pytest.mark.parametrize(
    "hook, expected",
    [
        ("label.py:make", "label.hook"),  # a file beside the project: not in the image
        ("json:loads", "module json"),  # a module the image's tfxp does not hold
    ],
)
def test_compile_refuses_a_label_hook_outside_the_image(tmp_path, hook, expected):
    spec = USER_SPEC.replace("  task: multiclass", f"  task: multiclass\n  hook: {hook}")
    project = _user_project(tmp_path / "shapes", spec)
    (project / "label.py").write_text("def make(inputs):\n    return inputs['level']\n")
    message = _compile_refusal(
        tmp_path, "--project", str(project), "--gcp-project", PROJECT, "--data", "gs://bucket/shapes/"
    )
    assert "--project" in message and expected in message and "pipeline image" in message


def test_a_hook_of_the_tfxp_package_is_loaded_from_the_image():
    from tfxp.pipeline import vertex
    from tfxp.projects import TAXI

    assert (
        vertex.image_hook(f"{TAXI}/label.py:big_tipper", "p.yaml") == "/pipeline/tfxp/projects/taxi/label.py:big_tipper"
    )
    assert vertex.image_hook("tfxp.projects.taxi.label:big_tipper", "p.yaml") == "tfxp.projects.taxi.label:big_tipper"
    with pytest.raises(vertex.CompileRefusal, match="not importable here"):
        vertex.image_hook("tfxp.projects.nothing_here:f", "p.yaml")


# ------------------------------------------------------------------- open-source Kubeflow Pipelines (issue 24)


def _kfp_loads(path: Path) -> list[str]:
    """The PipelineSpec YAML as kfp 2.5's client and component loader read it; its task names."""
    from kfp import components
    from kfp.client import client

    doc = client._extract_pipeline_yaml(str(path))  # what Client.upload_pipeline/create_run_from_* use
    assert doc.pipeline_spec.default_pipeline_root == ROOT
    component = components.load_component_from_file(str(path))
    return sorted(component.pipeline_spec.root.dag.tasks)


def _project_args(kind: str | None, folder: Path) -> list[str]:
    """--project for the taxi project (None), one written by hand ("hand") or by `tfxp init` ("init")."""
    if kind is None:
        return []
    project = _user_project(folder / "shapes") if kind == "hand" else init_project(folder / "init")
    return ["--project", str(project)]


@pytest.mark.parametrize("user_project", [None, "hand", "init"])
def test_kfp_target_writes_pipeline_spec_yaml_that_kfp_loads(user_project, compiled, tmp_path):
    out = tmp_path / "pipeline.yaml"
    project = _project_args(user_project, tmp_path)
    proc = _tfxp(
        "compile", "--target", "kfp", *project, "--pipeline-root", ROOT, "--image", IMAGE, "--output", str(out),
        "--data", "gs://bucket/d/", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer["target"] == "kfp" and answer["gcp_project"] is None
    tasks = _kfp_loads(out)
    # The same DAG as the Vertex AI job of the same pipeline (the taxi one: the module's `compiled`).
    assert tasks == answer["tasks"]
    if not user_project:
        assert tasks == sorted(_tasks(compiled))
    else:
        assert "taxi" not in out.read_text() and answer["name"] == "shapes"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--target", "kfp", "--vertex-training"], "only with --target vertex"),
        (["--target", "kfp", "--output", "p.json"], "PipelineSpec YAML"),
        (["--target", "kfp", "--dataflow"], "Dataflow needs both"),
        (["--target", "vertex"], "Vertex AI needs both"),
    ],
)
def test_options_that_dont_apply_to_the_target_are_refused(args, words, tmp_path):
    proc = _tfxp("compile", *args, "--pipeline-root", ROOT, "--image", IMAGE, cwd=tmp_path)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.glob("p*"))


@pytest.mark.parametrize("user_project", [None, "hand", "init"])
def test_vertex_job_is_accepted_by_aiplatform_pipeline_job_offline(user_project, tmp_path):
    """The Vertex AI SDK's own reader (google-cloud-aiplatform in the lock) builds a PipelineJob from the file:
    what `aiplatform.PipelineJob(template_path=...)` in docs/scaling-out.md does before submitting."""
    import warnings

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    out = tmp_path / "job.json"
    project = _project_args(user_project, tmp_path) + (["--data", "gs://b/shapes.csv"] if user_project else [])
    proc = _tfxp(
        "compile", "--target", "vertex", "--gcp-project", PROJECT, "--region", REGION, "--image", IMAGE,
        "--pipeline-root", ROOT, "--output", str(out), *project, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = aiplatform.PipelineJob(
            display_name="tfxp",
            template_path=str(out),
            pipeline_root=ROOT,
            project=PROJECT,
            location=REGION,
            credentials=AnonymousCredentials(),
        )
    resource = job._gca_resource
    assert resource.runtime_config.gcs_output_directory == ROOT
    tasks = set(resource.pipeline_spec["root"]["dag"]["tasks"])
    assert {"CsvExampleGen", "Trainer", "Evaluator", "Pusher", "MobilePusher"} <= tasks
    assert resource.pipeline_spec["pipelineInfo"]["name"] == ("shapes" if user_project else "taxi")
