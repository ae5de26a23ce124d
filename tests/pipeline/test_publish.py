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


# Object stores (gs:// on Vertex AI) go through tf.io.gfile; TF's in-memory
# ram:// file system stands in for one here.
def _ram_base(tmp_path) -> str:
    return f"ram://publish-{tmp_path.name}/serving/taxi"


def test_publish_to_an_object_store(tmp_path):
    import tensorflow as tf

    base = _ram_base(tmp_path)

    def add(staging):
        os.makedirs(os.path.join(staging, "assets.extra"))
        with open(os.path.join(staging, "assets.extra", "warmup"), "w") as f:
            f.write("requests")

    version, path = publish_version(str(_model_dir(tmp_path)), base, add)
    assert path == f"{base}/{version}"
    assert [d.rstrip("/") for d in tf.io.gfile.listdir(base)] == [str(version)]
    with tf.io.gfile.GFile(f"{path}/variables/variables.index", "rb") as f:
        assert f.read() == b"index"
    with tf.io.gfile.GFile(f"{path}/assets.extra/warmup") as f:
        assert f.read() == "requests"
    assert next_version(base) > version
    with pytest.raises(FileExistsError):
        publish_version(str(_model_dir(tmp_path)), base, version=version)


def test_object_store_failure_while_adding_files_publishes_nothing(tmp_path):
    import tensorflow as tf

    base = _ram_base(tmp_path)

    def fail(staging):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_version(str(_model_dir(tmp_path)), base, fail)
    assert tf.io.gfile.listdir(base) == []


def test_object_store_uploads_the_files_a_loader_looks_for_last():
    from pipeline.publish import upload_order

    files = ["saved_model.pb", "variables/variables.index", "assets.extra/tf_serving_warmup_requests",
             "model_spec.json", "model.tflite", "variables/variables.data-00000-of-00001"]
    order = upload_order(files)
    assert set(order[-2:]) == {"saved_model.pb", "model_spec.json"}
    assert sorted(order) == sorted(files)
