"""Model repository behaviour: hot swap, half-written versions, version policies and labels,
broken versions (through a real server), and TF Serving's version-directory rule (zero-padded and
non-ASCII-digit names; one bad directory, version or model never stops the others). Runs only
against the project's own server (it writes model directories)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from serving_harness import MODEL_NAME, publish, start_server
from taxi_data import raw_feature_spec, read_csv_rows, to_example
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfxp.serving.config import VersionPolicy
from tfxp.serving.repository import ModelConfig, ModelRepository, is_version_name, parse_version

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # test_servable's model builders live beside this file
from test_servable import save_doubler_without_variables_tf1, save_half_plus_two_tf1


@pytest.fixture(scope="module")
def examples() -> list[bytes]:
    return [to_example(r, raw_feature_spec()) for r in read_csv_rows(limit=8)]


def _status(rest_url: str) -> dict[int, str]:
    body = requests.get(f"{rest_url}/v1/models/{MODEL_NAME}", timeout=5).json()
    return {int(s["version"]): s["state"] for s in body["model_version_status"]}


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _grpc_predict(stub, examples) -> int:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    return stub.Predict(request, timeout=10).model_spec.version.value


def test_new_version_swaps_in_with_zero_failed_requests(model_dir, tmp_path, examples):
    base = tmp_path / MODEL_NAME
    publish(model_dir, base, 1)
    server = start_server(base, poll_seconds=0.2)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}")
    )
    body = json.dumps({"instances": [{"b64": __import__("base64").b64encode(e).decode()} for e in examples]})
    failures, versions_seen, counts = [], set(), {"rest": 0, "grpc": 0}
    stop = threading.Event()

    def rest_loop():
        session = requests.Session()
        while not stop.is_set():
            r = session.post(f"{rest_url}/v1/models/{MODEL_NAME}:predict", data=body, timeout=10)
            counts["rest"] += 1
            if r.status_code != 200 or len(r.json()["predictions"]) != len(examples):
                failures.append(("rest", r.status_code, r.text))

    def grpc_loop():
        while not stop.is_set():
            try:
                versions_seen.add(_grpc_predict(stub, examples))
                counts["grpc"] += 1
            except grpc.RpcError as exc:
                failures.append(("grpc", exc.code(), exc.details()))

    threads = [threading.Thread(target=rest_loop), threading.Thread(target=grpc_loop)]
    try:
        for t in threads:
            t.start()
        _wait_for(lambda: counts["rest"] > 5 and counts["grpc"] > 5)
        publish(model_dir, base, 2)
        _wait_for(lambda: _status(rest_url).get(2) == "AVAILABLE" and _status(rest_url).get(1) == "END")
        _wait_for(lambda: 2 in versions_seen)
        seen_after = counts["grpc"]
        _wait_for(lambda: counts["grpc"] > seen_after + 5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    assert failures == []
    assert versions_seen == {1, 2}
    assert counts["rest"] > 10 and counts["grpc"] > 10


def test_half_written_or_broken_versions_are_never_served(model_dir, tmp_path, examples):
    base = tmp_path / MODEL_NAME
    publish(model_dir, base, 1)
    server = start_server(base, poll_seconds=0.2)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}")
    )
    try:
        # A copy in progress, the way a non-atomic writer leaves it: variables not there yet.
        partial = base / "5"
        shutil.copytree(model_dir, partial, ignore=shutil.ignore_patterns("variables*"))
        # A version whose SavedModel is corrupt.
        corrupt = base / "4"
        shutil.copytree(model_dir, corrupt)
        (corrupt / "saved_model.pb").write_bytes(b"not a SavedModel")
        time.sleep(1.5)  # several polls
        states = _status(rest_url)
        assert 5 not in states, states  # the half-written directory is invisible
        assert states[4] == "END"  # the corrupt one failed to load and says so
        body = requests.get(f"{rest_url}/v1/models/{MODEL_NAME}/versions/4", timeout=5).json()
        assert body["model_version_status"][0]["status"]["error_code"] != "OK"
        assert _grpc_predict(stub, examples) == 1  # still served by the good version
        # Once the copy completes, the version loads and takes over.
        shutil.copytree(Path(model_dir) / "variables", partial / "variables")
        _wait_for(lambda: _status(rest_url).get(5) == "AVAILABLE")
        assert _grpc_predict(stub, examples) == 5
    finally:
        server.stop()


def test_version_policy_and_labels_from_a_model_config_file(model_dir, tmp_path, examples):
    base = tmp_path / MODEL_NAME
    for version in (1, 2, 3):
        publish(model_dir, base, version)
    config = tmp_path / "models.config"
    config.write_text(f"""
