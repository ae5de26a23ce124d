"""PipelineConfig: local and remote (Vertex AI) layouts, Beam args."""
from __future__ import annotations

from pathlib import Path

import pytest

from tfxp.pipeline.config import (
    PROJECT_ROOT,
    PipelineConfig,
    RemoteLayout,
    direct_runner_args,
    with_project_dependency,
)


def test_beam_workers_choose_the_direct_runner_mode():
    assert direct_runner_args(1) == ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    assert direct_runner_args(3) == ("--direct_running_mode=multi_processing", "--direct_num_workers=3")
    with pytest.raises(ValueError):
        direct_runner_args(0)


def test_project_dependency_is_added_unless_the_user_chose_one():
    assert with_project_dependency(("--a",)) == ("--a", f"--setup_file={PROJECT_ROOT}/setup.py")
    assert with_project_dependency((), "/pipeline") == ("--setup_file=/pipeline/setup.py",)
    assert with_project_dependency(("--sdk_container_image=img",)) == ("--sdk_container_image=img",)


def test_local_layout_under_output(tmp_path):
    data = tmp_path / "in" / "rows.csv"
    data.parent.mkdir()
    data.write_text("a\n1\n")
    config = PipelineConfig(name="t", data=data, output=tmp_path / "out")
    assert config.pipeline_root == str(tmp_path / "out" / "pipelines" / "t")
    assert config.serving_dir == str(tmp_path / "out" / "serving" / "t")
    assert config.metadata_path == tmp_path / "out" / "metadata" / "t" / "metadata.db"
    assert (config.data_dir, config.data_pattern) == (str(data.parent), "rows.csv")
    folder = PipelineConfig(data=data.parent)
    assert (folder.data_dir, folder.data_pattern) == (str(data.parent), "*.csv")


def test_remote_layout_reads_project_files_from_the_image_and_writes_under_the_root():
    config = PipelineConfig(name="t", remote=RemoteLayout("gs://b/root/"))
    assert config.pipeline_root == "gs://b/root"
    assert config.serving_dir == "gs://b/root/serving/t" and config.mobile_dir == "gs://b/root/mobile/t"
    assert config.metadata_path is None
    assert config.schema_file == "/pipeline/tfxp/projects/taxi/schema.pbtxt"
    assert (config.data_dir, config.data_pattern) == ("/pipeline/tfxp/projects/taxi/data", "taxi.csv")
    folder = PipelineConfig(data="gs://b/data/", remote=RemoteLayout("gs://b/root"))
    assert (folder.data_dir, folder.data_pattern) == ("gs://b/data", "*.csv")
    one = PipelineConfig(data="gs://b/data/part-1.csv", remote=RemoteLayout("gs://b/root"))
    assert (one.data_dir, one.data_pattern) == ("gs://b/data", "part-1.csv")
    with pytest.raises(ValueError, match="not inside the project"):
        PipelineConfig(data=Path("/etc/hosts.csv"), remote=RemoteLayout("gs://b/root")).data_uri  # noqa: B018
