"""REST contract: every TF Serving REST route, body and error, against the served taxi model.

Client side is plain `requests` + the official protos; the server comes from the `served`
fixture (our server on loopback, or an external one such as tensorflow/serving).
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import requests
from serving_harness import start_server
from taxi_data import TAXI, TIPS, raw_feature_spec, read_csv_rows, to_example

from tfxp.models import features as F

TIMEOUT = 120
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
RAW_DTYPES = {F.DType.INT: "DT_INT64", F.DType.FLOAT: "DT_FLOAT", F.DType.STRING: "DT_STRING"}
TOL = 1e-6


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def version(served) -> int:
    if served.version is not None:
        return served.version
    status = requests.get(model_url(served), timeout=TIMEOUT).json()
    return max(int(s["version"]) for s in status["model_version_status"] if s["state"] == "AVAILABLE")


@pytest.fixture(scope="module")
def baseline(served, examples) -> np.ndarray:
    """serving_default probabilities of the CSV rows (row format), the reference for other routes."""
    response = post(f"{model_url(served)}:predict", {"instances": b64_list(examples)})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["predictions"], dtype=np.float64)


def model_url(served, suffix: str = "", model: str | None = None) -> str:
    return f"{served.rest_url}/v1/models/{model or served.model}{suffix}"


def post(url: str, body) -> requests.Response:
    """POSTs JSON; json.dumps writes NaN literals (requests' json= refuses them)."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)


def b64_list(examples: list[bytes]) -> list[dict[str, str]]:
    return [{"b64": base64.b64encode(e).decode("ascii")} for e in examples]


def raw_instance(row: dict[str, str]) -> dict:
    """A CSV row as predict_raw's per-feature values, blanks as the missing markers (NaN / -1 / "")."""
    out = {}
    for feature in TAXI.features:
        text = row[feature.name]
        if feature.dtype is F.DType.STRING:
            out[feature.name] = text
        elif feature.dtype is F.DType.INT:
            out[feature.name] = int(float(text)) if text else F.MISSING_INT
        else:
            out[feature.name] = float(text) if text else F.MISSING_FLOAT
    return out


def json_features(row: dict[str, str], skip: tuple[str, ...] = ()) -> dict:
    """A CSV row as a :classify/:regress example object; blank cells are left out."""
    out = {}
    for name, spec in raw_feature_spec().items():
        text = row.get(name, "")
        if text == "" or name in skip or name == TIPS:
            continue
        if spec.dtype.name == "string":
            out[name] = text
        elif spec.dtype.is_integer:
            out[name] = int(float(text))
        else:
            out[name] = float(text)
    return out


def assert_error(response: requests.Response, status: int, *needles: str, json_body: bool = True) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    if not json_body:
        return response.text
    assert response.headers["Content-Type"] == "application/json", response.headers  # as TF Serving's AddHeaders
    body = response.json()
    assert set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str) and message, body
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def assert_still_serving(served, examples, baseline) -> None:
    response = post(f"{model_url(served)}:predict", {"instances": b64_list(examples[:3])})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], baseline[:3], rtol=0, atol=TOL)


def assert_probabilities(values, count: int) -> np.ndarray:
    assert isinstance(values, list) and len(values) == count
    assert all(isinstance(v, float) for v in values), values
    arr = np.asarray(values, dtype=np.float64)
    assert np.all((arr >= 0.0) & (arr <= 1.0)), values
    return arr


# --------------------------------------------------------------------------- status


