"""A seeded, bounded fuzzer against a real server on loopback (issue 10: items 9-12 and "never a 5xx").

The server is `tfxp serve`'s `serving.server.run` in its own process (so its RSS is its own and a crash
is seen), serving TF Serving's own test models (tests/serving/reference_models.py: a TF1 graph in
`00000123/`, a TF2 module, `tf.saved_model.save` of a function, a Keras model) and the taxi model. With
TFXP_SERVING_TARGET_REST / TFXP_SERVING_TARGET_GRPC set (as for the contract tests) it fuzzes that server
instead, e.g. the real tensorflow/serving container, using whichever of those model names it serves.

Every generated request comes from `random.Random(SEED + stream)`, so a run is repeatable. Requests are
valid requests of each model, mutated: wrong JSON types, deep nesting, odd numbers, bad base64, odd unicode
(lone surrogates included), duplicate keys, truncation, odd URLs (versions, labels, names, verbs,
methods), odd headers; on gRPC: odd model specs, every dtype (DT_RESOURCE, DT_VARIANT, ...), huge or
negative declared shapes, value counts that don't match, corrupted protobuf bytes.

Asserted, per request: no HTTP 5xx (except 503/504: TF Serving's UNAVAILABLE and DEADLINE_EXCEEDED) and no gRPC
UNKNOWN/INTERNAL/DATA_LOSS/UNAVAILABLE (INTERNAL only for bytes that are not a protobuf: gRPC's own "Exception
deserializing request"); every REST answer to a well-formed HTTP request is JSON with `Content-Type:
application/json`, errors as `{"error": "..."}`; a number sent to half_plus_two comes back as TF Serving computes
it, or is refused. Malformed HTTP (bad request line, header or chunking, a method or a request line aiohttp's parser
refuses) never reaches the API: the HTTP layer answers a JSON 400 (or closes the connection:
tests/serving/test_hostile_load.py asserts which, case by case), so only "no 5xx" is asserted here. Over the run:
the server stays up, a good request is answered correctly after every GOOD_EVERY requests and at the end, its RSS
grows < RSS_GROWTH_LIMIT (kernel high-water mark included), and the metrics labels stay bounded although hundreds of
unknown model names were asked for (item 12). `HandleReloadConfigRequest` is not fuzzed: it replaces the served
models. Directed tests follow the fuzz run: 10^8-element shape claims (item 10), a good request while a 16 MB body
is decoded (item 11), a declared Content-Length over the body limit.

Failures are grouped by kind (mutation x outcome); the message lists one shortest reproducer per kind.
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import reference_models as rm  # beside this file; conftest.py puts this folder on sys.path
import requests
from serving_harness import FIRST_VERSION, MODEL_NAME, publish
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

pytestmark = pytest.mark.slow

SEED = 10_2024
REST_REQUESTS = 5_000
GRPC_REQUESTS = 2_000
GOOD_EVERY = 100
RSS_GROWTH_LIMIT = 500 * 2**20
METRICS_PAGE_LIMIT = 512 * 2**10  # bytes; unknown model names must not each add label sets (item 12)
LABEL_VALUES_LIMIT = 40  # distinct values of any one metric label after the run
STALL_LIMIT_SECONDS = 5.0  # a good request while a 16 MB body is decoded
CLAIM_GROWTH_LIMIT = 100 * 2**20  # peak RSS growth for requests declaring 10^8 elements but sending one
CLIENT_TIMEOUT = 60.0
REFERENCE_MODELS = ("half_plus_two", "half_plus_two_tf2", "tf_saved_model_save", "keras_sequential")
ALLOWED_5XX = {503, 504}  # UNAVAILABLE, DEADLINE_EXCEEDED (TF Serving's REST mapping)
BAD_GRPC_CODES = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNAVAILABLE,
}
MONITORING_PATH = "/monitoring/prometheus/metrics"
# Methods HTTP parsers know (RFC 9110 and WebDAV); others ("FOO", "get") are refused before routing.
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PROPFIND", "M-SEARCH"}
PREDICTION_SERVICE = "/tensorflow.serving.PredictionService/"
MODEL_SERVICE = "/tensorflow.serving.ModelService/"


# --------------------------------------------------------------------------- the target server


@dataclass
class Target:
    rest_host: str
    rest_port: int
    grpc_target: str
    models: list[str]
    process: subprocess.Popen | None = None  # None: an external server
    log_path: Path | None = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.rest_host}:{self.rest_port}"

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _available(rest_url: str, name: str) -> bool:
    try:
        status = requests.get(f"{rest_url}/v1/models/{name}", timeout=5)
    except requests.RequestException:
        return False
    if status.status_code != 200:
        return False
    return any(s.get("state") == "AVAILABLE" for s in status.json().get("model_version_status", []))


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# What `tfxp serve --model-config-file F --rest-port R --grpc-port G` runs (its other flags at their defaults).
SERVE = """
import sys
from pathlib import Path
from tfxp.serving import server
from tfxp.serving.options import ServerOptions
server.run(ServerOptions(model_config_file=Path(sys.argv[1]), rest_port=int(sys.argv[2]), grpc_port=int(sys.argv[3])))
"""


@pytest.fixture(scope="module")
def target(tmp_path_factory, request) -> Iterator[Target]:
    """Our server in a subprocess serving the reference models and taxi, or an external one."""
    rest, grpc_target = os.environ.get("TFXP_SERVING_TARGET_REST"), os.environ.get("TFXP_SERVING_TARGET_GRPC")
    if rest and grpc_target:
        host, port = rest.rstrip("/").rsplit("//", 1)[-1].rsplit(":", 1)
        models = [m for m in (MODEL_NAME, *REFERENCE_MODELS) if _available(rest.rstrip("/"), m)]
        if not models:
            pytest.skip("the external server serves none of the fuzzed models")
        yield Target(host, int(port), grpc_target, models)
        return
    folder = tmp_path_factory.mktemp("fuzz_models")
    paths = {**request.getfixturevalue("reference_model_paths"), MODEL_NAME: folder / MODEL_NAME}
    publish(request.getfixturevalue("model_dir"), paths[MODEL_NAME], FIRST_VERSION)
    config = folder / "models.config"
    config.write_text(rm.model_config_text(paths))
    rest_port, grpc_port = _free_port(), _free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(config), str(rest_port), str(grpc_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    served = Target("127.0.0.1", rest_port, f"127.0.0.1:{grpc_port}", list(paths), process, log_path)
    try:
        deadline = time.monotonic() + 240
        while not all(_available(served.rest_url, m) for m in paths):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not serve {sorted(paths)} (exit {process.poll()}):\n{_log_tail(log_path)}")
            time.sleep(0.5)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- known-good requests


@dataclass
class Good:
    """A request with a known answer (TF Serving's own expectations where they exist)."""

    name: str
    call: Callable[[], object]  # returns a comparable answer
    expected: object = None  # None: whatever the first (pre-fuzz) answer was


def _taxi_examples(count: int = 3) -> list[bytes]:
    from taxi_data import raw_feature_spec, read_csv_rows, to_example
    from tensorflow.core.example import example_pb2

    spec = raw_feature_spec()
    # Re-serialized deterministically (map order), so a seed always gives the same bytes.
    return [
        example_pb2.Example.FromString(to_example(row, spec)).SerializeToString(deterministic=True)
        for row in read_csv_rows(limit=count)
    ]


def _taxi_rows(count: int = 2) -> tuple[list[dict], list[dict]]:
    """CSV rows as JSON objects: predict_raw instances (blanks as the missing markers NaN / -1 / "") and
    Classify/Regress examples (blank features left out, as in a tf.Example)."""
    from taxi_data import TAXI, read_csv_rows

    from tfxp.models import features as F

    markers = {F.DType.INT: F.MISSING_INT, F.DType.FLOAT: F.MISSING_FLOAT, F.DType.STRING: F.MISSING_STRING}
    types = {F.DType.INT: lambda t: int(float(t)), F.DType.FLOAT: float, F.DType.STRING: str}
    rows = read_csv_rows(limit=count)
    instances = [
        {f.name: types[f.dtype](r[f.name]) if r[f.name] != "" else markers[f.dtype] for f in TAXI.features}
        for r in rows
    ]
    examples = [{f.name: types[f.dtype](r[f.name]) for f in TAXI.features if r[f.name] != ""} for r in rows]
    return instances, examples


def rest_goods(target: Target, session: requests.Session) -> list[Good]:
    def post(path: str, body: dict) -> Callable[[], object]:
        def call():
            reply = session.post(
                f"{target.rest_url}/v1/models/{path}",
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=CLIENT_TIMEOUT,
            )
            return reply.status_code, reply.headers.get("Content-Type", "").split(";")[0], reply.json()

        return call

    ok = (200, "application/json")
    cases = {
        "half_plus_two": [
            Good(
                "rest predict half_plus_two [[1],[2],[5]]",
                post("half_plus_two:predict", {"instances": [[1.0], [2.0], [5.0]]}),
                (*ok, {"predictions": [[2.5], [3.0], [4.5]]}),
            )
        ],
        "half_plus_two_tf2": [
            Good(
                "rest predict half_plus_two_tf2 [2]",
                post("half_plus_two_tf2:predict", {"instances": [2.0]}),
                (*ok, {"predictions": [3.0]}),
            )
        ],
        "keras_sequential": [
            Good(
                "rest predict keras_sequential [[2]]",
                post("keras_sequential:predict", {"instances": [[2.0]]}),
                (*ok, {"predictions": [[2.0]]}),
            )
        ],
        "tf_saved_model_save": [
            Good(
                "rest predict tf_saved_model_save columnar [1, 2]",
                post("tf_saved_model_save:predict", {"inputs": {"x": [1.0, 2.0]}}),
                (*ok, {"outputs": [6.0, 12.0]}),
            )
        ],
        MODEL_NAME: [
            Good(
                "rest predict taxi examples",
                post(
                    f"{MODEL_NAME}:predict",
                    {"instances": [{"b64": base64.b64encode(e).decode()} for e in _taxi_examples()]},
                ),
            )
        ],
    }
    return [g for model in target.models for g in cases.get(model, [])]


def grpc_goods(target: Target, channel: grpc.Channel) -> list[Good]:
    import tensorflow as tf

    def predict(model: str, inputs: dict, signature: str = "") -> Callable[[], object]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        stub = channel.unary_unary(
            PREDICTION_SERVICE + "Predict",
            request_serializer=None,
            response_deserializer=predict_pb2.PredictResponse.FromString,
        )

        def call():
            response = stub(request.SerializeToString(), timeout=CLIENT_TIMEOUT)
            return {k: tf.make_ndarray(v).tolist() for k, v in response.outputs.items()}

        return call

    def regress(model: str, signature: str, x: float) -> Callable[[], object]:
        request = regression_pb2.RegressionRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
        stub = channel.unary_unary(
            PREDICTION_SERVICE + "Regress",
            request_serializer=None,
            response_deserializer=regression_pb2.RegressionResponse.FromString,
        )
        return lambda: [r.value for r in stub(request.SerializeToString(), timeout=CLIENT_TIMEOUT).result.regressions]

    cases = {
        "half_plus_two": [
            Good(
                "grpc predict half_plus_two [[2]]", predict("half_plus_two", {"x": np.float32([[2.0]])}), {"y": [[3.0]]}
            ),
            Good(
                "grpc regress half_plus_two regress_x_to_y x=2", regress("half_plus_two", "regress_x_to_y", 2.0), [3.0]
            ),
        ],
        "half_plus_two_tf2": [
            Good(
                "grpc predict half_plus_two_tf2 [2]",
                predict("half_plus_two_tf2", {"x": np.float32([2.0])}),
                {"y": [3.0]},
            )
        ],
        "keras_sequential": [
            Good(
                "grpc predict keras_sequential [[2]]",
                predict("keras_sequential", {"x": np.float32([[2.0]])}),
                {"y": [[2.0]]},
            )
        ],
        "tf_saved_model_save": [
            Good(
                "grpc predict tf_saved_model_save 2",
                predict("tf_saved_model_save", {"x": np.float32(2.0)}),
                {"y": 12.0},
            )
        ],
        MODEL_NAME: [
            Good(
                "grpc predict taxi examples",
                predict(MODEL_NAME, {"examples": np.array(_taxi_examples(), dtype=object)}),
            )
        ],
    }
    return [g for model in target.models for g in cases.get(model, [])]


# --------------------------------------------------------------------------- JSON text with full control


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (NaN, -Infinity, 1e400, a 4,301-digit integer ...)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object as (key, value) pairs: keys may repeat."""

    items: tuple


def to_json(value) -> str:
    """JSON text of `value`; str escapes with ensure_ascii, so lone surrogates become \\udXXX escapes."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return to_json(Pairs(tuple(value.items())))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    return json.dumps(value)


ODD_NUMBERS = [
    "0",
    "-0",
    "1",
    "-1",
    "16777217",
    "9007199254740993",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e400",
    "-1e400",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "4.9e-324",
    "1e-400",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "Inf",
    "-Inf",
    "nan",
    "inf",
    "0.1",
    "1E+2",
    "1e2",
    "-0.0",
    "00",
    "01",
    "+1",
    ".5",
    "5.",
    "0x10",
    "1_000",
    "9" * 4301,
    "-" + "9" * 400,
    "1" + "0" * 309,
    "0." + "0" * 400 + "1",
]
ODD_STRINGS = [
    "",
    " ",
    "x",
    "\u0000",
    "\ud800",
    "\udfff",
    "\ud800\udc00",
    "\ud83d\ude00",
    "\ufeff",
    "\u202e",
    "é",
    "e\u0301",
    "²",
    "١٢٣",
    "１２３",
    "\uffff",
    "\U0010ffff",
    "a" * 70_000,
    "\\",
    '"',
    "%s%n",
    "../../etc/passwd",
    "serving_default\u0000",
    "SERVING_DEFAULT",
    "serving_default ",
    "__saved_model_init_op",
]
# Protobuf strings must be valid UTF-8 (invalid bytes are sent by GrpcFuzzer.raw instead).
PROTO_STRINGS = [s for s in ODD_STRINGS if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
ODD_B64 = [
    "",
    "=",
    "====",
    "AA",
    "AA=",
    "AAA",
    "A===",
    "-_-_",
    "AA==AA==",
    "!!!!",
    "\u00e9",
    "AA\nAA",
    " AA== ",
    "YQ",
    "YWJj\x00",
    "a" * 10_001,
]


def odd_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(12)
    if kind == 0:
        return Raw(rng.choice(ODD_NUMBERS))
    if kind == 1:
        return rng.choice(ODD_STRINGS)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return {"b64": rng.choice(ODD_B64 + [123, None, [], {}])}
    if kind == 4:
        return Pairs((("b64", "AA=="), ("b64", "AA==")))
    if kind == 5:
        return {"b64": "AA==", rng.choice(ODD_STRINGS[:8]): 1}
    if kind == 6 and depth < 3:
        return [odd_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7 and depth < 3:
        return {rng.choice(ODD_STRINGS[:12]): odd_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    if kind == 8:
        return nested(rng.choice([33, 64, 200, 1_000, 5_000, 50_000]), rng.random() < 0.5)
    if kind == 9:
        return [[1.0], [2.0, 3.0]]  # ragged
    if kind == 10:
        return [1.0, "a", {"b64": "AA=="}, None, [1.0]]  # mixed types
    return rng.choice([[], {}, [[]], [{}], [[[]]], 0.5, -3, "2.0"])


def nested(depth: int, lists: bool = True) -> Raw:
    """A value nested `depth` levels deep, written as text (no recursion on either side of this process)."""
    return Raw("[" * depth + "1" + "]" * depth if lists else '{"a":' * depth + "1" + "}" * depth)


def _paths(value, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, prefix + (index,))
    return out


def _replace(value, path: tuple, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


# --------------------------------------------------------------------------- REST cases


@dataclass
class RestCase:
    kind: str
    method: str
    target: str | bytes  # request-target as sent (str: ASCII)
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "application/json")])
    http_level: bool = False  # malformed HTTP: answered by the HTTP layer, only "no 5xx" is checked
    declared_length: int | None = None  # Content-Length to declare instead of len(body)
    half_close: bool = False  # shut the write side after sending (a body shorter than declared)
    expect: Callable[[object], str | None] | None = None  # extra check of a 200 JSON answer

    @property
    def refused_by_http_layer(self) -> bool:
        """Malformed HTTP, or what aiohttp's parser refuses before routing: a request line over its 8,190
        bytes, a method its parser doesn't know (TF Serving's libevent has limits of its own)."""
        return self.http_level or len(self.target) > 8_000 or self.method not in HTTP_METHODS

    def raw(self, host: str) -> bytes:
        target = self.target if isinstance(self.target, bytes) else self.target.encode("ascii")
        lines = [self.method.encode("latin-1") + b" " + target + b" HTTP/1.1", f"Host: {host}".encode()]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in self.headers]
        if not any(k.lower() == "transfer-encoding" for k, _ in self.headers):
            length = len(self.body) if self.declared_length is None else self.declared_length
            lines.append(f"Content-Length: {length}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def describe(self, limit: int = 300) -> str:
        target = self.target if isinstance(self.target, str) else repr(self.target)
        body = self.body if len(self.body) <= limit else self.body[:limit] + b"...(%d bytes)" % len(self.body)
        extra = [f"{k}: {v}" for k, v in self.headers if k != "Content-Type" or v != "application/json"]
        if self.declared_length is not None:
            extra.append(f"Content-Length: {self.declared_length}")
        return f"{self.method} {_clip(target, limit)} {extra or ''} body={body!r}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def _pct(text: str) -> str:
    """Percent-encodes UTF-8 (surrogates kept as their 3-byte form, as a broken client would send)."""
    return "".join(
        c
        if c.isascii() and (c.isalnum() or c in "-._~")
        else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


def _valid_rest(models: list[str], examples: list[bytes], rows: tuple[list, list]) -> list[tuple[str, str, object]]:
    """(model, verb, body) requests each model answers (TF Serving's tests' requests where they exist)."""
    b64 = [{"b64": base64.b64encode(e).decode()} for e in examples]
    instances, json_examples = rows
    x_example = {"b64": base64.b64encode(rm.example_bytes(x=2.0)).decode()}
    per_model = {
        "half_plus_two": [
            ("predict", {"instances": [[1.0], [2.0]]}),
            ("predict", rm.PREDICT_REST_REQUEST),
            ("predict", {"inputs": {"x": [[2.0]]}}),
            ("predict", rm.PREDICT_COLUMNAR_REST_REQUEST),
            ("predict", {"signature_name": "regress_x2_to_y3", "instances": [[1.0]]}),
            ("predict", {"signature_name": "classify_x_to_y", "instances": [x_example]}),
            ("classify", rm.CLASSIFY_REST_REQUEST),
            ("regress", rm.REGRESS_REST_REQUEST),
            (
                "regress",
                {"signature_name": "regress_x_to_y2", "context": {"x2": 1.0}, "examples": [{"x": 1.0}, {"x": [3.0]}]},
            ),
        ],
        "half_plus_two_tf2": [
            ("predict", {"instances": [2.0]}),
            ("predict", {"inputs": {"x": [2.0]}}),
            ("predict", {"signature_name": "classify_x2_to_y3", "inputs": [2.0]}),
            ("classify", rm.CLASSIFY_REST_REQUEST),
            ("regress", rm.REGRESS_REST_REQUEST),
        ],
        "tf_saved_model_save": [("predict", {"inputs": 2.0}), ("predict", {"instances": [[1.0, 2.0]]})],
        "keras_sequential": [
            ("predict", {"instances": [[2.0]]}),
            ("predict", {"instances": [{"x": [2.0]}]}),
            ("predict", {"inputs": {"x": [[2.0], [3.0]]}}),
        ],
        MODEL_NAME: [
            ("predict", {"instances": b64}),
            ("predict", {"inputs": {"examples": b64}}),
            ("predict", {"signature_name": "predict_raw", "instances": instances}),
            (
                "predict",
                {
                    "signature_name": "predict_raw",
                    "inputs": {k: [i[k] for i in instances] for k in (instances or [{}])[0]},
                },
            ),
            ("classify", {"signature_name": "classification", "examples": json_examples}),
            ("regress", {"signature_name": "regression", "context": json_examples[0], "examples": [{}]}),
        ],
    }
    return [(m, verb, body) for m in models for verb, body in per_model.get(m, [])]


class RestFuzzer:
    """Generates RestCases from valid requests; each operator is one kind of mutation."""

    def __init__(self, rng: random.Random, models: list[str], valid: list[tuple[str, str, object]]):
        self.rng = rng
        self.models = models
        self.valid = valid
        self.operators = [
            (self.json_node, 20),
            (self.json_keys, 8),
            (self.json_numbers, 8),
            (self.text_bytes, 8),
            (self.odd_body, 4),
            (self.url, 20),
            (self.method, 5),
            (self.headers, 5),
            (self.http_level, 3),
            (self.get_routes, 6),
            (self.sizes, 1),
            (self.half_plus_two_numbers, 6),
            (self.unequal_columns, 3 if MODEL_NAME in models else 0),
        ]
        self.weights = [w for _, w in self.operators]

    def next(self) -> RestCase:
        operator = self.rng.choices([op for op, _ in self.operators], self.weights)[0]
        return operator()

    # -- helpers
    def _base(self) -> tuple[str, str, object]:
        return self.rng.choice(self.valid)

    def _post(self, kind: str, model: str, verb: str, body: bytes | str, **kw) -> RestCase:
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        return RestCase(kind, "POST", f"/v1/models/{_pct(model)}:{verb}", data, **kw)

    def _name(self) -> str:
        rng = self.rng
        choice = rng.randrange(6)
        if choice < 2:
            return rng.choice(self.models)
        if choice == 2:  # a fresh unknown name each time: metrics label cardinality (item 12)
            return "m" + "".join(rng.choice(NAME_CHARS) for _ in range(rng.randrange(1, 40)))
        return rng.choice(ODD_STRINGS[:20] + ["..", ".", "a/b", "a:b", "a%2Fb", "MODEL", "taxi ", "x" * 10_000])

    def _segment(self, text: str) -> str:
        """`text` percent-encoded, or now and then a raw (possibly invalid) percent sequence."""
        if self.rng.random() < 0.15:
            return self.rng.choice(["%zz", "%", "%0", "%00", "%ED%A0%80", "%FF%FE", "%2F", "%2e%2e", "%C0%AF"])
        return _pct(text)

    def _version(self) -> str:
        return self.rng.choice(
            [
                "123",
                "1",
                "0",
                "-1",
                "+1",
                "00000123",
                "0001",
                "0x7b",
                "1e2",
                "1.0",
                "12a",
                "",
                " 1",
                "²",
                "١٢٣",
                "１２３",
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551616",
                "9" * 4301,
                "-0",
                "\ud800",
            ]
        )

    def _label(self) -> str:
        return self.rng.choice(["stable", "canary", "", "\ud800", "\u0000", "l" * 5000, "a b", "..", "é"])

    # -- operators
    def json_node(self) -> RestCase:
        model, verb, body = self._base()
        path = self.rng.choice(_paths(body))
        return self._post("json_node", model, verb, to_json(_replace(body, path, odd_value(self.rng))))

    def json_keys(self) -> RestCase:
        rng = self.rng
        model, verb, body = self._base()
        items = list(body.items())
        choice = rng.randrange(7)
        if choice == 0:  # duplicate a key
            items.append(rng.choice(items))
        elif choice == 1:  # both formats / other top-level keys
            items.append(
                (
                    rng.choice(
                        [
                            "instances",
                            "inputs",
                            "examples",
                            "context",
                            "signature_name",
                            "output_filter",
                            "Instances",
                            "",
                            "\ud800",
                            "b64",
                        ]
                    ),
                    odd_value(rng),
                )
            )
        elif choice == 2 and len(items) > 1:
            items.pop(rng.randrange(len(items)))
        elif choice == 3:
            items = [("signature_name", rng.choice(ODD_STRINGS + [None, 1, [], {}]))] + items
        elif choice == 4:
            items = [(rng.choice(ODD_STRINGS[:20]), v) for _, v in items]
        elif choice == 5:  # object keys inside rows / examples
            items = [(k, _rekey(v, rng)) for k, v in items]
        else:
            items = []
        return self._post("json_keys", model, verb, to_json(Pairs(tuple(items))))

    def json_numbers(self) -> RestCase:
        model, verb, body = self._base()
        numbers = [p for p in _paths(body) if type(_get(body, p)) in (int, float)]
        if not numbers:
            return self.json_node()
        path = self.rng.choice(numbers)
        return self._post("json_numbers", model, verb, to_json(_replace(body, path, Raw(self.rng.choice(ODD_NUMBERS)))))

    def text_bytes(self) -> RestCase:
        rng = self.rng
        model, verb, body = self._base()
        data = to_json(body).encode()
        choice = rng.randrange(4)
        if choice == 0:  # truncated JSON
            data = data[: rng.randrange(len(data))]
        elif choice == 1:  # invalid UTF-8 / control bytes
            at = rng.randrange(len(data) + 1)
            bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x00", b"\x80", b"\xf4\x90\x80\x80"])
            data = data[:at] + bad + data[at:]
        elif choice == 2:  # a flipped byte
            at = rng.randrange(len(data))
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
        else:  # trailing garbage
            data += rng.choice([b"}", b",", b" x", b"\x00", b"{}", b"]"])
        return self._post("text_bytes", model, verb, data)

    def odd_body(self) -> RestCase:
        model, verb, body = self._base()
        text = to_json(body)
        data = self.rng.choice(
            [
                b"",
                b" ",
                b"null",
                b"[]",
                b"{}",
                b"1",
                b'"x"',
                b"true",
                b"\x00" * 8,
                b"\xef\xbb\xbf" + text.encode(),
                text.encode("utf-16"),
                text.encode("utf-32"),
                b"{" * 100_000,
                b"[" * 100_000,
                b"\t\n\r " * 1000,
                ("[" + text + "]").encode(),
                b'{"instances": [' + b"1," * 10_000 + b"1",
            ]
        )
        return self._post("odd_body", model, verb, data)

    def url(self) -> RestCase:
        rng = self.rng
        model, verb, body = self._base()
        name = self._segment(self._name()) if rng.random() < 0.5 else _pct(model)
        version, label = self._segment(self._version()), self._segment(self._label())
        middle = rng.choice(
            [
                "",
                f"/versions/{version}",
                f"/labels/{label}",
                f"/versions/{version}/labels/{label}",
                f"/labels/{label}/versions/1",
                "/versions/",
                "/labels/",
                "/versions/123/",
            ]
        )
        suffix = rng.choice(
            [
                f":{verb}",
                f":{verb.upper()}",
                ":explain",
                ":",
                "::predict",
                f":{verb}/",
                f":{verb}:{verb}",
                "/metadata",
                f"/metadata:{verb}",
                f":{verb}?x=%zz",
                f":{verb}#f",
                "",
                "/",
            ]
        )
        prefix = rng.choice(
            ["/v1/models/"] * 6
            + [
                "/V1/MODELS/",
                "/v1//models/",
                "//v1/models/",
                "/v1/models//",
                "/v2/models/",
                "/v1/model/",
                "/v1/models/%2e%2e/",
            ]
        )
        method = "POST" if ":" in suffix else rng.choice(["GET", "POST"])
        return RestCase("url", method, prefix + name + middle + suffix, to_json(body).encode())

    def method(self) -> RestCase:
        model, verb, body = self._base()
        target = self.rng.choice(
            [
                f"/v1/models/{model}:{verb}",
                f"/v1/models/{model}",
                f"/v1/models/{model}/metadata",
                "/v1/models",
                "/v1/models/",
                "/v1",
                MONITORING_PATH,
            ]
        )
        method = self.rng.choice(
            ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO", "get", "post", "M-SEARCH", "PROPFIND"]
        )
        return RestCase("method", method, target, to_json(body).encode() if self.rng.random() < 0.5 else b"")

    def headers(self) -> RestCase:
        rng = self.rng
        model, verb, body = self._base()
        data = to_json(body).encode()
        headers = [
            (
                "Content-Type",
                rng.choice(
                    [
                        "application/json",
                        "text/plain",
                        "application/json; charset=utf-16",
                        "multipart/form-data; boundary=x",
                        "application/x-www-form-urlencoded",
                        "",
                        "application/json; charset=latin-1",
                        "*/*",
                    ]
                ),
            )
        ]
        choice = rng.randrange(4)
        if choice == 0:
            headers.append(("Content-Encoding", rng.choice(["gzip", "deflate", "br", "identity", "x-foo"])))
        elif choice == 1:
            headers.append(("Accept", rng.choice(["text/html", "application/xml", "*/*"])))
        elif choice == 2:
            headers.append(("Expect", "100-continue"))
        else:
            headers.append(("Accept-Encoding", "gzip"))
        return RestCase("headers", "POST", f"/v1/models/{model}:{verb}", data, headers)

    def http_level(self) -> RestCase:
        rng = self.rng
        model, verb, body = self._base()
        data = to_json(body).encode()
        choice = rng.randrange(6)
        if choice == 0:  # raw non-ASCII bytes in the request-target
            return RestCase(
                "http_level",
                "POST",
                f"/v1/models/{model}".encode()
                + rng.choice([b"\xff", b"\xed\xa0\x80", b"\xc3\xa9", b" x"])
                + f":{verb}".encode(),
                data,
                http_level=True,
            )
        if choice == 1:  # chunked, valid framing
            chunked = b"".join(
                b"%x\r\n%s\r\n" % (len(data[i : i + 7]), data[i : i + 7]) for i in range(0, len(data), 7)
            )
            return RestCase(
                "http_level",
                "POST",
                f"/v1/models/{model}:{verb}",
                chunked + b"0\r\n\r\n",
                [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
                http_level=True,
            )
        if choice == 2:  # chunked, broken framing
            return RestCase(
                "http_level",
                "POST",
                f"/v1/models/{model}:{verb}",
                b"zz\r\n" + data + b"\r\n0\r\n\r\n",
                [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
                http_level=True,
            )
        if choice == 3:  # header line too long / malformed header
            return RestCase(
                "http_level",
                "POST",
                f"/v1/models/{model}:{verb}",
                data,
                [
                    ("Content-Type", "application/json"),
                    rng.choice([("X-Big", "a" * 20_000), ("Bad Header", "x"), ("X-Nul", "\x00")]),
                ],
                http_level=True,
            )
        if choice == 4:  # body shorter than declared, then EOF
            return RestCase(
                "truncated_transfer",
                "POST",
                f"/v1/models/{model}:{verb}",
                data[: len(data) // 2],
                declared_length=len(data),
                half_close=True,
                http_level=True,
            )
        return RestCase(
            "http_level",
            "POST",
            f"/v1/models/{model}:{verb}",
            data,  # conflicting lengths
            [("Content-Type", "application/json"), ("Content-Length", "1")],
            http_level=True,
        )

    def get_routes(self) -> RestCase:
        rng = self.rng
        name = self._segment(self._name())
        target = rng.choice(
            [
                f"/v1/models/{name}",
                f"/v1/models/{name}/metadata",
                f"/v1/models/{name}/versions/{self._segment(self._version())}",
                f"/v1/models/{name}/labels/{self._segment(self._label())}/metadata",
                "/v1/models",
                "/v1/models/",
                "/v1",
                "/",
                "/v1/models/%",
                "/favicon.ico",
                "/v1/models/a/b/c/d",
                MONITORING_PATH,
                MONITORING_PATH + "/x",
                "/readyz",
            ]
        )
        return RestCase("get_routes", "GET", target, b"")

    def sizes(self) -> RestCase:
        rng = self.rng
        model = rng.choice(self.models)
        choice = rng.randrange(4)
        if choice == 0:
            body = to_json({"instances": [[1.0]] * rng.choice([1_000, 10_000, 10_000, 100_000])})
        elif choice == 1:
            body = to_json({"examples": [{"x": 1.0}] * rng.choice([1_000, 10_000, 30_000])})
            return self._post("sizes", model, rng.choice(["classify", "regress"]), body)
        elif choice == 2:
            body = to_json({"inputs": {"x": [[1.0]] * 3, "y": [[1.0]] * 4}})
        else:
            body = to_json({"instances": [[[1.0] * 1000] * 100]})
        return self._post("sizes", model, "predict", body)

    def unequal_columns(self) -> RestCase:
        """Item 14: taxi's predict_raw in columnar form with one column shorter or longer than the others
        must be refused (TF Serving: the signature checks), never answered with rows re-aligned."""
        rng = self.rng
        body = next(b for m, v, b in self.valid if m == MODEL_NAME and "inputs" in b and "signature_name" in b)
        columns = dict(body["inputs"])
        key = rng.choice(sorted(columns))
        rows = len(columns[key])
        column = columns[key]
        columns[key] = rng.choice([column[:1], column[:0], column * 2, column + column[:1]])
        text = to_json({"signature_name": "predict_raw", "inputs": columns})

        def expect(answer) -> str:
            return f"200 for column {key!r} of {len(columns[key])} values beside columns of {rows}"

        return self._post("unequal_columns", MODEL_NAME, "predict", text, expect=expect)

    def half_plus_two_numbers(self) -> RestCase:
        """A number in the TF1 model's input: if it answers 200, the answer must be 0.5 * float32(x) + 2."""
        token = self.rng.choice(ODD_NUMBERS)
        model = "half_plus_two" if "half_plus_two" in self.models else self.models[0]
        expected = _half_plus_two_float32(token)

        def expect(answer) -> str | None:
            if expected is None or model != "half_plus_two":
                return None
            try:
                got = np.float32(answer["predictions"][0][0])
            except (KeyError, IndexError, TypeError, ValueError):
                return f"unexpected answer {str(answer)[:80]}"
            same = got == expected or (np.isnan(got) and np.isnan(expected))
            return None if same else f"x={token[:40]}: got {got}, TF Serving's float32 rounding gives {expected}"

        return self._post("half_plus_two_numbers", model, "predict", f'{{"instances": [[{token}]]}}', expect=expect)


def _get(value, path: tuple):
    for key in path:
        value = value[key]
    return value


def _rekey(value, rng: random.Random):
    if isinstance(value, list):
        return [_rekey(v, rng) for v in value]
    if isinstance(value, dict) and "b64" not in value:
        return Pairs(
            tuple((rng.choice([k, k, k.upper(), "", "\ud800", k + "\u0000"]), v) for k, v in value.items())
            + ((rng.choice(list(value) or ["x"]), 1.0),) * rng.randrange(2)
        )
    return value


JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?|-?(NaN|Infinity|Inf)")


def _half_plus_two_float32(token: str) -> np.float32 | None:
    """y = 0.5 * x + 2 in float32 for the JSON number `token`, as TF Serving answers `[[token]]` on a float
    input (json_tensor.cc: the number, or NaN/Inf literal, read as a double and rounded to float); None for
    text that is not a number to it (invalid JSON, or beyond double range: its parser refuses those)."""
    if not JSON_NUMBER.fullmatch(token):
        return None
    value = float(token)
    if math.isinf(value) and "Inf" not in token:
        return None
    with np.errstate(over="ignore"):
        return np.float32(0.5) * np.float32(value) + np.float32(2.0)


# --------------------------------------------------------------------------- REST transport


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes


class RawHttp:
    """HTTP/1.1 over one kept-alive socket, sending exactly the bytes given.

    `requests` and `http.client` normalise targets, headers and bodies; a fuzzer must not.
    """

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, case: RestCase) -> Reply | None:
        """The reply, or None when the server closed the connection without one."""
        raw = case.raw(f"{self.address[0]}:{self.address[1]}")
        for attempt in range(2):
            reused = self.sock is not None
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=CLIENT_TIMEOUT)
            try:
                self.sock.sendall(raw)
                if case.half_close:
                    self.sock.shutdown(socket.SHUT_WR)
                response = http.client.HTTPResponse(self.sock, method=case.method)
                response.begin()
                body = response.read()
                reply = Reply(response.status, response.getheader("Content-Type", ""), body)
                if response.will_close or case.half_close or case.refused_by_http_layer:
                    self.close()
                return reply
            except TimeoutError:
                self.close()
                return Reply(0, "client timeout", b"")
            except (OSError, http.client.HTTPException):  # reset, closed, or not HTTP
                self.close()
                if not (reused and attempt == 0):  # a stale kept-alive connection gets one retry
                    return None
        return None


def rest_violation(case: RestCase, reply: Reply | None) -> str | None:
    """What is wrong with the reply to `case`, or None."""
    if reply is None:  # malformed HTTP may be answered by closing the connection
        return None if case.refused_by_http_layer else "connection closed without a response"
    if reply.status == 0:
        return f"no answer in {CLIENT_TIMEOUT:.0f} s"
    if reply.status >= 500 and reply.status not in ALLOWED_5XX:
        return f"HTTP {reply.status} {reply.content_type.split(';')[0]} {_message(reply.body)}"
    if case.refused_by_http_layer or case.method == "HEAD" or (reply.status == 200 and case.target == MONITORING_PATH):
        return None
    if not reply.content_type.startswith("application/json"):
        return f"HTTP {reply.status} Content-Type {reply.content_type!r} {_message(reply.body)}"
    try:
        answer = json.loads(reply.body)
    except ValueError:
        return f"HTTP {reply.status} body is not JSON: {_message(reply.body)}"
    if reply.status >= 400:
        if not (isinstance(answer, dict) and isinstance(answer.get("error"), str)):
            return f"HTTP {reply.status} error body without an 'error' string: {_message(reply.body)}"
        return None
    if not isinstance(answer, dict):
        return f"HTTP {reply.status} answer is not a JSON object: {_message(reply.body)}"
    return case.expect(answer) if case.expect is not None and reply.status == 200 else None


def _message(body: bytes, limit: int = 120) -> str:
    text = body.decode("utf-8", "replace")
    try:
        text = json.loads(text).get("error", text)
    except (ValueError, AttributeError):
        pass
    return _clip(" ".join(str(text).split()), limit)


# --------------------------------------------------------------------------- gRPC cases


@dataclass
class GrpcCase:
    kind: str
    method: str  # full method path
    request: bytes
    text: str  # a readable form for reproducers
    raw_bytes: bool = False  # not (necessarily) a valid protobuf
    must_fail: str = ""  # why an OK answer would be a silent wrong answer

    def describe(self, limit: int = 400) -> str:
        return f"{self.method} {_clip(self.text, limit)}"


DTYPES = sorted(types_pb2.DataType.values()) + [22, 99, 150, 9999]
VALUE_FIELDS = [
    "float_val",
    "double_val",
    "int_val",
    "int64_val",
    "string_val",
    "bool_val",
    "half_val",
    "scomplex_val",
    "dcomplex_val",
    "uint32_val",
    "uint64_val",
]


def _tensor(dtype: int, dims: list[int], **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    for key, value in values.items():
        if key == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, key).extend(value)
    return proto


def _column(values: list) -> tensor_pb2.TensorProto:
    """A predict_raw column: DT_STRING, DT_INT64 or DT_FLOAT by the values' type."""
    if isinstance(values[0], str):
        return _tensor(types_pb2.DT_STRING, [len(values)], string_val=[v.encode() for v in values])
    if isinstance(values[0], int):
        return _tensor(types_pb2.DT_INT64, [len(values)], int64_val=values)
    return _tensor(types_pb2.DT_FLOAT, [len(values)], float_val=values)


def _examples_input(target, examples: list[dict]) -> None:
    for features in examples:
        example = target.example_list.examples.add()
        for key, value in features.items():
            _set_feature(example.features.feature[key], value)


def _set_feature(feature, value) -> None:
    if isinstance(value, bytes):
        feature.bytes_list.value.append(value)
    elif isinstance(value, int):
        feature.int64_list.value.append(value)
    else:
        feature.float_list.value.append(value)


def _valid_grpc(models: list[str], examples: list[bytes], instances: list[dict]) -> list[tuple[str, object]]:
    """(method, request) pairs each model answers."""
    out = []

    def predict(model: str, signature: str = "", **inputs):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        for key, tensor in inputs.items():
            request.inputs[key].CopyFrom(tensor)
        out.append(("Predict", request))

    def infer(kind: str, model: str, signature: str, features: list[dict]):
        message = classification_pb2.ClassificationRequest if kind == "Classify" else regression_pb2.RegressionRequest
        request = message()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        _examples_input(request.input, features)
        out.append((kind, request))

    for model in models:
        if model == "half_plus_two":
            predict(model, x=_tensor(types_pb2.DT_FLOAT, [2, 1], float_val=[1.0, 2.0]))
            predict(model, "regress_x2_to_y3", inputs=_tensor(types_pb2.DT_FLOAT, [1, 1], float_val=[2.0]))
            predict(
                model, "classify_x_to_y", inputs=_tensor(types_pb2.DT_STRING, [1], string_val=[rm.example_bytes(x=2.0)])
            )
            infer("Classify", model, "classify_x_to_y", [{"x": 2.0}])
            infer("Regress", model, "regress_x_to_y", [{"x": 2.0}, {"x": 3.0, "x2": 1.0}])
            multi = inference_pb2.MultiInferenceRequest()
            for signature, method in (("regress_x_to_y", rm.REGRESS_METHOD), ("classify_x_to_y", rm.CLASSIFY_METHOD)):
                task = multi.tasks.add()
                task.model_spec.name, task.model_spec.signature_name, task.method_name = model, signature, method
            _examples_input(multi.input, [{"x": 2.0}])
            out.append(("MultiInference", multi))
        elif model == "half_plus_two_tf2":
            predict(model, x=_tensor(types_pb2.DT_FLOAT, [1], float_val=[2.0]))
            infer("Regress", model, "regress_x_to_y", [{"x": 2.0}])
        elif model == "tf_saved_model_save":
            predict(model, x=_tensor(types_pb2.DT_FLOAT, [], float_val=[2.0]))
            predict(model, x=_tensor(types_pb2.DT_FLOAT, [2, 2], tensor_content=np.float32([1, 2, 3, 4]).tobytes()))
        elif model == "keras_sequential":
            predict(model, x=_tensor(types_pb2.DT_FLOAT, [1, 1], float_val=[2.0]))
        elif model == MODEL_NAME:
            predict(model, examples=_tensor(types_pb2.DT_STRING, [len(examples)], string_val=examples))
            predict(model, "predict_raw", **{key: _column([i[key] for i in instances]) for key in instances[0]})
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name, request.model_spec.signature_name = model, "classification"
            request.input.example_list.examples.add().ParseFromString(examples[0])
            out.append(("Classify", request))
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata.model_spec.name = model
        out.append(("GetModelMetadata", metadata))
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = model
        out.append(("GetModelStatus", status))
    return out


class GrpcFuzzer:
    def __init__(self, rng: random.Random, models: list[str], valid: list[tuple[str, object]]):
        self.rng = rng
        self.models = models
        self.valid = valid
        self.operators = [
            (self.spec, 15),
            (self.dtype, 12),
            (self.shape, 15),
            (self.values, 15),
            (self.keys, 8),
            (self.examples, 10),
            (self.multi, 6),
            (self.metadata, 4),
            (self.raw, 10),
            (self.health, 2),
            (self.unequal_batch, 3 if MODEL_NAME in models else 0),
        ]
        self.weights = [w for _, w in self.operators]

    def next(self) -> GrpcCase:
        return self.rng.choices([op for op, _ in self.operators], self.weights)[0]()

    def _base(self, methods: tuple[str, ...] = ()) -> tuple[str, object]:
        pool = [v for v in self.valid if not methods or v[0] in methods] or self.valid
        method, request = self.rng.choice(pool)
        copy = type(request)()
        copy.CopyFrom(request)
        return method, copy

    def _case(self, kind: str, method: str, request, service: str = PREDICTION_SERVICE) -> GrpcCase:
        from google.protobuf import text_format

        if method == "GetModelStatus":
            service = MODEL_SERVICE
        text = text_format.MessageToString(request, as_one_line=True, as_utf8=True)
        return GrpcCase(kind, service + method, request.SerializeToString(deterministic=True), text)

    def _tensors(self, request) -> list[tensor_pb2.TensorProto]:
        return [request.inputs[k] for k in sorted(request.inputs)] if hasattr(request, "inputs") else []

    def _predict(self) -> tuple[str, object]:
        return self._base(("Predict",))

    # -- operators
    def spec(self) -> GrpcCase:
        rng = self.rng
        method, request = self._base()
        specs = [t.model_spec for t in request.tasks] if method == "MultiInference" else [request.model_spec]
        spec = rng.choice(specs)
        choice = rng.randrange(6)
        if choice == 0:
            owner = request.tasks[0] if method == "MultiInference" else request
            owner.ClearField("model_spec")
            if rng.random() < 0.5:
                owner.model_spec.SetInParent()  # present but empty
        elif choice == 1:
            spec.name = rng.choice(
                [
                    "",
                    " ",
                    "nosuch",
                    "\u00e9",
                    "\U0001f600",
                    "\u0000",
                    "a" * 10_000,
                    "..",
                    "TAXI",
                    "half_plus_two\u0000",
                    "m" + str(rng.randrange(10**9)),
                ]
            )
        elif choice == 2:
            spec.version.value = rng.choice([-1, 0, 1, 122, 123, 124, 2**63 - 1, -(2**63), 2**31])
        elif choice == 3:
            spec.version_label = rng.choice(["", "stable", "\u0000", "\U0001f600", "l" * 5000, "123"])
        elif choice == 4:
            spec.signature_name = rng.choice(PROTO_STRINGS + ["classify_x_to_y", "regress_x_to_y", "predict_raw"])
        else:
            spec.ClearField("name")
        return self._case("spec", method, request)

    def dtype(self) -> GrpcCase:
        method, request = self._predict()
        tensors = self._tensors(request)
        if tensors:
            self.rng.choice(tensors).dtype = self.rng.choice(DTYPES + [types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT] * 3)
        return self._case("dtype", method, request)

    def shape(self) -> GrpcCase:
        rng = self.rng
        method, request = self._predict()
        tensors = self._tensors(request)
        if not tensors:
            return self._case("shape", method, request)
        tensor = rng.choice(tensors)
        choice = rng.randrange(1, 7)  # (10^8-element claims, which a buggy server allocates: test_declared_shapes)
        if choice == 1:
            tensor.tensor_shape.ClearField("dim")
            for size in rng.choice([[10**12], [2**62, 4], [2**63 - 1], [10**6, 10**6], [3, 10**15], [0, 10**18]]):
                tensor.tensor_shape.dim.add().size = size
        elif choice == 2:
            tensor.tensor_shape.dim.add().size = rng.choice([-1, -2, -(2**63), 0])
        elif choice == 3:
            tensor.tensor_shape.unknown_rank = True
        elif choice == 4:
            for _ in range(rng.choice([10, 40, 255, 1000])):
                tensor.tensor_shape.dim.add().size = 1
        elif choice == 5:
            tensor.tensor_shape.ClearField("dim")
        else:
            tensor.tensor_shape.dim.add(size=1, name=rng.choice(["", "batch", "\u00e9"]))
        return self._case("shape", method, request)

    def values(self) -> GrpcCase:
        rng = self.rng
        method, request = self._predict()
        tensors = self._tensors(request)
        if not tensors:
            return self._case("values", method, request)
        tensor = rng.choice(tensors)
        choice = rng.randrange(7)
        if choice == 0:  # values of another field than the dtype's
            name = rng.choice(VALUE_FIELDS[:6])
            getattr(tensor, name).extend([{"string_val": b"1", "bool_val": True}.get(name, 1)] * rng.randrange(1, 4))
        elif choice == 1:  # too many / too few values
            for name in VALUE_FIELDS[:5]:
                if len(getattr(tensor, name)):
                    values = list(getattr(tensor, name))
                    tensor.ClearField(name)
                    getattr(tensor, name).extend((values * 7)[: rng.choice([0, 1, len(values) + 1, 7])])
        elif choice == 2:  # tensor_content of the wrong size
            tensor.tensor_content = bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 5, 7, 13])))
        elif choice == 3:  # tensor_content and typed values together
            tensor.tensor_content = np.float32([1.0]).tobytes()
        elif choice == 4:
            tensor.string_val.extend([rng.choice([b"\xff\xfe", b"", b"\x00" * 10, b"x" * 100_000])])
        elif choice == 5:
            tensor.half_val.extend([65535, 0x7C00, 0xFC00, 0x7E00])
        else:
            tensor.variant_val.add().type_name = rng.choice(["tensorflow::Tensor", "", "\u00e9"])
            tensor.resource_handle_val.add(device="/cpu:0", container="", name="x")
        return self._case("values", method, request)

    def keys(self) -> GrpcCase:
        rng = self.rng
        method, request = self._predict()
        choice = rng.randrange(4)
        keys = sorted(request.inputs)
        if choice == 0 and keys:
            value = request.inputs[keys[0]]
            new = rng.choice(["", "X", "inputs", "examples", "\u00e9", "x" * 5000, "x:0", "y"])
            request.inputs[new].CopyFrom(value)
            if new != keys[0]:
                del request.inputs[keys[0]]
        elif choice == 1 and keys:
            del request.inputs[rng.choice(keys)]
        elif choice == 2:
            request.inputs["extra"].CopyFrom(_tensor(types_pb2.DT_FLOAT, [1], float_val=[1.0]))
        else:
            request.output_filter.extend(rng.choice([["nosuch"], ["y", "y"], [""], ["outputs", "scores"], ["y"]]))
        return self._case("keys", method, request)

    def examples(self) -> GrpcCase:
        rng = self.rng
        method, request = self._base(("Classify", "Regress", "MultiInference"))
        choice = rng.randrange(6)
        if choice == 0:
            request.input.Clear()
        elif choice == 1:
            request.input.example_list.Clear()
            request.input.example_list.SetInParent()
        elif choice == 2:
            listed = request.input.example_list_with_context
            listed.context.features.feature["x2"].float_list.value.append(rng.choice([1.0, float("nan"), float("inf")]))
            listed.examples.add().features.feature["x"].float_list.value.append(2.0)
        elif choice == 3:
            example = request.input.example_list.examples.add()
            feature = example.features.feature[rng.choice(["x", "x2", "", "\u00e9", "trip_miles", "company"])]
            kind = rng.randrange(4)
            if kind == 0:
                feature.bytes_list.value.append(rng.choice([b"", b"\xff", b"2.0"]))
            elif kind == 1:
                feature.int64_list.value.extend([2**63 - 1, -1])
            elif kind == 2:
                feature.float_list.value.extend([1.0] * rng.choice([0, 2, 1000]))
            else:
                feature.SetInParent()  # a feature with no list
        elif choice == 4:
            for _ in range(rng.choice([1000, 5000])):
                request.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
        else:
            request.input.example_list_with_context.SetInParent()  # no examples, only a (empty) context
        return self._case("examples", method, request)

    def multi(self) -> GrpcCase:
        rng = self.rng
        method, request = self._base(("MultiInference",))
        if method != "MultiInference":
            return self._case("multi", method, request)
        choice = rng.randrange(5)
        if choice == 0:
            request.ClearField("tasks")
        elif choice == 1:
            request.tasks.add().CopyFrom(request.tasks[0])  # duplicate signature
        elif choice == 2:
            request.tasks[1].model_spec.name = rng.choice(self.models)  # tasks naming different models
        elif choice == 3:
            request.tasks[rng.randrange(2)].method_name = rng.choice(["", "tensorflow/serving/predict", "x", "\u00e9"])
        else:
            request.tasks[0].model_spec.signature_name = request.tasks[1].model_spec.signature_name
        return self._case("multi", method, request)

    def unequal_batch(self) -> GrpcCase:
        """Item 14: taxi's predict_raw columns of different lengths must be refused, not re-aligned."""
        requests_ = [r for m, r in self.valid if m == "Predict" and r.model_spec.signature_name == "predict_raw"]
        request = predict_pb2.PredictRequest()
        request.CopyFrom(self.rng.choice(requests_))
        key = self.rng.choice(sorted(request.inputs))
        tensor = request.inputs[key]
        rows = tensor.tensor_shape.dim[0].size
        new_rows = self.rng.choice([r for r in (0, 1, rows - 1, rows + 1, rows * 3) if r != rows and r >= 0])
        for name in ("float_val", "int64_val", "string_val"):
            values = list(getattr(tensor, name))
            if values:
                tensor.ClearField(name)
                getattr(tensor, name).extend((values * (new_rows + 1))[:new_rows])
        tensor.tensor_shape.dim[0].size = new_rows
        case = self._case("unequal_batch", "Predict", request)
        case.must_fail = f"predict_raw input {key!r} of {new_rows} rows beside inputs of {rows}"
        return case

    def metadata(self) -> GrpcCase:
        method, request = self._base(("GetModelMetadata",))
        if method == "GetModelMetadata":
            request.ClearField("metadata_field")
            request.metadata_field.extend(
                self.rng.choice([[], ["x"], ["signature_def"] * 2, ["\u00e9"], ["signature_def", "x"]])
            )
        return self._case("metadata", method, request)

    def raw(self) -> GrpcCase:
        """Bytes that may not be a protobuf: flipped, cut, extended, or invalid UTF-8 in a string field."""
        rng = self.rng
        method, request = self._base()
        case = self._case("raw", method, request)
        data = bytearray(case.request)
        choice = rng.randrange(5)
        if choice == 0 and data:
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:
            del data[rng.randrange(len(data)) :]
        elif choice == 2:
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        elif choice == 3:  # the model name's bytes replaced by invalid UTF-8 of the same length
            name = request.model_spec.name.encode() if hasattr(request, "model_spec") else b""
            at = bytes(data).find(name) if name else -1
            if at >= 0:
                data[at : at + len(name)] = (b"\xed\xa0\x80\xff" * len(name))[: len(name)]
        else:
            data = bytearray(b"\x0a\xff\xff\xff\xff\x0f")  # a length prefix claiming ~4 GB
        return GrpcCase(
            "raw", case.method, bytes(data), f"bytes {bytes(data)[:200].hex()} (from {case.text[:200]})", raw_bytes=True
        )

    def health(self) -> GrpcCase:
        from grpc_health.v1 import health_pb2

        request = health_pb2.HealthCheckRequest(service=self.rng.choice(["", *self.models, "nosuch", "\u00e9"]))
        return GrpcCase("health", "/grpc.health.v1.Health/Check", request.SerializeToString(), str(request))


