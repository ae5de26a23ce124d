"""serving.client and `tfxp predict` / `tfxp serve` without a model server.

Real protobufs and real TensorFlow parsing check the encodings; tiny loopback
stubs (http.server, a grpc servicer) answer with TF Serving's metadata and
predict layouts and check URLs, request bodies, retries and error mapping.
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
from taxi_data import TAXI, TAXI_CSV, TIPS, is_nan, raw_feature_spec, read_csv_rows, taxi_columns, to_example

import tfxp.models  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxp import rows as R
from tfxp.models import features as F
from tfxp.pipeline.cli import main
from tfxp.serving import client as C

_DT = {F.DType.INT: "DT_INT64", F.DType.FLOAT: "DT_FLOAT", F.DType.STRING: "DT_STRING"}
# The raw inputs a served taxi model declares (its predict_raw signature).
TAXI_INPUTS = {f.name: _DT[f.dtype] for f in TAXI.features}
# A model that is not the taxi model: the clients know it only from its metadata.
PENGUIN_INPUTS = {"bill_length_mm": "DT_FLOAT", "island": "DT_STRING", "year": "DT_INT64"}
PENGUIN_ROWS = [
    {"bill_length_mm": "39.1", "island": "Torgersen", "year": "2007", "species": "Adelie"},
    {"bill_length_mm": "", "island": "Biscoe", "year": "2008", "species": "Gentoo"},
]


def metadata_answer(inputs=None, outputs=None, version=4, model="taxi", signatures=None) -> dict:
    """A REST metadata answer as TF Serving writes it: serving_default (examples) and predict_raw (raw inputs).

    `outputs`: {name: (dtype, shape)} of both signatures, default the binary `probability` [-1].
    """

    def info(dtype, shape, name):
        dims = [{"size": str(d), "name": ""} for d in shape]
        return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}

    outputs = outputs or {"probability": ("DT_FLOAT", (-1,))}
    out = {name: info(dtype, shape, f"out_{name}:0") for name, (dtype, shape) in outputs.items()}
    defs = {
        "serving_default": {
            "inputs": {"examples": info("DT_STRING", (-1,), "examples:0")},
            "outputs": out,
            "method_name": "tensorflow/serving/predict",
        },
        "predict_raw": {
            "inputs": {name: info(dtype, (-1,), f"{name}:0") for name, dtype in (inputs or TAXI_INPUTS).items()},
            "outputs": out,
            "method_name": "tensorflow/serving/predict",
        },
    }
    if signatures is not None:
        defs = {name: defs[name] for name in signatures}
    return {
        "model_spec": {"name": model, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": defs}},
    }


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


# -- the taxi model's rows, for callers written before the clients read metadata ----------------------------


def test_row_helpers_encode_as_the_schema_parses(rows):
    """`encode_examples(rows, features)` / `raw_columns(rows, inputs)`: tf.Examples equal to the ones the
    test helper builds from the schema, one column per input in the inputs' order."""
    from tensorflow.core.example import example_pb2

    spec = dict(raw_feature_spec())
    spec.pop(TIPS)
    features = taxi_columns()
    for index, row in enumerate(rows[:50]):
        ours = example_pb2.Example.FromString(C.encode_examples([row], features)[0])
        assert ours == example_pb2.Example.FromString(to_example(row, spec)), f"row {index}"
    columns = C.raw_columns(rows[:2], TAXI_INPUTS)
    assert list(columns) == [f.name for f in TAXI.features]
    assert is_nan(columns["pickup_latitude"][0]) and columns["trip_start_hour"][0] == int(rows[0]["trip_start_hour"])
    assert C.RowError is R.RowError and C.read_rows_file is R.read_rows_file
    with pytest.raises(AttributeError):
        C.MODEL_INPUTS  # noqa: B018  (clients read a model's inputs from its metadata)


def test_tensor_protos_have_signature_dtypes():
    import tensorflow as tf

    columns = C.raw_columns([{"fare": "12.45", "trip_seconds": "300", "company": "Taxi Affiliation"}, {}], TAXI_INPUTS)
    expected = {"DT_INT64": tf.int64, "DT_FLOAT": tf.float32, "DT_STRING": tf.string}
    for name, dtype in TAXI_INPUTS.items():
        proto = C.tensor_proto(columns[name], dtype)
        assert tf.dtypes.as_dtype(proto.dtype) == expected[dtype]
        assert tf.make_ndarray(proto).shape == (2,)
    assert tf.make_ndarray(C.tensor_proto(columns["fare"], "DT_FLOAT"))[0] == pytest.approx(12.45)
    assert math.isnan(tf.make_ndarray(C.tensor_proto(columns["fare"], F.DType.FLOAT))[1])  # enums still read
    assert list(tf.make_ndarray(C.tensor_proto(columns["trip_seconds"], "int64"))) == [300, F.MISSING_INT]
    assert list(tf.make_ndarray(C.tensor_proto(columns["company"], "DT_STRING"))) == [b"Taxi Affiliation", b""]


def test_tensor_values_read_every_layout():
    import numpy as np
    import tensorflow as tf

    values = np.array([0.25, 0.1, 5.0086083e-08], np.float32)
    assert C.tensor_floats(tf.make_tensor_proto(values)) == [0.25, 0.1, 5.0086083e-08]  # tensor_content
    listed = C.tensor_proto([], "DT_FLOAT")
    listed.float_val.extend([0.25, 0.5])
    listed.tensor_shape.dim[0].size = 2
    assert C.tensor_floats(listed) == [0.25, 0.5]
    assert C.tensor_floats(tf.make_tensor_proto(np.float64(0.5), shape=[3])) == [0.5] * 3
    matrix = tf.make_tensor_proto(np.array([[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]], np.float32))
    assert C.tensor_rows(matrix) == [[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]]  # [N, K]: K floats per row
    assert C.tensor_rows(tf.make_tensor_proto(np.zeros([2, 2, 2], np.int64))) == [[[0, 0], [0, 0]]] * 2
    assert C.tensor_rows(tf.make_tensor_proto([b"a", b"\xff"])) == ["a", b"\xff"]  # not UTF-8: bytes
    with pytest.raises(C.ServingClientError, match="scalar"):
        C.tensor_rows(tf.make_tensor_proto(np.float32(1)), "probability")
    with pytest.raises(C.ServingClientError, match="DT_COMPLEX64"):
        C.tensor_rows(tf.make_tensor_proto(np.zeros([2], np.complex64)), "probability")