def test_status_lists_all_versions(served, version):
    response = requests.get(model_url(served), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    statuses = response.json()["model_version_status"]
    assert {
        "version": str(version),
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    } in statuses
    for status in statuses:
        assert isinstance(status["version"], str) and status["version"].isdigit()
    if not served.external:
        assert len(statuses) == 1


def test_status_of_one_version(served, version):
    response = requests.get(model_url(served, f"/versions/{version}"), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_version_status": [
            {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_status_unknown_version_is_404(served, examples, baseline):
    response = requests.get(model_url(served, "/versions/987654"), timeout=TIMEOUT)
    # TF Serving (get_model_status_impl.cc): "Could not find version 987654 of model taxi".
    assert_error(response, 404, "987654")
    assert_still_serving(served, examples, baseline)


def test_status_unknown_model_is_404(served, examples, baseline):
    response = requests.get(model_url(served, model="no_such_model"), timeout=TIMEOUT)
    # TF Serving's status route says "Could not find any versions of model no_such_model";
    # the routes that resolve a servable say "Servable not found for request: Latest(...)".
    assert_error(response, 404, "no_such_model")
    assert_still_serving(served, examples, baseline)


def test_unknown_model_predict_and_metadata_are_404_servable_not_found(served, examples, baseline):
    for response in (
        requests.get(model_url(served, "/metadata", model="no_such_model"), timeout=TIMEOUT),
        post(model_url(served, ":predict", model="no_such_model"), {"instances": b64_list(examples[:1])}),
    ):
        assert_error(response, 404, "Servable not found", "no_such_model")
    assert_still_serving(served, examples, baseline)


# --------------------------------------------------------------------------- metadata


def _tensor(info: dict) -> tuple[str, list[str]]:
    return info["dtype"], [d["size"] for d in info["tensor_shape"]["dim"]]


@pytest.mark.parametrize("suffix", ["/metadata", "/versions/{version}/metadata"])
def test_metadata_signature_defs(served, version, suffix):
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    response = requests.get(model_url(served, suffix.format(version=version)), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_spec"]["name"] == served.model
    assert body["model_spec"]["version"] == str(version)
    assert set(body["metadata"]) == {"signature_def"}
    # The value is a SignatureDefMap in proto JSON (field names preserved).
    signature_map = json_format.ParseDict(body["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap())
    assert {"serving_default", "predict_raw", "transform_features", "classification", "regression"} <= set(
        signature_map.signature_def
    )
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert sigs["serving_default"]["method_name"] == PREDICT
    assert sigs["predict_raw"]["method_name"] == PREDICT
    assert sigs["transform_features"]["method_name"] == PREDICT
    assert sigs["classification"]["method_name"] == CLASSIFY
    assert sigs["regression"]["method_name"] == REGRESS

    serving_default = sigs["serving_default"]
    assert set(serving_default["inputs"]) == {"examples"}
    assert _tensor(serving_default["inputs"]["examples"]) == ("DT_STRING", ["-1"])
    assert set(serving_default["outputs"]) == {"probability"}
    assert _tensor(serving_default["outputs"]["probability"]) == ("DT_FLOAT", ["-1"])

    raw = sigs["predict_raw"]
    assert set(raw["inputs"]) == {f.name for f in TAXI.features}
    for feature in TAXI.features:
        assert _tensor(raw["inputs"][feature.name]) == (RAW_DTYPES[feature.dtype], ["-1"]), feature.name
    assert _tensor(raw["outputs"]["probability"]) == ("DT_FLOAT", ["-1"])

    classification = sigs["classification"]
    assert _tensor(classification["inputs"]["inputs"]) == ("DT_STRING", ["-1"])
    assert set(classification["outputs"]) == {"classes", "scores"}
    assert classification["outputs"]["classes"]["dtype"] == "DT_STRING"
    assert classification["outputs"]["scores"]["dtype"] == "DT_FLOAT"
    regression = sigs["regression"]
    assert _tensor(regression["inputs"]["inputs"]) == ("DT_STRING", ["-1"])
    assert set(regression["outputs"]) == {"outputs"}
    assert regression["outputs"]["outputs"]["dtype"] == "DT_FLOAT"


# --------------------------------------------------------------------------- predict


def test_predict_row_serving_default(served, examples, baseline):
    response = post(model_url(served, ":predict"), {"instances": b64_list(examples)})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"predictions"}
    assert_probabilities(body["predictions"], len(examples))
    # Not all the same number: the model looks at its inputs.
    assert len(set(body["predictions"])) > 1


def test_predict_columnar_serving_default_matches_row(served, examples, baseline):
    for inputs in (b64_list(examples), {"examples": b64_list(examples)}):
        response = post(model_url(served, ":predict"), {"signature_name": "serving_default", "inputs": inputs})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"outputs"}
        values = assert_probabilities(body["outputs"], len(examples))
        assert values.tolist() == baseline.tolist()


def test_predict_raw_row_and_columnar_agree_with_serving_default(served, rows, baseline):
    instances = [raw_instance(r) for r in rows]
    # The rows exercise every missing marker.
    assert any(np.isnan(i["pickup_latitude"]) for i in instances)
    assert any(i["pickup_census_tract"] == F.MISSING_INT for i in instances)
    assert any(i["company"] == F.MISSING_STRING for i in instances)

    row_response = post(model_url(served, ":predict"), {"signature_name": "predict_raw", "instances": instances})
    assert row_response.status_code == 200, row_response.text
    row_values = assert_probabilities(row_response.json()["predictions"], len(rows))

    columns = {f.name: [i[f.name] for i in instances] for f in TAXI.features}
    text = json.dumps({"signature_name": "predict_raw", "inputs": columns})
    assert "NaN" in text  # missing floats travel as the NaN literal TF Serving accepts
    column_response = post(model_url(served, ":predict"), text)
    assert column_response.status_code == 200, column_response.text
    assert set(column_response.json()) == {"outputs"}
    column_values = assert_probabilities(column_response.json()["outputs"], len(rows))

    assert row_values.tolist() == column_values.tolist()
    np.testing.assert_allclose(row_values, baseline, rtol=0, atol=TOL)


def test_predict_specific_version(served, version, examples, baseline):
    response = post(model_url(served, f"/versions/{version}:predict"), {"instances": b64_list(examples)})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], baseline, rtol=0, atol=TOL)


@pytest.mark.parametrize("path", ["/V1/Models/{model}:predict", "/v1/MODELS/{model}/VERSIONS/{version}:predict"])
def test_routes_are_case_insensitive(served, version, examples, baseline, path):
    url = served.rest_url + path.format(model=served.model, version=version)
    response = post(url, {"instances": b64_list(examples)})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], baseline, rtol=0, atol=TOL)


