"""RestClient and GrpcClient against a real server (or an external TF Serving)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from taxi_data import TAXI, raw_feature_spec, read_csv_rows, to_example

from tfxp import rows as R
from tfxp.serving.client import GrpcClient, RestClient, ServingClientError, TensorInfo, connect

ROWS = 50


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_csv_rows(limit=ROWS)


@pytest.fixture(scope="module")
def expected(model_dir, rows) -> np.ndarray:
    """The model's own answer, computed in-process from the same SavedModel."""
    loaded = tf.saved_model.load(model_dir)
    examples = tf.constant([to_example(r, raw_feature_spec()) for r in rows])
    return loaded.signatures["serving_default"](examples=examples)["probability"].numpy()


def _clients(served, **kwargs):
    return [RestClient(served.rest_url, served.model, **kwargs), GrpcClient(served.grpc_target, served.model, **kwargs)]


@pytest.mark.parametrize("signature", ["serving_default", "predict_raw"])
def test_both_clients_match_the_model_on_raw_csv_rows(served, rows, expected, signature):
    for client in _clients(served, signature=signature):
        with client:
            got = client.predict(rows)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=type(client).__name__)


def test_status_and_metadata_have_one_shape_for_both_protocols(served):
    rest, grpc_client = _clients(served)
    with rest, grpc_client:
        assert rest.status() == grpc_client.status()
        assert any(s["state"] == "AVAILABLE" for s in rest.status())
        rest_meta, grpc_meta = rest.metadata(), grpc_client.metadata()
        assert rest_meta == grpc_meta
        assert rest_meta["serving_default"]["inputs"] == {"examples": "DT_STRING"}
        assert rest_meta["predict_raw"]["inputs"]["fare"] == "DT_FLOAT"
        assert rest.model_metadata() == grpc_client.model_metadata()  # shapes and versions too


def test_clients_learn_inputs_and_outputs_from_the_served_model(served, model_dir):
    """What the clients read from the metadata is the SavedModel's own predict_raw signature."""
    loaded = tf.saved_model.load(model_dir)
    raw = loaded.signatures["predict_raw"]
    dtypes = {tf.float32: "DT_FLOAT", tf.int64: "DT_INT64", tf.string: "DT_STRING"}
    expected = {name: dtypes[spec.dtype] for name, spec in raw.structured_input_signature[1].items()}
    for client in _clients(served):
        with client:
            assert client.model_inputs() == dict(sorted(expected.items()))
            assert client.outputs() == {"probability": TensorInfo("DT_FLOAT", (-1,))}
            assert client.model_metadata().version == served.version or served.external


def test_version_selection_and_unknown_version(served, rows):
    version = max(s["version"] for s in RestClient(served.rest_url, served.model).status())
    for client in _clients(served, version=version):
        with client:
            assert len(client.predict(rows[:3])) == 3
    for client in _clients(served, version=version + 1000, retry_seconds=0):
        with client, pytest.raises(ServingClientError) as info:
            client.predict(rows[:1])
        assert info.value.code in (404, "NOT_FOUND")


def test_errors_other_than_unavailable_are_not_retried(served, rows):
    for client in _clients(served, retry_seconds=5):
        client.model = "no-such-model"
        started = time.monotonic()
        with client, pytest.raises(ServingClientError) as info:
            client.predict(rows[:1])
        assert info.value.code in (404, "NOT_FOUND")
        assert time.monotonic() - started < 1.0  # retrying would use the 5 s budget


def test_unavailable_server_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    for client in (
        RestClient(f"http://127.0.0.1:{port}", "taxi", retry_seconds=0.6, timeout=2),
        GrpcClient(f"127.0.0.1:{port}", "taxi", retry_seconds=0.6, timeout=2),
    ):
        started = time.monotonic()
        with client, pytest.raises(ServingClientError) as info:
            client.predict([{"fare": "1"}])
        assert info.value.code in (503, "UNAVAILABLE")
        assert 0.6 <= time.monotonic() - started < 2.0  # retried for the budget, then reported


