"""ExampleGen's cache follows the input's content, not TFX's size-and-mtime fingerprint (issue 21; TFX's
io_utils.generate_fingerprint, tensorflow/tfx#4226): a `touch` stays cached, a same-size edit with its mtime
restored runs again. Real `tfx run`s in subprocesses on 2,000 taxi rows."""

from __future__ import annotations

import hashlib
import os

import pytest
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import read_csv_rows

pytestmark = pytest.mark.slow


def _loose(work) -> tuple[str, str]:
    """The cache is under test, not the gates: a project whose gates pass any model (as in test_run_report)."""
    return ("--project", loose_taxi_project(work / "taxi"))


def _statuses(summary: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in summary["components"]}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    work = tmp_path_factory.mktemp("content")
    data = write_csv(work / "data" / "taxi.csv", read_csv_rows(limit=2000))
    code, summary, stderr = tfxp_run(data, work / "out", *_loose(work), name="content", train_steps=50)
    assert code == 0, stderr[-3000:]
    return work, data, summary


def _run(work, data):
    code, summary, stderr = tfxp_run(data, work / "out", *_loose(work), name="content", train_steps=50)
    assert code == 0, stderr[-3000:]
    return summary


def test_the_examples_carry_the_content_fingerprint(first):
    """The Examples artifact's `input_fingerprint` (TFX's property) is the files' content digest."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from tfxp.pipeline.example_gen import content_fingerprint

    work, data, _ = first
    config = metadata_store_pb2.ConnectionConfig()
    [config.sqlite.filename_uri] = [str(p) for p in (work / "out").rglob("metadata.db")]
    store = metadata_store.MetadataStore(config)
    [examples] = store.get_artifacts_by_type("Examples")
    expected = content_fingerprint([{"path": "taxi.csv", "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}])
    assert examples.custom_properties["input_fingerprint"].string_value == expected


def test_a_touch_stays_cached_and_a_same_size_edit_runs_again(first):
    work, data, summary = first
    os.utime(data)  # a new mtime, the same bytes
    touched = _run(work, data)
    assert touched["fully_cached"] is True, _statuses(touched)
    assert touched["pushed_version"] == summary["pushed_version"]

    stat = data.stat()
    content = data.read_bytes()
    # Same size: every "Cash" becomes "Cush" (4 bytes each), and the mtime is put back (as `cp -p` would).
    edited = content.replace(b"Cash", b"Cush")
    assert len(edited) == len(content) and edited != content
    data.write_bytes(edited)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data.stat().st_size == stat.st_size and data.stat().st_mtime_ns == stat.st_mtime_ns
    again = tfxp_run(data, work / "out", *_loose(work), name="content", train_steps=50)
    statuses = _statuses(again[1])
    assert statuses["CsvExampleGen"] != "cached", statuses
    assert again[1].get("fully_cached") is not True