@pytest.mark.parametrize("verb", ["PREDICT", "Predict"])
def test_verbs_are_lower_case(served, examples, baseline, verb):
    # TF Serving (http_rest_api_handler.cc) matches the path case-insensitively, then compares the
    # captured verb with "predict" exactly: any other case is a malformed request.
    response = post(model_url(served, f":{verb}"), {"instances": b64_list(examples)})
    assert_error(response, 400, f"Malformed request: POST /v1/models/{served.model}:{verb}")
    assert_still_serving(served, examples, baseline)


def test_get_v1_models_is_missing_model_name(served):
    # TF Serving has no route listing models: GET /v1/models is this 400 (http_rest_api_handler_test.cc
    # UnsupportedApiCalls). The project's server lists them at /tfxp/models instead.
    assert_error(requests.get(f"{served.rest_url}/v1/models", timeout=TIMEOUT), 400, "Missing model name")
    if not served.external:
        response = requests.get(f"{served.rest_url}/tfxp/models", timeout=TIMEOUT)
        assert response.status_code == 200 and response.json() == {"models": [served.model]}


# --------------------------------------------------------------------------- classify / regress


@pytest.fixture(scope="module")
def cash_rows() -> list[dict[str, str]]:
    """Rows sharing payment_type, so it can travel once in `context`."""
    selected = [r for r in read_csv_rows(limit=200) if r["payment_type"] == "Cash"][:12]
    assert len(selected) == 12
    return selected


@pytest.fixture(scope="module")
def cash_probabilities(served, cash_rows) -> np.ndarray:
    spec = raw_feature_spec()
    response = post(model_url(served, ":predict"), {"instances": b64_list([to_example(r, spec) for r in cash_rows])})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["predictions"])


def _example_body(signature: str | None, cash_rows) -> dict:
    body = {
        "context": {"payment_type": "Cash"},
        "examples": [json_features(r, skip=("payment_type",)) for r in cash_rows],
    }
    if signature is not None:
        body["signature_name"] = signature
    return body


def test_classify(served, cash_rows, cash_probabilities):
    response = post(model_url(served, ":classify"), _example_body("classification", cash_rows))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results"}
    results = body["results"]
    assert len(results) == len(cash_rows)
    s1 = []
    for classes in results:
        assert [c[0] for c in classes] == ["0", "1"], classes
        assert all(len(c) == 2 and isinstance(c[1], float) for c in classes)
        assert abs(classes[0][1] + classes[1][1] - 1.0) <= TOL
        s1.append(classes[1][1])
    np.testing.assert_allclose(s1, cash_probabilities, rtol=0, atol=TOL)