def test_signature_names_match_models_signatures():
    from tfxp.models import signatures

    assert (C.SERVING_DEFAULT, C.PREDICT_RAW, C.EXAMPLES_INPUT) == (
        signatures.SERVING_DEFAULT,
        signatures.PREDICT_RAW,
        signatures.EXAMPLES_INPUT,
    )


# -- REST bodies and answers ---------------------------------------------------------------------------


def _signature_inputs(signature: str, inputs: dict) -> dict:
    from tfxp.serving.protocol import TensorInfo

    if signature == C.SERVING_DEFAULT:
        return {"examples": TensorInfo("DT_STRING", (-1,))}
    numpy_names = {"DT_FLOAT": "float32", "DT_INT64": "int64", "DT_STRING": "DT_STRING"}
    return {name: TensorInfo(numpy_names[dtype], (-1,)) for name, dtype in inputs.items()}


def test_rest_examples_body_is_tf_serving_row_format(rows):
    from tfxp.serving.protocol import decode_predict_request, parse_json

    examples = C.encode_examples(rows[:3], TAXI_INPUTS)
    text = C.rest_predict_body(C.SERVING_DEFAULT, examples=examples)
    body = json.loads(text)
    assert body["signature_name"] == "serving_default"
    assert [base64.b64decode(i["b64"]) for i in body["instances"]] == examples
    inputs, fmt = decode_predict_request(parse_json(text), _signature_inputs(C.SERVING_DEFAULT, TAXI_INPUTS))
    assert fmt == "row" and list(inputs["examples"]) == examples


def test_rest_raw_body_is_tf_serving_columnar_format_with_nan(rows):
    from tfxp.serving.protocol import decode_predict_request, parse_json

    text = C.rest_predict_body(C.PREDICT_RAW, columns=R.raw_columns(rows[:4], TAXI_INPUTS))
    assert "NaN" in text  # the first rows lack coordinates
    body = json.loads(text)
    assert body["signature_name"] == "predict_raw" and set(body["inputs"]) == set(TAXI_INPUTS)
    inputs, fmt = decode_predict_request(parse_json(text), _signature_inputs(C.PREDICT_RAW, TAXI_INPUTS))
    assert fmt == "columnar"
    assert inputs["fare"].dtype.name == "float32" and math.isnan(inputs["pickup_latitude"][0])
    assert inputs["trip_seconds"].dtype.name == "int64" and list(inputs["company"])[0] == rows[0]["company"].encode()


def _signature(outputs: dict) -> C.Signature:
    return C.Signature({}, {name: C.TensorInfo(dtype, shape) for name, (dtype, shape) in outputs.items()})


@pytest.mark.parametrize(
    "payload, outputs, expected",
    [
        ([0.25, 1], {"probability": ("DT_FLOAT", (-1,))}, {"probability": [0.25, 1.0]}),  # 1 written for 1.0
        ([[0.1, 0.9], [1, 0]], {"probabilities": ("DT_FLOAT", (-1, 2))}, {"probabilities": [[0.1, 0.9], [1.0, 0.0]]}),
        (
            {"a": [1, 2], "b": ["x", "y"]},
            {"a": ("DT_INT64", (-1,)), "b": ("DT_STRING", (-1,))},
            {"a": [1, 2], "b": ["x", "y"]},
        ),  # columnar, several outputs
        (
            [{"a": 1.5, "b_bytes": {"b64": "/w=="}}],
            {"a": ("DT_FLOAT", (-1,)), "b_bytes": ("DT_STRING", (-1,))},
            {"a": [1.5], "b_bytes": [b"\xff"]},
        ),  # row format, several outputs
        ([float("nan")], {"prediction": ("DT_FLOAT", (-1,))}, {"prediction": [float("nan")]}),
    ],
)
def test_rest_outputs_read_tf_serving_layouts(payload, outputs, expected):
    got = C.rest_outputs(payload, _signature(outputs))
    assert repr(got) == repr(expected)  # NaN matches NaN, and 1.0 is not 1


@pytest.mark.parametrize("payload", [None, 0.5, "x", [{"a": 1}, {"b": 2}], {"a": 1}])
def test_rest_outputs_refuse_other_layouts(payload):
    with pytest.raises(C.ServingClientError) as raised:
        C.rest_outputs(payload, _signature({"a": ("DT_FLOAT", (-1,))}))
    assert raised.value.code == "INTERNAL"


# -- targets -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, protocol, expected",
    [
        ("http://localhost:8501", None, ("rest", "http://localhost:8501")),
        ("https://models.example.com:443/", None, ("rest", "https://models.example.com:443")),
        ("localhost:8500", None, ("grpc", "localhost:8500")),
        ("grpc://10.0.0.1:8500", None, ("grpc", "10.0.0.1:8500")),
        ("localhost:8501", "rest", ("rest", "http://localhost:8501")),
        ("http://localhost:8501", "rest", ("rest", "http://localhost:8501")),
        ("[::1]:8500", "grpc", ("grpc", "[::1]:8500")),
    ],
)
def test_parse_target(target, protocol, expected):
    assert C.parse_target(target, protocol) == expected


@pytest.mark.parametrize(
    "target, protocol",
    [
        ("localhost", None),
        ("http://localhost", None),
        ("localhost:http", None),
        ("ftp://h:1", None),
        ("http://localhost:8501", "grpc"),
        ("grpc://h:8500", "rest"),
        ("h:8500", "udp"),
        ("h:70000", None),
        ("http://h:8501/v1/models", None),
    ],
)
def test_parse_target_rejects(target, protocol):
    with pytest.raises(ValueError):
        C.parse_target(target, protocol)


# -- REST client against a stub ------------------------------------------------------------------------


