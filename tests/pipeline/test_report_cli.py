"""`tfxp report`'s refusals (issue 21), each a usage error naming what exists, on real (empty) ML Metadata stores;
the report of real runs is tested in test_run_report.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _tfxp(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _empty_store(path: Path) -> None:
    """A real MLMD SQLite store with no run in it (what a pipeline's metadata.db is before its first run)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    metadata_store.MetadataStore(config)
    assert path.is_file()


@pytest.fixture
def two_pipelines(tmp_path) -> Path:
    out = tmp_path / "out"
    for name in ("cars", "wine"):
        _empty_store(out / "metadata" / name / "metadata.db")
    return out


def test_no_metadata_at_output_is_a_usage_error(tmp_path):
    done = _tfxp("report", "--output", str(tmp_path / "nothing"), "--html", str(tmp_path / "r.html"))
    assert done.returncode == 2, done.stderr
    assert "no pipeline metadata under" in done.stderr and "tfxp run --output" in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_several_pipelines_need_name_and_an_unknown_name_lists_them(two_pipelines, tmp_path):
    html = str(tmp_path / "r.html")
    done = _tfxp("report", "--output", str(two_pipelines), "--html", html)
    assert done.returncode == 2 and "holds 2 pipelines (cars, wine): give --name" in done.stderr, done.stderr
    done = _tfxp("report", "--output", str(two_pipelines), "--name", "taxi", "--html", html)
    assert done.returncode == 2, done.stderr
    assert "no metadata for pipeline 'taxi'" in done.stderr and "cars, wine" in done.stderr, done.stderr


def test_metadata_without_a_run_is_a_usage_error(two_pipelines, tmp_path):
    done = _tfxp("report", "--output", str(two_pipelines), "--name", "cars", "--html", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "the metadata holds no pipeline run" in done.stderr, done.stderr
    done = _tfxp(
        "report", "--output", str(two_pipelines), "--name", "cars", "--version", "7", "--html", str(tmp_path / "r.html")
    )
    assert done.returncode == 2 and "the metadata holds no pipeline run" in done.stderr, done.stderr


def test_html_in_a_missing_folder_is_refused_before_any_work(two_pipelines, tmp_path):
    done = _tfxp("report", "--output", str(two_pipelines), "--html", str(tmp_path / "no" / "r.html"))
    assert done.returncode == 2 and "no folder" in done.stderr, done.stderr


def test_help_lists_the_command_and_its_exit_codes():
    done = _tfxp("--help")
    assert done.returncode == 0 and "report" in done.stdout
    done = _tfxp("report", "--help")
    assert done.returncode == 0
    assert "Exit codes:" in done.stdout and "--version V" in done.stdout and "--html FILE" in done.stdout
