"""serving.client and `tfxp predict` / `tfxp serve` without a model server.

Real protobufs and real TensorFlow parsing check the encodings; tiny loopback
stubs (http.server, a grpc servicer) check URLs, retries and error mapping.
"""
from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

import tfxp.models  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxp.models import features as F
from tfxp.pipeline.cli import main
from tfxp.pipeline.config import DEFAULT_SCHEMA
from tfxp.serving import client as C
from taxi_data import TAXI_CSV, is_nan, raw_feature_spec, read_csv_rows, to_example


@pytest.fixture(scope="module")
def serving_spec() -> dict:
    """The `serving_default` parse spec: the raw schema minus the label (as models.signatures builds it)."""
    spec = dict(raw_feature_spec())
    spec.pop(F.TIPS)
    return spec


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=300)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(C, "BACKOFF_SECONDS", 0.001)


@pytest.fixture(autouse=True)
def serve_log_in_tmp(monkeypatch, tmp_path):
    """`tfxp serve`'s default log file lives under XDG_STATE_HOME: keep it out of the user's home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _blank_row(rows, optional_names) -> dict:
    """A real row with every optional (VarLen) feature blanked out."""
    row = dict(rows[0])
    for name in optional_names:
        row[name] = ""
    return row


# -- tf.Example ----------------------------------------------------------------------------------


def test_examples_equal_to_example_protos(rows, serving_spec):
    from tensorflow.core.example import example_pb2

    for index, row in enumerate(rows):
        ours = example_pb2.Example.FromString(C.encode_example(row, index))
        expected = example_pb2.Example.FromString(to_example(row, serving_spec))
        assert ours == expected, f"row {index}"


def test_examples_parse_back_with_values_and_missing(rows, serving_spec):
    import numpy as np
    import tensorflow as tf

    varlen = [n for n, s in serving_spec.items() if isinstance(s, tf.io.VarLenFeature)]
    sample = rows[:50] + [_blank_row(rows, varlen)]
    parsed = tf.io.parse_example(C.encode_examples(sample), serving_spec)
    for name, spec in serving_spec.items():
        dtype = dict(F.UNUSED_COLUMNS).get(name) or F.by_name(name).dtype
        if isinstance(spec, tf.io.VarLenFeature):
            dense = tf.sparse.to_dense(parsed[name]).numpy()
            lengths = np.bincount(parsed[name].indices.numpy()[:, 0], minlength=len(sample))
        else:
            dense, lengths = parsed[name].numpy(), [1] * len(sample)
        for i, row in enumerate(sample):
            expected = C.parse_value(row[name], dtype)
            assert lengths[i] == (0 if expected is None else 1), (name, i)
            if expected is None:
                continue
            got = dense[i][0]
            if dtype is F.DType.STRING:
                assert got.decode() == expected
            elif dtype is F.DType.FLOAT:
                assert got == pytest.approx(expected, rel=1e-6)
            else:
                assert got == expected


def test_typed_values_encode_like_csv_strings(rows):
    row = rows[0]
    typed = {}
    for feature in F.FEATURES:
        value = C.parse_value(row[feature.name], feature.dtype)
        typed[feature.name] = value if value is not None else None
    typed["trip_start_timestamp"] = int(row["trip_start_timestamp"])
    typed["trip_seconds"] = float(row["trip_seconds"])  # 300.0 from a JSON exporter is still an int
    typed["tips"] = 1.5
    typed["not_a_feature"] = "ignored"
    assert C.encode_example(typed) == C.encode_example(row)


def test_label_and_unknown_columns_are_skipped(serving_spec):
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(C.encode_example({"tips": "3.0", "surprise": "x", "fare": "1"}))
    assert set(example.features.feature) == set(serving_spec)
    assert example.features.feature["fare"].float_list.value == [1.0]
    assert example.features.feature["company"].WhichOneof("kind") is None  # present but empty


@pytest.mark.parametrize("name, value", [("trip_seconds", "3.5"), ("fare", "cheap"), ("trip_start_hour", True),
                                         ("trip_seconds", str(2**63))])
def test_bad_values_raise_row_error(name, value):
    with pytest.raises(C.RowError, match=name):
        C.encode_example({name: value}, 0)


def test_int64_extremes_and_negative_values_round_trip():
    from tensorflow.core.example import example_pb2

    for value in (-1, 0, 127, 128, 2**63 - 1, -(2**63)):
        example = example_pb2.Example.FromString(C.encode_example({"trip_seconds": value}))
        assert list(example.features.feature["trip_seconds"].int64_list.value) == [value]


# -- predict_raw tensors ---------------------------------------------------------------------------


def test_raw_columns_use_missing_markers(rows, serving_spec):
    import tensorflow as tf

    varlen = [n for n, s in serving_spec.items() if isinstance(s, tf.io.VarLenFeature)]
    blank = _blank_row(rows, varlen)
    blank["company"] = None
    columns = C.raw_columns([rows[1], blank])
    assert list(columns) == [f.name for f in F.FEATURES]
    for feature in F.FEATURES:
        first, second = columns[feature.name]
        expected = C.parse_value(rows[1][feature.name], feature.dtype)
        assert first == (F.missing_value(feature.dtype) if expected is None else expected) or is_nan(first)
        if feature.name in varlen or feature.name == "company":
            marker = F.missing_value(feature.dtype)
            assert is_nan(second) if feature.dtype is F.DType.FLOAT else second == marker
    assert columns["trip_start_hour"][0] == int(rows[1]["trip_start_hour"])
    assert isinstance(columns["fare"][0], float) and isinstance(columns["trip_seconds"][0], int)


def test_tensor_protos_have_signature_dtypes():
    import tensorflow as tf

    columns = C.raw_columns([{"fare": "12.45", "trip_seconds": "300", "company": "Taxi Affiliation"}, {}])
    expected = {F.DType.INT: tf.int64, F.DType.FLOAT: tf.float32, F.DType.STRING: tf.string}
    for feature in F.FEATURES:
        proto = C.tensor_proto(columns[feature.name], feature.dtype)
        assert tf.dtypes.as_dtype(proto.dtype) == expected[feature.dtype]
        array = tf.make_ndarray(proto)
        assert array.shape == (2,)
    assert tf.make_ndarray(C.tensor_proto(columns["fare"], F.DType.FLOAT))[0] == pytest.approx(12.45)
    assert math.isnan(tf.make_ndarray(C.tensor_proto(columns["fare"], F.DType.FLOAT))[1])
    assert list(tf.make_ndarray(C.tensor_proto(columns["trip_seconds"], F.DType.INT))) == [300, -1]
    assert list(tf.make_ndarray(C.tensor_proto(columns["company"], F.DType.STRING))) == [b"Taxi Affiliation", b""]


def test_tensor_floats_reads_every_layout():
    import numpy as np
    import tensorflow as tf

    values = np.array([0.25, 0.1, 5.0086083e-08], np.float32)
    assert C.tensor_floats(tf.make_tensor_proto(values)) == [0.25, 0.1, 5.0086083e-08]  # tensor_content
    listed = C.tensor_proto([], F.DType.FLOAT)
    listed.float_val.extend([0.25, 0.5])
    listed.tensor_shape.dim[0].size = 2
    assert C.tensor_floats(listed) == [0.25, 0.5]
    assert C.tensor_floats(tf.make_tensor_proto(np.float64(0.5), shape=[3])) == [0.5] * 3


def test_signature_names_match_models_signatures():
    from tfxp.models import signatures

    assert (C.SERVING_DEFAULT, C.PREDICT_RAW, C.EXAMPLES_INPUT) == (
        signatures.SERVING_DEFAULT, signatures.PREDICT_RAW, signatures.EXAMPLES_INPUT)


# -- REST bodies -------------------------------------------------------------------------------------


def _signature_inputs(signature: str) -> dict:
    from tfxp.serving.json_codec import TensorInfo

    if signature == C.SERVING_DEFAULT:
        return {"examples": TensorInfo("DT_STRING", (-1,))}
    dtypes = {F.DType.INT: "int64", F.DType.FLOAT: "float32", F.DType.STRING: "DT_STRING"}
    return {f.name: TensorInfo(dtypes[f.dtype], (-1,)) for f in F.FEATURES}


def test_rest_examples_body_is_tf_serving_row_format(rows):
    from tfxp.serving.json_codec import decode_predict_request, parse_json

    examples = C.encode_examples(rows[:3])
    text = C.rest_predict_body(C.SERVING_DEFAULT, examples=examples)
    body = json.loads(text)
    assert body["signature_name"] == "serving_default"
    assert [base64.b64decode(i["b64"]) for i in body["instances"]] == examples
    inputs, fmt = decode_predict_request(parse_json(text), _signature_inputs(C.SERVING_DEFAULT))
    assert fmt == "row" and list(inputs["examples"]) == examples


def test_rest_raw_body_is_tf_serving_columnar_format_with_nan(rows):
    from tfxp.serving.json_codec import decode_predict_request, parse_json

    text = C.rest_predict_body(C.PREDICT_RAW, columns=C.raw_columns(rows[:4]))
    assert "NaN" in text  # the first rows lack coordinates
    body = json.loads(text)
    assert body["signature_name"] == "predict_raw" and set(body["inputs"]) == {f.name for f in F.FEATURES}
    inputs, fmt = decode_predict_request(parse_json(text), _signature_inputs(C.PREDICT_RAW))
    assert fmt == "columnar"
    assert inputs["fare"].dtype.name == "float32" and math.isnan(inputs["pickup_latitude"][0])
    assert inputs["trip_seconds"].dtype.name == "int64" and list(inputs["company"])[0] == rows[0]["company"].encode()


# -- targets and row files -----------------------------------------------------------------------------


@pytest.mark.parametrize("target, protocol, expected", [
    ("http://localhost:8501", None, ("rest", "http://localhost:8501")),
    ("https://models.example.com:443/", None, ("rest", "https://models.example.com:443")),
    ("localhost:8500", None, ("grpc", "localhost:8500")),
    ("grpc://10.0.0.1:8500", None, ("grpc", "10.0.0.1:8500")),
    ("localhost:8501", "rest", ("rest", "http://localhost:8501")),
    ("http://localhost:8501", "rest", ("rest", "http://localhost:8501")),
    ("[::1]:8500", "grpc", ("grpc", "[::1]:8500")),
])
def test_parse_target(target, protocol, expected):
    assert C.parse_target(target, protocol) == expected


@pytest.mark.parametrize("target, protocol", [
    ("localhost", None), ("http://localhost", None), ("localhost:http", None), ("ftp://h:1", None),
    ("http://localhost:8501", "grpc"), ("grpc://h:8500", "rest"), ("h:8500", "udp"), ("h:70000", None),
    ("http://h:8501/v1/models", None),
])
def test_parse_target_rejects(target, protocol):
    with pytest.raises(ValueError):
        C.parse_target(target, protocol)


def test_read_rows_csv_keeps_strings():
    rows = C.read_rows(TAXI_CSV)
    assert len(rows) == len(read_csv_rows())
    assert rows[0]["fare"] == "12.45" and rows[0]["pickup_latitude"] == ""


def test_read_rows_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"fare": 12.45, "company": null}\n\n{"fare": "3", "trip_seconds": 60}\n')
    assert C.read_rows(path) == [{"fare": 12.45, "company": None}, {"fare": "3", "trip_seconds": 60}]


@pytest.mark.parametrize("name, text, match", [
    ("rows.jsonl", '{"fare": 1}\n[1, 2]\n', "rows.jsonl:2: expected a JSON object"),
    ("rows.jsonl", '{"fare": \n', "rows.jsonl:1: invalid JSON"),
    ("rows.txt", "fare\n1\n", ".csv or .jsonl"),
])
def test_read_rows_rejects(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        C.read_rows(path)


def test_read_rows_file_gives_the_columns(tmp_path):
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("\ufefffare,company\n1.5,\n\n2,Acme\n", encoding="utf-8")  # a BOM, a blank line
    read = C.read_rows_file(csv_path)
    assert read.columns == ("fare", "company")  # the byte order mark is not part of the name
    assert read.rows == [{"fare": "1.5", "company": ""}, {"fare": "2", "company": "Acme"}]
    assert C.read_rows_file(TAXI_CSV).columns == tuple(TAXI_CSV.read_text().splitlines()[0].split(","))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"fare": 1}\n{"company": "A", "fare": 2}\n')
    assert C.read_rows_file(jsonl).columns == ("fare", "company")  # every key some row has


@pytest.mark.parametrize("text, match", [
    ("fare,company\n1,A\n2\n", r"rows.csv:3: 1 cells, the header has 2"),  # DictReader: company=None (missing)
    ("fare,company\n1,A,extra\n", r"rows.csv:2: 3 cells, the header has 2"),
    ("fare,fare\n1,2\n", "header names fare more than once"),
])
def test_read_rows_refuses_csv_lines_that_do_not_fit_the_header(tmp_path, text, match):
    path = tmp_path / "rows.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        C.read_rows(path)


def test_check_columns_names_every_missing_input(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("foo,bar\n1,2\n")
    optional = C.optional_features(DEFAULT_SCHEMA)
    with pytest.raises(C.MissingColumnsError) as raised:
        C.check_columns(C.read_rows_file(path), C.MODEL_INPUTS, optional)
    assert raised.value.missing == [n for n in C.MODEL_INPUTS if n not in optional] + [
        n for n in C.MODEL_INPUTS if n in optional]
    assert "required: trip_miles, fare, trip_start_hour" in str(raised.value)
    with pytest.raises(C.MissingColumnsError) as raised:  # the flag never excuses a required column
        C.check_columns(C.read_rows_file(path), C.MODEL_INPUTS, optional, allow_missing_optional=True)
    assert raised.value.optional == [] and raised.value.required == [n for n in C.MODEL_INPUTS if n not in optional]
    required_only = tmp_path / "required.csv"
    required_only.write_text(",".join(n for n in C.MODEL_INPUTS if n not in optional) + "\n")
    with pytest.raises(C.MissingColumnsError) as raised:
        C.check_columns(C.read_rows_file(required_only), C.MODEL_INPUTS, optional)
    assert raised.value.required == [] and set(raised.value.optional) == optional
    C.check_columns(C.read_rows_file(required_only), C.MODEL_INPUTS, optional, allow_missing_optional=True)
    C.check_columns(C.read_rows_file(TAXI_CSV), C.MODEL_INPUTS, optional)


def test_optional_features_are_the_schemas_varlen_features():
    import tensorflow as tf

    spec = raw_feature_spec()
    assert C.optional_features(DEFAULT_SCHEMA) == {
        f.name for f in F.FEATURES if isinstance(spec[f.name], tf.io.VarLenFeature)}
    assert C.MODEL_INPUTS == tuple(f.name for f in F.FEATURES)


# -- REST client against a stub ------------------------------------------------------------------------


class _Stub:
    """A loopback HTTP server answering from a list of (status, body) and recording requests."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[tuple[str, str, bytes]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                stub.requests.append((self.command, self.path, self.rfile.read(length)))
                status, body = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub():
    stubs = []

    def make(*answers):
        stubs.append(_Stub(answers))
        return stubs[-1]

    yield make
    for s in stubs:
        s.close()


