"""Bring your own data, end to end, one small dataset per task (issue 11).

scikit-learn ships the data as package files: breast_cancer (binary, 569 rows), wine (multiclass,
178 rows), diabetes (regression, 442 rows). Each: `tfxp init` -> `tfxp run --project` -> pushed ->
served by a real server on loopback -> :predict (REST and gRPC clients), :classify or :regress
(REST and gRPC) -> the pushed TFLite model agrees with the SavedModel.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SKLEARN_DATA = Path(__import__("sklearn.datasets", fromlist=["x"]).__file__).parent / "data"
TRAIN_STEPS = 300
# diabetes: ~280 rows train, so 300 steps of 256 rows are ~280 epochs and the DNN overfits: eval RMSE
# measured 59 (50 steps), 61 (100), 75-80 (300), 82 (1000) against the label's std 77-80 (the gate).
# Which rows land in eval decided whether 300 steps passed; 100 passes with a margin on any split.
TRAIN_STEPS_BY_TASK = {"regression": 100}

pytestmark = pytest.mark.slow


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _breast_cancer(folder: Path) -> Path:
    """569 rows, 30 measurements; the label is the diagnosis as words (the positive class: malignant)."""
    lines = list(csv.reader(open(SKLEARN_DATA / "breast_cancer.csv")))[1:]  # first line: counts, class names
    names = ["malignant", "benign"]  # sklearn's target 0 and 1
    return _write(
        folder / "breast_cancer.csv",
        [f"x{i:02d}" for i in range(30)] + ["diagnosis"],
        [r[:-1] + [names[int(r[-1])]] for r in lines],
    )


# sklearn's wine targets 0, 1, 2 are the three Piedmont cultivars of Forina's data: named, so that the
# summary's class names can't be mistaken for TFMA's class_k keys.
WINE_CULTIVARS = ("barolo", "grignolino", "barbera")


def _wine(folder: Path) -> Path:
    lines = list(csv.reader(open(SKLEARN_DATA / "wine_data.csv")))[1:]
    return _write(
        folder / "wine.csv",
        [f"x{i:02d}" for i in range(13)] + ["cultivar"],
        [r[:-1] + [WINE_CULTIVARS[int(r[-1])]] for r in lines],
    )


def _diabetes(folder: Path) -> Path:
    x = [line.split() for line in gzip.open(SKLEARN_DATA / "diabetes_data_raw.csv.gz", "rt") if line.strip()]
    y = [line.strip() for line in gzip.open(SKLEARN_DATA / "diabetes_target.csv.gz", "rt") if line.strip()]
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    return _write(folder / "diabetes.csv", names + ["progression"], [r + [t] for r, t in zip(x, y, strict=True)])


TASKS = {
    # task: (data builder, label, extra init args, the gated metric)
    "binary": (_breast_cancer, "diagnosis", ["--positive", "malignant"], "binary_accuracy"),
    "multiclass": (_wine, "cultivar", [], "sparse_categorical_accuracy"),
    "regression": (_diabetes, "progression", [], "root_mean_squared_error"),
}


def _tfxp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


@pytest.fixture(scope="module", params=list(TASKS))
def pushed(request, tmp_path_factory):
    """(task, project folder, run summary, CSV rows) after `tfxp init` and `tfxp run --project`."""
    task = request.param
    build, label, extra, _ = TASKS[task]
    work = tmp_path_factory.mktemp(task)
    data = build(work)
    init = _tfxp("init", "--data", str(data), "--label", label, "--dir", "project", *extra, cwd=work)
    assert init.returncode == 0, init.stderr[-3000:]
    assert f"-> {task}" in init.stdout, init.stdout  # the decision is printed, with its reason
    steps = TRAIN_STEPS_BY_TASK.get(task, TRAIN_STEPS)
    run = _tfxp("run", "--project", "project", "--output", "out", "--train-steps", str(steps), "--json", cwd=work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    rows = list(csv.DictReader(open(data)))
    return task, work / "project", summary, rows


def test_the_run_is_gated_on_the_tasks_metrics_and_pushed(pushed):
    task, _, summary, _ = pushed
    metric = TASKS[task][3]
    overall = summary["metrics"]["Overall"]
    assert summary["blessed"] and summary["pushed_version"], summary
    assert metric in overall, sorted(overall)
    if task == "binary":
        assert overall["auc"] > 0.9 and overall["binary_accuracy"] > 0.85, overall
    elif task == "multiclass":
        assert overall["sparse_categorical_accuracy"] > 0.8, overall
        assert {"precision/class_0", "recall/class_2"} <= set(overall), sorted(overall)
        _check_multiclass_summary(summary, project_classes(pushed[1]))
    else:
        # Better than always predicting the mean (the label's standard deviation, ~77).
        assert overall["root_mean_squared_error"] < 75, overall
        assert "auc" not in overall


def test_the_model_card_names_the_tasks_gates_and_classes(pushed):
    """Each task's card (tfxp.pipeline.model_card) resolves its gates' metrics (a Keras class for multiclass),
    with the values the run reported, and its classes."""
    from tfxp.pipeline.model_card import read_card

    task, project_dir, summary, rows = pushed
    card = read_card(summary["pushed_path"])
    assert card is not None and card == read_card(summary["mobile_path"])
    assert card["model"]["task"] == task
    assert card["model"]["classes"] == ([] if task == "regression" else project_classes(project_dir))
    assert card["data"]["files"][0]["rows"] == len(rows)
    for gate in card["evaluation"]["gates"]:
        assert gate["passed"] and gate["value"] == pytest.approx(summary["metrics"]["Overall"][gate["name"]])
    assert card["evaluation"]["gates"] and card["mobile"]["variants"] == sorted(summary["mobile_variants"])


def project_classes(project_dir: Path) -> list[str]:
    from tfxp import project as project_lib

    return list(project_lib.load(project_dir).label.classes)


def _check_multiclass_summary(summary: dict, classes: list[str]) -> None:
    """Per-class results by class name, top-1, and the confusion matrix, in --json and on the console.

    TFMA's per-class precision/recall (top_k=1) must be what the confusion matrix (argmax) gives:
    precision_k = M[k][k] / column k, recall_k = M[k][k] / row k."""
    assert sorted(classes) == sorted(WINE_CULTIVARS)
    matrix = summary["confusion_matrix"]
    assert matrix["classes"] == classes and len(matrix["counts"]) == 3, matrix
    counts = np.array(matrix["counts"], float)
    assert counts.shape == (3, 3) and matrix["no_prediction"] == [0, 0, 0], matrix
    overall = summary["metrics"]["Overall"]
    assert counts.sum() == overall["example_count"]
    np.testing.assert_allclose(np.trace(counts) / counts.sum(), overall["sparse_categorical_accuracy"], atol=1e-6)
    assert list(summary["per_class"]) == classes
    for k, name in enumerate(classes):
        got = summary["per_class"][name]
        assert got["examples"] == counts[k].sum()
        assert got["precision"] == overall[f"precision/class_{k}"]
        np.testing.assert_allclose(got["precision"], counts[k, k] / counts[:, k].sum(), atol=1e-6)
        np.testing.assert_allclose(got["recall"], counts[k, k] / counts[k].sum(), atol=1e-6)

    import click.testing

    from tfxp.pipeline import report
    from tfxp.pipeline.runner import ExitCode, Outcome
    from tfxp.pipeline.summary import Summary

    fields = set(Summary.__dataclass_fields__)
    outcome = Outcome(ExitCode.PUSHED, Summary(**{k: v for k, v in summary.items() if k in fields}))
    printed = click.testing.CliRunner().invoke(click.command()(lambda: report.print_summary(outcome))).output
    assert "per class, overall (top-1: a row counts as the class of its highest probability):" in printed
    assert "confusion matrix, overall (rows: actual class; columns: predicted class, top-1):" in printed
    matrix_lines = printed.split("confusion matrix, overall")[1].splitlines()
    for name, row in zip(classes, matrix["counts"], strict=True):
        assert any(line.split() == [name, *map(str, row)] for line in matrix_lines), (name, printed)
    assert "class_0" not in printed.split("per class, overall")[1], printed


def _served(summary):
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    base = Path(summary["pushed_path"]).parent
    return BackgroundServer(
        ServerOptions(model_base_path=base, model_name=base.name, rest_port=0, grpc_port=0, poll_seconds=0)
    )


def _example_json(row: dict, features: dict[str, str]) -> dict:
    """A CSV row as TF Serving's JSON tf.Example, typed by the project (a float written with a decimal
    point: TF Serving reads `2019` as an int64), blanks and the label left out."""
    cast = {"float": float, "int": int, "string": str}
    return {k: cast[features[k]](v) for k, v in row.items() if k in features and v != ""}


def test_served_over_rest_and_grpc_with_the_tasks_api(pushed):
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

    from tfxp.rows import encode_examples
    from tfxp.serving.client import GrpcClient, RestClient

    task, project_dir, summary, rows = pushed
    label = TASKS[task][1]
    name = Path(summary["pushed_path"]).parent.name
    sample = [{k: v for k, v in r.items() if k != label} for r in rows[:8]]
    server = _served(summary)
    try:
        rest = f"http://127.0.0.1:{server.server.rest_port}"
        target = f"127.0.0.1:{server.server.grpc_port}"
        with RestClient(rest, name) as client:
            by_rest = client.predict(sample)
        with GrpcClient(target, name) as client:
            by_grpc = client.predict(sample)
        with GrpcClient(target, name, signature="predict_raw") as client:
            by_raw = client.predict(sample)
        np.testing.assert_allclose(np.array(by_rest, float), np.array(by_grpc, float), rtol=1e-5)
        np.testing.assert_allclose(np.array(by_raw, float), np.array(by_grpc, float), rtol=1e-5, atol=1e-6)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
        from tfxp import project as project_lib

        features = {c.name: c.dtype for c in project_lib.load(project_dir).inputs}
        examples = [_example_json(r, features) for r in rows[:8]]
        serialized = tf.make_tensor_proto(encode_examples(sample, features), dtype=tf.string)
        if task == "multiclass":
            assert np.array(by_rest).shape == (8, 3)
            np.testing.assert_allclose(np.array(by_rest).sum(axis=1), 1.0, rtol=1e-5)
        else:
            assert np.array(by_rest).shape == (8,)
        if task in ("binary", "multiclass"):
            answer = requests.post(
                f"{rest}/v1/models/{name}:classify",
                json={"signature_name": "classification", "examples": examples},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            classes = ["benign", "malignant"] if task == "binary" else project_classes(project_dir)
            assert [label_ for label_, _ in results[0]] == classes  # the label column's values
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = "classification"
            request.input.example_list.examples.extend(
                tf.train.Example.FromString(e) for e in tf.make_ndarray(serialized)
            )
            response = stub.Classify(request, timeout=30)
            scores = [[c.score for c in r.classes] for r in response.result.classifications]
            np.testing.assert_allclose(scores, [[s for _, s in r] for r in results], rtol=1e-5)
            if task == "multiclass":
                np.testing.assert_allclose(scores, by_rest, rtol=1e-5)
            else:
                np.testing.assert_allclose(np.array(scores)[:, 1], by_rest, rtol=1e-5)
        if task == "regression":
            answer = requests.post(
                f"{rest}/v1/models/{name}:regress",
                json={"signature_name": "regression", "examples": examples},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["results"], by_rest, rtol=1e-5)
            request = regression_pb2.RegressionRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = "regression"
            request.input.example_list.examples.extend(
                tf.train.Example.FromString(e) for e in tf.make_ndarray(serialized)
            )
            response = stub.Regress(request, timeout=30)
            np.testing.assert_allclose([r.value for r in response.result.regressions], by_rest, rtol=1e-5)
        if task == "multiclass":  # no regression signature: TF Serving's :regress refuses, naming it
            answer = requests.post(
                f"{rest}/v1/models/{name}:regress",
                json={"signature_name": "regression", "examples": examples},
                timeout=30,
            )
            assert answer.status_code == 400 and "regression" in answer.json()["error"]
    finally:
        server.stop()


def test_the_pushed_tflite_model_agrees_with_the_saved_model(pushed):
    import tensorflow as tf

    from tfxp.mobile.runtime import MobileModel

    task, project_dir, summary, rows = pushed
    label = TASKS[task][1]
    assert summary["mobile_pushed"], summary
    sample = [{k: v for k, v in r.items() if k != label} for r in rows[:50]]
    mobile = MobileModel(summary["mobile_path"], "float")
    got = np.array(mobile.predict(sample), float)
    spec = json.loads((Path(summary["mobile_path"]) / "model_spec.json").read_text())
    assert spec["task"] == task, spec
    from tfxp import project as project_lib
    from tfxp.rows import encode_examples

    features = {c.name: c.dtype for c in project_lib.load(project_dir).inputs}
    loaded = tf.saved_model.load(summary["pushed_path"])
    output = {"binary": "probability", "multiclass": "probabilities", "regression": "prediction"}[task]
    want = loaded.signatures["serving_default"](examples=tf.constant(encode_examples(sample, features)))[output].numpy()
    scale = 1.0 if task != "regression" else float(np.abs(want).max())
    np.testing.assert_allclose(got / scale, want / scale, atol=1e-4)


def test_a_label_that_is_not_a_column_is_refused_naming_the_columns(tmp_path):
    data = _wine(tmp_path)
    result = _tfxp("init", "--data", str(data), "--label", "variety", cwd=tmp_path)
    assert result.returncode == 2 and "variety" in result.stderr and "cultivar" in result.stderr, result.stderr
    assert not (tmp_path / "wine").exists()


def test_a_column_name_tensorflow_refuses_is_named_and_nothing_is_written(tmp_path):
    """A model input named "mean radius" (breast_cancer's own names) fails deep in TensorFlow
    ("not a valid root scope name"): init refuses it, naming the column, and writes nothing."""
    data = _write(tmp_path / "names.csv", ["mean radius", "y"], [[str(i), "ab"[i % 2]] for i in range(20)])
    result = _tfxp("init", "--data", str(data), "--label", "y", "--dir", "project", cwd=tmp_path)
    assert result.returncode == 2 and "mean radius" in result.stderr and "--ignore 'mean radius'" in result.stderr
    assert not (tmp_path / "project").exists()


def test_the_monitor_reads_each_tasks_logged_requests_and_answers(pushed, tmp_path):
    """`tfxp serve --request-log` -> `tfxp monitor` for each task: every row and answer is read back, the
    pushed version carries its reference, and the prediction is compared by the task's statistic (the
    class for multiclass: L-infinity; a probability or a value: Jensen-Shannon divergence)."""
    from serving_harness import BackgroundServer

    from tfxp.monitoring.monitor import monitor
    from tfxp.serving.client import GrpcClient, RestClient
    from tfxp.serving.options import ServerOptions

    task, project_dir, summary, rows = pushed
    label = TASKS[task][1]
    base = Path(summary["pushed_path"]).parent
    logs = tmp_path / "logs"
    server = BackgroundServer(
        ServerOptions(
            model_base_path=base,
            model_name=base.name,
            rest_port=0,
            grpc_port=0,
            poll_seconds=0,
            request_log_dir=logs,
            log_sampling=1.0,
        )
    )
    sample = [{k: v for k, v in r.items() if k != label} for r in rows[:40]]
    try:
        RestClient(f"http://127.0.0.1:{server.server.rest_port}", base.name).predict(sample)
        GrpcClient(f"127.0.0.1:{server.server.grpc_port}", base.name, signature="predict_raw").predict(sample)
    finally:
        server.stop()
    report = monitor(str(logs), {base.name: str(base)}, 3600, min_rows=1)
    assert report.skipped == []
    [window] = report.windows
    assert (window.rows, window.refused) == (80, 0)
    statistics = {f.feature: f.statistic for f in report.findings}
    assert statistics.pop("<prediction>") == ("l_infinity" if task == "multiclass" else "jensen_shannon_divergence")
    from tfxp import project as P

    # The sklearn tables have no missing cells: every model input is compared with its training statistics.
    assert set(statistics) == {c.name for c in P.load(project_dir).inputs}