def test_classify_specific_version(served, version, cash_rows, cash_probabilities):
    response = post(model_url(served, f"/versions/{version}:classify"), _example_body("classification", cash_rows))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose([r[1][1] for r in response.json()["results"]], cash_probabilities, rtol=0, atol=TOL)


def test_regress(served, cash_rows, cash_probabilities):
    response = post(model_url(served, ":regress"), _example_body("regression", cash_rows))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results"}
    assert all(isinstance(v, float) for v in body["results"])
    np.testing.assert_allclose(body["results"], cash_probabilities, rtol=0, atol=TOL)


@pytest.mark.parametrize("verb", ["classify", "regress"])
@pytest.mark.parametrize("signature", [None, "serving_default"])
def test_classify_regress_on_predict_signature_is_400(served, examples, baseline, cash_rows, verb, signature):
    response = post(model_url(served, f":{verb}"), _example_body(signature, cash_rows))
    message = assert_error(response, 400)
    if not served.external:
        assert "tensorflow/serving/predict" in message, message
    assert_still_serving(served, examples, baseline)


# --------------------------------------------------------------------------- errors


def _predict_raw_instances(rows, drop: str | None = None, **override) -> list[dict]:
    out = []
    for row in rows:
        instance = {**raw_instance(row), **override}
        if drop:
            del instance[drop]
        out.append(instance)
    return out


def _error_cases(examples, rows):
    good = b64_list(examples[:2])
    raw_columns = {f.name: [raw_instance(r)[f.name] for r in rows[:2]] for f in TAXI.features}
    yield "malformed json", ":predict", '{"instances": [', 400, ("JSON",)
    yield "empty body", ":predict", "", 400, ()
    yield "top level not an object", ":predict", "[1, 2]", 400, ()
    yield "both inputs and instances", ":predict", {"instances": good, "inputs": good}, 400, ("inputs", "instances")
    yield (
        "neither inputs nor instances",
        ":predict",
        {"signature_name": "serving_default"},
        400,
        ("Missing 'inputs' or 'instances' key",),
    )
    yield "empty instances", ":predict", {"instances": []}, 400, ()
    # http_rest_api_handler.cc GetInfoMap (gRPC's Predict says FAILED_PRECONDITION instead).
    yield (
        "unknown signature",
        ":predict",
        {"signature_name": "no_such_signature", "instances": good},
        400,
        ('Serving signature name: "no_such_signature" not found in signature def',),
    )
    yield (
        "string for int64 (row)",
        ":predict",
        {"signature_name": "predict_raw", "instances": _predict_raw_instances(rows[:2], trip_seconds="abc")},
        400,
        ("int64",),
    )
    yield (
        "string for int64 (columnar)",
        ":predict",
        {"signature_name": "predict_raw", "inputs": {**raw_columns, "trip_seconds": ["abc", "def"]}},
        400,
        ("int64",),
    )
    yield (
        "missing feature (row)",
        ":predict",
        {"signature_name": "predict_raw", "instances": _predict_raw_instances(rows[:2], drop="trip_seconds")},
        400,
        ("trip_seconds",),
    )
    yield (
        "missing feature (columnar)",
        ":predict",
        {"signature_name": "predict_raw", "inputs": {k: v for k, v in raw_columns.items() if k != "trip_seconds"}},
        400,
        ("trip_seconds",),
    )
    yield "b64 object with extra keys (row)", ":predict", {"instances": [{**good[0], "extra": "x"}]}, 400, ()
    yield (
        "b64 object with extra keys (columnar)",
        ":predict",
        {"inputs": {"examples": [{**good[0], "extra": "x"}]}},
        400,
        (),
    )
    yield "invalid base64", ":predict", {"instances": [{"b64": "%%%not base64%%%"}]}, 400, ()
    yield "unknown version", "/versions/987654:predict", {"instances": good}, 404, ("Servable not found",)
    # The version must match [0-9]+ (else no route matches) and fit an int64 (TF Serving's http_rest_api_util.cc).
    yield "non-numeric version", "/versions/abc:predict", {"instances": good}, 400, ("Malformed request",)
    yield (
        "version beyond int64",
        "/versions/99999999999999999999:predict",
        {"instances": good},
        400,
        ("Failed to convert version: 99999999999999999999 to numeric.",),
    )
    yield "classify without examples", ":classify", {"signature_name": "classification"}, 400, ("examples",)
    yield (
        "unknown signature (classify)",
        ":classify",
        {"signature_name": "no_such_signature", "examples": [{"fare": 1.0}]},
        400,
        ("no_such_signature",),
    )


