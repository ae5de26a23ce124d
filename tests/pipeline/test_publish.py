"""Atomic version publishing: a version directory appears complete or not at all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tfxp.pipeline.publish import (
    LATEST_FILE,
    PUSH_RECORD,
    STAGING_PREFIX,
    next_version,
    publish_latest,
    publish_version,
    read_latest,
    read_push_record,
    source_digest,
)


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
    assert sorted(os.listdir(path)) == ["assets.extra", "saved_model.pb", PUSH_RECORD, "variables"]
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


def test_only_ascii_decimal_names_are_versions(tmp_path):
    base = tmp_path / "serving"
    for name in ("²", "12x", "000123"):
        (base / name).mkdir(parents=True)
    assert next_version(str(base)) >= 124  # "²".isdigit() is True, int("²") fails: ignored


def test_existing_version_is_never_overwritten(tmp_path):
    base = tmp_path / "serving"
    src = str(_model_dir(tmp_path))
    version, _ = publish_version(src, str(base))
    with pytest.raises(FileExistsError):
        publish_version(src, str(base), version=version)
    assert not [d for d in os.listdir(base) if d.startswith(STAGING_PREFIX)]


# Idempotency: a push record inside each version names the model it came from.

MODEL_URI = "/pipelines/taxi/Trainer/model/7"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _staging_dirs(base) -> list[str]:
    return [d for d in os.listdir(base) if d.startswith(STAGING_PREFIX)]


def test_version_carries_a_push_record_naming_the_model(tmp_path):
    src = str(_model_dir(tmp_path))
    version, path = publish_version(src, str(tmp_path / "serving"), source_id=MODEL_URI)
    record = read_push_record(path)
    assert record["source_id"] == source_digest(MODEL_URI) and record["version"] == version
    assert record["pushed_at"].endswith("Z")
    assert record["files"] == ["saved_model.pb", "variables/variables.index"]
    # Issue 18: a folder served as is publishes its record: no build-machine path in it.
    text = (tmp_path / "serving" / str(version) / PUSH_RECORD).read_text()
    assert "source" not in record and MODEL_URI not in text and str(tmp_path) not in text and src not in text
    assert set(record) == {"source_id", "version", "pushed_at", "files"}


def test_a_version_recorded_with_the_uri_itself_is_still_found(tmp_path):
    """Records written before the digest held the model URI: crash recovery still recognises them."""
    import json

    base = tmp_path / "serving"
    (base / "42").mkdir(parents=True)
    (base / "42" / PUSH_RECORD).write_text(json.dumps({"source_id": MODEL_URI, "version": 42, "files": []}))
    src = str(_model_dir(tmp_path))
    assert publish_version(src, str(base), source_id=MODEL_URI) == (42, str(base / "42"))
    assert sorted(os.listdir(base)) == ["42"]


def test_same_model_is_not_pushed_twice(tmp_path):
    base = tmp_path / "serving"
    src = _model_dir(tmp_path)
    first = publish_version(str(src), str(base), source_id=MODEL_URI)
    (src / "saved_model.pb").write_bytes(b"changed")  # would show if it were copied again
    calls = []
    again = publish_version(str(src), str(base), add_files=calls.append, source_id=MODEL_URI)
    assert again == first
    assert calls == [] and os.listdir(base) == [str(first[0])]
    assert (base / str(first[0]) / "saved_model.pb").read_bytes() == b"graph"


def test_another_model_gets_a_new_version(tmp_path):
    base = tmp_path / "serving"
    src = str(_model_dir(tmp_path))
    first, _ = publish_version(src, str(base), source_id=MODEL_URI)
    second, _ = publish_version(src, str(base), source_id="/pipelines/taxi/Trainer/model/8")
    assert second > first
    # The older model is still found after a newer one was pushed.
    assert publish_version(src, str(base), source_id=MODEL_URI)[0] == first
    assert sorted(os.listdir(base)) == [str(first), str(second)]


def test_fixed_version_with_the_same_model_is_returned(tmp_path):
    # The mobile push: the version number is the serving push's.
    base = tmp_path / "mobile"
    src = str(_model_dir(tmp_path))
    assert publish_version(src, str(base), version=42, source_id=MODEL_URI) == (42, str(base / "42"))
    assert publish_version(src, str(base), version=42, source_id=MODEL_URI) == (42, str(base / "42"))
    assert os.listdir(base) == ["42"]


def test_fixed_version_held_by_another_model_raises(tmp_path):
    base = tmp_path / "mobile"
    src = str(_model_dir(tmp_path))
    publish_version(src, str(base), version=42, source_id="/pipelines/taxi/Trainer/model/1")
    with pytest.raises(FileExistsError, match="does not name this model"):
        publish_version(src, str(base), version=42, source_id=MODEL_URI)
    os.makedirs(base / "43")  # pushed before push records existed
    with pytest.raises(FileExistsError):
        publish_version(src, str(base), version=43, source_id=MODEL_URI)
    (base / "43" / PUSH_RECORD).write_text("{not json")
    with pytest.raises(FileExistsError):
        publish_version(src, str(base), version=43, source_id=MODEL_URI)
    assert sorted(os.listdir(base)) == ["42", "43"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_dirs_are_removed_live_ones_kept(tmp_path):
    base = tmp_path / "serving"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f"{STAGING_PREFIX}100-{_dead_pid()}",
            "live": f"{STAGING_PREFIX}101-{live.pid}",
            "ours": f"{STAGING_PREFIX}102-{os.getpid()}",  # an earlier process had our pid (containers)
            "garbled": f"{STAGING_PREFIX}junk",
        }
        for name in names.values():
            os.makedirs(base / name / "variables")
        version, _ = publish_version(str(_model_dir(tmp_path)), str(base), source_id=MODEL_URI)
        assert sorted(os.listdir(base)) == sorted([names["live"], str(version)])
    finally:
        live.kill()
        live.wait()


def test_a_push_killed_before_its_rename_is_completed_by_the_next(tmp_path):
    # A real SIGKILL at the fail point, in a child process; then the same push here.
    base = tmp_path / "serving"
    src = str(_model_dir(tmp_path))
    code = (
        "from tfxp.pipeline.publish import publish_version; "
        f"publish_version({src!r}, {str(base)!r}, source_id={MODEL_URI!r})"
    )
    env = dict(os.environ, TFXP_FAILPOINT="publish:staged")
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT).returncode == -9
    [staging] = os.listdir(base)
    assert staging.startswith(STAGING_PREFIX)
    env["TFXP_FAILPOINT"] = "publish:renamed"
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT).returncode == -9
    [version] = os.listdir(base)  # the first one's staging dir is gone
    assert publish_version(src, str(base), source_id=MODEL_URI) == (int(version), str(base / version))
    assert os.listdir(base) == [version]


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


def test_object_store_push_is_idempotent(tmp_path):
    import tensorflow as tf

    base = _ram_base(tmp_path)
    src = str(_model_dir(tmp_path))
    version, path = publish_version(src, base, source_id=MODEL_URI)
    assert read_push_record(path)["source_id"] == source_digest(MODEL_URI)
    calls = []
    assert publish_version(src, base, add_files=calls.append, source_id=MODEL_URI) == (version, path)
    assert calls == []
    assert publish_version(src, base, version=version, source_id=MODEL_URI) == (version, path)
    with pytest.raises(FileExistsError):
        publish_version(src, base, version=version, source_id="/pipelines/taxi/Trainer/model/8")
    assert [d.rstrip("/") for d in tf.io.gfile.listdir(base)] == [str(version)]


def test_object_store_resumes_an_interrupted_upload(tmp_path):
    # A killed upload can't clean up: its record (uploaded first) lets the next push finish it.
    import tensorflow as tf

    base = _ram_base(tmp_path)
    src = str(_model_dir(tmp_path))
    version, path = publish_version(src, base, version=42, source_id=MODEL_URI)
    tf.io.gfile.remove(f"{path}/saved_model.pb")
    assert publish_version(src, base, version=42, source_id=MODEL_URI) == (version, path)
    with tf.io.gfile.GFile(f"{path}/saved_model.pb", "rb") as f:
        assert f.read() == b"graph"
    assert [d.rstrip("/") for d in tf.io.gfile.listdir(base)] == ["42"]


def test_object_store_uploads_the_files_a_loader_looks_for_last():
    from tfxp.pipeline.publish import upload_order

    files = [
        "saved_model.pb",
        "variables/variables.index",
        "assets.extra/tf_serving_warmup_requests",
        "model_spec.json",
        "model.tflite",
        "variables/variables.data-00000-of-00001",
    ]
    order = upload_order(files)
    assert set(order[-2:]) == {"saved_model.pb", "model_spec.json"}
    assert sorted(order) == sorted(files)


def test_find_pushed_and_latest_version(tmp_path):
    from tfxp.pipeline.publish import find_pushed, latest_version

    base = tmp_path / "serving"
    assert latest_version(str(base)) is None
    source = str(_model_dir(tmp_path))
    first, first_path = publish_version(source, str(base), source_id="model-a")
    second, _ = publish_version(source, str(base), source_id="model-b")
    assert find_pushed(str(base), "model-a") == (first, first_path)
    assert find_pushed(str(base), "model-c") is None
    assert latest_version(str(base)) == second > first


# latest.json: the pointer apps fetch (issue 18).


def _published(base, version: int, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = os.path.join(base, str(version), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


def test_latest_points_at_a_complete_version_with_relative_paths_and_digests(tmp_path):
    import hashlib
    import json

    base = str(tmp_path / "mobile" / "taxi")
    _published(base, 7, {"model_spec.json": b"{}", "model.tflite": b"flat"})
    pointer = publish_latest(base, 7, ["model_spec.json", "model.tflite"], extra={"model_name": "taxi"})
    on_disk = json.loads((tmp_path / "mobile" / "taxi" / LATEST_FILE).read_text())
    assert on_disk == pointer == read_latest(base)
    assert pointer["version"] == 7 and pointer["path"] == "7/" and pointer["model_name"] == "taxi"
    assert pointer["files"]["model.tflite"] == {
        "path": "7/model.tflite",
        "sha256": hashlib.sha256(b"flat").hexdigest(),
        "bytes": 4,
    }
    assert str(tmp_path) not in json.dumps(pointer)
    # Each listed path, resolved against the pointer's folder, is the file it hashes.
    for item in pointer["files"].values():
        with open(os.path.join(base, item["path"]), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == item["sha256"]
    assert sorted(os.listdir(base)) == ["7", LATEST_FILE]  # no temporary file left beside it


def test_latest_never_moves_back_nor_points_at_a_missing_file(tmp_path):
    base = str(tmp_path / "mobile")
    _published(base, 9, {"model_spec.json": b"{}"})
    _published(base, 5, {"model_spec.json": b"{}"})
    assert publish_latest(base, 9, ["model_spec.json"])["version"] == 9
    assert publish_latest(base, 5, ["model_spec.json"]) is None  # an older model blessed again
    assert read_latest(base)["version"] == 9
    _published(base, 10, {"model_spec.json": b"{}"})
    with pytest.raises(FileNotFoundError):
        publish_latest(base, 10, ["model_spec.json", "model.tflite"])  # half a version: no pointer
    assert read_latest(base)["version"] == 9


def test_latest_on_an_object_store(tmp_path):
    import tensorflow as tf

    base = _ram_base(tmp_path)
    version, path = publish_version(str(_model_dir(tmp_path)), base, source_id=MODEL_URI)
    assert read_latest(base) is None
    pointer = publish_latest(base, version, ["saved_model.pb", PUSH_RECORD])
    assert read_latest(base) == pointer and pointer["files"]["saved_model.pb"]["bytes"] == len(b"graph")
    assert sorted(d.rstrip("/") for d in tf.io.gfile.listdir(base)) == sorted([str(version), LATEST_FILE])