def test_rest_predict_url_body_and_result(stub, rows):
    server = stub((200, {"predictions": [0.25, 0.75]}))
    with C.RestClient(server.url, "taxi", version=3) as client:
        assert client.predict(rows[:2]) == [0.25, 0.75]
    method, path, body = server.requests[0]
    assert (method, path) == ("POST", "/v1/models/taxi/versions/3:predict")
    assert len(json.loads(body)["instances"]) == 2


def test_rest_raw_predict_and_label_url(stub, rows):
    server = stub((200, {"outputs": [0.5]}))
    with C.RestClient(server.url, "taxi", label="canary/1", signature="predict_raw") as client:
        assert client.predict(rows[:1]) == [0.5]
    assert server.requests[0][1] == "/v1/models/taxi/labels/canary%2F1:predict"
    assert "inputs" in json.loads(server.requests[0][2])


def test_rest_status_and_metadata(stub):
    signature_def = {"signature_def": {"serving_default": {
        "inputs": {"examples": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}, "name": "x:0"}},
        "outputs": {"probability": {"dtype": "DT_FLOAT", "name": "y:0"}}, "method_name": "tensorflow/serving/predict"}}}
    server = stub((200, {"model_version_status": [{"version": "2", "state": "AVAILABLE",
                                                   "status": {"error_code": "OK", "error_message": ""}}]}),
                  (200, {"model_spec": {"name": "taxi", "version": "2"}, "metadata": {"signature_def": signature_def}}))
    with C.RestClient(server.url, "taxi") as client:
        assert client.status() == [{"version": 2, "state": "AVAILABLE"}]
        assert client.metadata() == {"serving_default": {"inputs": {"examples": "DT_STRING"},
                                                         "outputs": {"probability": "DT_FLOAT"}}}
    assert [r[1] for r in server.requests] == ["/v1/models/taxi", "/v1/models/taxi/metadata"]


