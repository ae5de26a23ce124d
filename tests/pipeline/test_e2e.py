"""The real pipeline end to end (LocalDagRunner, Beam in-memory) on a 3,000-row slice.

One output directory is shared, in order: a good run pushes; a re-run is fully
cached; broken data stops at the data gate (exit 3); a model trained on shuffled
labels is not blessed (exit 4); an undertrained model, worse than the pushed one on
the same data, is not blessed against that baseline (exit 4). No failure pushes.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
from pipeline_harness import tfxp_run, write_csv
from taxi_data import OUTPUT, read_csv_rows

pytestmark = pytest.mark.slow

NAME = "taxi"
RESOLVERS = ("baseline_resolver", "latest_hyperparameters")  # metadata queries: never "cached"
ROWS = 3000
TRAIN_STEPS = 120
ALL_NODES = [
    "CsvExampleGen",
    "ImportSchemaGen",
    "latest_hyperparameters",  # a metadata query with no input edge: TFX's topological order puts it here
    "StatisticsGen",
    "ExampleValidator",
    "DataGate",
    "DataDriftGate",
    "Transform",
    "Trainer",
    "baseline_resolver",
    "Evaluator",
    "InfraValidator",
    "Pusher",
    "MobilePusher",
]


def _tfxp_run(data: Path, output: Path) -> tuple[int, dict, str]:
    return tfxp_run(data, output, name=NAME, train_steps=TRAIN_STEPS)


def _versions(output: Path) -> list[str]:
    base = output / "serving" / NAME
    return sorted(os.listdir(base)) if base.exists() else []


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_csv_rows(limit=ROWS)


@pytest.fixture(scope="module")
def good_run(workdir, rows):
    data = write_csv(workdir / "data" / "good" / "taxi.csv", rows)
    return _tfxp_run(data, workdir / "out")


@pytest.fixture(scope="module")
def cached_run(workdir, good_run):
    return _tfxp_run(workdir / "data" / "good" / "taxi.csv", workdir / "out")


@pytest.fixture(scope="module")
def broken_run(workdir, rows, cached_run):
    broken = [dict(r) for r in rows]
    for i in range(0, len(broken), 40):
        broken[i]["payment_type"] = "Bitcoin"
        broken[i + 1]["trip_start_hour"] = "99"
    data = write_csv(workdir / "data" / "broken" / "taxi.csv", broken)
    before = _versions(workdir / "out")
    return (*_tfxp_run(data, workdir / "out"), before)


@pytest.fixture(scope="module")
def bad_model_run(workdir, rows, broken_run):
    # Same columns and distributions (passes validation), but tips no longer relate to the trip.
    shuffled = [dict(r) for r in rows]
    tips = [r["tips"] for r in shuffled]
    random.Random(7).shuffle(tips)
    for row, tip in zip(shuffled, tips, strict=True):
        row["tips"] = tip
    data = write_csv(workdir / "data" / "shuffled" / "taxi.csv", shuffled)
    before = _versions(workdir / "out")
    return (*_tfxp_run(data, workdir / "out"), before)


@pytest.fixture(scope="module")
def undertrained_run(workdir, bad_model_run):
    # The good data again, but 2 training steps: worse than the pushed model on the same eval split.
    before = _versions(workdir / "out")
    return (*tfxp_run(workdir / "data" / "good" / "taxi.csv", workdir / "out", name=NAME, train_steps=2), before)


def test_good_run_pushes_a_blessed_model(good_run, workdir):
    code, summary, stderr = good_run
    assert code == 0, summary.get("error")
    assert summary["result"] == "pushed"
    assert summary["blessed"] is True
    assert summary["anomalies"] == []
    assert sum(summary["rows"].values()) == ROWS
    assert set(summary["rows"]) == {"train", "eval"}
    overall = summary["metrics"]["Overall"]
    assert overall["auc"] > 0.8 and overall["example_count"] == summary["rows"]["eval"]
    assert any(s.startswith("trip_start_hour=") for s in summary["metrics"])
    assert any(s.startswith("payment_type=") for s in summary["metrics"])
    assert [c["id"] for c in summary["components"]] == ALL_NODES
    assert all(c["status"] == "finished" for c in summary["components"])
    for node in ALL_NODES:  # progress lines on stderr
        assert node in stderr
    # Nothing else: TF's and the TFLite converter's C++ log lines go to the log file.
    assert all(re.fullmatch(r"  \S+ +(started|finished +[\d.]+ s)", line) for line in stderr.splitlines()), stderr
    assert "tf_tfl_flatbuffer_helpers" in open(summary["log_file"]).read()
    assert _versions(workdir / "out") == [summary["pushed_version"]]
    # The mobile push carries the same version number as the serving push.
    assert summary["mobile_pushed"] is True
    assert summary["mobile_path"] == str(workdir / "out" / "mobile" / NAME / summary["pushed_version"])
    assert set(summary["mobile_variants"]) == {"float", "quant"}
    assert {"model.tflite", "model_quant.tflite", "model_spec.json"} <= set(os.listdir(summary["mobile_path"]))


def test_mlmd_records_every_component(good_run, workdir):
    from tfxp.pipeline.mlmd import MetadataReader

    reader = MetadataReader(workdir / "out" / "metadata" / NAME / "metadata.db")
    for node in ALL_NODES:
        run = reader.latest(NAME, node)
        assert run is not None, node
        assert run.state == "COMPLETE", (node, run.state)
    assert reader.latest(NAME, "Trainer").output("model") is not None


def test_pushed_version_loads_predicts_and_carries_warmup(good_run, rows):
    import tensorflow as tf
    from taxi_data import raw_feature_spec, to_example
    from tensorflow_serving.apis import prediction_log_pb2

    _, summary, _ = good_run
    path = summary["pushed_path"]
    loaded = tf.saved_model.load(path)
    examples = tf.constant([to_example(r, raw_feature_spec()) for r in rows[:20]])
    probability = loaded.signatures["serving_default"](examples=examples)[OUTPUT].numpy()
    assert probability.shape == (20,) and ((probability >= 0) & (probability <= 1)).all()

    warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    records = list(tf.data.TFRecordDataset(warmup))
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    request = log.predict_log.request
    assert request.model_spec.name == NAME
    # The warmup request is a real, servable request for this version.
    tensor = tf.make_ndarray(request.inputs["examples"])
    out = loaded.signatures["serving_default"](examples=tf.constant(tensor))
    assert out[OUTPUT].shape[0] == len(tensor) > 0
    assert not [d for d in os.listdir(os.path.dirname(path)) if d.startswith(".")], "staging dir left behind"


def test_rerun_is_fully_cached(cached_run, good_run, workdir):
    code, summary, _ = cached_run
    assert code == 0
    statuses = {c["id"]: c["status"] for c in summary["components"]}
    assert all(s == "cached" for node, s in statuses.items() if node not in RESOLVERS), statuses
    assert summary["fully_cached"] is True
    assert summary["pushed_version"] == good_run[1]["pushed_version"]
    assert len(_versions(workdir / "out")) == 1


def test_broken_data_exits_3_names_features_and_pushes_nothing(broken_run, workdir):
    code, summary, _, before = broken_run
    assert code == 3, summary.get("error")
    assert summary["result"] == "anomalies"
    features = {a["feature"] for a in summary["anomalies"]}
    assert {"payment_type", "trip_start_hour"} <= features
    assert "payment_type" in summary["error"] and "trip_start_hour" in summary["error"]
    ran = [c["id"] for c in summary["components"]]
    assert "Transform" not in ran and "Trainer" not in ran and "Pusher" not in ran
    assert summary["pushed"] is False and summary["mobile_pushed"] is False
    assert _versions(workdir / "out") == before


def test_model_on_shuffled_labels_is_not_blessed_and_not_pushed(bad_model_run, workdir):
    code, summary, _, before = bad_model_run
    assert code == 4, summary.get("error")
    assert summary["blessed"] is False
    assert summary["baseline_model"], "the earlier blessed model should be the baseline"
    assert summary["failures"] and any(f["metric"].startswith("auc") for f in summary["failures"])
    assert "auc" in summary["error"]
    assert summary["pushed"] is False and summary["mobile_pushed"] is False
    assert _versions(workdir / "out") == before


def test_a_model_worse_than_the_pushed_one_is_not_pushed(undertrained_run, good_run, workdir):
    code, summary, _, before = undertrained_run
    assert code == 4, summary.get("error")
    assert summary["baseline_model"]
    failed = {f["metric"] for f in summary["failures"]}
    # Every gated metric is compared with the baseline, accuracy as well as AUC.
    assert {"auc (change vs baseline)", "binary_accuracy (change vs baseline)"} <= failed, summary["failures"]
    assert "binary_accuracy (change vs baseline)" in summary["error"]
    assert _versions(workdir / "out") == before == [good_run[1]["pushed_version"]]
