"""REST conformance with TensorFlow Serving 2.16.1, from its own tests, on a model this test writes.

Expectations are ported from `model_servers/http_rest_api_handler_test.cc` (routes, codes, messages,
headers, status and metadata bodies) and `util/json_tensor_test.cc` (how JSON becomes tensors and
tensors JSON), plus the cases a fuzzer found (issue 10). The decoding cases of json_tensor_test.cc are
observed end to end through "echo" signatures, which return their inputs: what comes back is what
the server made of the JSON, written back as TF Serving writes it.

The model (`write_model`) is a TF1 graph (tf.compat.v1, reference variables) in a zero-padded
version directory, `default/00000123/`, as TF Serving's testdata: TF Serving's half_plus_two
(tests/serving/reference_models.py, the same tensors and signatures) plus echo signatures and a few
that return what TF Serving can't write. Our server serves it with version label "Version_Label",
set in its first config, so it starts with --allow-version-labels-for-unavailable-models (as
tensorflow_model_server needs --allow_version_labels_for_unavailable_models for such a config).

Against a real TF Serving: start it serving model `default` from an empty directory, then
    TFXP_CONFORMANCE_REST_MODEL_DIR=<that directory> TFXP_CONFORMANCE_REST=http://host:8501 pytest <this file>
(e.g. `docker run -p 8501:8501 -v /tmp/rest-conformance:/models/default -e MODEL_NAME=default
tensorflow/serving:2.16.1`). The test writes version 123 there and waits for it. Tests of this server's
own parts (extensions, metrics, deadlines, its bugs) and of its deliberate refusals are skipped then.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import reference_models as rm
import requests
from serving_harness import serving_front_end

MODEL = "default"
VERSION = 123
VERSION_DIR = "00000123"
LABEL = "Version_Label"
TIMEOUT = 60
JSON = "application/json"

# Echo signatures: one input "default" of unknown shape, returned as output "default".
ECHO_DTYPES = ("float", "double", "int32", "int64", "int8", "uint8", "uint32", "uint64", "bool", "string", "half")


# --------------------------------------------------------------------------- the model


def write_model(base_path: Path) -> Path:
    """`<base_path>/00000123/`: half_plus_two (TF1) and the echo signatures, written beside and renamed in."""
    target = base_path / VERSION_DIR
    if target.exists():
        return target
    base_path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base_path.parent))
    try:
        _build(str(staging / VERSION_DIR))
        os.rename(staging / VERSION_DIR, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(export_dir: str) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    build_info = v1.saved_model.utils.build_tensor_info

    def signature(inputs: dict, outputs: dict, method: str = rm.PREDICT_METHOD):
        return v1.saved_model.signature_def_utils.build_signature_def(
            {k: build_info(t) for k, t in inputs.items()}, {k: build_info(t) for k, t in outputs.items()}, method
        )

    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        # TF Serving's half_plus_two, tensor for tensor (reference_models.write_half_plus_two_tf1).
        a = v1.Variable(0.5, name="a", use_resource=False)
        b = v1.Variable(2.0, name="b", use_resource=False)
        c = v1.Variable(3.0, name="c", use_resource=False)
        serialized = v1.placeholder(tf.string, name="tf_example")
        parsed = rm._parse_example_v1(tf, serialized)  # the TF 1.x ParseExample op, as the original
        x = tf.identity(parsed["x"], name="x")
        x2 = tf.identity(parsed["x2"], name="x2")
        a2 = v1.Variable(0.5, name="a2", use_resource=False)
        c2 = v1.Variable(3.0, name="c2", use_resource=False)
        tensors = {
            "tf_example:0": serialized,
            "x:0": x,
            "x2:0": x2,
            "y:0": tf.identity(a * x + b, name="y"),
            "y2:0": tf.identity(a * x + c, name="y2"),
            "y3:0": tf.identity(a2 * x2 + c2, name="y3"),
        }
        signatures = {
            key: signature(
                {k: tensors[t] for k, t in inputs.items()}, {k: tensors[t] for k, t in outputs.items()}, method
            )
            for key, (method, inputs, outputs) in rm.HALF_PLUS_TWO_TF1_SIGNATURES.items()
        }

        def placeholder(dtype: str, name: str):
            return v1.placeholder(tf.as_dtype(dtype), shape=None, name=name)

        for dtype in ECHO_DTYPES:
            echo_in = placeholder(dtype, f"echo_{dtype}_in")
            signatures[f"echo_{dtype}"] = signature({"default": echo_in}, {"default": tf.identity(echo_in)})
        string_in = placeholder("string", "bytes_in")
        signatures["echo_bytes"] = signature({"default": string_in}, {"str_tensor_bytes": tf.identity(string_in)})
        multi = {
            "int_tensor": placeholder("int32", "m_int"),
            "str_tensor": placeholder("string", "m_str"),
            "float_tensor": placeholder("float", "m_float"),
            "dbl_tensor": placeholder("double", "m_dbl"),
        }
        signatures["echo_multi"] = signature(multi, {k: tf.identity(t) for k, t in multi.items()})
        two = {"int_tensor": placeholder("int32", "t_int"), "str_tensor": placeholder("string", "t_str")}
        signatures["echo_two"] = signature(two, {k: tf.identity(t) for k, t in two.items()})
        columnar = {
            "int_tensor": placeholder("int32", "c_int"),
            "str_tensor": placeholder("string", "c_str"),
            "bin_tensor": placeholder("string", "c_bin"),
        }
        signatures["echo_columnar"] = signature(
            columnar,
            {
                "int_tensor": tf.identity(columnar["int_tensor"]),
                "str_tensor": tf.identity(columnar["str_tensor"]),
                "bin_tensor_bytes": tf.identity(columnar["bin_tensor"]),
            },
        )
        # Outputs TF Serving can't write as JSON (json_tensor_test.cc FromJson*Errors).
        f = v1.placeholder(tf.float32, shape=[None], name="f")
        signatures["scalar_out"] = signature({"x": f}, {"y": tf.reduce_sum(f)})
        signatures["half_out"] = signature({"x": f}, {"y": tf.cast(f, tf.float16)})
        signatures["ragged_out"] = signature({"x": f}, {"a": tf.identity(f), "b": tf.concat([f, f], 0)})
        signatures["zero_batch"] = signature({"x": f}, {"i": tf.zeros([0, 2], tf.int32), "s": tf.fill([0, 1, 2], "s")})
        signatures["no_inputs"] = signature({}, {"y": tf.constant([1.0])})

        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING], signature_def_map=signatures)
        builder.save()


# --------------------------------------------------------------------------- the server


@dataclass
class Target:
    url: str
    background: object = None  # serving_harness.BackgroundServer for our own server

    @property
    def external(self) -> bool:
        return self.background is None


TF2_MODEL = "tf2_defaults"  # our server only: a TF2 SavedModel whose signature has an input default


def write_tf2_model(base_path: Path) -> None:
    """`<base_path>/1/`: tf.saved_model.save of y = x * scale, `scale` defaulting to 2 (SignatureDef.defaults)."""
    import tensorflow as tf

    class Scale(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.float32, name="x"), tf.TensorSpec([], tf.float32, name="scale")]
        )
        def scale(self, x, scale=tf.constant(2.0)):
            return {"y": x * scale}

    module = Scale()
    tf.saved_model.save(module, str(base_path / "1"), signatures={"serving_default": module.scale})


def _config_text(base: Path, tf2_base: Path) -> str:
    return (
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow" '
        f"model_version_policy {{ specific {{ versions: {VERSION} }} }} "
        f'version_labels {{ key: "{LABEL}" value: {VERSION} }} }} '
        f'config {{ name: "{TF2_MODEL}" base_path: "{tf2_base}" model_platform: "tensorflow" }} }}\n'
    )


def _start_own_server(tmp_path_factory, **options):
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    folder = tmp_path_factory.mktemp("rest_conformance")
    base = folder / MODEL
    write_model(base)
    write_tf2_model(folder / TF2_MODEL)
    config = folder / "models.config"
    config.write_text(_config_text(base, folder / TF2_MODEL))
    return BackgroundServer(
        ServerOptions(
            model_config_file=config,
            rest_port=0,
            grpc_port=0,
            poll_seconds=0,
            allow_version_labels_for_unavailable_models=True,
            **options,
        )
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    external = os.environ.get("TFXP_CONFORMANCE_REST")
    if external:
        write_model(Path(os.environ["TFXP_CONFORMANCE_REST_MODEL_DIR"]))
        _wait_available(external.rstrip("/"))
        yield Target(external.rstrip("/"))
        return
    background = _start_own_server(tmp_path_factory)
    try:
        yield Target(f"http://127.0.0.1:{background.server.rest_port}", background)
    finally:
        background.stop()


def _wait_available(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v1/models/{MODEL}/versions/{VERSION}", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} never served {MODEL} version {VERSION}")


@pytest.fixture
def own(target):
    if target.external:
        pytest.skip("a part of this server (or one of its deliberate refusals), not TF Serving's")
    return target


def call(target: Target, method: str, path: str, body=None, **kwargs) -> requests.Response:
    """One request; a dict body is sent as JSON text (NaN literals allowed), str/bytes as is."""
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    return requests.request(method, target.url + path, data=data, timeout=TIMEOUT, **kwargs)


def predict(target: Target, body, path: str = f"/v1/models/{MODEL}:predict") -> requests.Response:
    return call(target, "POST", path, body)


def ok(response: requests.Response):
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["Content-Type"] == JSON
    return response.json()


def error(response: requests.Response, status: int, *needles: str) -> str:
    """The error message of a TF Serving error answer: `{"error": ...}`, application/json, `status`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    for needle in needles:
        assert needle in body["error"], (needle, body["error"])
    return body["error"]