def test_rest_retries_503_then_succeeds(stub, rows):
    server = stub((503, {"error": "loading"}), (503, {"error": "loading"}), (200, {"predictions": [0.1]}))
    with C.RestClient(server.url, "taxi", retry_seconds=5) as client:
        assert client.predict(rows[:1]) == [0.1]
    assert len(server.requests) == 3


def test_rest_gives_up_when_the_retry_budget_is_spent(stub, rows):
    """The budget is time (a restart lasts seconds whatever the attempt count), not a number of attempts."""
    import time

    server = stub((503, {"error": "still loading"}))
    started = time.monotonic()
    with C.RestClient(server.url, "taxi", retry_seconds=0.5) as client, pytest.raises(C.ServingClientError) as raised:
        client.predict(rows[:1])
    elapsed = time.monotonic() - started
    assert (raised.value.code, raised.value.message) == (503, "still loading")
    assert 0.5 <= elapsed < 0.5 + C.MAX_BACKOFF_SECONDS + 0.5, elapsed
    assert len(server.requests) > 3  # polled, with a backoff capped at MAX_BACKOFF_SECONDS
    server.requests.clear()
    with C.RestClient(server.url, "taxi", retry_seconds=0) as client, pytest.raises(C.ServingClientError):
        client.predict(rows[:1])
    assert len(server.requests) == 1