def test_connect_chooses_the_protocol_from_the_target(served):
    assert isinstance(connect(served.rest_url, served.model), RestClient)
    assert isinstance(connect(served.grpc_target, served.model), GrpcClient)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_tfxp_predict_command(served, rows, expected, tmp_path, protocol):
    csv_path = tmp_path / "rows.csv"
    header = list(rows[0])
    csv_path.write_text(
        ",".join(header)
        + "\n"
        + "\n".join(",".join(f'"{r[h]}"' if "," in r[h] else r[h] for h in header) for r in rows[:10])
        + "\n"
    )
    server = served.rest_url if protocol == "rest" else served.grpc_target
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfxp.pipeline.cli",
            "predict",
            "--server",
            server,
            "--model",
            served.model,
            "--rows",
            str(csv_path),
            "--protocol",
            protocol,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # As users run it: TensorFlow's C++ log lines (loaded by the gRPC client) stay off the console.
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    np.testing.assert_allclose(out["predictions"], expected[:10], atol=1e-5)
    assert out["protocol"] == protocol and out["outputs"] == ["probability"]
    assert out["version"] == served.version or served.external
    # The classification signature names the classes: negative, positive (the output is P(positive)).
    assert out["classes"] == ["0", "1"]
    assert out["predicted_classes"] == ["1" if p > 0.5 else "0" for p in out["predictions"]]


# TensorFlow's C++ log lines: glog style (`I0000 00:00:...`), TF's own (`2026-12-04 16:11:42.794645: I
# tensorflow/...`), and what they say at start-up.
CPP_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |tensorflow/|oneDNN|cuda|TensorRT",
    re.MULTILINE | re.IGNORECASE,
)