def numbers_as_text(response: requests.Response):
    """The body with every number as its text (json_tensor_test.cc CompareJsonAllValuesAsStrings)."""
    assert response.status_code == 200, (response.status_code, response.text)
    return json.loads(response.text, parse_float=str, parse_int=str, parse_constant=str)


def echo(target: Target, dtype: str, body: dict):
    return predict(target, {"signature_name": f"echo_{dtype}", **body})


# --------------------------------------------------------------------------- routes (UnsupportedApiCalls)

MALFORMED = [
    # http_rest_api_handler_test.cc UnsupportedApiCalls
    ("GET", "/v1/foo"),
    ("POST", "/v1/foo"),
    ("GET", "/v1/models/debug/model_name"),
    ("POST", "/v1/models"),
    ("GET", "/v1/models/foo:predict"),
    ("GET", "/v1/models/foo/version/50:predict"),
    ("POST", "/v1/models/foo/version/50:regress"),
    ("POST", "/v1/models/foo/versions/HELLO:regress"),
    ("POST", "/v1/models/foo/metadata"),
    ("POST", "/v1/models/foo/label/some_label:regress"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress"),
    ("POST", "/v1/models/foo/versions/some_label:regress"),
    # The same regexes: the verb is compared in lower case after a case-insensitive match, the path is
    # matched with its query, and only GET and POST are routed.
    ("POST", f"/v1/models/{MODEL}:PREDICT"),
    ("POST", f"/v1/models/{MODEL}:Predict"),
    ("POST", f"/v1/models/{MODEL}:predict?debug=1"),
    ("POST", f"/v1/models/{MODEL}:explain"),
    ("PUT", f"/v1/models/{MODEL}:predict"),
    ("DELETE", f"/v1/models/{MODEL}"),
    ("GET", "/v1/models/"),
    ("GET", f"/v1/models/{MODEL}/"),
    ("GET", f"/v1/models/{MODEL}/versions/-1"),
    ("GET", f"/v1/models/{MODEL}/versions/١٢٣"),  # non-ASCII digits: RE2's \d is [0-9]
]


@pytest.mark.parametrize("method, path", MALFORMED)
def test_malformed_request(target, method, path):
    error(call(target, method, path, "{}"), 400, f"Malformed request: {method} ")


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/versions/3", f"/v1/models/labels/{LABEL}/metadata"])
def test_get_without_a_model_name_is_missing_model_name(target, path):
    # TF Serving has no list of models: GET /v1/models is this 400 (our list is at /tfxp/models).
    error(call(target, "GET", path), 400, "Missing model name in request.")


@pytest.mark.parametrize(
    "method, suffix", [("POST", ":regress"), ("POST", ":predict"), ("GET", ""), ("GET", "/metadata")]
)
@pytest.mark.parametrize("version", [str(2**64 - 1), "9223372036854775808", "9" * 4301])
def test_version_beyond_int64_fails_to_convert(target, method, suffix, version):
    message = error(
        call(target, method, f"/v1/models/{MODEL}/versions/{version}{suffix}", "{}"), 400, "Failed to convert version"
    )
    assert message == f"Failed to convert version: {version} to numeric."


def test_routes_are_case_insensitive_but_verbs_and_metadata_are_lower_case(target):
    body = {"instances": [1.0]}
    assert ok(predict(target, body, f"/V1/Models/{MODEL}/VERSIONS/{VERSION}:predict")) == {"predictions": [2.5]}
    assert ok(predict(target, body, f"/v1/models/{MODEL}/LABELS/{LABEL}:predict")) == {"predictions": [2.5]}
    # "/METADATA" matches the status regex but is not "metadata": a status request.
    assert "model_version_status" in ok(call(target, "GET", f"/v1/MODELS/{MODEL}/METADATA"))


def test_names_and_labels_are_url_decoded(target):
    # DecodeArg (curl_easy_unescape) on the model name and the label.
    assert ok(predict(target, {"instances": [1.0]}, "/v1/models/def%61ult:predict")) == {"predictions": [2.5]}
    assert ok(call(target, "GET", f"/v1/models/{MODEL}/labels/Version%5FLabel")) == rm.STATUS_REST_RESPONSE
    # GetModelStatus ignores the label (get_model_status_impl.cc): every version, even for an unknown label.
    assert ok(call(target, "GET", f"/v1/models/{MODEL}/labels/nope")) == rm.STATUS_REST_RESPONSE
    error(
        call(target, "GET", f"/v1/models/{MODEL}/labels/nope/metadata"),
        400,
        "Unrecognized servable version label: nope",
    )
    error(predict(target, {"instances": [1.0]}, f"/v1/models/{MODEL}/labels/:predict"), 400, "Malformed request")


def test_leading_zeros_in_a_version(target):
    assert ok(call(target, "GET", f"/v1/models/{MODEL}/versions/000{VERSION}")) == rm.STATUS_REST_RESPONSE


def test_only_v1_paths_are_the_model_handlers(target):
    # kPathRegex: "/v1/models" is handled, "/statuspage" and "/index" are not (404 from the HTTP server).
    for path in ("/statuspage", "/index", "/v1", "/v2/models/default"):
        response = call(target, "GET", path)
        assert response.status_code == 404, (path, response.text)
        if not target.external:
            error(response, 404, "Not found")


def test_cors_preflight(target):
    assert (
        call(target, "OPTIONS", f"/v1/models/{MODEL}:predict", headers={"Origin": "https://a.example"}).status_code
        == 200
    )
    response = call(target, "OPTIONS", f"/v1/models/{MODEL}:predict")
    assert response.status_code == 400
    if not target.external:  # TF Serving answers with an empty body; ours says why, in JSON
        error(response, 400, "Origin header is missing in CORS preflight")


# --------------------------------------------------------------------------- predict (PredictModelNameVersionErrors,
# PredictRequestErrors, Predict)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/foo:predict",
        "/v1/models/foo/versions/50:predict",
        f"/v1/models/{MODEL}99:predict",
        f"/v1/models/{MODEL}/versions/50:predict",
    ],
)
def test_unknown_model_or_version_is_not_found(target, path):
    error(predict(target, {"instances": [1]}, path), 404)