class _Stub:
    """A loopback HTTP server answering from a list of (status, body) and recording requests.

    `.../metadata` GETs are answered from `metadata` (a list too, the last answer repeated)
    and recorded in `metadata_requests`; every other request in `requests`.
    """

    def __init__(self, answers, metadata=None):
        self.answers = list(answers)
        self.metadata = [(200, metadata_answer())] if metadata is None else list(metadata)
        self.requests: list[tuple[str, str, bytes]] = []
        self.metadata_requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path.endswith("/metadata"):
                    stub.metadata_requests.append(self.path)
                    queue = stub.metadata
                else:
                    stub.requests.append((self.command, self.path, body))
                    queue = stub.answers
                status, answer = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(answer).encode()
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

    def make(*answers, metadata=None):
        stubs.append(_Stub(answers, metadata))
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
    assert server.metadata_requests == ["/v1/models/taxi/versions/3/metadata"]
    examples = [base64.b64decode(i["b64"]) for i in json.loads(body)["instances"]]
    assert examples == R.encode_examples(rows[:2], TAXI_INPUTS)


def test_rest_raw_predict_and_label_url(stub, rows):
    server = stub((200, {"outputs": [0.5]}))
    with C.RestClient(server.url, "taxi", label="canary/1", signature="predict_raw") as client:
        assert client.predict(rows[:1]) == [0.5]
    assert server.requests[0][1] == "/v1/models/taxi/labels/canary%2F1:predict"
    assert server.metadata_requests == ["/v1/models/taxi/labels/canary%2F1/metadata"]
    assert set(json.loads(server.requests[0][2])["inputs"]) == set(TAXI_INPUTS)


@pytest.mark.parametrize("signature", ["serving_default", "predict_raw"])
def test_rest_client_sends_the_inputs_the_metadata_declares(stub, signature):
    """A model that is not the taxi model: inputs, dtypes and missing markers come from its metadata."""
    from tensorflow.core.example import example_pb2

    server = stub(
        (200, {"predictions": [0.5, 0.5], "outputs": [0.5, 0.5]}),
        metadata=[(200, metadata_answer(PENGUIN_INPUTS, model="penguins"))],
    )
    with C.RestClient(server.url, "penguins", signature=signature) as client:
        assert client.model_inputs() == PENGUIN_INPUTS
        assert client.predict(PENGUIN_ROWS) == [0.5, 0.5]
    body = json.loads(server.requests[0][2])
    if signature == "predict_raw":
        assert body["inputs"]["bill_length_mm"][0] == 39.1 and math.isnan(body["inputs"]["bill_length_mm"][1])
        assert body["inputs"]["island"] == ["Torgersen", "Biscoe"] and body["inputs"]["year"] == [2007, 2008]
        assert set(body["inputs"]) == set(PENGUIN_INPUTS)  # the label column is not sent
        return
    first, second = (
        example_pb2.Example.FromString(base64.b64decode(i["b64"])).features.feature for i in body["instances"]
    )
    assert set(first) == set(PENGUIN_INPUTS)
    assert first["bill_length_mm"].float_list.value == [pytest.approx(39.1)]
    assert first["island"].bytes_list.value == [b"Torgersen"] and first["year"].int64_list.value == [2007]
    assert second["bill_length_mm"].WhichOneof("kind") is None  # blank: present but empty


@pytest.mark.parametrize("signature, key", [("serving_default", "predictions"), ("predict_raw", "outputs")])
def test_rest_results_are_shaped_by_the_outputs(stub, signature, key):
    multiclass = metadata_answer(PENGUIN_INPUTS, {"probabilities": ("DT_FLOAT", (-1, 3))})
    server = stub((200, {key: [[0.1, 0.2, 0.7], [1, 0, 0]]}), metadata=[(200, multiclass)])
    with C.RestClient(server.url, "penguins", signature=signature) as client:
        assert client.predict(PENGUIN_ROWS) == [[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]]
        assert client.outputs() == {"probabilities": C.TensorInfo("DT_FLOAT", (-1, 3))}
    several = metadata_answer(PENGUIN_INPUTS, {"prediction": ("DT_FLOAT", (-1,)), "bucket": ("DT_INT64", (-1,))})
    answer = (
        [{"prediction": 1, "bucket": 3}, {"prediction": 2.5, "bucket": 4}]
        if key == "predictions"
        else {"prediction": [1, 2.5], "bucket": [3, 4]}
    )
    server = stub((200, {key: answer}), metadata=[(200, several)])
    with C.RestClient(server.url, "penguins", signature=signature) as client:
        got = client.predict(PENGUIN_ROWS)
    assert got == [{"bucket": 3, "prediction": 1.0}, {"bucket": 4, "prediction": 2.5}]
    assert isinstance(got[0]["prediction"], float) and isinstance(got[0]["bucket"], int)


def test_rest_metadata_is_read_once_per_client(stub, rows):
    server = stub((200, {"predictions": [0.5]}))
    with C.RestClient(server.url, "taxi") as client:
        for _ in range(3):
            assert client.predict(rows[:1]) == [0.5]
    assert len(server.metadata_requests) == 1 and len(server.requests) == 3
    with C.RestClient(server.url, "taxi") as client:  # a new client asks again
        client.predict(rows[:1])
    assert len(server.metadata_requests) == 2


def test_rest_reads_the_metadata_again_when_another_version_refuses_the_request(stub):
    """Version 5 replaced 4 with another input: the refused request is rebuilt from 5's metadata, once."""
    renamed = {**PENGUIN_INPUTS, "flipper_length_mm": "DT_FLOAT"}
    server = stub(
        (400, {"error": "predict_raw: missing input flipper_length_mm"}),
        (200, {"outputs": [0.5, 0.5]}),
        metadata=[(200, metadata_answer(PENGUIN_INPUTS, version=4)), (200, metadata_answer(renamed, version=5))],
    )
    with C.RestClient(server.url, "penguins", signature="predict_raw") as client:
        assert client.predict(PENGUIN_ROWS) == [0.5, 0.5]
        assert client.model_metadata().version == 5
    assert len(server.metadata_requests) == 2
    assert set(json.loads(server.requests[1][2])["inputs"]) == set(renamed)
    # The same version refusing: the error is the server's, asked once (no loop, no second predict).
    server = stub((400, {"error": "predict_raw: required input year is missing"}))
    with C.RestClient(server.url, "taxi", signature="predict_raw") as client:
        with pytest.raises(C.ServingClientError) as raised:
            client.predict(PENGUIN_ROWS)
    assert (raised.value.code, raised.value.message) == (400, "predict_raw: required input year is missing")
    assert len(server.requests) == 1 and len(server.metadata_requests) == 2
    # A client pinned to a version never re-reads: no other version can answer it.
    server = stub((400, {"error": "bad"}))
    with C.RestClient(server.url, "taxi", version=4) as client, pytest.raises(C.ServingClientError):
        client.predict(PENGUIN_ROWS)
    assert len(server.metadata_requests) == 1