def test_rest_other_errors_raise_at_once_with_server_message(stub, rows):
    server = stub((404, {"error": "Servable not found for request: Latest(nope)"}))
    with C.RestClient(server.url, "nope") as client, pytest.raises(C.ServingClientError) as raised:
        client.predict(rows[:1])
    assert raised.value.code == 404 and raised.value.message == "Servable not found for request: Latest(nope)"
    assert len(server.requests) == 1


def test_rest_connection_refused_is_retried_then_503():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    with C.RestClient(f"http://127.0.0.1:{port}", "taxi", retry_seconds=0.2, timeout=2) as client:
        with pytest.raises(C.ServingClientError) as raised:
            client.status()
    assert raised.value.code == 503 and "cannot connect" in raised.value.message


def test_client_argument_checks():
    with pytest.raises(ValueError, match="not both"):
        C.RestClient("http://h:1", "m", version=1, label="a")
    for bad in ({"retry_seconds": -1}, {"retry_seconds": float("nan")}, {"timeout": 0}):
        with pytest.raises(ValueError, match="retry_seconds|timeout"):
            C.RestClient("http://h:1", "m", **bad)
    with pytest.raises(ValueError, match="signature"):
        C.RestClient("http://h:1", "m", signature="classification")
    assert C.RestClient("http://h:1", "m").predict([]) == []


