"""Atomic version publishing: a version directory appears complete or not at all."""
from __future__ import annotations

import os

import pytest

from pipeline.publish import STAGING_PREFIX, next_version, publish_version


def _model_dir(tmp_path):
    src = tmp_path / "model"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"graph")
    (src / "variables" / "variables.index").write_bytes(b"index")
    return src


def test_publish_copies_everything_and_adds_files(tmp_path):
    base = tmp_path / "serving"

    def add(staging):
        os.makedirs(os.path.join(staging, "assets.extra"))
        open(os.path.join(staging, "assets.extra", "warmup"), "w").close()

    version, path = publish_version(str(_model_dir(tmp_path)), str(base), add)
    assert os.listdir(base) == [str(version)]
    assert sorted(os.listdir(path)) == ["assets.extra", "saved_model.pb", "variables"]
    assert os.path.exists(os.path.join(path, "variables", "variables.index"))


def test_failure_while_adding_files_publishes_nothing(tmp_path):
    base = tmp_path / "serving"

    def fail(staging):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_version(str(_model_dir(tmp_path)), str(base), fail)
    assert os.listdir(base) == []  # neither a version nor a staging directory


def test_versions_increase_even_within_one_second(tmp_path):
    base = tmp_path / "serving"
    src = str(_model_dir(tmp_path))
    first, _ = publish_version(src, str(base))
    second, _ = publish_version(src, str(base))
    assert second > first
    assert next_version(str(base)) > second


def test_existing_version_is_never_overwritten(tmp_path):
    base = tmp_path / "serving"
    src = str(_model_dir(tmp_path))
    version, _ = publish_version(src, str(base))
    with pytest.raises(FileExistsError):
        publish_version(src, str(base), version=version)
    assert not [d for d in os.listdir(base) if d.startswith(STAGING_PREFIX)]