@pytest.mark.parametrize(
    "metadata, match",
    [
        (metadata_answer(signatures=["serving_default"]), "has no 'predict_raw' signature .*it has serving_default"),
        (metadata_answer({"x": "DT_BOOL"}), "predict_raw input x is DT_BOOL"),
        (metadata_answer(signatures=[]), "has no 'serving_default' signature .*it has none"),
    ],
)
def test_models_the_client_cannot_feed_are_refused_before_predicting(stub, rows, metadata, match):
    server = stub((200, {"predictions": [0.5]}), metadata=[(200, metadata)])
    with C.RestClient(server.url, "taxi") as client, pytest.raises(C.ModelMetadataError, match=match) as raised:
        client.predict(rows[:1])
    assert raised.value.code == "FAILED_PRECONDITION" and "taxi version 4" in raised.value.message
    assert server.requests == []


def test_bad_row_values_are_refused_before_predicting(stub):
    server = stub((200, {"predictions": [0.5]}), metadata=[(200, metadata_answer(PENGUIN_INPUTS))])
    with C.RestClient(server.url, "penguins") as client, pytest.raises(C.RowError, match="row 1: year"):
        client.predict([PENGUIN_ROWS[0], dict(PENGUIN_ROWS[1], year="3.5")])
    assert server.requests == []