# -- gRPC client against a stub servicer ---------------------------------------------------------------


@pytest.fixture
def grpc_stub():
    import grpc
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                         predict_pb2, prediction_service_pb2_grpc)

    seen = {"predict": [], "failures": []}

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            seen["predict"].append(request)
            if seen["failures"]:
                code, message = seen["failures"].pop(0)
                context.abort(code, message)
            batch = next(iter(request.inputs.values())).tensor_shape.dim[0].size
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = 7
            response.outputs["probability"].CopyFrom(C.tensor_proto([0.5] * batch, F.DType.FLOAT))
            return response

        def GetModelMetadata(self, request, context):
            from tensorflow.core.framework import types_pb2

            signature_map = get_model_metadata_pb2.SignatureDefMap()
            sig = signature_map.signature_def["predict_raw"]
            sig.inputs["fare"].dtype = types_pb2.DT_FLOAT
            sig.outputs["probability"].dtype = types_pb2.DT_FLOAT
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.metadata["signature_def"].Pack(signature_map)
            return response

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            response = get_model_status_pb2.GetModelStatusResponse()
            response.model_version_status.add(version=7, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    seen["target"] = f"127.0.0.1:{port}"
    yield seen
    server.stop(0)


def test_grpc_predict_examples_request(grpc_stub, rows):
    from tensorflow.core.framework import types_pb2

    with C.GrpcClient(grpc_stub["target"], "taxi", label="stable") as client:
        assert client.predict(rows[:3]) == [0.5, 0.5, 0.5]
        assert client.last_version == 7
    request = grpc_stub["predict"][0]
    assert request.model_spec.name == "taxi" and request.model_spec.version_label == "stable"
    assert request.model_spec.signature_name == "serving_default" and list(request.inputs) == ["examples"]
    tensor = request.inputs["examples"]
    assert tensor.dtype == types_pb2.DT_STRING and list(tensor.string_val) == C.encode_examples(rows[:3])


def test_grpc_predict_raw_request(grpc_stub, rows):
    import tensorflow as tf

    with C.GrpcClient(grpc_stub["target"], "taxi", version=7, signature="predict_raw") as client:
        assert client.predict(rows[:2]) == [0.5, 0.5]
    request = grpc_stub["predict"][0]
    assert request.model_spec.version.value == 7
    assert set(request.inputs) == {f.name for f in F.FEATURES}
    assert math.isnan(tf.make_ndarray(request.inputs["pickup_latitude"])[0])


def test_grpc_retries_only_unavailable(grpc_stub, rows):
    import grpc

    grpc_stub["failures"] += [(grpc.StatusCode.UNAVAILABLE, "warming up")] * 2
    with C.GrpcClient(grpc_stub["target"], "taxi", retry_seconds=5) as client:
        assert client.predict(rows[:1]) == [0.5]
    assert len(grpc_stub["predict"]) == 3

    grpc_stub["failures"] += [(grpc.StatusCode.INVALID_ARGUMENT, "bad input 'x'"), (grpc.StatusCode.OK, "")]
    with C.GrpcClient(grpc_stub["target"], "taxi") as client, pytest.raises(C.ServingClientError) as raised:
        client.predict(rows[:1])
    assert (raised.value.code, raised.value.message) == ("INVALID_ARGUMENT", "bad input 'x'")
    assert len(grpc_stub["predict"]) == 4


def test_grpc_status_and_metadata(grpc_stub):
    with C.GrpcClient(grpc_stub["target"], "taxi") as client:
        assert client.status() == [{"version": 7, "state": "AVAILABLE"}]
        assert client.metadata() == {"predict_raw": {"inputs": {"fare": "DT_FLOAT"},
                                                     "outputs": {"probability": "DT_FLOAT"}}}


# -- CLI ------------------------------------------------------------------------------------------------


def test_predict_help():
    result = CliRunner().invoke(main, ["predict", "--help"])
    assert result.exit_code == 0
    for text in ("--server", "--model", "--rows", "--protocol", "--signature", "--version", "--label",
                 "--timeout", "--allow-missing-optional", "--json", "Exit codes"):
        assert text in result.output


@pytest.mark.parametrize("extra, hint", [
    (["--version", "1", "--label", "a"], "--label"),
    (["--server", "localhost"], "--server"),
    (["--server", "http://h:1", "--protocol", "grpc"], "--server"),
    (["--signature", "classification"], "--signature"),
    (["--timeout", "0"], "--timeout"),
    (["--version", "-1"], "--version"),
])
def test_predict_usage_errors_exit_2(extra, hint):
    args = ["predict", "--server", "h:1", "--model", "taxi", "--rows", str(TAXI_CSV)]
    result = CliRunner().invoke(main, args + extra)
    assert result.exit_code == 2, result.output
    assert hint in result.output


def test_predict_bad_rows_exit_2(tmp_path, rows):
    bad = tmp_path / "rows.jsonl"
    bad.write_text(json.dumps(dict(rows[0], trip_seconds="soon")) + "\n")
    base = ["predict", "--server", "http://127.0.0.1:9", "--model", "taxi"]
    assert CliRunner().invoke(main, base + ["--rows", str(tmp_path / "missing.csv")]).exit_code == 2
    result = CliRunner().invoke(main, base + ["--rows", str(bad)])
    assert result.exit_code == 2 and "trip_seconds" in result.output


@pytest.mark.parametrize("signature", ["serving_default", "predict_raw"])
def test_predict_refuses_a_rows_file_without_model_inputs(stub, tmp_path, signature):
    """Issue 10 item 15: `foo,bar` rows were sent as all-missing rows and answered (exit 0)."""
    server = stub((200, {"predictions": [0.5], "outputs": [0.5]}))
    base = ["predict", "--server", server.url, "--model", "taxi", "--signature", signature, "--json"]
    foo = tmp_path / "foo.csv"
    foo.write_text("foo,bar\n1,2\n")
    result = CliRunner().invoke(main, base + ["--rows", str(foo)])
    assert result.exit_code == 2, result.output
    assert "has no column for the model inputs trip_miles, fare" in result.output
    optional = C.optional_features(DEFAULT_SCHEMA)
    header = TAXI_CSV.read_text().splitlines()[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in optional]
    line = TAXI_CSV.read_text().splitlines()[1].split(",")
    required_only = tmp_path / "required.csv"
    required_only.write_text(",".join(header[i] for i in keep) + "\n" + ",".join(line[i] for i in keep) + "\n")
    result = CliRunner().invoke(main, base + ["--rows", str(required_only)])
    assert result.exit_code == 2 and "--allow-missing-optional" in result.output and "required:" not in result.output
    assert server.requests == []  # nothing was sent
    result = CliRunner().invoke(main, base + ["--rows", str(required_only), "--allow-missing-optional"])
    assert result.exit_code == 0, result.output
    assert [r[1] for r in server.requests][0] == "/v1/models/taxi:predict"


def test_predict_prints_table_and_json(stub, tmp_path):
    # REST predict answers don't name the version, so the CLI asks for the model's status after it.
    answers = [(200, {"predictions": [0.125, 0.875]}), (200, {"model_version_status": [
        {"version": "4", "state": "AVAILABLE"}, {"version": "3", "state": "END"}]})]
    server = stub(*answers)
    rows = tmp_path / "rows.csv"
    rows.write_text(TAXI_CSV.read_text().splitlines()[0] + "\n" + "\n".join(TAXI_CSV.read_text().splitlines()[1:3]))
    args = ["predict", "--server", server.url, "--model", "taxi", "--rows", str(rows)]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "probability" in table.output and "0.125" in table.output and "0.875" in table.output
    assert [r[1] for r in server.requests] == ["/v1/models/taxi:predict", "/v1/models/taxi"]
    server.answers = list(answers)
    result = CliRunner().invoke(main, args + ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"model": "taxi", "version": 4, "protocol": "rest",
                                         "probabilities": [0.125, 0.875]}


def test_predict_server_error_exits_1_with_message(stub):
    server = stub((400, {"error": "INVALID_ARGUMENT: Feature: fare is required"}))
    args = ["predict", "--server", server.url, "--model", "taxi", "--rows", str(TAXI_CSV), "--version", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "Feature: fare is required" in result.output


@pytest.fixture
def captured_run(monkeypatch):
    from tfxp.serving import server

    seen = []
    monkeypatch.setattr(server, "run", seen.append)
    return seen


def test_serve_maps_flags_to_options(captured_run, tmp_path):
    base = tmp_path / "serving" / "taxi"
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 64 }\n")
    result = CliRunner().invoke(main, [
        "serve", "--model-base-path", str(base) + "/", "--rest-port", "0", "--grpc-port", "0", "--host", "0.0.0.0",
        "--poll-seconds", "0.5", "--enable-batching", "--batching-parameters-file", str(batching),
        "--request-log", str(tmp_path / "log"), "--log-sampling", "0.25", "--max-request-bytes", "1024",
        "--request-timeout", "5"])
    assert result.exit_code == 0, result.output
    (options,) = captured_run
    assert options.model_base_path == base and options.model_name == "taxi" and options.model_config_file is None
    assert (options.host, options.rest_port, options.grpc_port, options.poll_seconds) == ("0.0.0.0", 0, 0, 0.5)
    assert options.enable_batching and options.batching_parameters_file == batching
    assert options.request_log_dir == tmp_path / "log" and options.log_sampling == 0.25
    assert (options.max_request_bytes, options.request_timeout_seconds) == (1024, 5.0)


def test_serve_defaults(captured_run, tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list {}\n")
    assert CliRunner().invoke(main, ["serve", "--model-config-file", str(config)]).exit_code == 0
    assert CliRunner().invoke(main, ["serve", "--model-base-path", str(tmp_path), "--model-name", "m",
                                     "--request-log", str(tmp_path / "log")]).exit_code == 0
    from_config, named = captured_run
    assert from_config.model_config_file == config and from_config.model_base_path is None
    assert (from_config.rest_port, from_config.grpc_port, from_config.host) == (8501, 8500, "127.0.0.1")
    assert from_config.log_sampling == 0.0 and from_config.request_log_dir is None
    assert named.model_name == "m" and named.log_sampling == 1.0


@pytest.mark.parametrize("args", [
    [],
    ["--model-base-path", "{tmp}", "--model-config-file", "{config}"],
    ["--model-config-file", "{config}", "--model-name", "x"],
    ["--model-base-path", "{tmp}", "--batching-parameters-file", "{config}"],
    ["--model-base-path", "{tmp}", "--request-log", "{tmp}/log", "--log-sampling", "1.5"],
    ["--model-base-path", "{tmp}", "--log-sampling", "0.5"],
    ["--model-base-path", "{tmp}", "--model-name", "../x"],
    ["--model-base-path", "{tmp}", "--rest-port", "9000", "--grpc-port", "9000"],
    ["--model-base-path", "{tmp}", "--rest-port", "70000"],
])
def test_serve_usage_errors_exit_2(captured_run, tmp_path, args):
    config = tmp_path / "models.config"
    config.write_text("")
    args = [a.format(tmp=tmp_path, config=config) for a in args]
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert captured_run == []


def test_serve_start_failure_exits_1(monkeypatch, tmp_path):
    from tfxp.serving import server

    def fail(options):
        raise OSError(98, "address already in use")

    monkeypatch.setattr(server, "run", fail)
    result = CliRunner().invoke(main, ["serve", "--model-base-path", str(tmp_path)])
    assert result.exit_code == 1 and "address already in use" in result.output


def test_cli_and_rest_client_do_not_import_tensorflow(tmp_path):
    # `tfxp predict --help`, `tfxp serve --help` and REST requests must not pay TensorFlow's ~4 s import.
    code = (
        "import sys; from tfxp.pipeline.cli import main\n"
        "for args in (['predict', '--help'], ['serve', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "from tfxp.serving import client\n"
        "rows = client.read_rows(sys.argv[1])[:5]\n"
        "client.rest_predict_body('serving_default', examples=client.encode_examples(rows))\n"
        "client.rest_predict_body('predict_raw', columns=client.raw_columns(rows))\n"
        "client.RestClient('http://127.0.0.1:9', 'taxi').close()\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform', 'tensorflow_serving'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(TAXI_CSV)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