model_config_list {{
  config {{
    name: "{MODEL_NAME}"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ latest {{ num_versions: 2 }} }}
    version_labels {{ key: "stable" value: 2 }}
    version_labels {{ key: "canary" value: 3 }}
  }}
}}
""")
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    # Labels in the first config need the flag: nothing is loaded when it is applied (see test_label_parity).
    options = ServerOptions(
        model_config_file=config,
        rest_port=0,
        grpc_port=0,
        poll_seconds=0,
        allow_version_labels_for_unavailable_models=True,
    )
    server = BackgroundServer(options)
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    try:
        assert _status(rest_url) == {3: "AVAILABLE", 2: "AVAILABLE"}
        b64 = __import__("base64").b64encode(examples[0]).decode()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}")
        )
        for label, version in (("stable", 2), ("canary", 3)):
            r = requests.post(
                f"{rest_url}/v1/models/{MODEL_NAME}/labels/{label}:predict",
                data=json.dumps({"instances": [{"b64": b64}]}),
                timeout=10,
            )
            assert r.status_code == 200, r.text
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.version_label = MODEL_NAME, label
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples[:1], dtype=tf.string))
            assert stub.Predict(request, timeout=10).model_spec.version.value == version
            # Status ignores the label, as TF Serving's get_model_status_impl.cc: every version.
            r = requests.get(f"{rest_url}/v1/models/{MODEL_NAME}/labels/{label}", timeout=5)
            assert [s["version"] for s in r.json()["model_version_status"]] == ["3", "2"]
        r = requests.post(
            f"{rest_url}/v1/models/{MODEL_NAME}/labels/nope:predict",
            data=json.dumps({"instances": [{"b64": b64}]}),
            timeout=10,
        )
        # ServerCore::GetModelVersionForLabel: INVALID_ARGUMENT.
        assert r.status_code == 400 and r.json() == {"error": "Unrecognized servable version label: nope"}
        r = requests.post(
            f"{rest_url}/v1/models/{MODEL_NAME}/versions/1:predict",
            data=json.dumps({"instances": [{"b64": b64}]}),
            timeout=10,
        )
        assert r.status_code == 404  # version 1 is outside latest-2
    finally:
        server.stop()


def test_model_names_with_path_tricks_are_refused(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "../etc" base_path: "/tmp/x" } }')
    from tfxp.serving.config import ConfigError, load_model_server_config

    with pytest.raises(ConfigError):
        load_model_server_config(config)


# ------------------------------------------------------------------ version directories (TF Serving's rule)
# Small TF1 models built by test_servable.py's builders; the repository is driven directly (no
# ports) except where a test says it goes through the server.


@pytest.mark.parametrize(
    "name, version",
    [
        ("1", 1),
        ("00000123", 123),
        ("0", 0),
        ("0007", 7),
        ("9223372036854775807", 2**63 - 1),  # int64's largest
        ("0" * 300 + "5", 5),  # leading zeros don't count towards int64's 19 digits
        ("9223372036854775808", None),  # beyond int64: not a version (safe_strto64 fails)
        ("1" * 4301, None),  # no ValueError from Python's 4,300-digit int() limit
        ("²", None),
        ("１２", None),
        ("٣", None),  # str.isdigit() is true, they aren't ASCII decimals
        ("-1", None),
        (" 1", None),
        ("1 ", None),
        ("+1", None),
        ("1.0", None),
        ("", None),
        ("v1", None),
    ],
)
def test_parse_version(name, version):
    assert parse_version(name) == version
    assert is_version_name(name) is (version is not None)


@pytest.fixture(scope="module")
def tf1_model(tmp_path_factory) -> Path:
    """One TF1 half_plus_two SavedModel to copy into version directories."""
    return save_half_plus_two_tf1(tmp_path_factory.mktemp("tf1") / "model")


def _repository(*configs: ModelConfig) -> ModelRepository:
    return ModelRepository(list(configs), warm_up=False)


def _states(repository: ModelRepository, name: str) -> dict[int, str]:
    return {s.version: s.state for s in repository.status(name)}


def test_zero_padded_version_is_loaded_from_its_own_directory(tf1_model, tmp_path):
    base = tmp_path / "half_plus_two"
    shutil.copytree(tf1_model, base / "00000123")
    repository = _repository(ModelConfig("half_plus_two", str(base)))
    repository.poll_once()
    assert _states(repository, "half_plus_two") == {123: "AVAILABLE"}
    with repository.servable("half_plus_two", 123) as servable:
        assert servable.path == str(base / "00000123")
        assert servable.run("serving_default", {"x": np.array([2.0, 3.0, 4.0], np.float32)})["y"].tolist() == [
            3.0,
            3.5,
            4.0,
        ]


def test_bad_directories_and_versions_never_stop_the_others(tf1_model, tmp_path, caplog):
    good, late = tmp_path / "good", tmp_path / "late"
    shutil.copytree(tf1_model, good / "1")
    repository = _repository(ModelConfig("good", str(good), VersionPolicy(kind="all")), ModelConfig("late", str(late)))
    caplog.set_level(logging.INFO, logger="tfxp.serving")
    repository.poll_once()
    assert _states(repository, "good") == {1: "AVAILABLE"}
    for name in ("²", "99999999999999999999", "0002", "3"):
        shutil.copytree(tf1_model, good / name)
    (good / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")  # complete but corrupt
    shutil.copytree(tf1_model, good / "001")  # a second directory for version 1
    shutil.copytree(tf1_model, late / "007")
    for _ in range(2):
        repository.poll_once()
    assert _states(repository, "good") == {1: "AVAILABLE", 2: "AVAILABLE", 3: "END"}
    [broken] = repository.status("good", 3)
    assert broken.error_code != "OK" and "Cannot parse file" in broken.error_message
    assert _states(repository, "late") == {7: "AVAILABLE"}
    with repository.servable("good", 1) as servable:
        assert servable.path == str(good / "1")  # of "001" and "1" the last by name, as TF Serving
    with repository.servable("good", 2) as servable:
        assert servable.path == str(good / "0002")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("late does not exist" in m for m in messages) == 1  # warned once, not on every poll
    assert sum("directories 001/, 1/ are all version 1" in m for m in messages) == 1
    assert sum(m.startswith("failed to load good version 3 ") for m in messages) == 1  # not retried unchanged
    assert sum(m.startswith("loaded late version 7 from ") for m in messages) == 1


def test_a_failed_version_is_retried_once_its_files_change(tf1_model, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(tf1_model, base / "1")
    pb = base / "1" / "saved_model.pb"
    good_bytes = pb.read_bytes()
    pb.write_bytes(b"garbage")
    repository = _repository(ModelConfig("m", str(base)))
    repository.poll_once()
    assert _states(repository, "m") == {1: "END"}
    pb.write_bytes(good_bytes)
    repository.poll_once()
    assert _states(repository, "m") == {1: "AVAILABLE"}


def test_a_model_whose_poll_fails_does_not_stop_the_others(tf1_model, tmp_path, caplog):
    class BrokenPolicy(VersionPolicy):  # a fake of our own layer: any unexpected error in one model's sync
        def select(self, available):
            raise RuntimeError("policy bug")

    shutil.copytree(tf1_model, tmp_path / "a" / "1")
    shutil.copytree(tf1_model, tmp_path / "b" / "1")
    repository = _repository(
        ModelConfig("a", str(tmp_path / "a"), BrokenPolicy()), ModelConfig("b", str(tmp_path / "b"))
    )
    repository.poll_once()
    assert _states(repository, "b") == {1: "AVAILABLE"}
    assert any("polling model a failed" in r.getMessage() for r in caplog.records)


def test_base_path_missing_or_empty_is_a_warning(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_junk" / "not_a_version").mkdir(parents=True)
    (tmp_path / "only_junk" / "4").mkdir()  # a version directory without a SavedModel yet
    caplog.set_level(logging.WARNING, logger="tfxp.serving")
    repository = _repository(*(ModelConfig(n, str(tmp_path / n)) for n in ("missing", "empty", "only_junk")))
    repository.poll_once()
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(warnings) == 3
    assert f"base path {tmp_path / 'missing'} of model missing does not exist" in warnings
    assert any(w.startswith(f"no versions of model empty found under base path {tmp_path / 'empty'}") for w in warnings)
    assert not repository.ready()


def test_one_log_line_per_version_loaded_unloaded_or_failed(tf1_model, tmp_path, caplog):
    base = tmp_path / "m"
    shutil.copytree(tf1_model, base / "1")
    caplog.set_level(logging.INFO, logger="tfxp.serving")
    repository = _repository(ModelConfig("m", str(base)))
    repository.poll_once()
    shutil.copytree(tf1_model, base / "2")
    repository.poll_once()
    shutil.copytree(tf1_model, base / "3")
    (base / "3" / "saved_model.pb").write_bytes(b"")
    repository.poll_once()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("tfxp.serving")]
    assert [level for level, _ in lines] == ["INFO", "INFO", "INFO", "ERROR"]
    assert lines[0][1].startswith(f"loaded m version 1 from {base / '1'} in ")
    assert lines[1][1].startswith(f"loaded m version 2 from {base / '2'} in ")
    assert lines[2][1] == "unloaded m version 1"
    assert lines[3][1].startswith(f"failed to load m version 3 from {base / '3'}: ")
    assert "\n" not in lines[3][1]


def test_tf1_model_without_variables_is_served(tmp_path):
    base = tmp_path / "d"
    save_doubler_without_variables_tf1(base / "1")
    repository = _repository(ModelConfig("d", str(base)))
    repository.poll_once()
    assert _states(repository, "d") == {1: "AVAILABLE"}


def test_unloaded_versions_free_their_session(tf1_model, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(tf1_model, base / "1")
    repository = _repository(ModelConfig("m", str(base)))
    repository.poll_once()
    with repository.servable("m") as first:
        pass
    shutil.copytree(tf1_model, base / "2")
    repository.poll_once()
    assert first._session._closed


# ------------------------------------------------------------------ through the server (REST and gRPC)


def test_tf_servings_quickstart_layout_serves_over_both_apis(tf1_model, tmp_path):
    """`00000123/` as in TF Serving's saved_model_half_plus_two_cpu; gRPC Predict with a request shape
    the signature doesn't declare ([3] for [-1, 1]) is answered as TF Serving answers it."""
    base = tmp_path / "half_plus_two"
    shutil.copytree(tf1_model, base / "00000123")
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    server = BackgroundServer(
        ServerOptions(model_base_path=base, model_name="half_plus_two", rest_port=0, grpc_port=0, poll_seconds=0.2)
    )
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    try:
        body = requests.get(f"{rest_url}/v1/models/half_plus_two", timeout=5).json()
        assert body["model_version_status"][0]["version"] == "123"
        assert body["model_version_status"][0]["state"] == "AVAILABLE"
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}")
        )
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0, 3.0, 4.0], dtype=tf.float32))
        response = stub.Predict(request, timeout=10)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [3.0, 3.5, 4.0]
        assert response.model_spec.version.value == 123
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(2.0, dtype=tf.float32))  # a scalar
        assert tf.make_ndarray(stub.Predict(request, timeout=10).outputs["y"]).tolist() == 3.0
        r = requests.post(
            f"{rest_url}/v1/models/half_plus_two:predict", data=json.dumps({"instances": [[2.0], [3.0]]}), timeout=10
        )
        assert r.json() == {"predictions": [[3.0], [3.5]]}
        # A 0001/ appearing while serving is version 1, loaded from 0001/: polling carries on.
        shutil.copytree(tf1_model, base / "0001")
        shutil.copytree(tf1_model, base / "00000124")
        _wait_for(
            lambda: (
                requests.get(f"{rest_url}/v1/models/half_plus_two", timeout=5).json()["model_version_status"][0]
                == {"version": "124", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            )
        )
    finally:
        server.stop()


def test_rest_request_shape_is_the_models_business(tf1_model, tmp_path):
    """TF Serving's testPredictREST: {"instances": [2.0, 3.0, 4.0]} for x declared [-1, 1]."""
    base = tmp_path / "half_plus_two"
    shutil.copytree(tf1_model, base / "00000123")
    server = start_server(base, poll_seconds=0)
    try:
        r = requests.post(
            f"http://127.0.0.1:{server.server.rest_port}/v1/models/{MODEL_NAME}:predict",
            data=json.dumps({"instances": [2.0, 3.0, 4.0]}),
            timeout=10,
        )
        assert (r.status_code, r.json()) == (200, {"predictions": [3.0, 3.5, 4.0]})
    finally:
        server.stop()