def test_rest_status_and_metadata(stub):
    signature_def = {
        "signature_def": {
            "serving_default": {
                "inputs": {
                    "examples": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}, "name": "x:0"}
                },
                "outputs": {"probability": {"dtype": "DT_FLOAT", "name": "y:0"}},
                "method_name": "tensorflow/serving/predict",
            }
        }
    }
    server = stub(
        (
            200,
            {
                "model_version_status": [
                    {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                ]
            },
        ),
        metadata=[
            (200, {"model_spec": {"name": "taxi", "version": "2"}, "metadata": {"signature_def": signature_def}})
        ],
    )
    with C.RestClient(server.url, "taxi") as client:
        assert client.status() == [{"version": 2, "state": "AVAILABLE"}]
        assert client.metadata() == {
            "serving_default": {"inputs": {"examples": "DT_STRING"}, "outputs": {"probability": "DT_FLOAT"}}
        }
        metadata = client.model_metadata()
    assert metadata.version == 2
    assert metadata.signatures["serving_default"].inputs["examples"] == C.TensorInfo("DT_STRING", (-1,))
    assert metadata.signatures["serving_default"].outputs["probability"] == C.TensorInfo("DT_FLOAT", ())
    assert [r[1] for r in server.requests] == ["/v1/models/taxi"]
    assert server.metadata_requests == ["/v1/models/taxi/metadata"]


def test_rest_retries_503_then_succeeds(stub, rows):
    server = stub((503, {"error": "loading"}), (503, {"error": "loading"}), (200, {"predictions": [0.1]}))
    with C.RestClient(server.url, "taxi", retry_seconds=5) as client:
        assert client.predict(rows[:1]) == [0.1]
    assert len(server.requests) == 3


def test_rest_metadata_is_retried_while_the_model_loads(stub, rows):
    server = stub((200, {"predictions": [0.1]}), metadata=[(503, {"error": "loading"}), (200, metadata_answer())])
    with C.RestClient(server.url, "taxi", retry_seconds=5) as client:
        assert client.predict(rows[:1]) == [0.1]
    assert len(server.metadata_requests) == 2


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
    not_found = (404, {"error": "Servable not found for request: Latest(nope)"})
    server = stub(not_found, metadata=[not_found])
    with C.RestClient(server.url, "nope") as client, pytest.raises(C.ServingClientError) as raised:
        client.predict(rows[:1])
    assert raised.value.code == 404 and raised.value.message == "Servable not found for request: Latest(nope)"
    assert len(server.metadata_requests) == 1 and server.requests == []


def test_rest_connection_refused_is_retried_then_503():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    with C.RestClient(f"http://127.0.0.1:{port}", "taxi", retry_seconds=0.2, timeout=2) as client:
        with pytest.raises(C.ServingClientError) as raised:
            client.status()
    assert raised.value.code == 503 and "cannot connect" in raised.value.message
    # The reason, without urllib3's "<urllib3.connection.HTTPConnection object at 0x...>: " in front of it.
    assert raised.value.message.endswith(": Failed to establish a new connection: [Errno 111] Connection refused")
    assert "object at 0x" not in raised.value.message


def test_client_argument_checks():
    with pytest.raises(ValueError, match="not both"):
        C.RestClient("http://h:1", "m", version=1, label="a")
    for bad in ({"retry_seconds": -1}, {"retry_seconds": float("nan")}, {"timeout": 0}):
        with pytest.raises(ValueError, match="retry_seconds|timeout"):
            C.RestClient("http://h:1", "m", **bad)
    with pytest.raises(ValueError, match="signature"):
        C.RestClient("http://h:1", "m", signature="classification")
    assert C.RestClient("http://h:1", "m").predict([]) == []  # nothing asked, not even the metadata


# -- gRPC client against a stub servicer ---------------------------------------------------------------


@pytest.fixture
def grpc_stub():
    """A PredictionService/ModelService on loopback. `seen["metadata"]`: the REST-shaped metadata answer
    it serves (as a SignatureDefMap); `seen["outputs"]`: batch -> {name: numpy array} of a Predict answer;
    `seen["version"]`: the version Predict answers name."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    seen = {
        "predict": [],
        "failures": [],
        "metadata_calls": 0,
        "version": 7,
        "metadata": metadata_answer(version=7),
        "outputs": lambda batch: {"probability": np.full([batch], 0.5, np.float32)},
    }

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            seen["predict"].append(request)
            if seen["failures"]:
                code, message = seen["failures"].pop(0)
                context.abort(code, message)
            batch = next(iter(request.inputs.values())).tensor_shape.dim[0].size
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = seen["version"]
            for name, value in seen["outputs"](batch).items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

        def GetModelMetadata(self, request, context):
            seen["metadata_calls"] += 1
            answer = seen["metadata"]
            signature_map = json_format.ParseDict(
                answer["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()
            )
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = int(answer["model_spec"]["version"])
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
    assert tensor.dtype == types_pb2.DT_STRING
    assert list(tensor.string_val) == R.encode_examples(rows[:3], TAXI_INPUTS)


def test_grpc_predict_raw_request_follows_the_metadata(grpc_stub):
    import tensorflow as tf

    grpc_stub["metadata"] = metadata_answer(PENGUIN_INPUTS, version=7)
    with C.GrpcClient(grpc_stub["target"], "penguins", version=7, signature="predict_raw") as client:
        assert client.predict(PENGUIN_ROWS) == [0.5, 0.5]
    request = grpc_stub["predict"][0]
    assert request.model_spec.version.value == 7 and set(request.inputs) == set(PENGUIN_INPUTS)
    assert math.isnan(tf.make_ndarray(request.inputs["bill_length_mm"])[1])
    assert tf.make_ndarray(request.inputs["year"]).dtype.name == "int64"
    assert list(tf.make_ndarray(request.inputs["island"])) == [b"Torgersen", b"Biscoe"]


def test_grpc_results_are_shaped_by_the_outputs(grpc_stub):
    import numpy as np

    grpc_stub["metadata"] = metadata_answer(PENGUIN_INPUTS, {"probabilities": ("DT_FLOAT", (-1, 3))}, version=7)
    grpc_stub["outputs"] = lambda batch: {"probabilities": np.tile(np.float32([0.1, 0.2, 0.7]), [batch, 1])}
    with C.GrpcClient(grpc_stub["target"], "penguins") as client:
        assert client.predict(PENGUIN_ROWS) == [[0.1, 0.2, 0.7]] * 2
    grpc_stub["outputs"] = lambda batch: {"prediction": np.float32([1.5] * batch), "bucket": np.int64([3] * batch)}
    with C.GrpcClient(grpc_stub["target"], "penguins") as client:
        assert client.predict(PENGUIN_ROWS) == [{"bucket": 3, "prediction": 1.5}] * 2


def test_grpc_reads_the_metadata_again_after_another_version_answers(grpc_stub, rows):
    with C.GrpcClient(grpc_stub["target"], "taxi") as client:
        client.predict(rows[:1])
        client.predict(rows[:1])
        assert grpc_stub["metadata_calls"] == 1  # once per client
        grpc_stub["version"] = 8  # version 8 took over (its metadata names it)
        grpc_stub["metadata"] = metadata_answer(version=8)
        client.predict(rows[:1])  # answered by 8: the next predict re-reads
        client.predict(rows[:1])
        client.predict(rows[:1])
        assert grpc_stub["metadata_calls"] == 2 and client.model_metadata().version == 8


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
    assert len(grpc_stub["predict"]) == 4  # the metadata was read again, unchanged: not asked twice


def test_grpc_status_and_metadata(grpc_stub):
    grpc_stub["metadata"] = metadata_answer({"fare": "DT_FLOAT"}, version=7, signatures=["predict_raw"])
    with C.GrpcClient(grpc_stub["target"], "taxi") as client:
        assert client.status() == [{"version": 7, "state": "AVAILABLE"}]
        assert client.metadata() == {
            "predict_raw": {"inputs": {"fare": "DT_FLOAT"}, "outputs": {"probability": "DT_FLOAT"}}
        }
        assert client.model_metadata().signatures["predict_raw"].inputs["fare"] == C.TensorInfo("DT_FLOAT", (-1,))
        assert client.model_metadata().version == 7


# -- CLI ------------------------------------------------------------------------------------------------


def test_predict_help():
    result = CliRunner().invoke(main, ["predict", "--help"])
    assert result.exit_code == 0
    for text in (
        "--server",
        "--model",
        "--rows",
        "--protocol",
        "--signature",
        "--version",
        "--label",
        "--timeout",
        "--allow-missing-optional",
        "--json",
        "Exit codes",
    ):
        assert text in result.output


@pytest.mark.parametrize(
    "extra, hint",
    [
        (["--version", "1", "--label", "a"], "--label"),
        (["--server", "localhost"], "--server"),
        (["--server", "http://h:1", "--protocol", "grpc"], "--server"),
        (["--signature", "classification"], "--signature"),
        (["--timeout", "0"], "--timeout"),
        (["--version", "-1"], "--version"),
    ],
)
def test_predict_usage_errors_exit_2(extra, hint):
    args = ["predict", "--server", "h:1", "--model", "taxi", "--rows", str(TAXI_CSV)]
    result = CliRunner().invoke(main, args + extra)
    assert result.exit_code == 2, result.output
    assert hint in result.output


def test_predict_bad_rows_exit_2(stub, tmp_path, rows):
    server = stub((200, {"predictions": [0.5]}))
    base = ["predict", "--server", server.url, "--model", "taxi"]
    assert CliRunner().invoke(main, base + ["--rows", str(tmp_path / "missing.csv")]).exit_code == 2
    bad = tmp_path / "rows.jsonl"
    bad.write_text(json.dumps(dict(rows[0], trip_seconds="soon")) + "\n")
    result = CliRunner().invoke(main, base + ["--rows", str(bad)])
    assert result.exit_code == 2 and "trip_seconds" in result.output
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("fare,company\n1\n")
    result = CliRunner().invoke(main, base + ["--rows", str(ragged)])
    assert result.exit_code == 2 and "ragged.csv:2" in result.output
    assert server.requests == []  # no predict was sent


@pytest.mark.parametrize("signature", ["serving_default", "predict_raw"])
def test_predict_refuses_a_rows_file_without_model_inputs(stub, tmp_path, signature):
    """Issue 10 item 15: `foo,bar` rows were sent as all-missing rows and answered (exit 0). The inputs
    come from the model's metadata, which does not say which are optional: every one needs a column,
    unless --allow-missing-optional, and then the model refuses rows missing a required one."""
    server = stub(
        (200, {"predictions": [0.5], "outputs": [0.5]}),
        metadata=[(200, metadata_answer(PENGUIN_INPUTS, model="penguins"))],
    )
    base = ["predict", "--server", server.url, "--model", "penguins", "--signature", signature, "--json"]
    foo = tmp_path / "foo.csv"
    foo.write_text("foo,bar\n1,2\n")
    result = CliRunner().invoke(main, base + ["--rows", str(foo)])
    assert result.exit_code == 2, result.output
    assert "has no column for the model inputs bill_length_mm, island, year" in result.output
    assert "--allow-missing-optional" in result.output
    partial = tmp_path / "partial.csv"
    partial.write_text("island,year,species\nBiscoe,2008,Gentoo\n")
    result = CliRunner().invoke(main, base + ["--rows", str(partial)])
    assert result.exit_code == 2 and "model inputs bill_length_mm" in result.output and "island" not in result.output
    assert server.requests == []  # nothing was sent
    result = CliRunner().invoke(main, base + ["--rows", str(partial), "--allow-missing-optional"])
    assert result.exit_code == 0, result.output
    assert server.requests[0][1] == "/v1/models/penguins:predict"


def test_predict_prints_table_and_json(stub, tmp_path):
    server = stub((200, {"predictions": [0.125, 0.875]}))
    rows = tmp_path / "rows.csv"
    rows.write_text(TAXI_CSV.read_text().splitlines()[0] + "\n" + "\n".join(TAXI_CSV.read_text().splitlines()[1:3]))
    args = ["predict", "--server", server.url, "--model", "taxi", "--rows", str(rows)]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split() == ["row", "probability"]
    assert "0.125" in table.output and "0.875" in table.output
    # REST predict answers don't name the version: the metadata the request was built from does.
    assert [r[1] for r in server.requests] == ["/v1/models/taxi:predict"]
    result = CliRunner().invoke(main, args + ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "model": "taxi",
        "version": 4,
        "protocol": "rest",
        "signature": "serving_default",
        "outputs": ["probability"],
        "predictions": [0.125, 0.875],
        "classes": None,  # this model has no classification signature to name them
        "predicted_classes": None,
    }


def test_predict_prints_multiclass_and_several_outputs(stub, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in PENGUIN_ROWS) + "\n")
    multiclass = metadata_answer(PENGUIN_INPUTS, {"probabilities": ("DT_FLOAT", (-1, 3))}, model="penguins")
    server = stub((200, {"predictions": [[0.1, 0.2, 0.7], [float("nan"), 0, 1]]}), metadata=[(200, multiclass)])
    args = ["predict", "--server", server.url, "--model", "penguins", "--rows", str(rows)]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split() == ["row", "probabilities[0]", "probabilities[1]", "probabilities[2]"]
    assert table.output.splitlines()[2].split() == ["0", "0.1", "0.2", "0.7"]
    result = json.loads(CliRunner().invoke(main, args + ["--json"]).output)
    assert result["outputs"] == ["probabilities"]
    assert result["predictions"] == [[0.1, 0.2, 0.7], [None, 0.0, 1.0]]  # NaN is not JSON: null
    several = metadata_answer(PENGUIN_INPUTS, {"prediction": ("DT_FLOAT", (-1,)), "bucket": ("DT_INT64", (-1,))})
    server = stub(
        (200, {"predictions": [{"prediction": 1.5, "bucket": 3}, {"prediction": 2, "bucket": 4}]}),
        metadata=[(200, several)],
    )
    args[2] = server.url
    table = CliRunner().invoke(main, args)
    assert table.output.splitlines()[0].split() == ["row", "bucket", "prediction"]
    result = json.loads(CliRunner().invoke(main, args + ["--json"]).output)
    assert result["outputs"] == ["bucket", "prediction"]
    assert result["predictions"] == [{"bucket": 3, "prediction": 1.5}, {"bucket": 4, "prediction": 2.0}]


def _taxi_lines(count: int) -> tuple[str, list[str]]:
    """The taxi CSV's header and its first `count` data lines."""
    lines = TAXI_CSV.read_text().splitlines()
    return lines[0], lines[1 : count + 1]


def _with_cell(line: str, header: str, column: str, value: str) -> str:
    import csv
    import io

    cells = next(csv.reader([line]))
    cells[header.split(",").index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)  # a cell holding "\n" is quoted
    return out.getvalue().removesuffix("\n")


@pytest.mark.parametrize("signature", ["serving_default", "predict_raw"])
def test_predict_names_the_bad_row_by_file_and_line(stub, tmp_path, signature):
    """A value the model input's dtype can't hold is named `file:line: column: why`, where the row is in the
    file: blank lines and a quoted cell over two lines come before it, so its index (row 2) is not its line."""
    server = stub((200, {"predictions": [0.5] * 3}))
    header, lines = _taxi_lines(3)
    two_lines = _with_cell(lines[0], header, "company", "Two\nLines Cab")
    bad = _with_cell(lines[2], header, "trip_start_hour", "abc")
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([header, two_lines, "", lines[1], "", bad]) + "\n")
    args = ["predict", "--server", server.url, "--model", "taxi", "--rows", str(path), "--signature", signature]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    want = f"{path}:7: trip_start_hour: cannot read 'abc' as int64"
    assert want in " ".join(result.stderr.split()), result.stderr
    assert "row 2" not in result.stderr and result.stdout == ""
    jsonl = tmp_path / "rows.jsonl"
    rows = read_csv_rows(limit=3)
    jsonl.write_text("\n" + json.dumps(rows[0]) + "\n\n" + json.dumps(dict(rows[1], fare="12,50")) + "\n")
    result = CliRunner().invoke(main, [*args[:-4], "--rows", str(jsonl), "--signature", signature])
    assert result.exit_code == 2 and f"{jsonl}:4: fare: cannot read '12,50' as float32" in result.stderr
    assert server.requests == []  # nothing was sent


