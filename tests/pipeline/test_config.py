"""PipelineConfig: local and remote (Vertex AI) layouts, Beam args, ExampleGen's train/eval split."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfxp.pipeline import config as config_module
from tfxp.pipeline.config import (
    DEFAULT_DATA,
    DEFAULT_SCHEMA,
    PACKAGE_ROOT,
    PROJECT_ROOT,
    PipelineConfig,
    RemoteLayout,
    direct_runner_args,
    installed_wheel,
    is_source_checkout,
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
    with pytest.raises(ValueError, match="not inside the tfxp package"):
        PipelineConfig(data=Path("/etc/hosts.csv"), remote=RemoteLayout("gs://b/root")).data_uri  # noqa: B018
    # The image holds the package, not the rest of the checkout (Dockerfile: COPY tfxp/).
    with pytest.raises(ValueError, match="not inside the tfxp package"):
        PipelineConfig(data=PROJECT_ROOT / "README.md", remote=RemoteLayout("gs://b/root")).data_uri  # noqa: B018


def test_defaults_are_package_data():
    """A wheel install finds them: setup.py's package_data ships everything under tfxp/projects/."""
    for path in (DEFAULT_DATA, DEFAULT_SCHEMA):
        assert path.is_file() and path.is_relative_to(PACKAGE_ROOT / "projects"), path


def test_source_checkout_needs_setup_py_and_pyproject(tmp_path):
    assert is_source_checkout(PROJECT_ROOT)
    (tmp_path / "setup.py").write_text("")  # e.g. site-packages with a stray setup.py
    assert not is_source_checkout(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    assert is_source_checkout(tmp_path)


def _dist_info(site: Path, name: str, direct_url: str | None) -> None:
    """An installed distribution as pip leaves it: METADATA and, for URL installs, direct_url.json (PEP 610)."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(direct_url)


def test_installed_wheel_is_the_file_pip_installed_from(tmp_path, monkeypatch):
    wheel = tmp_path / "dist dir" / "wheeled-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"PK")
    site = tmp_path / "site"
    _dist_info(site, "wheeled", f'{{"url": "{wheel.as_uri()}", "archive_info": {{}}}}')
    _dist_info(site, "editable", f'{{"url": "{tmp_path.as_uri()}", "dir_info": {{"editable": true}}}}')
    _dist_info(site, "from_index", None)
    monkeypatch.syspath_prepend(str(site))
    assert installed_wheel("wheeled") == wheel  # the URL is percent-encoded ("dist%20dir")
    assert installed_wheel("editable") is None
    assert installed_wheel("from_index") is None
    assert installed_wheel("no-such-distribution-here") is None
    wheel.unlink()
    assert installed_wheel("wheeled") is None


def test_project_dependency_in_a_wheel_install(tmp_path, monkeypatch):
    """site-packages has no setup.py: Beam's --extra_package with the installed wheel, as Beam documents."""
    monkeypatch.setattr(config_module, "is_source_checkout", lambda root=PROJECT_ROOT: False)
    wheel = tmp_path / "tfxp-0.1.0-py3-none-any.whl"
    monkeypatch.setattr(config_module, "installed_wheel", lambda distribution="tfxp": wheel)
    assert with_project_dependency(("--a",)) == ("--a", f"--extra_package={wheel}")
    # Compiled jobs still point at the checkout in the image.
    assert with_project_dependency((), "/pipeline") == ("--setup_file=/pipeline/setup.py",)

    monkeypatch.setattr(config_module, "installed_wheel", lambda distribution="tfxp": None)
    # Local runners' workers import the installed package: nothing to stage.
    assert with_project_dependency(("--a",)) == ("--a",)
    for runner in (
        ("--runner=DirectRunner",),
        ("--runner", "direct"),
        ("--runner=apache_beam.runners.direct.direct_runner.SwitchingDirectRunner",),
        ("--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"),
    ):
        assert with_project_dependency(runner) == runner
    # Remote workers would fail to import tfxp: say so now, and how to fix it.
    for runner in (("--runner=DataflowRunner",), ("--runner", "PortableRunner")):
        with pytest.raises(ValueError, match="--extra_package=.*--sdk_container_image"):
            with_project_dependency(runner)
    chosen = ("--runner=FlinkRunner", "--extra_packages=/w/tfxp.whl")
    assert with_project_dependency(chosen) == chosen
    chosen = ("--runner=FlinkRunner", "--worker_harness_container_image=img")
    assert with_project_dependency(chosen) == chosen


def test_the_taxi_gates_are_written_once_in_its_project_yaml():
    """Issue 19: the gates were in project.yaml and in config.py's defaults, and `tfxp compile` used the
    config.py copy. The defaults are now read from the YAML."""
    from tfxp import project
    from tfxp.pipeline.config import EvalThresholds
    from tfxp.projects import TAXI

    assert EvalThresholds().gates == tuple(project.load(TAXI).thresholds)
    assert [g.metric for g in EvalThresholds().gates] == ["AUC", "BinaryAccuracy"]
    source = (PROJECT_ROOT / "tfxp" / "pipeline" / "config.py").read_text()
    assert "Gate(" not in source