def test_grpc_client_keeps_tensorflows_cpp_lines_off_the_console(served, rows):
    """A program using GrpcClient (which loads TensorFlow for its protos) gets no CUDA, oneDNN or CPU-feature
    lines on its console; the REST client never loads TensorFlow. As users run it, without TF_CPP_MIN_LOG_LEVEL."""
    code = (
        "import json, sys\n"
        "from tfxp.serving.client import GrpcClient\n"
        "rows = json.loads(sys.argv[3])\n"
        "with GrpcClient(sys.argv[1], sys.argv[2]) as client:\n"
        "    print(json.dumps(client.predict(rows)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, served.grpc_target, served.model, json.dumps(rows[:3])],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 3
    assert not CPP_LOG_LINE.search(proc.stderr), proc.stderr


# -- predict_raw refuses what it cannot answer, on every path (issue 10, item 14) -------------------------


def _raw_columns(served, rows) -> dict:
    """`predict_raw` columns of rows, for the inputs the served model declares."""
    with RestClient(served.rest_url, served.model) as client:
        return R.raw_columns(rows, client.model_inputs())


def _rest_predict(served, body: dict):
    import requests

    return requests.post(
        f"{served.rest_url}/v1/models/{served.model}:predict", data=json.dumps(body, allow_nan=True), timeout=30
    )


def _grpc_predict(served, columns: dict):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfxp.serving.client import tensor_proto

    client = GrpcClient(served.grpc_target, served.model, signature="predict_raw")
    inputs = client.model_inputs()
    request = client.predict_request({name: tensor_proto(columns[name], inputs[name]) for name in inputs})
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(request, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
        finally:
            client.close()
    return grpc.StatusCode.OK, ""


def test_predict_raw_refuses_columns_of_unequal_length_over_rest_and_grpc(served, rows):
    """`pickup_census_tract: [T]` for two rows answered 200 with row 0 given row 1's tract."""
    import grpc

    good = _raw_columns(served, [dict(r, pickup_census_tract="17031081500") for r in rows[:2]])
    response = _rest_predict(served, {"signature_name": "predict_raw", "inputs": good})
    assert response.status_code == 200, response.text
    for name, bad in (
        ("pickup_census_tract", good["pickup_census_tract"][:1]),
        ("dropoff_census_tract", good["dropoff_census_tract"] * 2),  # "indices[2] ... out of bounds"
        ("company", good["company"][:1]),
    ):
        text = f"input {name} has {len(bad)} values but input {TAXI.features[0].name} has 2"
        response = _rest_predict(served, {"signature_name": "predict_raw", "inputs": {**good, name: bad}})
        assert response.status_code == 400 and response.headers["Content-Type"].startswith("application/json")
        assert text in response.json()["error"], response.text
        code, details = _grpc_predict(served, {**good, name: bad})
        assert code == grpc.StatusCode.INVALID_ARGUMENT and text in details, details
    assert _rest_predict(served, {"signature_name": "predict_raw", "inputs": good}).status_code == 200


def test_predict_raw_refuses_rows_missing_a_required_value_on_every_path(served, rows):
    import grpc

    blank = [rows[0], dict(rows[1], fare=""), dict(rows[2], payment_type="")]
    columns = _raw_columns(served, blank)
    want = "predict_raw: required input fare is missing (the marker NaN) in rows [1]"
    # REST columnar, REST row format, gRPC: the same 400 / INVALID_ARGUMENT from the signature itself.
    response = _rest_predict(served, {"signature_name": "predict_raw", "inputs": columns})
    assert response.status_code == 400 and want in response.json()["error"], response.text
    instances = [{name: values[i] for name, values in columns.items()} for i in range(len(blank))]
    response = _rest_predict(served, {"signature_name": "predict_raw", "instances": instances})
    assert response.status_code == 400 and want in response.json()["error"], response.text
    code, details = _grpc_predict(served, columns)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and want in details
    # The clients report it, naming the feature, for both signatures (serving_default: the parser's message).
    for signature in ("predict_raw", "serving_default"):
        for client in _clients(served, signature=signature):
            with client, pytest.raises(ServingClientError) as info:
                client.predict([dict(rows[0], payment_type="")])
            assert info.value.code in (400, "INVALID_ARGUMENT") and "payment_type" in info.value.message
    good = {"signature_name": "predict_raw", "inputs": _raw_columns(served, rows[:3])}
    assert _rest_predict(served, good).status_code == 200


def test_tfxp_predict_refuses_a_rows_file_without_model_inputs(served, tmp_path):
    """Issue 10 item 15, end to end: exit 2 naming the columns; nothing is asked of the server."""
    path = tmp_path / "foo.csv"
    path.write_text("foo,bar\n1,2\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfxp.pipeline.cli",
            "predict",
            "--server",
            served.rest_url,
            "--model",
            served.model,
            "--rows",
            str(path),
            "--signature",
            "predict_raw",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 2 and proc.stdout == ""
    with RestClient(served.rest_url, served.model) as client:
        inputs = ", ".join(client.model_inputs())  # by name: the metadata's, not a feature list's order
    assert f"has no column for the model inputs {inputs}" in " ".join(proc.stderr.split())


def test_tfxp_predict_names_the_row_the_server_refuses(served, rows, tmp_path):
    """TF Serving's refusal doesn't say which row ("Feature: fare ... is required but could not be found"):
    the command finds it (asking by halves) and names it by file:line, with the server's words for it alone."""
    from click.testing import CliRunner

    from tfxp.pipeline.cli import main

    bad = [*rows[:6], dict(rows[6], fare=""), *rows[7:12]]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in bad) + "\n\n")  # row 6 on line 7
    for server in (served.rest_url, served.grpc_target):
        for signature in ("serving_default", "predict_raw"):
            args = [
                "predict",
                "--server",
                server,
                "--model",
                served.model,
                "--rows",
                str(path),
                "--signature",
                signature,
            ]
            result = CliRunner().invoke(main, [*args, "--json"])
            assert result.exit_code == 1, result.output
            error = json.loads(result.stdout)
            assert (error["file"], error["line"]) == (str(path), 7), error
            assert error["error"].startswith(f"{path}:7: the server refuses this row (sent alone): "), error
            assert "fare" in error["error"] and error["status"] in (400, "INVALID_ARGUMENT")
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in rows[:12]) + "\n")
    result = CliRunner().invoke(
        main, ["predict", "--server", served.rest_url, "--model", served.model, "--rows", str(good)]
    )
    assert result.exit_code == 0, result.output