def test_predict_names_a_float_beyond_float32_in_a_tf_example(stub, tmp_path):
    server = stub((200, {"predictions": [0.5] * 2}))
    header, lines = _taxi_lines(2)
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([header, lines[0], _with_cell(lines[1], header, "fare", "1e39")]) + "\n")
    result = CliRunner().invoke(main, ["predict", "--server", server.url, "--model", "taxi", "--rows", str(path)])
    assert result.exit_code == 2 and f"{path}:3: fare: 1e+39 is out of float32 range" in result.stderr
    assert server.requests == []


def _json_error(result) -> dict:
    """`--json`'s error object: the only stdout line; the same text on stderr; the exit code it names."""
    error = json.loads(result.stdout)
    assert error["exit_code"] == result.exit_code != 0, (result.stdout, result.stderr)
    assert " ".join(error["error"].split()) in " ".join(result.stderr.split())
    return error


def test_predict_json_errors_are_json_on_stdout(stub, tmp_path):
    """`--json` keeps stdout JSON when the command fails: an error object, the exit code unchanged."""
    server = stub((400, {"error": "INVALID_ARGUMENT: Feature: fare is required"}))
    header, lines = _taxi_lines(2)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([header, lines[0], _with_cell(lines[1], header, "trip_seconds", "soon")]) + "\n")
    base = ["predict", "--server", server.url, "--model", "taxi", "--json", "--rows"]
    error = _json_error(CliRunner().invoke(main, [*base, str(bad)]))
    assert error["exit_code"] == 2 and "trip_seconds: cannot read 'soon' as int64" in error["error"]
    assert (error["file"], error["line"], error["column"]) == (str(bad), 3, "trip_seconds")
    no_columns = tmp_path / "foo.csv"
    no_columns.write_text("foo,bar\n1,2\n")
    error = _json_error(CliRunner().invoke(main, [*base, str(no_columns)]))
    assert "has no column for the model inputs" in error["error"] and error["file"] == str(no_columns)
    error = _json_error(CliRunner().invoke(main, [*base, str(tmp_path / "absent.csv")]))  # found by click
    assert error["exit_code"] == 2 and "absent.csv" in error["error"]
    error = _json_error(CliRunner().invoke(main, [*base, str(TAXI_CSV), "--version", "1", "--label", "a"]))
    assert error["exit_code"] == 2 and "--label" in error["error"]
    error = _json_error(CliRunner().invoke(main, [*base, str(TAXI_CSV)]))  # the server refuses every row
    assert error == {
        "error": f"{TAXI_CSV}:2: the server refuses this row (sent alone): 400: INVALID_ARGUMENT: Feature: fare is "
        "required",
        "exit_code": 1,
        "status": 400,
        "file": str(TAXI_CSV),
        "line": 2,
    }