def test_predict_request_errors(target):
    error(predict(target, ""), 400, "JSON Parse error: The document is empty")
    error(predict(target, "instances = [1, 2]"), 400, "JSON Parse error: Invalid value")
    error(predict(target, {"instances": ["x", "y"]}), 400, "not of expected type: float")
    error(
        predict(target, {"instances": ["x", "y"]}, f"/v1/models/{MODEL}/labels/Version_Nonexistent:predict"),
        400,
        "Unrecognized servable version label",
    )
    error(predict(target, {"signature_name": 100}), 400, "'signature_name' key must be a string value.")


def test_predict(target):
    assert ok(predict(target, {"instances": [[1.0, 2.0], [3.0, 4.0]]})) == {"predictions": [[2.5, 3.0], [3.5, 4.0]]}
    for path in (f"/v1/models/{MODEL}/versions/{VERSION}:predict", f"/v1/models/{MODEL}/labels/{LABEL}:predict"):
        assert ok(predict(target, {"instances": [1.0, 2.0]}, path)) == {"predictions": [2.5, 3.0]}
    assert ok(predict(target, {"signature_name": "serving_default", "instances": [3.0, 4.0]})) == {
        "predictions": [3.5, 4.0]
    }
    assert ok(predict(target, {"signature_name": "serving_default", "inputs": [3.0, 4.0]})) == {"outputs": [3.5, 4.0]}
    # tensorflow_model_server_test.py testPredictREST / testPredictColumnarREST
    assert ok(predict(target, rm.PREDICT_REST_REQUEST)) == rm.PREDICT_REST_RESPONSE
    assert ok(predict(target, rm.PREDICT_COLUMNAR_REST_REQUEST)) == rm.PREDICT_COLUMNAR_REST_RESPONSE


def test_signature_without_inputs(target):
    error(
        predict(target, {"signature_name": "no_inputs", "instances": [1]}),
        400,
        "Failed to get input map for signature: no_inputs",
    )


def test_unknown_signature_is_400_naming_it(target):
    message = error(predict(target, {"signature_name": 'Bad key: "key"', "instances": [1]}), 400)
    assert 'Bad key: "key"' in message  # quotes survive in the JSON error (MakeJsonFromStatus)


# --------------------------------------------------------------------------- regress / classify


def test_regress(target):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    for path in (
        f"/v1/models/{MODEL}:regress",
        f"/v1/models/{MODEL}/versions/{VERSION}:regress",
        f"/v1/models/{MODEL}/labels/{LABEL}:regress",
    ):
        response = call(target, "POST", path, body)
        assert ok(response) == {"results": [42]}
        assert numbers_as_text(response) == {"results": ["42.0"]}  # a proto float, WriteDecimal
    assert ok(call(target, "POST", f"/v1/models/{MODEL}:regress", rm.REGRESS_REST_REQUEST)) == rm.REGRESS_REST_RESPONSE


def test_classify(target):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}
    response = call(target, "POST", f"/v1/models/{MODEL}:classify", body)
    assert ok(response) == {"results": [[["", 12]]]}  # no classes output: label ""
    assert numbers_as_text(response) == {"results": [[["", "12.0"]]]}
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]}
    assert ok(call(target, "POST", f"/v1/models/{MODEL}/labels/{LABEL}:classify", body)) == {"results": [[["", 7]]]}
    assert ok(call(target, "POST", f"/v1/models/{MODEL}:classify", rm.CLASSIFY_REST_REQUEST)) == (
        rm.CLASSIFY_REST_RESPONSE
    )


