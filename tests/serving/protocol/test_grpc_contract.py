"""gRPC contract: TF Serving's PredictionService and ModelService (plus gRPC health) over the
official `tensorflow_serving.apis` stubs, against the served taxi model.
"""

from __future__ import annotations

import base64
import json

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from taxi_data import TAXI, raw_feature_spec, read_csv_rows, to_example
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfxp.models import features as F

TIMEOUT = 120
TOL = 1e-6
MAX_MESSAGE = 2**31 - 1
RAW_DTYPES = {F.DType.INT: types_pb2.DT_INT64, F.DType.FLOAT: types_pb2.DT_FLOAT, F.DType.STRING: types_pb2.DT_STRING}
NP_DTYPES = {F.DType.INT: np.int64, F.DType.FLOAT: np.float32}


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def channel(served):
    ch = grpc.insecure_channel(
        served.grpc_target,
        options=[("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)],
    )
    grpc.channel_ready_future(ch).result(timeout=60)
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def version(served, models) -> int:
    if served.version is not None:
        return served.version
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = served.model
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    return max(
        s.version for s in response.model_version_status if s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    )


def predict_request(
    served, inputs: dict, signature: str = "", version: int | None = None, model: str | None = None
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = served.model if model is None else model
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(
            value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        )
    return request


def examples_tensor(examples: list[bytes]):
    return tf.make_tensor_proto(examples, dtype=tf.string)


def raw_tensors(rows, drop: str | None = None, **override) -> dict:
    """predict_raw inputs: one [-1] tensor per feature, blanks as NaN / -1 / ""."""
    out = {}
    for feature in TAXI.features:
        if feature.name == drop:
            continue
        if feature.name in override:
            out[feature.name] = override[feature.name]
            continue
        texts = [r[feature.name] for r in rows]
        if feature.dtype is F.DType.STRING:
            out[feature.name] = tf.make_tensor_proto([t.encode() for t in texts], dtype=tf.string)
        elif feature.dtype is F.DType.INT:
            out[feature.name] = tf.make_tensor_proto(
                np.array([int(float(t)) if t else F.MISSING_INT for t in texts], dtype=np.int64)
            )
        else:
            out[feature.name] = tf.make_tensor_proto(
                np.array([float(t) if t else F.MISSING_FLOAT for t in texts], dtype=np.float32)
            )
    return out


def probabilities(response) -> np.ndarray:
    """The probability output; like TF Serving (Tensor::AsProtoField), its values are in float_val."""
    proto = response.outputs["probability"]
    assert proto.dtype == types_pb2.DT_FLOAT
    assert proto.tensor_content == b""
    values = tf.make_ndarray(proto).astype(np.float64)
    assert len(proto.float_val) == values.size
    return values


def assert_rpc_error(call, request, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    assert info.value.code() == code, (info.value.code(), info.value.details())
    details = info.value.details() or ""
    for needle in needles:
        assert needle in details, (needle, details)
    return details


@pytest.fixture(scope="module")
def baseline(served, predictions, examples) -> np.ndarray:
    response = predictions.Predict(predict_request(served, {"examples": examples_tensor(examples)}), timeout=TIMEOUT)
    return probabilities(response)


def assert_still_serving(served, predictions, examples, baseline) -> None:
    response = predictions.Predict(
        predict_request(served, {"examples": examples_tensor(examples[:3])}), timeout=TIMEOUT
    )
    np.testing.assert_allclose(probabilities(response), baseline[:3], rtol=0, atol=TOL)


def example_protos(rows, skip: tuple[str, ...] = ()) -> list[tf.train.Example]:
    spec = raw_feature_spec()
    protos = []
    for row in rows:
        example = tf.train.Example.FromString(to_example(row, spec))
        for name in skip:
            del example.features.feature[name]
        protos.append(example)
    return protos


# --------------------------------------------------------------------------- Predict


@pytest.mark.parametrize("signature", ["", "serving_default"])
def test_predict_serving_default(served, predictions, version, examples, signature):
    request = predict_request(served, {"examples": examples_tensor(examples)}, signature=signature)
    response = predictions.Predict(request, timeout=TIMEOUT)
    assert set(response.outputs) == {"probability"}
    values = probabilities(response)
    assert values.shape == (len(examples),)
    assert np.all((values >= 0) & (values <= 1))
    assert len(set(values.tolist())) > 1
    assert response.model_spec.name == served.model
    assert response.model_spec.HasField("version") and response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"


def test_predict_specific_version(served, predictions, version, examples, baseline):
    response = predictions.Predict(
        predict_request(served, {"examples": examples_tensor(examples)}, version=version), timeout=TIMEOUT
    )
    assert response.model_spec.version.value == version
    np.testing.assert_allclose(probabilities(response), baseline, rtol=0, atol=TOL)


def test_predict_raw_named_tensors_match_serving_default(served, predictions, rows, baseline):
    inputs = raw_tensors(rows)
    assert np.isnan(tf.make_ndarray(inputs["pickup_latitude"])).any()
    assert (tf.make_ndarray(inputs["pickup_census_tract"]) == F.MISSING_INT).any()
    assert (tf.make_ndarray(inputs["company"]) == b"").any()
    response = predictions.Predict(predict_request(served, inputs, signature="predict_raw"), timeout=TIMEOUT)
    assert response.model_spec.signature_name == "predict_raw"
    assert set(response.outputs) == {"probability"}
    np.testing.assert_allclose(probabilities(response), baseline, rtol=0, atol=TOL)


def test_predict_output_filter(served, predictions, examples, baseline):
    request = predict_request(served, {"examples": examples_tensor(examples)}, signature="transform_features")
    everything = predictions.Predict(request, timeout=TIMEOUT)
    names = {F.transformed_name(f.name) for f in TAXI.features}
    assert names <= set(everything.outputs)
    request.output_filter.append("fare_xf")
    filtered = predictions.Predict(request, timeout=TIMEOUT)
    assert set(filtered.outputs) == {"fare_xf"}
    np.testing.assert_array_equal(
        tf.make_ndarray(filtered.outputs["fare_xf"]), tf.make_ndarray(everything.outputs["fare_xf"])
    )

    request = predict_request(served, {"examples": examples_tensor(examples)})
    request.output_filter.append("probability")
    response = predictions.Predict(request, timeout=TIMEOUT)
    assert set(response.outputs) == {"probability"}
    np.testing.assert_allclose(probabilities(response), baseline, rtol=0, atol=TOL)


# --------------------------------------------------------------------------- Classify / Regress / MultiInference


@pytest.fixture(scope="module")
def cash_rows() -> list[dict[str, str]]:
    selected = [r for r in read_csv_rows(limit=200) if r["payment_type"] == "Cash"][:12]
    assert len(selected) == 12
    return selected


@pytest.fixture(scope="module")
def cash_probabilities(served, predictions, cash_rows) -> np.ndarray:
    spec = raw_feature_spec()
    examples = [to_example(r, spec) for r in cash_rows]
    return probabilities(
        predictions.Predict(predict_request(served, {"examples": examples_tensor(examples)}), timeout=TIMEOUT)
    )


def _fill_input(input_proto, rows, with_context: bool) -> None:
    if with_context:
        listed = input_proto.example_list_with_context
        listed.context.features.feature["payment_type"].bytes_list.value.append(b"Cash")
        listed.examples.extend(example_protos(rows, skip=("payment_type",)))
    else:
        input_proto.example_list.examples.extend(example_protos(rows))


def _check_classifications(result, expected: np.ndarray) -> None:
    assert len(result.classifications) == len(expected)
    s1 = []
    for classification in result.classifications:
        assert [c.label for c in classification.classes] == ["0", "1"]
        scores = [c.score for c in classification.classes]
        assert abs(sum(scores) - 1.0) <= TOL
        s1.append(scores[1])
    np.testing.assert_allclose(s1, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("with_context", [False, True], ids=["ExampleList", "ExampleListWithContext"])
def test_classify(served, predictions, version, cash_rows, cash_probabilities, with_context):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = served.model
    request.model_spec.signature_name = "classification"
    _fill_input(request.input, cash_rows, with_context)
    response = predictions.Classify(request, timeout=TIMEOUT)
    assert response.model_spec.name == served.model
    assert response.model_spec.version.value == version
    assert response.model_spec.signature_name == "classification"
    _check_classifications(response.result, cash_probabilities)


@pytest.mark.parametrize("with_context", [False, True], ids=["ExampleList", "ExampleListWithContext"])
def test_regress(served, predictions, version, cash_rows, cash_probabilities, with_context):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = served.model
    request.model_spec.signature_name = "regression"
    _fill_input(request.input, cash_rows, with_context)
    response = predictions.Regress(request, timeout=TIMEOUT)
    assert response.model_spec.version.value == version
    assert response.model_spec.signature_name == "regression"
    np.testing.assert_allclose([r.value for r in response.result.regressions], cash_probabilities, rtol=0, atol=TOL)


def test_multi_inference(served, predictions, version, cash_rows, cash_probabilities):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("classification", "tensorflow/serving/classify"),
        ("regression", "tensorflow/serving/regress"),
    ):
        task = request.tasks.add()
        task.model_spec.name = served.model
        task.model_spec.signature_name = signature
        task.method_name = method
    _fill_input(request.input, cash_rows, with_context=True)
    response = predictions.MultiInference(request, timeout=TIMEOUT)
    assert len(response.results) == 2
    classify, regress = response.results
    assert classify.WhichOneof("result") == "classification_result"
    assert classify.model_spec.name == served.model and classify.model_spec.version.value == version
    assert classify.model_spec.signature_name == "classification"
    _check_classifications(classify.classification_result, cash_probabilities)
    assert regress.WhichOneof("result") == "regression_result"
    assert regress.model_spec.signature_name == "regression"
    np.testing.assert_allclose(
        [r.value for r in regress.regression_result.regressions], cash_probabilities, rtol=0, atol=TOL
    )


# --------------------------------------------------------------------------- metadata, status, health


def test_get_model_metadata(served, predictions, version):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = served.model
    request.metadata_field.append("signature_def")
    response = predictions.GetModelMetadata(request, timeout=TIMEOUT)
    assert response.model_spec.name == served.model
    assert response.model_spec.version.value == version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    sigs = signature_map.signature_def
    assert {"serving_default", "predict_raw", "transform_features", "classification", "regression"} <= set(sigs)
    assert sigs["serving_default"].method_name == "tensorflow/serving/predict"
    assert sigs["predict_raw"].method_name == "tensorflow/serving/predict"
    assert sigs["classification"].method_name == "tensorflow/serving/classify"
    assert sigs["regression"].method_name == "tensorflow/serving/regress"
    assert sigs["serving_default"].inputs["examples"].dtype == types_pb2.DT_STRING
    assert [d.size for d in sigs["serving_default"].inputs["examples"].tensor_shape.dim] == [-1]
    assert sigs["serving_default"].outputs["probability"].dtype == types_pb2.DT_FLOAT
    assert set(sigs["predict_raw"].inputs) == {f.name for f in TAXI.features}
    for feature in TAXI.features:
        assert sigs["predict_raw"].inputs[feature.name].dtype == RAW_DTYPES[feature.dtype], feature.name
    assert set(sigs["classification"].outputs) == {"classes", "scores"}
    assert set(sigs["regression"].outputs) == {"outputs"}


def test_get_model_status(served, models, version):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = served.model
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    available = [s for s in response.model_version_status if s.version == version]
    assert len(available) == 1
    assert available[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert available[0].status.error_code == 0  # tensorflow.error.OK
    assert available[0].status.error_message == ""

    request.model_spec.version.value = version
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    assert [(s.version, s.state) for s in response.model_version_status] == [
        (version, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]


def test_get_model_status_errors(served, models, predictions, examples, baseline):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "no_such_model"
    assert_rpc_error(models.GetModelStatus, request, grpc.StatusCode.NOT_FOUND, "no_such_model")
    request.model_spec.name = served.model
    request.model_spec.version.value = 987654
    assert_rpc_error(models.GetModelStatus, request, grpc.StatusCode.NOT_FOUND, "987654")
    assert_still_serving(served, predictions, examples, baseline)


def test_grpc_health(served, channel):
    if served.external:
        pytest.skip("grpc.health.v1 is this server's addition; tensorflow_model_server does not register it")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    response = stub.Check(health_pb2.HealthCheckRequest(service=served.model), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# --------------------------------------------------------------------------- errors


def _classify_request(served, rows, signature: str, model: str | None = None):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = served.model if model is None else model
    if signature:
        request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(example_protos(rows))
    return request


def _regress_request(served, rows, signature: str):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = served.model
    if signature:
        request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(example_protos(rows))
    return request


def _error_cases(served, rows, examples):
    good = {"examples": examples_tensor(examples[:2])}
    yield (
        "unknown model",
        "Predict",
        predict_request(served, good, model="no_such_model"),
        grpc.StatusCode.NOT_FOUND,
        ("no_such_model",),
    )
    yield (
        "unknown version",
        "Predict",
        predict_request(served, good, version=987654),
        grpc.StatusCode.NOT_FOUND,
        ("987654",),
    )
    # TF Serving (predict_util.cc RunPredict): FAILED_PRECONDITION 'Serving signature key "..." not found.'
    yield (
        "unknown signature (Predict)",
        "Predict",
        predict_request(served, good, signature="no_such_signature"),
        grpc.StatusCode.FAILED_PRECONDITION,
        ("no_such_signature",),
    )
    # TF Serving (classifier.cc / regressor.cc): INVALID_ARGUMENT "No signature was found with the name: ..."
    yield (
        "unknown signature (Classify)",
        "Classify",
        _classify_request(served, rows[:2], "no_such_signature"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("no_such_signature",),
    )
    yield (
        "unknown model (Classify)",
        "Classify",
        _classify_request(served, rows[:2], "classification", model="no_such_model"),
        grpc.StatusCode.NOT_FOUND,
        ("no_such_model",),
    )
    yield (
        "missing input",
        "Predict",
        predict_request(served, raw_tensors(rows[:2], drop="trip_seconds"), signature="predict_raw"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("trip_seconds",),
    )
    yield "no inputs", "Predict", predict_request(served, {}), grpc.StatusCode.INVALID_ARGUMENT, ()
    yield (
        "unexpected input",
        "Predict",
        predict_request(served, {**good, "bogus": examples_tensor(examples[:2])}),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("bogus",),
    )
    yield (
        "string for int64",
        "Predict",
        predict_request(
            served,
            raw_tensors(rows[:2], trip_seconds=tf.make_tensor_proto([b"1", b"2"], dtype=tf.string)),
            signature="predict_raw",
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    )
    yield (
        "float for string",
        "Predict",
        predict_request(served, {"examples": tf.make_tensor_proto(np.array([1.0, 2.0], dtype=np.float32))}),
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    )
    yield (
        "not serialized examples",
        "Predict",
        predict_request(served, {"examples": tf.make_tensor_proto([b"not an example"], dtype=tf.string)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    )
    # TF Serving (predict_util.cc): Tensor::FromProto fails -> INVALID_ARGUMENT "tensor parsing error: <alias>".
    bad = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, tensor_content=b"\x01\x02\x03")
    bad.tensor_shape.dim.add().size = 2
    yield (
        "unparseable tensor",
        "Predict",
        predict_request(served, raw_tensors(rows[:2], trip_seconds=bad), signature="predict_raw"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("trip_seconds",),
    )
    yield (
        "unknown output_filter",
        "Predict",
        _with_filter(predict_request(served, good), "no_such_output"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("no_such_output",),
    )
    yield (
        "classify on serving_default",
        "Classify",
        _classify_request(served, rows[:2], "serving_default"),
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    )
    yield (
        "classify on default signature",
        "Classify",
        _classify_request(served, rows[:2], ""),
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    )
    yield (
        "regress on serving_default",
        "Regress",
        _regress_request(served, rows[:2], "serving_default"),
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    )
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = served.model
    empty.model_spec.signature_name = "classification"
    yield "classify without examples", "Classify", empty, grpc.StatusCode.INVALID_ARGUMENT, ("Input is empty",)
    # TF Serving (predict_impl.cc, server_core.cc): INVALID_ARGUMENT, not NOT_FOUND.
    no_spec = predict_request(served, good)
    no_spec.ClearField("model_spec")
    yield "missing model_spec", "Predict", no_spec, grpc.StatusCode.INVALID_ARGUMENT, ("Missing ModelSpec",)
    yield (
        "empty model name",
        "Predict",
        predict_request(served, good, model=""),
        grpc.StatusCode.INVALID_ARGUMENT,
        ("ModelSpec has no name specified.",),
    )


def _with_filter(request, name: str):
    request.output_filter.append(name)
    return request


_ERROR_IDS = [
    "unknown model",
    "unknown version",
    "unknown signature (Predict)",
    "unknown signature (Classify)",
    "unknown model (Classify)",
    "missing input",
    "no inputs",
    "unexpected input",
    "string for int64",
    "float for string",
    "not serialized examples",
    "unparseable tensor",
    "unknown output_filter",
    "classify on serving_default",
    "classify on default signature",
    "regress on serving_default",
    "classify without examples",
    "missing model_spec",
    "empty model name",
]


@pytest.mark.parametrize("case", _ERROR_IDS)
def test_error_code_and_server_keeps_serving(served, predictions, rows, examples, baseline, case):
    _, method, request, code, needles = next(c for c in _error_cases(served, rows, examples) if c[0] == case)
    assert_rpc_error(getattr(predictions, method), request, code, *needles)
    assert_still_serving(served, predictions, examples, baseline)


# --------------------------------------------------------------------------- size and cross-protocol


def test_large_request_over_default_message_limit(served, predictions, examples, baseline):
    spec = raw_feature_spec()
    pool = [to_example(r, spec) for r in read_csv_rows(limit=2000)]
    large, size = [], 0
    while len(large) < 20_000 or size < 10 * 2**20:
        large.append(pool[len(large) % len(pool)])
        size += len(large[-1])
    large[: len(examples)] = examples
    request = predict_request(served, {"examples": examples_tensor(large)})
    assert request.ByteSize() > 10 * 2**20  # well over gRPC's 4 MB default
    response = predictions.Predict(request, timeout=300)
    values = probabilities(response)
    assert values.shape == (len(large),)
    assert np.all((values >= 0) & (values <= 1))
    np.testing.assert_allclose(values[: len(examples)], baseline, rtol=0, atol=TOL)
    assert_still_serving(served, predictions, examples, baseline)


def test_rest_and_grpc_give_the_same_probabilities(served, predictions, rows, examples, baseline):
    body = json.dumps({"instances": [{"b64": base64.b64encode(e).decode("ascii")} for e in examples]})
    response = requests.post(f"{served.rest_url}/v1/models/{served.model}:predict", data=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    rest = np.asarray(response.json()["predictions"], dtype=np.float64)
    np.testing.assert_allclose(rest, baseline, rtol=0, atol=TOL)
    # REST prints the float32 in its shortest round-tripping form: same float32 as gRPC's.
    np.testing.assert_array_equal(rest.astype(np.float32), baseline.astype(np.float32))

    raw = {f.name: [] for f in TAXI.features}
    for inputs in [raw_tensors(rows)]:
        for name, proto in inputs.items():
            raw[name] = [v.decode() if isinstance(v, bytes) else v.item() for v in tf.make_ndarray(proto)]
    response = requests.post(
        f"{served.rest_url}/v1/models/{served.model}:predict",
        data=json.dumps({"signature_name": "predict_raw", "inputs": raw}),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    grpc_raw = probabilities(
        predictions.Predict(predict_request(served, raw_tensors(rows), signature="predict_raw"), timeout=TIMEOUT)
    )
    np.testing.assert_allclose(response.json()["outputs"], grpc_raw, rtol=0, atol=TOL)