def test_predict_errors_print_no_object_reprs(stub, tmp_path, grpc_stub):
    """Errors are sentences about the input, never `<tfxp.rows.RowsFile object at 0x...>` or an exception's repr."""
    import re

    import grpc

    header, lines = _taxi_lines(1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([header, _with_cell(lines[0], header, "trip_miles", "[1, 2]")]) + "\n")
    rest = stub((500, {"error": "boom"}))
    outputs = []
    for server, rows in (
        (rest.url, bad),
        (rest.url, TAXI_CSV),
        (grpc_stub["target"], TAXI_CSV),
        (grpc_stub["target"], tmp_path / "nothing.jsonl"),
        (rest.url + "/v2", TAXI_CSV),
    ):
        for extra in ([], ["--json"]):
            grpc_stub["failures"] = [(grpc.StatusCode.INTERNAL, "boom")]
            args = ["predict", "--server", server, "--model", "taxi", "--rows", str(rows), *extra]
            result = CliRunner().invoke(main, args)
            assert result.exit_code in (1, 2), (args, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            outputs.append(result.output)
    for output in outputs:
        assert not re.search(r"object at 0x|<\w+[.\w]* |\w+Error\(|RpcError|Traceback", output), output


def _with_classification(answer: dict, k: int) -> dict:
    """A metadata answer with a `classification` signature (`inputs` -> `classes`, `scores` [-1, k])."""

    def info(dtype, shape):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d)} for d in shape], "unknown_rank": False}}

    answer["metadata"]["signature_def"]["signature_def"]["classification"] = {
        "inputs": {"inputs": info("DT_STRING", (-1,))},
        "outputs": {"classes": info("DT_STRING", (-1, k)), "scores": info("DT_FLOAT", (-1, k))},
        "method_name": "tensorflow/serving/classify",
    }
    return answer


def test_predict_names_classes_only_from_the_version_that_answered(stub, tmp_path):
    """The class names come from one classification call with the first row; its scores must be the predict
    answer's. When they aren't (another version answered it), the values are shown unnamed, with a warning."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in PENGUIN_ROWS) + "\n")
    metadata = _with_classification(
        metadata_answer(PENGUIN_INPUTS, {"probabilities": ("DT_FLOAT", (-1, 3))}, model="penguins"), 3
    )
    predict = (200, {"predictions": [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]})
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    same = (200, {"predictions": [{"classes": classes, "scores": [0.1, 0.2, 0.7]}]})
    server = stub(predict, same, metadata=[(200, metadata)])
    args = ["predict", "--server", server.url, "--model", "penguins", "--rows", str(rows), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and result.stderr == "", result.output
    answer = json.loads(result.stdout)
    assert answer["classes"] == classes and answer["predicted_classes"] == ["Gentoo", "Adelie"]
    asked = json.loads(server.requests[1][2])
    assert asked["signature_name"] == "classification" and len(asked["instances"]) == 1  # the first row only
    other = (200, {"predictions": [{"classes": classes[::-1], "scores": [0.7, 0.2, 0.1]}]})
    server = stub(predict, other, metadata=[(200, metadata)])
    args[2] = server.url
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["classes"] is None and answer["predicted_classes"] is None
    assert answer["predictions"] == [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]
    assert "warning: class names not shown" in result.stderr and "another model version" in result.stderr
    server = stub(predict, (404, {"error": "no classification"}), metadata=[(200, metadata)])
    args[2] = server.url
    result = CliRunner().invoke(main, args[:-1])  # the table
    assert result.exit_code == 0 and "404: no classification" in result.stderr, result.output
    assert result.stdout.splitlines()[0].split() == ["row", "probabilities[0]", "probabilities[1]", "probabilities[2]"]


def test_predict_binary_predicted_class_is_positive_above_one_half(stub, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in PENGUIN_ROWS * 2) + "\n")
    metadata = _with_classification(metadata_answer(PENGUIN_INPUTS, model="penguins"), 2)
    probabilities = [0.75, 0.5, 0.25, 0.5000001]
    classify = {"predictions": [{"classes": ["007", "1e3"], "scores": [0.25, 0.75]}]}
    server = stub((200, {"predictions": probabilities}), (200, classify), metadata=[(200, metadata)])
    args = ["predict", "--server", server.url, "--model", "penguins", "--rows", str(rows)]
    answer = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert answer["classes"] == ["007", "1e3"]
    assert answer["predicted_classes"] == ["1e3", "007", "007", "1e3"]  # at exactly 0.5: the negative class
    assert answer["predictions"] == probabilities
    server = stub((200, {"predictions": probabilities}), (200, classify), metadata=[(200, metadata)])
    args[2] = server.url
    table = CliRunner().invoke(main, args).stdout.splitlines()
    assert table[0].split() == ["row", "predicted_class", "probability[1e3]"]
    assert table[2].split() == ["0", "1e3", "0.75"] and table[3].split() == ["1", "007", "0.5"]  # names as text


def test_predict_no_server_is_reported_without_reprs(tmp_path):
    """Nothing listening: exit 1 after the retry budget, the reason without urllib3's connection object."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    args = ["predict", "--server", f"http://127.0.0.1:{port}", "--model", "taxi", "--rows", str(TAXI_CSV), "--json"]
    result = CliRunner().invoke(main, args)
    error = _json_error(result)
    assert error["exit_code"] == 1 and error["status"] == 503
    assert error["error"].endswith("Failed to establish a new connection: [Errno 111] Connection refused")
    assert "object at 0x" not in result.output