# -- a new version: the clients read its metadata (issue 11) ------------------------------------------------


def test_grpc_client_reads_the_metadata_of_a_new_version_that_answers(own_server_only, model_dir, rows, tmp_path):
    """A client keeps the metadata it read until another version answers: then it reads that version's."""
    from serving_harness import MODEL_NAME, publish, start_server

    base = tmp_path / MODEL_NAME
    publish(model_dir, base, 1)
    background = start_server(base, poll_seconds=0.1)
    try:
        with GrpcClient(f"127.0.0.1:{background.server.grpc_port}", MODEL_NAME) as client:
            first = client.predict(rows[:3])
            assert client.model_metadata().version == 1 and client.last_version == 1
            publish(model_dir, base, 2)
            deadline = time.monotonic() + 60
            while {s["version"] for s in client.status() if s["state"] == "AVAILABLE"} != {2}:
                assert time.monotonic() < deadline, client.status()
                time.sleep(0.1)
            assert client.predict(rows[:3]) == first and client.last_version == 2
            assert client.model_metadata().version == 2  # read again, for the version that answered
    finally:
        background.stop()


# -- a server restart costs only the outage (issue 10, item 17) -------------------------------------------


def test_clients_answer_right_after_a_server_restart_on_the_same_ports(own_server_only, model_dir, rows, tmp_path):
    """gRPC's default reconnect backoff (1 s, x1.6) failed calls ~9 s beyond the outage; 3 retries gave up.

    A real server is stopped and, after an outage, started again on the same ports. Clients
    created before the outage, called during it, answer within a fraction of a second of the
    server answering a fresh connection (measured: 0.1-0.4 s; 4 s with gRPC's default backoff).
    """
    import threading

    import grpc
    from serving_harness import FIRST_VERSION, MODEL_NAME, BackgroundServer, publish
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    from tfxp.serving.options import ServerOptions

    base = tmp_path / MODEL_NAME
    publish(model_dir, base, FIRST_VERSION)
    options = ServerOptions(model_base_path=base, model_name=MODEL_NAME, rest_port=0, grpc_port=0, poll_seconds=0)
    first = BackgroundServer(options)
    rest_port, grpc_port = first.server.rest_port, first.server.grpc_port
    clients = {
        "grpc": GrpcClient(f"127.0.0.1:{grpc_port}", MODEL_NAME, retry_seconds=60),
        "rest": RestClient(f"http://127.0.0.1:{rest_port}", MODEL_NAME, retry_seconds=60),
    }
    for client in clients.values():
        assert len(client.predict(rows[:2])) == 2  # connected before the outage
    first.stop()
    times: dict = {}

    def fresh_connection_answers() -> bool:
        # A new channel each time: its first connect attempt is immediate, unlike a backed-off one.
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL_NAME
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            try:
                statuses = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=1)
            except grpc.RpcError:
                return False
        return any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE for s in statuses.model_version_status)

    def restart() -> None:
        time.sleep(4.0)  # the outage (plus the model's load): the default backoff has grown to ~4 s by then
        times["second"] = BackgroundServer(
            ServerOptions(
                model_base_path=base, model_name=MODEL_NAME, rest_port=rest_port, grpc_port=grpc_port, poll_seconds=0
            )
        )
        while not fresh_connection_answers():
            time.sleep(0.01)
        times["up"] = time.monotonic()

    def call(kind: str) -> None:
        try:
            times[kind] = (clients[kind].predict(rows[:2]), time.monotonic())
        except ServingClientError as exc:
            times[kind] = (exc, time.monotonic())

    threads = [threading.Thread(target=restart)] + [threading.Thread(target=call, args=(k,)) for k in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        for kind in clients:
            answer, answered_at = times[kind]
            assert isinstance(answer, list) and len(answer) == 2, (kind, answer)  # the budget covered the outage
            # Reconnect attempts <= 0.5 s (+ 20% jitter) apart, client polls <= 0.25 s apart.
            assert answered_at - times["up"] < 1.5, (kind, answered_at - times["up"])
    finally:
        for client in clients.values():
            client.close()
        if "second" in times:
            times["second"].stop()