def grpc_violation(case: GrpcCase, code: grpc.StatusCode, details: str) -> str | None:
    if code == grpc.StatusCode.OK and case.must_fail:
        return f"OK for {case.must_fail}"
    if code not in BAD_GRPC_CODES:
        return None
    if case.raw_bytes and code == grpc.StatusCode.INTERNAL and "deserializ" in details.lower():
        return None  # gRPC's own answer to bytes that are not the request message
    return f"gRPC {code.name}: {_clip(' '.join(details.split()), 160)}"


# --------------------------------------------------------------------------- the run


class Findings:
    """Violations grouped by kind, with the shortest reproducer of each; response code counts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.codes: collections.Counter = collections.Counter()
        self.seconds: collections.Counter = collections.Counter()  # time spent per (protocol, mutation kind)
        self.kinds: dict[tuple, tuple[int, str, str, int]] = {}  # key -> (size, reproducer, outcome, count)

    def count(self, protocol: str, code: str, kind: str, seconds: float) -> None:
        with self.lock:
            self.codes[(protocol, code)] += 1
            self.seconds[(protocol, kind)] += seconds

    def add(self, protocol: str, kind: str, outcome: str, reproducer: str, size: int) -> None:
        key = (protocol, kind, _normalize(outcome))
        with self.lock:
            old = self.kinds.get(key)
            count = (old[3] if old else 0) + 1
            if old is None or size < old[0]:
                self.kinds[key] = (size, reproducer, outcome, count)
            else:
                self.kinds[key] = (*old[:3], count)

    def report(self) -> str:
        lines = [f"{len(self.kinds)} failure kinds:"]
        for (protocol, kind, _), (_, reproducer, outcome, count) in sorted(self.kinds.items()):
            lines.append(f"- [{protocol}/{kind}] x{count}: {outcome}\n    reproducer: {reproducer}")
        return "\n".join(lines)


def _normalize(outcome: str) -> str:
    """An outcome without the request's own values, so one bug is one kind."""
    outcome = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", outcome)
    return re.sub(r"\d+", "#", outcome)[:90]