def test_predict_names_a_refused_row_only_when_the_server_refuses_it_alone(stub, tmp_path):
    """A batch-level refusal (every row answered alone) is shown as it came, naming no row; a row refused alone is
    named by file:line. The rows are asked by halves: [0], then [1] alone."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in PENGUIN_ROWS) + "\n")
    metadata = [(200, metadata_answer(PENGUIN_INPUTS, model="penguins"))]
    refused = (400, {"error": "batch too odd"})
    args = ["predict", "--model", "penguins", "--rows", str(rows), "--json", "--server"]
    server = stub(refused, (200, {"predictions": [0.5]}), (200, {"predictions": [0.5]}), metadata=metadata)
    error = _json_error(CliRunner().invoke(main, [*args, server.url]))
    assert error == {"error": "400: batch too odd", "exit_code": 1, "status": 400}
    assert [len(json.loads(body)["instances"]) for _, _, body in server.requests] == [2, 1, 1]
    alone = (400, {"error": "Feature: island is required"})
    server = stub(refused, (200, {"predictions": [0.5]}), alone, metadata=metadata)
    error = _json_error(CliRunner().invoke(main, [*args, server.url]))
    assert error["error"] == f"{rows}:2: the server refuses this row (sent alone): 400: Feature: island is required"
    assert (error["file"], error["line"], error["status"]) == (str(rows), 2, 400)
    server = stub((500, {"error": "boom"}), metadata=metadata)  # not a refusal of the rows: not asked again
    error = _json_error(CliRunner().invoke(main, [*args, server.url]))
    assert error == {"error": "500: boom", "exit_code": 1, "status": 500} and len(server.requests) == 1


def test_predict_server_error_exits_1_with_message(stub):
    server = stub((400, {"error": "INVALID_ARGUMENT: Feature: fare is required"}))
    args = ["predict", "--server", server.url, "--model", "taxi", "--rows", str(TAXI_CSV), "--version", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "Feature: fare is required" in result.output


def test_predict_a_model_without_predict_raw_exits_1_naming_it(stub):
    server = stub((200, {"predictions": [0.5]}), metadata=[(200, metadata_answer(signatures=["serving_default"]))])
    result = CliRunner().invoke(main, ["predict", "--server", server.url, "--model", "taxi", "--rows", str(TAXI_CSV)])
    assert result.exit_code == 1 and "FAILED_PRECONDITION" in result.output and "'predict_raw'" in result.output
    assert server.requests == []


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
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--model-base-path",
            str(base) + "/",
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
            "--host",
            "0.0.0.0",
            "--poll-seconds",
            "0.5",
            "--enable-batching",
            "--batching-parameters-file",
            str(batching),
            "--request-log",
            str(tmp_path / "log"),
            "--log-sampling",
            "0.25",
            "--max-request-bytes",
            "1024",
            "--request-timeout",
            "5",
        ],
    )
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
    assert (
        CliRunner()
        .invoke(
            main,
            ["serve", "--model-base-path", str(tmp_path), "--model-name", "m", "--request-log", str(tmp_path / "log")],
        )
        .exit_code
        == 0
    )
    from_config, named = captured_run
    assert from_config.model_config_file == config and from_config.model_base_path is None
    assert (from_config.rest_port, from_config.grpc_port, from_config.host) == (8501, 8500, "127.0.0.1")
    assert from_config.log_sampling == 0.0 and from_config.request_log_dir is None
    assert named.model_name == "m" and named.log_sampling == 1.0


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--model-base-path", "{tmp}", "--model-config-file", "{config}"],
        ["--model-config-file", "{config}", "--model-name", "x"],
        ["--model-base-path", "{tmp}", "--batching-parameters-file", "{config}"],
        ["--model-base-path", "{tmp}", "--request-log", "{tmp}/log", "--log-sampling", "1.5"],
        ["--model-base-path", "{tmp}", "--log-sampling", "0.5"],
        ["--model-base-path", "{tmp}", "--model-name", "../x"],
        ["--model-base-path", "{tmp}", "--rest-port", "9000", "--grpc-port", "9000"],
        ["--model-base-path", "{tmp}", "--rest-port", "70000"],
    ],
)
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


def test_cli_and_rest_client_do_not_import_tensorflow(stub, tmp_path):
    # `tfxp predict --help`, `tfxp serve --help` and REST requests must not pay TensorFlow's ~4 s import.
    server = stub((200, {"predictions": [0.5] * 5}))
    code = (
        "import sys; from tfxp.pipeline.cli import main\n"
        "for args in (['predict', '--help'], ['serve', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "from tfxp.serving import client\n"
        "rows = client.read_rows(sys.argv[1])[:5]\n"
        "with client.RestClient(sys.argv[2], 'taxi') as rest:\n"
        "    assert rest.predict(rows) == [0.5] * 5\n"
        "inputs = {'fare': 'DT_FLOAT', 'company': 'DT_STRING', 'trip_seconds': 'DT_INT64'}\n"
        "client.rest_predict_body('serving_default', examples=client.encode_examples(rows, inputs))\n"
        "client.rest_predict_body('predict_raw', columns=client.raw_columns(rows, inputs))\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform', 'tensorflow_serving'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(TAXI_CSV), server.url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
    assert len(server.requests) == 1 and len(server.metadata_requests) == 1