_ERROR_IDS = [case[0] for case in _error_cases([b""] * 2, [{f.name: "1" for f in TAXI.features}] * 2)]


@pytest.mark.parametrize("case", _ERROR_IDS)
def test_error_is_json_with_status_and_server_keeps_serving(served, examples, rows, baseline, case):
    _, suffix, body, status, needles = next(c for c in _error_cases(examples, rows) if c[0] == case)
    assert_error(post(model_url(served, suffix), body), status, *needles)
    assert_still_serving(served, examples, baseline)


def test_get_on_predict_is_400_json(served, examples, baseline):
    # TF Serving: GET does not match the predict route -> "Malformed request: GET ..." (INVALID_ARGUMENT).
    assert_error(requests.get(model_url(served, ":predict"), timeout=TIMEOUT), 400, "Malformed request")
    assert_still_serving(served, examples, baseline)


def test_malformed_v1_path_is_400_json(served, examples, baseline):
    # Everything under /v1/ goes to TF Serving's REST handler; a path none of its regexes
    # match is "Malformed request: <method> <path>" (INVALID_ARGUMENT -> 400).
    for response in (
        requests.get(model_url(served, "/no_such_subresource"), timeout=TIMEOUT),
        post(model_url(served, ":explain"), {"instances": b64_list(examples[:1])}),
    ):
        assert_error(response, 400, "Malformed request")
    assert_still_serving(served, examples, baseline)


def test_unknown_route_is_404(served, examples, baseline):
    for response in (
        requests.get(f"{served.rest_url}/v2/models/{served.model}", timeout=TIMEOUT),
        post(f"{served.rest_url}/no/such/route", {}),
    ):
        # The body of a route outside /v1/ is the HTTP server's own (JSON from ours).
        assert_error(response, 404, json_body=not served.external)
    assert_still_serving(served, examples, baseline)


# --------------------------------------------------------------------------- request size limit


def test_oversized_body_is_413_json(served, examples):
    if served.external:
        pytest.skip("needs a server started with a small max_request_bytes")
    second = start_server(served.base_path, max_request_bytes=10_000)
    try:
        url = f"http://127.0.0.1:{second.server.rest_port}/v1/models/{served.model}:predict"
        small = json.dumps({"instances": b64_list(examples[:2])})
        assert len(small) < 10_000
        assert post(url, small).status_code == 200
        big = json.dumps({"instances": b64_list(examples * 3)})
        assert len(big) > 10_000
        assert_error(post(url, big), 413)
        response = post(url, small)
        assert response.status_code == 200, response.text
    finally:
        second.stop()


# --------------------------------------------------------------------------- monitoring


def test_prometheus_counts_requests_by_status(served, examples, baseline):
    if served.external:
        pytest.skip("the metrics path and names of an external server are its own")
    assert_still_serving(served, examples, baseline)
    assert_error(
        post(
            model_url(served, ":predict"), {"signature_name": "no_such_signature", "instances": b64_list(examples[:1])}
        ),
        400,
    )
    response = requests.get(f"{served.rest_url}/monitoring/prometheus/metrics", timeout=TIMEOUT)
    assert response.status_code == 200
    text = response.text
    assert "tensorflow_serving_request_count" in text
    counts = [
        line
        for line in text.splitlines()
        if re.match(r"tensorflow_serving_request_count(_total)?\{", line) and 'model_name="taxi"' in line
    ]
    statuses = {re.search(r'status="([A-Z_]+)"', line).group(1) for line in counts}
    assert "OK" in statuses, counts
    assert "INVALID_ARGUMENT" in statuses, counts
    ok_line = next(line for line in counts if 'status="OK"' in line and 'api="predict"' in line)
    assert float(ok_line.rsplit(" ", 1)[1]) >= 1