class ServerMemory:
    """The server process's RSS: sampled every 50 ms, and the kernel's high-water mark (VmHWM)."""

    def __init__(self, target: Target):
        self.target = target
        self.start = self.peak = self.rss()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def rss(self) -> int:
        import psutil

        return psutil.Process(self.target.process.pid).memory_info().rss if self.target.process else 0

    def reset_high_water_mark(self) -> None:
        """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
        if self.target.process is not None:
            with open(f"/proc/{self.target.process.pid}/clear_refs", "w") as f:
                f.write("5")
        self.start = self.peak = self.rss()

    def high_water_mark(self) -> int:
        """The peak RSS since the last reset: catches an allocation between two samples."""
        if self.target.process is None:
            return 0
        match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{self.target.process.pid}/status").read_text())
        return int(match.group(1)) * 1024 if match else 0

    def growth(self) -> int:
        return max(self.peak, self.rss(), self.high_water_mark()) - self.start

    def __enter__(self) -> ServerMemory:
        self.reset_high_water_mark()
        self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sampler.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05) and self.target.alive():
            self.peak = max(self.peak, self.rss())


def check_good(goods: list[Good], index: int, findings: Findings, protocol: str, after: str) -> None:
    good = goods[index % len(goods)]
    try:
        answer = good.call()
    except Exception as exc:  # noqa: BLE001 - any failure of a good request is a finding
        answer = f"{type(exc).__name__}: {_clip(str(exc), 200)}"
    if not _close(answer, good.expected):
        findings.add(
            protocol,
            "good_request",
            f"{good.name}: got {_clip(str(answer), 200)}, expected {_clip(str(good.expected), 120)}",
            f"after {after}",
            0,
        )


def _close(answer, expected) -> bool:
    if isinstance(expected, dict):
        return (
            isinstance(answer, dict)
            and answer.keys() == expected.keys()
            and all(_close(answer[k], expected[k]) for k in expected)
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(answer, (list, tuple))
            and len(answer) == len(expected)
            and all(_close(a, e) for a, e in zip(answer, expected, strict=True))
        )
    if isinstance(expected, float):
        return isinstance(answer, (int, float)) and math.isclose(answer, expected, rel_tol=1e-6, abs_tol=1e-6)
    return answer == expected


@dataclass
class Clients:
    session: requests.Session
    channel: grpc.Channel
    rest_good: list[Good]
    grpc_good: list[Good]


@pytest.fixture(scope="module")
def clients(target: Target) -> Iterator[Clients]:
    """Client connections and the known-good requests, each answered once before any fuzzing.

    Good requests without a fixed expectation (taxi) take this first answer as theirs.
    """
    session = requests.Session()
    channel = grpc.insecure_channel(
        target.grpc_target,
        options=[("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)],
    )
    grpc.channel_ready_future(channel).result(timeout=60)
    result = Clients(session, channel, rest_goods(target, session), grpc_goods(target, channel))
    failures = []
    for good in result.rest_good + result.grpc_good:
        try:
            answer = good.call()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{good.name}: {type(exc).__name__}: {_clip(str(exc), 300)}")
            continue
        if good.expected is None:
            good.expected = answer
        elif not _close(answer, good.expected):
            failures.append(f"{good.name}: got {_clip(str(answer), 300)}, expected {good.expected}")
    assert not failures, "known-good requests fail before fuzzing:\n" + "\n".join(failures)
    yield result
    channel.close()
    session.close()


def run_rest(target: Target, fuzzer: RestFuzzer, goods: list[Good], findings: Findings, count: int) -> None:
    http = RawHttp(target.rest_host, target.rest_port)
    try:
        for index in range(count):
            if not target.alive():
                findings.add("rest", "server", "server process exited", f"during REST request #{index}", 0)
                return
            case = fuzzer.next()
            started = time.monotonic()
            reply = http.send(case)
            code = "closed" if reply is None else str(reply.status)
            findings.count("rest", code, case.kind, time.monotonic() - started)
            problem = rest_violation(case, reply)
            if problem:
                findings.add("rest", case.kind, problem, case.describe(), len(case.body) + len(case.target))
            if (index + 1) % GOOD_EVERY == 0:
                check_good(goods, index // GOOD_EVERY, findings, "rest", f"REST request #{index}: {case.describe(120)}")
    finally:
        http.close()


def run_grpc(
    target: Target, fuzzer: GrpcFuzzer, goods: list[Good], findings: Findings, count: int, channel: grpc.Channel
) -> None:
    callables: dict[str, Callable] = {}
    for index in range(count):
        if not target.alive():
            findings.add("grpc", "server", "server process exited", f"during gRPC request #{index}", 0)
            return
        case = fuzzer.next()
        call = callables.setdefault(case.method, channel.unary_unary(case.method))  # bytes in, bytes out
        started = time.monotonic()
        try:
            call(case.request, timeout=CLIENT_TIMEOUT)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
        findings.count("grpc", code.name, case.kind, time.monotonic() - started)
        problem = grpc_violation(case, code, details)
        if problem:
            findings.add("grpc", case.kind, problem, case.describe(), len(case.request))
        if (index + 1) % GOOD_EVERY == 0:
            check_good(goods, index // GOOD_EVERY, findings, "grpc", f"gRPC request #{index}: {case.describe(120)}")


def _refused(target: Target, rest_valid: list, grpc_valid: list, channel: grpc.Channel) -> list[str]:
    """The valid requests the fuzzer starts from that are not answered with 200 / OK."""
    from google.protobuf import text_format

    refused = []
    http = RawHttp(target.rest_host, target.rest_port)
    try:
        for model, verb, body in rest_valid:
            case = RestCase("valid", "POST", f"/v1/models/{model}:{verb}", to_json(body).encode())
            reply = http.send(case)
            if reply is None or reply.status != 200:
                refused.append(f"{case.describe(200)} -> {reply and reply.status} {reply and _message(reply.body)}")
    finally:
        http.close()
    for method, request in grpc_valid:
        service = MODEL_SERVICE if method == "GetModelStatus" else PREDICTION_SERVICE
        try:
            channel.unary_unary(service + method)(request.SerializeToString(), timeout=CLIENT_TIMEOUT)
        except grpc.RpcError as error:
            text = _clip(text_format.MessageToString(request, as_one_line=True), 200)
            refused.append(f"{method} {text} -> {error.code().name} {_clip(error.details() or '', 200)}")
    return refused


def _reporting(run: Callable, findings: Findings) -> Callable:
    """`run` whose exception (a fuzzer bug) becomes a finding instead of a silently shorter run."""

    def wrapped(*args):
        try:
            run(*args)
        except Exception as exc:  # noqa: BLE001
            import traceback

            findings.add("fuzzer", run.__name__, f"{type(exc).__name__}: {exc}", traceback.format_exc(), 0)

    return wrapped


# --------------------------------------------------------------------------- tests


def test_fuzz(target: Target, clients: Clients, capsys):
    """REST_REQUESTS and GRPC_REQUESTS generated requests, the two streams side by side."""
    findings = Findings()
    examples, rows = (_taxi_examples(2), _taxi_rows(2)) if MODEL_NAME in target.models else ([], ([], []))
    rest_valid = _valid_rest(target.models, examples, rows)
    grpc_valid = _valid_grpc(target.models, examples, rows[0])
    refused = _refused(target, rest_valid, grpc_valid, clients.channel)
    assert not refused, "valid requests (the fuzzer's seeds) are refused:\n" + "\n".join(refused)
    rest_fuzzer = RestFuzzer(random.Random(SEED), target.models, rest_valid)
    grpc_fuzzer = GrpcFuzzer(random.Random(SEED + 1), target.models, grpc_valid)
    started = time.monotonic()
    with ServerMemory(target) as memory:
        workers = [
            threading.Thread(
                target=_reporting(run_rest, findings),
                args=(target, rest_fuzzer, clients.rest_good, findings, REST_REQUESTS),
            ),
            threading.Thread(
                target=_reporting(run_grpc, findings),
                args=(target, grpc_fuzzer, clients.grpc_good, findings, GRPC_REQUESTS, clients.channel),
            ),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.monotonic() - started
        if target.alive():  # every good request once more at the end
            for index in range(len(clients.rest_good)):
                check_good(clients.rest_good, index, findings, "rest", "the whole run")
            for index in range(len(clients.grpc_good)):
                check_good(clients.grpc_good, index, findings, "grpc", "the whole run")
    page = _metrics_page(target, clients.session) if target.process is not None and target.alive() else ""
    labels = _label_values(page)
    model_labels = labels.get("model_name", set())

    mb = 2**20
    summary = [
        f"fuzzed {target.rest_url} / {target.grpc_target} ({', '.join(target.models)}), seed {SEED}: "
        f"{REST_REQUESTS} REST + {GRPC_REQUESTS} gRPC requests in {seconds:.1f} s",
        "REST statuses: " + ", ".join(f"{c}: {n}" for (p, c), n in sorted(findings.codes.items()) if p == "rest"),
        "gRPC codes: " + ", ".join(f"{c}: {n}" for (p, c), n in sorted(findings.codes.items()) if p == "grpc"),
        (
            f"server RSS {memory.start / mb:.0f} MB at the start, peak +{memory.growth() / mb:.0f} MB; metrics page "
            f"{len(page) / 1024:.0f} KB, {len(model_labels)} model_name values; "
            f"{_tracebacks(target)} tracebacks in the server log"
        )
        if target.process
        else "external server: its memory, metrics and log are not checked",
        "seconds per mutation kind: " + ", ".join(f"{p}/{k} {t:.1f}" for (p, k), t in findings.seconds.most_common()),
    ]
    with capsys.disabled():
        print("\n" + "\n".join(summary + ([findings.report()] if findings.kinds else [])))

    problems = [findings.report()] if findings.kinds else []
    if target.process is not None and memory.growth() >= RSS_GROWTH_LIMIT:
        problems.append(f"server RSS grew {memory.growth() / mb:.0f} MB (limit {RSS_GROWTH_LIMIT / mb:.0f} MB)")
    crowded = {k: len(v) for k, v in labels.items() if len(v) > LABEL_VALUES_LIMIT}
    if len(page) >= METRICS_PAGE_LIMIT or len(model_labels) > len(target.models) + 2 or crowded:
        problems.append(
            f"metrics page: {len(page) / 1024:.0f} KB, model_name values "
            f"{_clip(str(sorted(model_labels)), 300)}, labels with > {LABEL_VALUES_LIMIT} values: "
            f"{crowded} after requests naming hundreds of unknown models (item 12)"
        )
    if not target.alive():
        problems.append(f"the server exited:\n{_log_tail(target.log_path)}")
    assert not problems, "\n".join(summary + problems)


@pytest.mark.parametrize(
    "dtype, values", [(types_pb2.DT_FLOAT, {"float_val": [2.0]}), (types_pb2.DT_STRING, {"string_val": [b"x"]})]
)
def test_declared_shapes_are_checked_before_allocating(target: Target, clients: Clients, dtype, values):
    """Item 10: a 48-byte request claiming 10^8 elements must not make the server allocate them."""
    if target.process is None:
        pytest.skip("measures the server process's memory")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two" if "half_plus_two" in target.models else target.models[0]
    request.inputs["x"].CopyFrom(_tensor(dtype, [10**8], **values))
    predict = clients.channel.unary_unary(PREDICTION_SERVICE + "Predict")
    with ServerMemory(target) as memory:
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as error:
                predict(request.SerializeToString(), timeout=CLIENT_TIMEOUT)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    size = len(request.SerializeToString())
    assert memory.growth() < CLAIM_GROWTH_LIMIT, (
        f"{size}-byte requests claiming 10^8 elements: server RSS +{memory.growth() / 2**20:.0f} MB"
    )
    findings = Findings()
    check_good(clients.grpc_good, 0, findings, "grpc", "the claims")
    assert not findings.kinds, findings.report()


def test_decoding_a_large_body_does_not_stall_other_requests(target: Target, clients: Clients):
    """Item 11: a good request while a 16 MB :classify body is decoded (and refused) answers promptly."""
    model = "half_plus_two" if "half_plus_two" in target.models else target.models[0]
    body = (
        '{"signature_name": "serving_default", "examples": [' + ",".join(['{"x": [1.0, 2.0, 3.0]}'] * 700_000) + "]}"
    ).encode()
    reply: dict = {}

    def send_big():
        try:
            answer = requests.post(
                f"{target.rest_url}/v1/models/{model}:classify",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            reply["status"] = answer.status_code
        except requests.RequestException as exc:
            reply["status"] = repr(exc)

    sender = threading.Thread(target=send_big, daemon=True)
    sender.start()
    findings, slowest = Findings(), 0.0
    time.sleep(0.05)
    while sender.is_alive():
        started = time.monotonic()
        check_good(clients.rest_good, 0, findings, "rest", "a 16 MB :classify body")
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.02)
    assert reply["status"] in (400, 413, 504), reply  # predict signature for :classify, or too large / too slow
    assert not findings.kinds, findings.report()
    assert slowest < STALL_LIMIT_SECONDS, f"a good request took {slowest:.1f} s while a 16 MB body was decoded"


def test_oversized_content_length_is_refused_without_waiting_for_the_body(target: Target):
    """A declared Content-Length over --max-request-bytes can be answered (413, JSON) before any body arrives."""
    if target.process is None:
        pytest.skip("our server's --max-request-bytes")
    case = RestCase(
        "content_length", "POST", "/v1/models/half_plus_two:predict", b'{"instances": [', declared_length=10**12
    )
    http = RawHttp(target.rest_host, target.rest_port)
    try:
        http.sock = socket.create_connection(http.address, timeout=5)
        reply = http.send(case)
    finally:
        http.close()
    assert reply is not None and reply.status == 413, "no 413 within 5 s" if reply and reply.status == 0 else reply
    assert rest_violation(case, reply) is None, rest_violation(case, reply)


def _tracebacks(target: Target) -> int:
    return target.log_path.read_text(errors="replace").count("Traceback") if target.log_path else 0


def _metrics_page(target: Target, session: requests.Session) -> str:
    reply = session.get(target.rest_url + MONITORING_PATH, timeout=CLIENT_TIMEOUT)
    return reply.text if reply.status_code == 200 else ""


def _label_values(page: str) -> dict[str, set[str]]:
    """{label name: distinct values} over a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, set[str]] = collections.defaultdict(set)
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            for key, value in sample.labels.items():
                if key not in ("le", "quantile"):
                    values[key].add(value)
    return values
