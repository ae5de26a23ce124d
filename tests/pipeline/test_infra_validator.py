"""InfraValidator (tfxp.pipeline.infra_validator): a real SavedModel served by a real `tfxp serve` subprocess."""

from __future__ import annotations

import json
import os

import pytest
from taxi_data import raw_feature_spec, read_csv_rows, to_example

from tfxp.pipeline import infra_validator

NAME = "taxi"


@pytest.fixture(scope="module")
def examples_uri(tmp_path_factory) -> str:
    """An ExampleGen-like output: gzipped TFRecords of tf.Examples under Split-eval/."""
    import tensorflow as tf

    uri = tmp_path_factory.mktemp("examples")
    os.makedirs(uri / "Split-eval")
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(uri / "Split-eval" / "data.gz"), options) as writer:
        for row in read_csv_rows(limit=30):
            writer.write(to_example(row, raw_feature_spec()))
    return str(uri)


def test_a_good_candidate_passes_with_its_numbers(trained_model, examples_uri):
    result = infra_validator.validate(trained_model[0], examples_uri, NAME, rows=10)
    assert result["status"] == "passed", result["reason"]
    assert result["signatures"] and "serving_default" in result["signatures"]
    assert result["compared"] == 2 * 10 * len(result["signatures"])
    assert result["requests"] >= result["compared"]
    assert result["load_seconds"] > 0 and result["rss_bytes"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["max_abs_diff"] <= infra_validator.TOLERANCE
    json.dumps(result)


def test_a_corrupt_warmup_file_is_refused_and_named(trained_model, examples_uri, monkeypatch):
    monkeypatch.setenv("TFXP_FAILPOINT", infra_validator.FAILPOINT_CORRUPT_WARMUP)
    result = infra_validator.validate(trained_model[0], examples_uri, NAME, rows=5)
    assert result["status"] == "failed"
    assert result["reason"], result


def test_a_staged_copy_with_garbled_variables_is_refused_and_named(trained_model, examples_uri, monkeypatch):
    monkeypatch.setenv("TFXP_FAILPOINT", infra_validator.FAILPOINT_GARBLE_VARIABLES)
    result = infra_validator.validate(trained_model[0], examples_uri, NAME, rows=5)
    assert result["status"] == "failed"
    assert "AVAILABLE" in result["reason"] or "load" in result["reason"], result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A good run (pushed) and a run whose staged warmup file is garbled (not pushed), on 2,000 taxi rows."""
    from pipeline_harness import loose_taxi_project, tfxp_run, write_csv

    work = tmp_path_factory.mktemp("infra_runs")
    data = write_csv(work / "data" / "taxi.csv", read_csv_rows(limit=2000))
    loose = ("--project", loose_taxi_project(work / "taxi"))
    good = tfxp_run(data, work / "good", *loose, name="infra", train_steps=20)
    env = {"TFXP_FAILPOINT": infra_validator.FAILPOINT_CORRUPT_WARMUP}
    bad = tfxp_run(data, work / "bad", *loose, name="infra", train_steps=20, env=env)
    return good, bad


def test_a_good_run_is_pushed_with_the_numbers_recorded(runs):
    code, summary, stderr = runs[0]
    assert code == 0, stderr[-3000:]
    assert summary["pushed"]
    infra = summary["infra_validation"]
    assert infra["status"] == "passed" and infra["compared"] > 0
    assert infra["load_seconds"] > 0 and infra["p99_ms"] >= infra["p50_ms"] > 0 and infra["rss_bytes"] > 0
    card_file = os.path.join(os.path.dirname(summary["model_card"]), "model_card.json")
    with open(card_file) as f:
        assert json.load(f)["infra_validation"] == infra
    print("infra_validation", json.dumps(infra), "wall", summary.get("wall_seconds"))


def test_a_candidate_the_server_cant_serve_is_not_pushed_exit_4(runs):
    code, summary, stderr = runs[1]
    assert code == 4, stderr[-3000:]
    assert not summary["pushed"]
    assert summary["infra_validation"]["status"] == "failed"
    assert summary["infra_validation"]["reason"]
    assert "model not blessed by the InfraValidator" in json.dumps(summary) + stderr


def test_infra_docker_without_docker_is_a_usage_error(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "tfxp.cli", "run", "--output", str(tmp_path / "out"), "--infra-docker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--infra-docker" in proc.stderr and "docker" in proc.stderr