def test_regress_non_finite_results(target):
    # json_tensor_test.cc JsonFromRegressionResultWithNonFinite, through the model: y = 0.5 x + 2.
    body = {
        "signature_name": "regress_x_to_y",
        "examples": [{"x": 0.2}, {"x": float("inf")}, {"x": float("nan")}, {"x": float("-inf")}],
    }
    response = call(target, "POST", f"/v1/models/{MODEL}:regress", body)
    assert numbers_as_text(response) == {"results": ["2.1", "Infinity", "NaN", "-Infinity"]}


CLASSIFY_REGRESS_JSON_ERRORS = [
    # json_tensor_test.cc ClassifyRegressRequestTest.JsonErrors
    ({"signature_name": ["hello"], "examples": [{"names": ["foo", "bar"]}]}, "'signature_name' key must be a string"),
    ({"context": [{"names": ["foo", "bar"]}]}, "Example must be JSON object"),
    ({"examples": {"names": ["foo", "bar"]}}, "list/array"),
    ({"examples": [[{"names": ["foo", "bar"]}]]}, "Example must be JSON object"),
    ({"examples": [{"names": [10, None]}]}, "names has element with unexpected JSON type: Null"),
    ({"examples": [{"names": [10, 10.0]}]}, "feature: names expecting type: int64"),
    ({"examples": [{"names": [10, {"test": 10}]}]}, "names has element with unexpected JSON type: Object"),
    ({"examples": [{"names": [[10], 20]}]}, "names has element with unexpected JSON type: Array"),
    ('{"examples": [{"names": [20, 18446744073709551603]}]}', "Only int64_t is supported"),
]


@pytest.mark.parametrize("verb, signature", [("classify", "classify_x_to_y"), ("regress", "regress_x_to_y")])
@pytest.mark.parametrize("body, needle", CLASSIFY_REGRESS_JSON_ERRORS)
def test_classify_regress_json_errors(target, verb, signature, body, needle):
    if isinstance(body, dict) and "signature_name" not in body:
        body = {"signature_name": signature, **body}
    elif isinstance(body, str):
        body = body.replace("{", f'{{"signature_name": "{signature}", ', 1)
    error(call(target, "POST", f"/v1/models/{MODEL}:{verb}", body), 400, needle)


@pytest.mark.parametrize("verb", ["classify", "regress"])
@pytest.mark.parametrize(
    "path, signature",
    [
        (f"/v1/models/{MODEL}", "nope"),  # an unknown signature
        (f"/v1/models/{MODEL}", "serving_default"),  # a signature with no tf.Example input
        ("/v1/models/no_such_model", "classify_x_to_y"),  # an unknown model
        (f"/v1/models/{MODEL}/versions/9", "classify_x_to_y"),  # an unknown version
        (f"/v1/models/{MODEL}/labels/no_such_label", "classify_x_to_y"),  # an unknown label
    ],
    ids=["unknown signature", "predict signature", "unknown model", "unknown version", "unknown label"],
)
@pytest.mark.parametrize(
    "body, needle",
    [
        *CLASSIFY_REGRESS_JSON_ERRORS,
        ({}, "When method is classify, key 'examples' is expected and was not found"),
        ({"examples": []}, "'examples' value is an empty array"),
    ],
)
def test_classify_regress_json_errors_come_before_the_model_and_signature(target, verb, path, signature, body, needle):
    # ProcessClassifyRequest / ProcessRegressRequest fill the whole request from the JSON
    # (FillClassificationRequestFromJson) before Classify / Regress look the servable and signature up:
    # a malformed body is the parse error (400) whatever the model, version, label or signature.
    if isinstance(body, dict):
        body = {"signature_name": signature, **body}  # an invalid signature_name of `body` stays
    else:
        body = body.replace("{", f'{{"signature_name": "{signature}", ', 1)
    error(call(target, "POST", f"{path}:{verb}", body), 400, needle)


def _examples_request(examples: list[bytes]):
    from tensorflow.core.example import example_pb2

    return [example_pb2.Example.FromString(e) for e in examples]


def test_classify_regress_requests_as_tf_serving_builds_them():
    """ClassifyRegressRequestTest RequestNoContext / RequestWithContextAndSignature: the Examples."""
    from google.protobuf import text_format
    from tensorflow.core.example import example_pb2

    from tfxp.serving.protocol import decode_examples, parse_json, signature_name

    request = parse_json(
        b'{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},'
        b' {"names": ["baz"], "ratings": 6.0}]}'
    )
    first, second = _examples_request(decode_examples(request))
    assert first == text_format.Parse(
        'features { feature { key: "names" value { bytes_list { value: "foo" value: "bar" } } } '
        'feature { key: "ratings" value { float_list { value: 8.0 value: 9.0 } } } '
        'feature { key: "age" value { int64_list { value: 20 } } } }',
        example_pb2.Example(),
    )
    assert second == text_format.Parse(
        'features { feature { key: "names" value { bytes_list { value: "baz" } } } '
        'feature { key: "ratings" value { float_list { value: 6.0 } } } }',
        example_pb2.Example(),
    )

    request = parse_json(
        b'{"signature_name": "custom_signture", "context": {"query": "pizza", "location": ["sfo"]},'
        b' "examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},'
        b' {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0, "intboolmix": [1, true, false]},'
        b' {"names": "bar", "ratings": -Infinity}]}'
    )
    assert signature_name(request) == "custom_signture"
    context = (
        'feature { key: "query" value { bytes_list { value: "pizza" } } } '
        'feature { key: "location" value { bytes_list { value: "sfo" } } } '
    )
    expected = [
        'feature { key: "names" value { bytes_list { value: "foo" value: "bar" } } } '
        'feature { key: "ratings" value { float_list { value: 8.0 value: 9.0 value: nan value: inf } } } '
        'feature { key: "age" value { int64_list { value: 20 } } }',
        'feature { key: "names" value { bytes_list { value: "baz" value: "hello" } } } '
        'feature { key: "ratings" value { float_list { value: 6.0 } } } '
        'feature { key: "intboolmix" value { int64_list { value: 1 value: 1 value: 0 } } }',
        'feature { key: "names" value { bytes_list { value: "bar" } } } '
        'feature { key: "ratings" value { float_list { value: -inf } } }',
    ]
    # With a context, each serialized input is the context's bytes, then the example's (util.cc).
    for got, text in zip(_examples_request(decode_examples(request)), expected, strict=True):
        want = text_format.Parse("features { " + context + text + " }", example_pb2.Example())
        assert text_format.MessageToString(got) == text_format.MessageToString(want)


