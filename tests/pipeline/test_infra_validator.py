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
