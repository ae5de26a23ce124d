"""`tfxp compile --target airflow`: a DAG file with one task per create_pipeline node, checked against a
stand-in of the Airflow API (tests/airflow_standin.py) and run through it: the tasks' `tfxp run --node`
partial runs, one at a time in an order that is not create_pipeline's, train and push the model."""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys

import airflow_standin
import pytest
from click.testing import CliRunner
from pipeline_harness import init_project, loose_taxi_project, tfxp_run

from tfxp import project as project_lib
from tfxp.cli import main
from tfxp.pipeline.config import PipelineConfig
from tfxp.projects import TAXI

TFXP = [sys.executable, "-m", "tfxp.pipeline.cli"]


def _compile(*args: str) -> dict:
    result = CliRunner().invoke(main, ["compile", "--target", "airflow", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.JSONDecoder().raw_decode(result.output[result.output.index("{") :])[0]


def _create_pipeline_edges(config: PipelineConfig) -> tuple[list[str], set[tuple[str, str]]]:
    """create_pipeline's node ids and (upstream, node) edges, read off the TFX Pipeline object."""
    from tfxp.pipeline.pipeline import create_pipeline

    components = create_pipeline(config).components
    return [c.id for c in components], {(u.id, c.id) for c in components for u in c.upstream_nodes}


@pytest.mark.parametrize("airflow_version", [2, 3])
def test_bash_dag_has_the_task_graph_of_create_pipeline(airflow_version, tmp_path):
    root = tmp_path / "root"
    answer = _compile("--pipeline-root", str(root), "--output", str(tmp_path / "taxi_dag.py"))
    dag = airflow_standin.load_dag(tmp_path / "taxi_dag.py", airflow_standin.install(tmp_path / "af", airflow_version))

    nodes, edges = _create_pipeline_edges(PipelineConfig(output=root))
    assert list(dag.tasks) == nodes == answer["tasks"]
    assert dag.edges() == edges
    assert dag.dag_id == "taxi" and dag.schedule == "@daily" and dag.catchup is False
    # Partial runs take their inputs from the previous run: one task at a time, one DAG run at a time.
    assert dag.max_active_tasks == 1 and dag.max_active_runs == 1
    assert dag.default_args["retries"] == 2 and dag.default_args["retry_delay"].total_seconds() == 300
    for node, task in dag.tasks.items():
        assert shlex.split(task.bash_command) == [
            "tfxp", "run", "--project", str(TAXI), "--output", str(root.resolve()), "--name", "taxi",
            "--train-steps", "300", "--node", node,
        ]  # fmt: skip
        assert task.skip == (4,)  # not blessed: the Pusher's task is skipped, not retried


def test_pod_dag_of_an_init_project_mounts_the_pipeline_root(tmp_path):
    root = tmp_path / "volume"
    project = init_project(root / "projects")
    answer = _compile(
        "--project", str(project), "--pipeline-root", str(root), "--image", "registry.example/tfxp:7",
        "--volume-claim", "tfxp-root", "--namespace", "ml", "--schedule", "none", "--retries", "1",
        "--output", str(tmp_path / "shapes_dag.py"),
    )  # fmt: skip
    dag = airflow_standin.load_dag(tmp_path / "shapes_dag.py", airflow_standin.install(tmp_path / "af", 2))

    loaded = project_lib.load(project)
    nodes, edges = _create_pipeline_edges(PipelineConfig.for_project(loaded, output=root))
    assert list(dag.tasks) == nodes == answer["tasks"] and dag.edges() == edges
    assert dag.dag_id == "shapes" and dag.schedule is None and dag.default_args["retries"] == 1
    for node, task in dag.tasks.items():
        assert isinstance(task, airflow_standin.KubernetesPodOperator)
        assert task.image == "registry.example/tfxp:7" and task.namespace == "ml" and task.cmds == ["tfxp"]
        assert task.arguments == [
            "run", "--project", str(project), "--output", str(root), "--name", "shapes", "--train-steps", "300",
            "--node", node,
        ]  # fmt: skip
        (volume,) = task.volumes
        (mount,) = task.volume_mounts
        assert volume.persistent_volume_claim.claim_name == "tfxp-root" and volume.name == mount.name
        assert mount.mount_path == str(root)
        assert task.skip == (4,)
        assert task.name.replace("-", "").isalnum() and task.name == task.name.lower()  # a pod name (RFC 1123)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--pipeline-root", "gs://bucket/root"], "not a URI"),
        (["--pipeline-root", "root", "--gcp-project", "p"], "--gcp-project: not with --target airflow"),
        (["--pipeline-root", "root", "--dataflow"], "--dataflow: not with --target airflow"),
        (["--pipeline-root", "root", "--image", "img"], "--image needs --volume-claim"),
        (["--pipeline-root", "root", "--volume-claim", "pvc"], "go with --image"),
        (["--pipeline-root", "/root", "--image", "i", "--volume-claim", "v", "--data", "/elsewhere/x.csv"], "--data"),
    ],
)
def test_airflow_refuses_options_that_cannot_work(args, words, tmp_path):
    result = CliRunner().invoke(main, ["compile", "--target", "airflow", "--output", str(tmp_path / "d.py"), *args])
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
    assert not (tmp_path / "d.py").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--target", "vertex", "--gcp-project", "p", "--region", "r"], "--image"),
        (["--target", "kfp", "--image", "i", "--schedule", "@hourly"], "--schedule: only with --target airflow"),
    ],
)
def test_other_targets_refuse_airflow_options_and_need_an_image(args, words, tmp_path):
    result = CliRunner().invoke(
        main, ["compile", *args, "--pipeline-root", "gs://b/r", "--output", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output


@pytest.mark.slow
def test_the_dag_run_through_airflow_trains_and_pushes_like_tfxp_run(tmp_path, monkeypatch):
    """Each task's `tfxp run --node`, run by the stand-in scheduler one at a time, ready tasks in reverse name
    order, the Pusher killed once and retried: the chain of partial runs pushes one model for serving and
    mobile; `tfxp run` afterwards on the same output finds it pushed."""
    rows = list(csv.DictReader(open(TAXI / "data" / "taxi.csv")))[:2000]
    data = tmp_path / "taxi.csv"
    with open(data, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    project = loose_taxi_project(tmp_path / "project")
    root = tmp_path / "root"
    _compile(
        "--project", project, "--data", str(data), "--pipeline-root", str(root), "--train-steps", "20",
        "--tfxp-command", shlex.join(TFXP), "--output", str(tmp_path / "taxi_dag.py"),
    )  # fmt: skip
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    dag = airflow_standin.load_dag(tmp_path / "taxi_dag.py", airflow_standin.install(tmp_path / "af", 3))

    # The Pusher's first attempt is killed (SIGKILL) right after it published the version; Airflow retries it.
    pusher = dag.tasks["Pusher"]
    pusher.env = {**os.environ, "TFXP_FAILPOINT": "pusher:published"}
    pusher.on_retry_callback = lambda context: setattr(context["task"], "env", None)

    states = dag.run(order=lambda ready: sorted(ready, reverse=True))
    failed = {t: dag.tasks[t].output[-2000:] for t, state in states.items() if state != "success"}
    assert not failed, failed
    assert pusher.exit_codes == [-9, 0]
    assert all(task.attempts == 1 for task in dag.tasks.values() if task is not pusher)
    (version,) = [p.name for p in (root / "serving" / "taxi").iterdir() if p.name.isdigit()]
    assert list((root / "mobile" / "taxi").glob(f"{version}/*.tflite"))

    code, summary, stderr = tfxp_run(data, root, "--project", project, name="taxi", train_steps=20)
    assert code == 0, stderr[-2000:]
    assert summary["pushed_version"] == version and summary["pushed"]


def test_run_node_refuses_a_node_that_is_not_in_the_pipeline(tmp_path):
    result = CliRunner().invoke(main, ["run", "--output", str(tmp_path), "--node", "Pusher", "--node", "Bogus"])
    assert result.exit_code == 2, result.output
    assert "Bogus: not a node of this pipeline (CsvExampleGen, ImportSchemaGen" in " ".join(result.output.split())
    assert not list(tmp_path.glob("metadata/*/metadata.db")) and not (tmp_path / "pipelines").exists()