# --------------------------------------------------------------------------- status and metadata


def test_get_status(target):
    for path in (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/versions/{VERSION}", f"/v1/models/{MODEL}/labels/{LABEL}"):
        assert ok(call(target, "GET", path)) == rm.STATUS_REST_RESPONSE


def _info(name: str, dtype: str, dims) -> dict:
    """A TensorInfo as TF Serving prints it (always_print_primitive_fields); dims None = unknown rank."""
    if dims is None:
        return {"dtype": dtype, "tensor_shape": {"dim": [], "unknown_rank": True}, "name": name}
    return {
        "dtype": dtype,
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
        "name": name,
    }


def test_get_model_metadata(target):
    """GetModelMetadata: every default-valued field printed, as MessageToJsonString(always_print_primitive_fields,
    preserve_proto_field_names) prints it: "defaults": {}, "dim": [], "unknown_rank": false, "name": ""."""
    body = ok(call(target, "GET", f"/v1/models/{MODEL}/metadata"))
    assert body == ok(call(target, "GET", f"/v1/models/{MODEL}/versions/{VERSION}/metadata"))
    assert body == ok(call(target, "GET", f"/v1/models/{MODEL}/labels/{LABEL}/metadata"))
    expected = rm.half_plus_two_tf1_metadata(MODEL)
    assert body["model_spec"] == expected["model_spec"] == {"name": MODEL, "signature_name": "", "version": "123"}
    assert set(body["metadata"]) == {"signature_def"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    for key, value in expected["metadata"]["signature_def"]["signature_def"].items():
        assert signatures[key] == value, key
    assert signatures["echo_float"] == {
        "inputs": {"default": _info("echo_float_in:0", "DT_FLOAT", None)},
        "outputs": {"default": _info("Identity:0", "DT_FLOAT", None)},
        "method_name": rm.PREDICT_METHOD,
        "defaults": {},
    }
    assert signatures["scalar_out"]["outputs"] == {"y": _info("Sum:0", "DT_FLOAT", [])}
    assert signatures["scalar_out"]["inputs"] == {"x": _info("f:0", "DT_FLOAT", [-1])}
    assert signatures["no_inputs"]["inputs"] == {}
    assert signatures["half_out"]["outputs"]["y"]["dtype"] == "DT_HALF"


def test_get_model_metadata_of_a_tf2_model(own):
    """Any SignatureDef prints the same way: the TF2 init-op entry (DT_INVALID, method_name ""), and
    `defaults` as TensorProto JSON with every field (empty repeated ones included)."""
    from tensorflow.core.framework import tensor_pb2

    body = ok(call(own, "GET", f"/v1/models/{TF2_MODEL}/metadata"))
    assert body["model_spec"] == {"name": TF2_MODEL, "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert signatures["__saved_model_init_op"] == {
        "inputs": {},
        "outputs": {"__saved_model_init_op": _info("NoOp", "DT_INVALID", None)},
        "method_name": "",
        "defaults": {},
    }
    serving_default = signatures["serving_default"]
    assert serving_default["inputs"] == {
        "x": _info("serving_default_x:0", "DT_FLOAT", [-1]),
        "scale": _info("serving_default_scale:0", "DT_FLOAT", []),
    }
    assert serving_default["method_name"] == rm.PREDICT_METHOD
    default = {
        field.name: [] if field.label == field.LABEL_REPEATED else 0 if field.type == field.TYPE_INT32 else ""
        for field in tensor_pb2.TensorProto.DESCRIPTOR.fields
    }
    default.update(dtype="DT_FLOAT", tensor_shape={"dim": [], "unknown_rank": False}, float_val=[2.0])
    assert serving_default["defaults"] == {"scale": default}
    # REST still needs every input (FillTensorMapFromInputsMap); only gRPC requests may leave `scale` out.
    error(
        predict(own, {"inputs": {"x": [1.0, 2.0]}}, f"/v1/models/{TF2_MODEL}:predict"),
        400,
        "Missing named input: scale in 'inputs' object.",
    )
    assert ok(predict(own, {"inputs": {"x": [1.0, 2.0], "scale": 3.0}}, f"/v1/models/{TF2_MODEL}:predict")) == {
        "outputs": [3.0, 6.0]
    }


def test_every_answer_is_application_json(target):
    for response in (
        predict(target, {"instances": [1.0]}),
        predict(target, "{"),
        call(target, "GET", "/v1/models"),
        call(target, "GET", f"/v1/models/{MODEL}"),
        call(target, "GET", f"/v1/models/{MODEL}/metadata"),
        call(target, "GET", "/v1/models/nope"),
        call(target, "GET", "/v1/nope"),
    ):
        assert response.headers["Content-Type"] == JSON, (response.request.url, response.headers)
        response.json()


# --------------------------------------------------------------------------- JSON -> tensors (json_tensor_test.cc)


def test_single_unnamed_tensor(target):
    rows = [[1, 2], [3, 4], [5, 6]]
    assert ok(echo(target, "int32", {"instances": rows})) == {"predictions": rows}
    assert ok(echo(target, "int32", {"instances": [[1, 2]]})) == {"predictions": [[1, 2]]}  # ...WithSignature


def test_mixed_input_for_float_and_double_tensors(target):
    assert numbers_as_text(echo(target, "float", {"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]})) == {
        "predictions": ["1.0", "2.0", "3.0", "4.0", "5.003", "0.007", "0.0"]
    }
    assert numbers_as_text(echo(target, "double", {"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]})) == {
        "predictions": ["1.0", "2.0", "3.0", "4.0", "0.662", "0.0", "0.0"]
    }


def test_float_tensor_with_precision_loss(target):
    # b/181409782: 1435774380 and 1435774380.0 behave the same (both rounded to float; TF Serving has no
    # lossless check any more), and so does 16777217 (issue 10: we used to refuse it).
    for value in ("1435774380", "1435774380.0"):
        assert numbers_as_text(echo(target, "float", {"instances": json.loads(f"[{value}]")})) == {
            "predictions": ["1.43577434e+09"]
        }
    assert ok(echo(target, "float", {"instances": [16777217]})) == {"predictions": [16777216.0]}


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1.79769e+308", "Infinity"),
        ("-1.79769e+308", "-Infinity"),  # absl::Substitute of ±DBL_MAX
        ("1.7976931348623157e308", "Infinity"),
        ("-1.7976931348623157e308", "-Infinity"),
        ("2.22507e-308", "0.0"),
        ("-2.22507e-308", "-0.0"),  # ±DBL_MIN
    ],
)
def test_float_tensor_beyond_float_range(target, value, expected):
    response = predict(target, f'{{"signature_name": "echo_float", "instances": [{value}]}}')
    assert numbers_as_text(response) == {"predictions": [expected]}


@pytest.mark.parametrize(
    "token, expected",
    [
        ("NaN", "NaN"),
        ("-NaN", "NaN"),
        ("Inf", "Infinity"),
        ("-Inf", "-Infinity"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
    ],
)
def test_nan_and_infinity_as_rapidjson_reads_them(target, token, expected):
    for dtype in ("float", "double"):
        response = predict(target, f'{{"signature_name": "echo_{dtype}", "instances": [{token}]}}')
        assert numbers_as_text(response) == {"predictions": [expected]}


@pytest.mark.parametrize("number", ["1e309", "-1e400", "9" * 400, "9" * 5000])
def test_number_beyond_double_is_a_parse_error(target, number):
    error(
        predict(target, f'{{"signature_name": "echo_double", "instances": [{number}]}}'),
        400,
        "JSON Parse error: Number too big to be stored in double.",
    )


def test_base64_strings(target):
    b64 = [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]
    assert ok(echo(target, "string", {"instances": b64})) == {"predictions": ["hello", "world"]}
    assert ok(echo(target, "string", {"instances": [[b64[0]], [b64[1]]]})) == {"predictions": [["hello"], ["world"]]}
    assert ok(echo(target, "string", {"instances": [{"default": [[b64[0]], [b64[1]]]}]})) == {
        "predictions": [[["hello"], ["world"]]]
    }
    # Outputs named *_bytes come back base64-encoded (FromJsonSingleBytesTensor).
    response = predict(target, {"signature_name": "echo_bytes", "instances": [["hello", "world"], ["tf", "serving"]]})
    assert ok(response) == {
        "predictions": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]
    }


MULTI_ROWS = [
    {
        "int_tensor": [[1, 2], [3, 4], [5, 6]],
        "str_tensor": ["foo", "bar"],
        "float_tensor": [1.0, float("nan")],
        "dbl_tensor": [float("nan")],
    },
    {
        "int_tensor": [[7, 8], [9, 0], [1, 2]],
        "str_tensor": ["baz", "bat"],
        "float_tensor": [2.0, float("inf")],
        "dbl_tensor": [2.0],
    },
]


def test_multiple_named_tensors_row_format(target):
    response = predict(target, {"signature_name": "echo_multi", "instances": MULTI_ROWS})
    assert numbers_as_text(response) == {
        "predictions": [
            {
                "int_tensor": [["1", "2"], ["3", "4"], ["5", "6"]],
                "str_tensor": ["foo", "bar"],
                "float_tensor": ["1.0", "NaN"],
                "dbl_tensor": ["NaN"],
            },
            {
                "int_tensor": [["7", "8"], ["9", "0"], ["1", "2"]],
                "str_tensor": ["baz", "bat"],
                "float_tensor": ["2.0", "Infinity"],
                "dbl_tensor": ["2.0"],
            },
        ]
    }
    columns = {k: [row[k] for row in MULTI_ROWS] for k in MULTI_ROWS[0]}
    response = predict(target, {"signature_name": "echo_multi", "inputs": columns})
    assert numbers_as_text(response) == {
        "outputs": {
            "int_tensor": [[["1", "2"], ["3", "4"], ["5", "6"]], [["7", "8"], ["9", "0"], ["1", "2"]]],
            "str_tensor": [["foo", "bar"], ["baz", "bat"]],
            "float_tensor": [["1.0", "NaN"], ["2.0", "Infinity"]],
            "dbl_tensor": [["NaN"], ["2.0"]],
        }
    }


def test_columnar_format(target):
    for inputs in ({"default": [[[1, 2], [3, 4], [5, 6]]]}, [[[1, 2], [3, 4], [5, 6]]]):
        assert ok(echo(target, "int32", {"inputs": inputs})) == {"outputs": [[[1, 2], [3, 4], [5, 6]]]}
    response = predict(
        target,
        {
            "signature_name": "echo_columnar",
            "inputs": {
                "int_tensor": [[[1, 2], [3, 4], [5, 6]]],
                "str_tensor": ["foo", "bar"],
                "bin_tensor": {"b64": "aGVsbG8="},
            },
        },
    )
    assert ok(response) == {
        "outputs": {
            "int_tensor": [[[1, 2], [3, 4], [5, 6]]],
            "str_tensor": ["foo", "bar"],
            "bin_tensor_bytes": {"b64": "aGVsbG8="},
        }
    }


def test_scalar_and_integer_outputs(target):
    assert ok(echo(target, "int32", {"inputs": [1, 2, 3, 4, 5]})) == {"outputs": [1, 2, 3, 4, 5]}
    assert ok(echo(target, "int32", {"instances": [1, 2, 3, 4, 5]})) == {"predictions": [1, 2, 3, 4, 5]}
    assert ok(echo(target, "uint64", {"inputs": [18446744073709551615]})) == {"outputs": [18446744073709551615]}
    assert ok(echo(target, "int64", {"inputs": [-9223372036854775808]})) == {"outputs": [-9223372036854775808]}
    assert ok(echo(target, "bool", {"inputs": [[True, False]]})) == {"outputs": [[True, False]]}
    assert ok(predict(target, {"signature_name": "scalar_out", "inputs": [1.0, 2.0]})) == {"outputs": 3.0}


def test_six_digit_and_non_finite_output(target):
    # FromJsonSingleFloatTensorSixDigitPrecision / FromJsonSingleFloatTensorNonFinite, compared as text.
    response = echo(target, "float", {"instances": [[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]]})
    assert numbers_as_text(response) == {"predictions": [["9e+06", "999999.0", "0.5"], ["0.0003", "3e-05", "555557.5"]]}
    response = predict(target, '{"signature_name": "echo_float", "instances": [[NaN, Infinity], [3, -Infinity]]}')
    assert numbers_as_text(response) == {"predictions": [["NaN", "Infinity"], ["3.0", "-Infinity"]]}


SINGLE_TENSOR_ERRORS = [
    # SingleUnnamedTensorErrors (int32 input)
    ("int32", "", "document is empty"),
    ("int32", '{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', "must be a string value"),
    ("int32", '{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', "Not formatted correctly"),
    ("int32", '{"instances": [[1,2],[3,4],[5,6,7]]}', "Expecting tensor size"),
    ("int32", '{"instances": [[1,2],[3,4],[[5,6]]]}', "Expecting shape"),
    ("int32", '{"instances": [1, [1]]}', "Expecting shape"),
    ("int32", '{"instances": [[1,2],["a", "b"]]}', "not of expected type"),
    # MultipleNamedTensorErrors (int_tensor int32, str_tensor string; then one string input)
    (
        "two",
        '{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]}, '
        '{"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}',
        "Expecting shape",
    ),
    (
        "two",
        '{"instances": [{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo", "bar"]}, '
        '{"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"]}]}',
        "Expecting tensor size",
    ),
    (
        "two",
        '{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]}, [1, 20, 30], '
        '{"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}',
        "Expecting object but got list",
    ),
    ("string", '{"instances": [["baz", "bar"], {"default": ["baz", "bat"]}]}', "Expecting value/list but got object"),
    # Other FillPredictRequestFromJson checks
    ("two", '{"instances": [1, 2]}', "instances is a plain list, but expecting list of objects"),
    ("two", '{"inputs": [1, 2]}', "inputs is a plain value/list, but expecting an object"),
    ("two", '{"inputs": {"int_tensor": [1]}}', "Missing named input: str_tensor in 'inputs' object."),
    ("two", '{"instances": [{"int_tensor": 1}]}', "keys must be equal to: int_tensor,str_tensor"),
    ("two", '{"instances": [{"int_tensor": 1, "str_tensor": "a", "x": 1}]}', "does not have named input: x"),
    ("int32", '{"instances": []}', "No values in 'instances' array"),
    ("int32", '{"instances": {"a": 1}}', "Excepting 'instances' to be an list/array"),
    ("int32", '{"signature_name": "echo_int32"}', "Missing 'inputs' or 'instances' key"),
    ("int32", '{"inputs": [1.5]}', "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ("int32", '{"inputs": [2147483648]}', "is not of expected type: int32"),
    ("int64", '{"inputs": [2.0]}', "is not of expected type: int64"),
    ("bool", '{"inputs": [1]}', "Type: Number is not of expected type: bool"),
    ("string", '{"inputs": [{"b64": "aGk=", "x": 1}]}', "not formatted correctly for base64 data"),
    ("string", '{"inputs": [{"b64": "!!"}]}', "Unable to base64 decode"),
    ("float", '{"inputs": [{"b64": "aGk="}]}', "Type: Object is not of expected type: float"),
    ("float", '{"inputs": [null]}', "Type: Null is not of expected type: float"),
]


@pytest.mark.parametrize("dtype, body, needle", SINGLE_TENSOR_ERRORS)
def test_json_tensor_errors(target, dtype, body, needle):
    if body.startswith("{") and "signature_name" not in body:
        body = f'{{"signature_name": "echo_{dtype}", ' + body[1:]
    error(predict(target, body), 400, needle)


def test_dtype_json_cant_express_is_unimplemented(target):
    # AddValueToTensor's default case: UNIMPLEMENTED (501); in row format wrapped in INVALID_ARGUMENT.
    error(echo(target, "half", {"inputs": [1.0]}), 501, "Conversion of JSON Value: 1.0 to type: half")
    error(echo(target, "half", {"instances": [1.0]}), 400, "Error: UNIMPLEMENTED: Conversion of JSON Value")


def test_outputs_tf_serving_cant_write(target):
    # FromJsonSingleTensorErrors / FromJsonMultipleNamedTensorsErrors / ...ZeroBatch...
    error(
        predict(target, {"signature_name": "half_out", "instances": [1.0]}),
        400,
        "Failed to write JSON value for tensor type: half",
    )
    error(
        predict(target, {"signature_name": "scalar_out", "instances": [1.0]}),
        400,
        "Tensor name: y has no shape information",
    )
    error(predict(target, {"signature_name": "ragged_out", "instances": [1.0]}), 400, "inconsistent batch size")
    assert ok(predict(target, {"signature_name": "zero_batch", "instances": [1.0]})) == {"predictions": []}


# --------------------------------------------------------------------------- fuzzer cases (issue 10, item 9)


def test_lone_surrogates_in_signature_name(target):
    # A lone low surrogate is a string to rapidjson (TF Serving echoes its bytes, which are not UTF-8);
    # the answer here is valid UTF-8 JSON naming it. A lone high one is a parse error.
    response = predict(target, b'{"signature_name": "\\udc00", "instances": [1]}')
    assert response.status_code == 400
    if not target.external:
        assert "\udc00" in error(response, 400)
        assert response.content.decode("utf-8")  # valid UTF-8
    error(
        predict(target, b'{"signature_name": "\\ud800", "instances": [1]}'),
        400,
        "JSON Parse error: The surrogate pair in string is invalid.",
    )


def test_lists_nested_deeper_than_numpy_holds(own):
    nested = lambda depth: "[" * depth + "1" + "]" * depth
    assert ok(predict(own, f'{{"signature_name": "echo_float", "inputs": {nested(32)}}}'))["outputs"]
    error(
        predict(own, f'{{"signature_name": "echo_float", "inputs": {nested(33)}}}'),
        400,
        "Encountered lists nested 33 levels deep",
    )
    error(predict(own, f'{{"signature_name": "echo_float", "instances": [{nested(32)}]}}'), 400, "nested 32 levels")
    error(predict(own, f'{{"signature_name": "echo_float", "inputs": {nested(50_000)}}}'), 400, "JSON Parse error")
    assert ok(predict(own, {"instances": [1.0]})) == {"predictions": [2.5]}


def test_not_utf8_is_refused(own):
    # rapidjson does not validate UTF-8 (TF Serving would feed the raw bytes); this server refuses them.
    error(
        predict(own, b'{"signature_name": "echo_string", "inputs": ["\xff"]}'),
        400,
        "JSON Parse error: Invalid encoding in string.",
    )


# --------------------------------------------------------------------------- this server's own parts


def test_model_list_is_outside_v1(own):
    assert ok(call(own, "GET", "/tfxp/models")) == {"models": [MODEL, TF2_MODEL]}
    assert ok(call(own, "GET", "/readyz")) == {"ready": True}


def _metrics_lines(target: Target) -> list[str]:
    response = call(target, "GET", "/monitoring/prometheus/metrics")
    assert response.status_code == 200
    return [line for line in response.text.splitlines() if line.startswith("tensorflow_serving_request_count")]


def test_unknown_model_names_share_one_metrics_label(own):
    """Issue 10 item 12: 300 made-up model names add one label value, not 300 (the page stays small)."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: predict(own, {"instances": [1]}, f"/v1/models/made_up_{i}:predict"), range(150)))
        list(pool.map(lambda i: call(own, "GET", f"/v1/models/made%20up%20{i}/metadata"), range(150)))
    lines = _metrics_lines(own)
    names = {re.search(r'model_name="([^"]*)"', line).group(1) for line in lines}
    assert names <= {MODEL, TF2_MODEL, "<unknown>"}, names
    unknown = [line for line in lines if 'model_name="<unknown>"' in line and 'status="NOT_FOUND"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in unknown) >= 300
    page = call(own, "GET", "/monitoring/prometheus/metrics").text
    assert "made_up" not in page and len(page) < 200_000


def test_large_examples_body_is_decoded_off_the_event_loop_within_the_deadline(tmp_path_factory):
    """Issue 10 item 11: a 17 MB :classify body with a 1 s deadline answers 504 near the deadline, while
    other requests keep being answered; the server then serves normally."""
    background = _start_own_server(tmp_path_factory, request_timeout_seconds=1.0)
    url = f"http://127.0.0.1:{background.server.rest_port}"
    try:
        examples = [{"x": float(i), "name": "abcdefghij", "tags": [1, 2, 3]} for i in range(300_000)]
        body = json.dumps({"signature_name": "classify_x_to_y", "examples": examples})
        assert len(body) > 15_000_000
        latencies: list[float] = []
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                started = time.monotonic()
                response = requests.get(f"{url}/v1/models/{MODEL}", timeout=TIMEOUT)
                assert response.status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            started = time.monotonic()
            response = requests.post(f"{url}/v1/models/{MODEL}:classify", data=body, timeout=TIMEOUT)
            elapsed = time.monotonic() - started
        finally:
            done.set()
            prober.join()
        error(response, 504, "Deadline Exceeded")
        assert elapsed < 5.0, elapsed
        assert len(latencies) >= 5 and max(latencies) < 1.0, latencies
        small = {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}
        assert ok(requests.post(f"{url}/v1/models/{MODEL}:classify", data=json.dumps(small), timeout=TIMEOUT)) == {
            "results": [[["", 12]]]
        }
    finally:
        background.stop()


# --------------------------------------------------------------------------- a bug of this server -> JSON 500


class _BrokenPlane:
    """A DataPlane (our layer) whose every call fails the way a bug would."""

    class repository:  # attribute access like the real DataPlane's
        @staticmethod
        def model_names() -> list[str]:
            return [MODEL]

    def predict(self, *args, **kwargs):
        raise RuntimeError("boom in predict")

    async def predict_async(self, *args, **kwargs):
        raise RuntimeError("boom in predict")

    def status(self, *args, **kwargs):
        raise KeyError("boom in status")

    def ready(self) -> bool:
        raise ZeroDivisionError("boom in ready")


@contextlib.contextmanager
def _serving_front_end(plane, metrics, request_timeout: float = 10) -> Iterator[Target]:
    """A RestFrontEnd over `plane` (a stand-in data plane) on loopback."""
    from tfxp.serving.protocol import RestFrontEnd

    front = RestFrontEnd(
        plane,
        metrics,
        max_request_bytes=1 << 20,
        request_timeout=request_timeout,
        monitoring_path="/monitoring/prometheus/metrics",
    )
    with serving_front_end(front) as url:
        yield Target(url)


def test_a_bug_is_a_json_500_with_the_traceback_logged(caplog):
    from tfxp.serving.metrics import Metrics

    metrics = Metrics()
    with _serving_front_end(_BrokenPlane(), metrics) as target:
        with caplog.at_level(logging.ERROR, logger="tfxp.serving.protocol.rest"):
            assert error(predict(target, {"instances": [1]}), 500, "Internal error: RuntimeError: boom in predict")
            error(call(target, "GET", f"/v1/models/{MODEL}"), 500, "Internal error: KeyError")
            error(call(target, "GET", "/readyz"), 500, "Internal error: ZeroDivisionError")
        tracebacks = [r for r in caplog.records if r.exc_info and r.name == "tfxp.serving.protocol.rest"]
        assert {type(r.exc_info[1]) for r in tracebacks} == {RuntimeError, KeyError, ZeroDivisionError}
        # Bad input is still a 400, even here.
        error(predict(target, "{"), 400, "JSON Parse error")
        page = metrics.exposition().decode()
        assert 'status="INTERNAL"' in page and 'status="INVALID_ARGUMENT"' in page


class _SlowPlane(_BrokenPlane):
    """A data plane whose predict_async takes `seconds`, then fails; records that its run ended."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ended = threading.Event()

    async def predict_async(self, *args, **kwargs):
        await asyncio.sleep(self.seconds)
        self.ended.set()
        raise RuntimeError("late failure nobody waits for")


def test_a_small_predict_past_its_deadline_is_a_504_while_its_run_ends_unobserved(caplog):
    """The event loop's :predict path: 504 at the deadline; the run is not cut short (it holds its
    version until it ends, as a worker thread's run does) and its late outcome logs nothing."""
    from tfxp.serving.metrics import Metrics

    plane = _SlowPlane(seconds=1.5)
    with _serving_front_end(plane, Metrics(), request_timeout=0.5) as target:
        with caplog.at_level(logging.ERROR):
            started = time.monotonic()
            error(predict(target, {"instances": [1]}), 504, "Deadline Exceeded")
            assert time.monotonic() - started < 1.4
            assert not plane.ended.is_set()
            assert plane.ended.wait(5)
            gc.collect()  # asyncio reports an exception never retrieved when its task is collected
            time.sleep(0.2)
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text
        assert ok(call(target, "GET", "/tfxp/models")) == {"models": [MODEL]}
