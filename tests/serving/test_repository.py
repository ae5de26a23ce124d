"""Model repository behaviour through a real server: hot swap, half-written versions,
version policies and labels, broken versions. Runs only against the project's own
server (it writes model directories)."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving_harness import MODEL_NAME, publish, start_server
from taxi_data import raw_feature_spec, read_csv_rows, to_example


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
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}"))
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
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}"))
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
    from serving.options import ServerOptions
    from serving_harness import BackgroundServer

    server = BackgroundServer(ServerOptions(model_config_file=config, rest_port=0, grpc_port=0, poll_seconds=0))
    rest_url = f"http://127.0.0.1:{server.server.rest_port}"
    try:
        assert _status(rest_url) == {3: "AVAILABLE", 2: "AVAILABLE"}
        b64 = __import__("base64").b64encode(examples[0]).decode()
        for label, version in (("stable", 2), ("canary", 3)):
            r = requests.get(f"{rest_url}/v1/models/{MODEL_NAME}/labels/{label}", timeout=5)
            assert r.json()["model_version_status"][0]["version"] == str(version)
            r = requests.post(f"{rest_url}/v1/models/{MODEL_NAME}/labels/{label}:predict",
                              data=json.dumps({"instances": [{"b64": b64}]}), timeout=10)
            assert r.status_code == 200, r.text
        r = requests.get(f"{rest_url}/v1/models/{MODEL_NAME}/labels/nope", timeout=5)
        assert r.status_code == 404 and "error" in r.json()
        r = requests.post(f"{rest_url}/v1/models/{MODEL_NAME}/versions/1:predict",
                          data=json.dumps({"instances": [{"b64": b64}]}), timeout=10)
        assert r.status_code == 404  # version 1 is outside latest-2
    finally:
        server.stop()


def test_model_names_with_path_tricks_are_refused(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "../etc" base_path: "/tmp/x" } }')
    from serving.config import ConfigError, load_model_server_config

    with pytest.raises(ConfigError):
        load_model_server_config(config)
