"""gRPC conformance with TensorFlow Serving 2.16.1, from its own tests, on a model this test writes.

Expectations come from `model_servers/tensorflow_model_server_test.py` (testClassifyTf2, testRegressTf2,
testMultiInferenceTf2, VerifyPredictRequest) and `servables/tensorflow/{predict_impl,classifier,regressor,
multi_inference,get_model_metadata_impl,classification_service}_test.cc`: codes, and the messages of
`classifier.cc`, `regressor.cc`, `multi_inference.cc`, `predict_util.cc`, `util.cc`, `server_core.cc`.

The model is TF Serving's TF2 half_plus_two (`saved_model_half_plus_two.py`'s HalfPlusTwoModel, saved with
`tf.saved_model.save`, so every signature's method name is "tensorflow/serving/predict"), plus signatures
shaped to hit each Classify/Regress check, and one returning every dtype a response carries.

Against a real TF Serving: start it serving model `default` from an empty directory, then
    TFXP_CONFORMANCE_MODEL_DIR=<that directory> TFXP_CONFORMANCE_GRPC=host:8500 pytest <this file>
(e.g. `docker run -p 8500:8500 -v /tmp/conformance:/models/default -e MODEL_NAME=default
tensorflow/serving:2.16.1`). The test writes version 123 there and waits for it. Cases where this server
deliberately differs (bounded fills, more values than the shape, unparseable requests, our own bugs) are
skipped then.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
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

MODEL = "default"
VERSION = 123
TIMEOUT = 60
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
PREDICT = "tensorflow/serving/predict"
INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND

# --------------------------------------------------------------------------- the model


def _feature_spec():
    """saved_model_half_plus_two.py _get_feature_spec."""
    return {
        "x": tf.io.FixedLenFeature([1], tf.float32),
        "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
    }


_EXAMPLES = tf.TensorSpec([None], tf.string, name="inputs")


class ConformanceModel(tf.Module):
    """TF Serving's TF2 HalfPlusTwoModel (y = 0.5x + 2, y2 = 0.5x + 3, y3 = 0.5x2 + 3) and extra signatures."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5, name="a")
        self.b = tf.Variable(2.0, name="b")
        self.c = tf.Variable(3.0, name="c")

    def _x(self, serialized, key="x"):
        return tf.io.parse_example(serialized, _feature_spec())[key]  # [batch, 1]

    def compute(self, x, inc):
        return self.a * x + inc

    # -- HalfPlusTwoModel's own signatures ---------------------------------------------------
    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def predict(self, x):
        return {"y": self.compute(x, self.b)}

    @tf.function(input_signature=[_EXAMPLES])
    def regress_xy(self, serialized):
        return {"outputs": self.compute(self._x(serialized), self.b)}

    @tf.function(input_signature=[_EXAMPLES])
    def regress_xy2(self, serialized):
        return {"outputs": self.compute(self._x(serialized), self.c)}

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="inputs")])
    def regress_x2y3(self, x2):
        return {"outputs": self.compute(x2, self.c)}

    @tf.function(input_signature=[_EXAMPLES])
    def classify_xy(self, serialized):
        return {"scores": self.compute(self._x(serialized), self.b)}

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="inputs")])
    def classify_x2y3(self, x2):
        return {"scores": self.compute(x2, self.c)}

    # -- extra signatures: labels, and each check of classifier.cc / regressor.cc ------------------
    @tf.function(input_signature=[_EXAMPLES])
    def classify_labels(self, serialized):
        y = self.compute(self._x(serialized), self.b)
        classes = tf.tile(tf.constant([["dos", "uno"]]), [tf.shape(y)[0], 1])
        return {"classes": classes, "scores": tf.concat([y, y + 1.0], axis=1)}

    @tf.function(input_signature=[_EXAMPLES])
    def classify_classes_only(self, serialized):
        n = tf.shape(serialized)[0]
        return {"classes": tf.tile(tf.constant([["dos", "uno"]]), [n, 1])}

    @tf.function(input_signature=[_EXAMPLES])
    def classify_int_classes(self, serialized):
        return {"classes": tf.cast(self._x(serialized), tf.int64)}

    @tf.function(input_signature=[_EXAMPLES])
    def classify_rank1_scores(self, serialized):
        return {"scores": tf.reshape(self._x(serialized), [-1])}

    @tf.function(input_signature=[_EXAMPLES])
    def classify_mismatch(self, serialized):
        x = self._x(serialized)
        classes = tf.tile(tf.constant([["dos", "uno"]]), [tf.shape(x)[0], 1])
        return {"classes": classes, "scores": tf.concat([x, x, x], axis=1)}

    @tf.function(input_signature=[_EXAMPLES])
    def classify_scores_and_extra(self, serialized):
        y = self.compute(self._x(serialized), self.b)
        return {"scores": y, "extra": tf.reshape(y, [-1])}

    @tf.function(input_signature=[_EXAMPLES])
    def regress_double(self, serialized):
        return {"outputs": tf.cast(self._x(serialized), tf.float64)}

    @tf.function(input_signature=[_EXAMPLES])
    def regress_wide(self, serialized):
        x = self._x(serialized)
        return {"outputs": tf.concat([x, x], axis=1)}

    @tf.function(input_signature=[_EXAMPLES])
    def regress_two_outputs(self, serialized):
        x = self._x(serialized)
        return {"outputs": x, "other": x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def typed_outputs(self, x):
        """One output per dtype a response can carry."""
        return {
            "float": x,
            "double": tf.cast(x, tf.float64),
            "half": tf.cast(x, tf.float16),
            "bfloat16": tf.cast(x, tf.bfloat16),
            "int32": tf.cast(x, tf.int32),
            "int64": tf.cast(x, tf.int64),
            "int16": tf.cast(x, tf.int16),
            "int8": tf.cast(x, tf.int8),
            "uint8": tf.cast(tf.abs(x), tf.uint8),
            "uint16": tf.cast(tf.abs(x), tf.uint16),
            "uint32": tf.cast(tf.abs(x), tf.uint32),
            "uint64": tf.cast(tf.abs(x), tf.uint64),
            "bool": x > 0,
            "string": tf.strings.as_string(x),
            "complex64": tf.complex(x, -x),
            "complex128": tf.complex(tf.cast(x, tf.float64), tf.ones_like(x, tf.float64)),
            "matrix": tf.reshape(tf.tile(x, [3]), [3, -1]),
            "scalar": tf.reduce_sum(x),
        }

    def signatures(self) -> dict:
        return {
            "serving_default": self.predict,
            "regress_x_to_y": self.regress_xy,
            "regress_x_to_y2": self.regress_xy2,
            "regress_x2_to_y3": self.regress_x2y3,
            "classify_x_to_y": self.classify_xy,
            "classify_x2_to_y3": self.classify_x2y3,
            "classify_labels": self.classify_labels,
            "classify_classes_only": self.classify_classes_only,
            "classify_int_classes": self.classify_int_classes,
            "classify_rank1_scores": self.classify_rank1_scores,
            "classify_mismatch": self.classify_mismatch,
            "classify_scores_and_extra": self.classify_scores_and_extra,
            "regress_double": self.regress_double,
            "regress_wide": self.regress_wide,
            "regress_two_outputs": self.regress_two_outputs,
            "typed_outputs": self.typed_outputs,
        }


def write_model(base: Path, version: int = VERSION) -> Path:
    """Saves ConformanceModel as `base/<version>`, written beside it and renamed in (a poller never sees half)."""
    target = base / str(version)
    if target.exists():  # an external server's directory, kept from an earlier run
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    module = ConformanceModel()
    tf.saved_model.save(module, str(staging / "m"), signatures=module.signatures())
    os.rename(staging / "m", target)
    shutil.rmtree(staging)
    return target


# --------------------------------------------------------------------------- the server


@dataclass
class Target:
    address: str
    background: object = None  # serving_harness.BackgroundServer for our own server

    @property
    def external(self) -> bool:
        return self.background is None


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    external = os.environ.get("TFXP_CONFORMANCE_GRPC")
    if external:
        write_model(Path(os.environ["TFXP_CONFORMANCE_MODEL_DIR"]))
        _wait_available(external)
        yield Target(external)
        return
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    base = tmp_path_factory.mktemp("conformance") / MODEL
    write_model(base)
    background = BackgroundServer(
        ServerOptions(model_base_path=base, model_name=MODEL, rest_port=0, grpc_port=0, poll_seconds=0)
    )
    try:
        yield Target(f"127.0.0.1:{background.server.grpc_port}", background)
    finally:
        background.stop()


def _wait_available(address: str) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(address))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    request.model_spec.version.value = VERSION
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            states = [s.state for s in stub.GetModelStatus(request, timeout=5).model_version_status]
            if get_model_status_pb2.ModelVersionStatus.AVAILABLE in states:
                return
        except grpc.RpcError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{address} never served {MODEL} version {VERSION}")


@pytest.fixture(scope="module")
def channel(target):
    ch = grpc.insecure_channel(target.address)
    grpc.channel_ready_future(ch).result(timeout=60)
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture
def own(target) -> Target:
    if target.external:
        pytest.skip("this server's own behaviour (TF Serving differs on purpose here)")
    return target


def rpc_error(call, request, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    assert info.value.code() == code, (info.value.code(), info.value.details())
    details = info.value.details() or ""
    for needle in needles:
        assert needle in details, (needle, details)
    return details


def assert_still_serving(stub) -> None:
    """VerifyPredictRequest's request: x = [2.0] -> y = [3.0]."""
    response = stub.Predict(predict_request({"x": _x_tensor(2.0)}), timeout=TIMEOUT)
    assert list(response.outputs["y"].float_val) == [3.0]


# --------------------------------------------------------------------------- request builders


def _x_tensor(*values: float, shape=None) -> tensor_pb2.TensorProto:
    """As TF Serving's VerifyPredictRequest builds it: DT_FLOAT, float_val, an explicit shape."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.float_val.extend(values)
    for size in shape if shape is not None else [len(values)]:
        proto.tensor_shape.dim.add().size = size
    return proto


def predict_request(
    inputs: dict, signature: str = "serving_default", output_filter=(), model: str | None = MODEL
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    if model is not None:
        request.model_spec.name = model
        request.model_spec.signature_name = signature
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    request.output_filter.extend(output_filter)
    return request


def _add_examples(input_proto, xs, context: dict | None = None) -> None:
    """example_list (AddInput in multi_inference_test.cc), or example_list_with_context."""
    if context is None:
        examples = input_proto.example_list.examples
    else:
        listed = input_proto.example_list_with_context
        for key, value in context.items():
            listed.context.features.feature[key].float_list.value.append(value)
        examples = listed.examples
    for x in xs:
        example = examples.add()
        for key, value in x.items() if isinstance(x, dict) else [("x", x)]:
            example.features.feature[key].float_list.value.append(value)


def classify_request(signature: str, xs=(2.0,), context=None, model: str | None = MODEL):
    request = classification_pb2.ClassificationRequest()
    if model is not None:
        request.model_spec.name = model
        request.model_spec.signature_name = signature
    _add_examples(request.input, xs, context)
    return request


def regress_request(signature: str, xs=(2.0,), context=None, model: str | None = MODEL):
    request = regression_pb2.RegressionRequest()
    if model is not None:
        request.model_spec.name = model
        request.model_spec.signature_name = signature
    _add_examples(request.input, xs, context)
    return request


def multi_request(*tasks: tuple[str, str], xs=(2.0,), model: str = MODEL):
    """PopulateTask(signature, method) for each task, as multi_inference_test.cc."""
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in tasks:
        task = request.tasks.add()
        task.model_spec.name = model
        task.model_spec.signature_name = signature
        task.method_name = method
    _add_examples(request.input, xs)
    return request


def _verify_model_spec(spec, signature: str) -> None:
    """tensorflow_model_server_test_base._VerifyModelSpec."""
    assert (spec.name, spec.signature_name, spec.version.value) == (MODEL, signature, VERSION)


# --------------------------------------------------------------------------- Predict


@pytest.mark.parametrize("specify_output", [True, False])
def test_predict_answers_in_float_val(stub, specify_output):
    """VerifyPredictRequest: one value in float_val, none in tensor_content."""
    request = predict_request({"x": _x_tensor(2.0)}, output_filter=["y"] if specify_output else ())
    response = stub.Predict(request, timeout=TIMEOUT)
    y = response.outputs["y"]
    assert y.dtype == types_pb2.DT_FLOAT
    assert list(y.float_val) == [3.0] and y.tensor_content == b""
    assert [d.size for d in y.tensor_shape.dim] == [1]
    _verify_model_spec(response.model_spec, "serving_default")


def test_predict_default_signature_is_named_in_the_response(stub):
    response = stub.Predict(predict_request({"x": _x_tensor(2.0)}, signature=""), timeout=TIMEOUT)
    _verify_model_spec(response.model_spec, "serving_default")


def test_outputs_of_every_dtype_are_in_their_typed_fields(stub):
    """predict_util.cc answers with Tensor::AsProtoField: each dtype's own *_val field, all values."""
    x = np.array([1.5, -2.0, 3.0], dtype=np.float32)
    response = stub.Predict(predict_request({"x": tf.make_tensor_proto(x)}, signature="typed_outputs"), timeout=TIMEOUT)
    expected_fields = {
        "float": "float_val",
        "double": "double_val",
        "half": "half_val",
        "bfloat16": "half_val",
        "int32": "int_val",
        "int64": "int64_val",
        "int16": "int_val",
        "int8": "int_val",
        "uint8": "int_val",
        "uint16": "int_val",
        "uint32": "uint32_val",
        "uint64": "uint64_val",
        "bool": "bool_val",
        "string": "string_val",
        "complex64": "scomplex_val",
        "complex128": "dcomplex_val",
        "matrix": "float_val",
        "scalar": "float_val",
    }
    direct = {k: v.numpy() for k, v in ConformanceModel().typed_outputs(tf.constant(x)).items()}
    assert set(response.outputs) == set(expected_fields)
    for name, field in expected_fields.items():
        proto = response.outputs[name]
        assert proto.tensor_content == b"", name
        filled = [f.name for f, _ in proto.ListFields() if f.name.endswith("_val")]
        assert filled == [field], (name, filled)
        ours = tf.make_ndarray(proto)
        assert ours.shape == direct[name].shape, name
        np.testing.assert_array_equal(ours, direct[name], err_msg=name)
    assert len(response.outputs["complex64"].scomplex_val) == 2 * len(x)  # (real, imaginary) pairs


def test_fill_conventions_of_tensor_from_proto(stub):
    """Tensor::FromProto: no values -> zeros (y = 0.5 * 0 + 2); TF's one-value-for-a-shape convention."""
    response = stub.Predict(predict_request({"x": _x_tensor(shape=[1])}), timeout=TIMEOUT)
    assert list(response.outputs["y"].float_val) == [2.0]
    filled = tf.make_tensor_proto(2.0, dtype=tf.float32, shape=[4])
    assert len(filled.float_val) == 1
    response = stub.Predict(
        predict_request({"x": filled}, signature="typed_outputs", output_filter=["float"]), timeout=TIMEOUT
    )
    assert list(response.outputs["float"].float_val) == [2.0] * 4


def test_predict_errors(stub):
    """predict_impl_test.cc / predict_util.cc."""
    rpc_error(
        stub.Predict,
        predict_request({"x": _x_tensor(2.0)}, signature="nope"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )
    rpc_error(
        stub.Predict,
        predict_request({"x": _x_tensor(2.0)}, output_filter=["output_filter"]),
        INVALID,
        "output tensor alias not found in signature: output_filter",
    )
    rpc_error(
        stub.Predict,
        predict_request({"x": _x_tensor(2.0)}, output_filter=["y", "y"]),
        INVALID,
        "duplicate output tensor alias: y",
    )
    rpc_error(stub.Predict, predict_request({}), INVALID)  # EmptyInputList
    rpc_error(stub.Predict, predict_request({"key": tf.make_tensor_proto([b"any_key"])}), INVALID)
    rpc_error(stub.Predict, predict_request({"x": tf.make_tensor_proto([b"any_key"])}), INVALID)
    assert_still_serving(stub)


# --------------------------------------------------------------------------- model_spec


def _requests_without_model_spec():
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    yield "Predict", predict_request({"x": _x_tensor(2.0)}, model=None)
    yield "Classify", classify_request("", model=None)
    yield "Regress", regress_request("", model=None)
    yield "GetModelMetadata", metadata


@pytest.mark.parametrize("method", ["Predict", "Classify", "Regress", "GetModelMetadata", "GetModelStatus"])
def test_missing_model_spec_is_invalid_argument(stub, models, method):
    """predict_impl.cc, classification_service.cc, regression_service.cc, get_model_metadata_impl.cc,
    get_model_status_impl.cc: INVALID_ARGUMENT "Missing ModelSpec" (not NOT_FOUND)."""
    if method == "GetModelStatus":
        rpc_error(models.GetModelStatus, get_model_status_pb2.GetModelStatusRequest(), INVALID, "Missing ModelSpec")
        return
    request = dict(_requests_without_model_spec())[method]
    assert not request.HasField("model_spec")
    rpc_error(getattr(stub, method), request, INVALID, "Missing ModelSpec")


@pytest.mark.parametrize("method", ["Predict", "Classify", "Regress", "GetModelMetadata", "MultiInference"])
def test_empty_model_spec_is_invalid_argument(stub, method):
    """MissingOrEmptyModelSpec tests: a model_spec without a name -> server_core.cc
    "ModelSpec has no name specified." (INVALID_ARGUMENT); a wrong name -> NOT_FOUND."""
    if method == "MultiInference":
        request = multi_request(("regress_x_to_y", REGRESS), model="")
    else:
        request = dict(_requests_without_model_spec())[method]
        request.model_spec.SetInParent()
    rpc_error(getattr(stub, method), request, INVALID, "ModelSpec has no name specified.")
    if method == "MultiInference":
        request.tasks[0].model_spec.name = "test"
    else:
        request.model_spec.name = "test"
    rpc_error(getattr(stub, method), request, NOT_FOUND, "test")


def test_model_status_with_empty_name_is_not_found(models):
    """get_model_status_impl.cc looks the empty name up: "Could not find any versions of model"."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.SetInParent()
    rpc_error(models.GetModelStatus, request, NOT_FOUND, "Could not find any versions of model")


# --------------------------------------------------------------------------- Classify / Regress on TF2


def test_classify_tf2(stub):
    """testClassifyTf2: every signature of a tf.saved_model.save model is a predict method; Classify runs it
    (no --enable_signature_method_name_check). No classes output: the label is "" (classifier.cc)."""
    response = stub.Classify(classify_request("classify_x_to_y"), timeout=TIMEOUT)
    assert len(response.result.classifications) == 1
    classes = response.result.classifications[0].classes
    assert [(c.label, c.score) for c in classes] == [("", 3.0)]
    _verify_model_spec(response.model_spec, "classify_x_to_y")


@pytest.mark.parametrize("signature, expected", [("regress_x_to_y", 3.0), ("regress_x_to_y2", 4.0)])
def test_regress_tf2(stub, signature, expected):
    """testRegressTf2 (and regress_x_to_y2 of multi_inference_test.cc)."""
    response = stub.Regress(regress_request(signature), timeout=TIMEOUT)
    assert [r.value for r in response.result.regressions] == [expected]
    _verify_model_spec(response.model_spec, signature)


def test_classify_labels_and_scores(stub):
    """ClassifierTest.ExampleList: labels from `classes`, scores from `scores`, example by example."""
    response = stub.Classify(classify_request("classify_labels", xs=(2.0, 4.0)), timeout=TIMEOUT)
    rows = [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]
    assert rows == [[("dos", 3.0), ("uno", 4.0)], [("dos", 4.0), ("uno", 5.0)]]


def test_classify_classes_only_scores_zero(stub):
    """ClassifierTest.ClassesOnly: labels, scores left at 0."""
    response = stub.Classify(classify_request("classify_classes_only", xs=(1.0, 1.0)), timeout=TIMEOUT)
    rows = [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]
    assert rows == [[("dos", 0.0), ("uno", 0.0)]] * 2


def test_classify_fetches_only_classes_and_scores(stub):
    """PreProcessClassification fetches classes/scores; other outputs of the signature are ignored."""
    response = stub.Classify(classify_request("classify_scores_and_extra"), timeout=TIMEOUT)
    assert [(c.label, c.score) for c in response.result.classifications[0].classes] == [("", 3.0)]


def test_example_list_with_context(stub):
    """ClassifierTest.ExampleListWithContext(_DuplicateFeatures): each example is parsed from the context's
    bytes followed by its own, so context features reach every example and the example's own win."""
    response = stub.Regress(
        regress_request("regress_x_to_y", xs=({"x2": 1.0}, {"x": 6.0}), context={"x": 2.0}), timeout=TIMEOUT
    )
    assert [r.value for r in response.result.regressions] == [3.0, 5.0]


def test_multi_inference_tf2(stub):
    """testMultiInferenceTf2 / RegressAndClassifySignaturesTest."""
    request = multi_request(("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY))
    response = stub.MultiInference(request, timeout=TIMEOUT)
    assert len(response.results) == 2
    assert response.results[0].regression_result.regressions[0].value == 3.0
    assert response.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert response.results[1].classification_result.classifications[0].classes[0].label == ""
    for i in range(2):
        _verify_model_spec(response.results[i].model_spec, request.tasks[i].model_spec.signature_name)


def test_multi_inference_regress_signatures(stub):
    """MultipleValidRegressSignaturesTest: y = 0.5x + 2 and y2 = 0.5x + 3."""
    response = stub.MultiInference(
        multi_request(("regress_x_to_y", REGRESS), ("regress_x_to_y2", REGRESS)), timeout=TIMEOUT
    )
    assert [r.regression_result.regressions[0].value for r in response.results] == [3.0, 4.0]


_CLASSIFY_ERRORS = {
    # InvalidNamedSignature
    "unknown signature": ("Classify", "nope", "No signature was found with the name: nope"),
    "unknown signature (Regress)": ("Regress", "nope", "No signature was found with the name: nope"),
    # a predict signature whose input is not named "inputs"
    "no classification inputs": ("Classify", "serving_default", "No classification inputs found in SignatureDef"),
    "no regression inputs": ("Regress", "serving_default", "No regression inputs found in SignatureDef"),
    "no classes or scores": (
        "Classify",
        "regress_x_to_y",
        'Expected classification signature outputs to contain at least one of "classes" or "scores"',
    ),
    "no regression outputs": ("Regress", "classify_x_to_y", "No regression outputs found in SignatureDef"),
    # MalformedScores
    "rank-1 scores": (
        "Classify",
        "classify_rank1_scores",
        "Expected Tensor shape: [batch_size num_classes] but got [1]",
    ),
    "int64 classes": ("Classify", "classify_int_classes", "Expected classes Tensor of DT_STRING. Got: DT_INT64"),
    "classes and scores disagree": (
        "Classify",
        "classify_mismatch",
        "Tensors class and score should match in dim_size(1). Got 2 vs. 3",
    ),
    # UnexpectedOutputTensorType / shape
    "double regression": ("Regress", "regress_double", "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE"),
    "wide regression": (
        "Regress",
        "regress_wide",
        "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [1,2]",
    ),
    "two regression outputs": ("Regress", "regress_two_outputs", "Expected one output Tensor."),
    # the signature takes floats, not serialized examples: the model refuses them
    "float inputs": ("Classify", "classify_x2_to_y3", ""),
}


@pytest.mark.parametrize("case", list(_CLASSIFY_ERRORS))
def test_classify_regress_errors(stub, case):
    method, signature, needle = _CLASSIFY_ERRORS[case]
    build = classify_request if method == "Classify" else regress_request
    rpc_error(getattr(stub, method), build(signature), INVALID, needle)
    assert_still_serving(stub)


@pytest.mark.parametrize("method", ["Classify", "Regress"])
@pytest.mark.parametrize("kind", ["no input", "empty example_list", "empty example_list_with_context"])
def test_empty_input(stub, method, kind):
    """EmptyInput / EmptyExampleList / EmptyExampleListWithContext: "Input is empty"."""
    request = (classify_request if method == "Classify" else regress_request)(
        "classify_x_to_y" if method == "Classify" else "regress_x_to_y", xs=()
    )
    if kind == "no input":
        request.ClearField("input")
    elif kind == "empty example_list_with_context":
        request.input.example_list_with_context.context.features.feature["x"].float_list.value.append(1.0)
    rpc_error(getattr(stub, method), request, INVALID, "Input is empty")


def _multi_errors():
    yield "MissingInputTest", multi_request(("regress_x_to_y", REGRESS), xs=()), INVALID, "Input is empty"
    yield (
        "UndefinedSignatureTest",
        multi_request(("ThisSignatureDoesNotExist", REGRESS)),
        INVALID,
        "signature not found",
    )
    inconsistent = multi_request(("regress_x_to_y", REGRESS))
    task = inconsistent.tasks.add(method_name=REGRESS)
    task.model_spec.name, task.model_spec.signature_name = "ModelDoesNotExist", "regress_x_to_y"
    yield "InconsistentModelSpecsInRequestTest", inconsistent, INVALID, "must access the same model name"
    yield (
        "EvaluateDuplicateSignaturesTest",
        multi_request(("regress_x_to_y", REGRESS), ("regress_x_to_y", REGRESS)),
        INVALID,
        "Duplicate evaluation of signature: regress_x_to_y",
    )
    yield (
        "UsupportedSignatureTypeTest",
        multi_request(("serving_default", PREDICT)),
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature",
    )
    empty_name = multi_request(("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY))
    empty_name.tasks[1].model_spec.name = ""
    yield "empty name in a later task", empty_name, INVALID, "Found ModelSpec with an empty model name."
    yield "no tasks", multi_request(), INVALID, "ModelSpec has no name specified."
    yield (
        "task checks (PreProcessRegression)",
        multi_request(("classify_x_to_y", REGRESS)),
        INVALID,
        "No regression outputs found",
    )


@pytest.mark.parametrize("case", [c[0] for c in _multi_errors()])
def test_multi_inference_errors(stub, case):
    """multi_inference_test.cc, plus the checks of multi_inference.cc / multi_inference_helper.cc it does not test."""
    _, request, code, needle = next(c for c in _multi_errors() if c[0] == case)
    rpc_error(stub.MultiInference, request, code, needle)


# --------------------------------------------------------------------------- metadata and status


def test_get_model_metadata(stub):
    """testGetModelMetadata; the field may be named more than once (TF Serving loops over them)."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def", "signature_def"])
    request.model_spec.name = MODEL
    response = stub.GetModelMetadata(request, timeout=TIMEOUT)
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, VERSION)
    assert list(response.metadata) == ["signature_def"]
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert signature_map.signature_def["classify_x_to_y"].method_name == PREDICT  # tf.saved_model.save's


@pytest.mark.parametrize(
    "fields, needle",
    [([], "must specify at least one metadata_field"), (["some_stuff"], "Metadata field some_stuff is not supported")],
)
def test_get_model_metadata_fields(stub, fields, needle):
    """EmptyOrInvalidMetadataFieldList."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = MODEL
    rpc_error(stub.GetModelMetadata, request, INVALID, needle)


def test_get_model_status(models):
    """testGetModelStatus."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    result = models.GetModelStatus(request, timeout=TIMEOUT)
    assert [(s.version, s.status.error_code) for s in result.model_version_status] == [(VERSION, 0)]


# --------------------------------------------------------------------------- requests that are not tensors


def _tensor(dtype: int, dims=(), **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    return proto


# Each is sent as input "x" of serving_default: INVALID_ARGUMENT "tensor parsing error: x", never UNKNOWN.
_BAD_TENSORS = {
    "DT_RESOURCE": _tensor(types_pb2.DT_RESOURCE, [1]),
    "DT_VARIANT": _tensor(types_pb2.DT_VARIANT, [1]),
    "DT_INVALID": _tensor(types_pb2.DT_INVALID, [1], float_val=[1.0]),
    "unknown dtype enum": _tensor(77, [1], float_val=[1.0]),
    "shape 10^12": _tensor(types_pb2.DT_FLOAT, [10**12], float_val=[1.0]),
    "element count over int64": _tensor(types_pb2.DT_FLOAT, [2**40, 2**40], float_val=[1.0]),
    "negative dimension": _tensor(types_pb2.DT_FLOAT, [-1], float_val=[1.0]),
    "255 dimensions": _tensor(types_pb2.DT_FLOAT, [1] * 255, float_val=[1.0]),
    "short tensor_content": _tensor(types_pb2.DT_FLOAT, [2], tensor_content=b"\x00\x00\x80\x3f"),
    "odd scomplex_val": _tensor(types_pb2.DT_COMPLEX64, [1], scomplex_val=[1.0]),
}


@pytest.mark.parametrize("case", list(_BAD_TENSORS))
def test_tensor_that_is_no_tensor_is_invalid_argument(stub, case):
    """saved_model::GetInputValues: Tensor::FromProto fails -> INVALID_ARGUMENT "tensor parsing error: x"."""
    rpc_error(stub.Predict, predict_request({"x": _BAD_TENSORS[case]}), INVALID, "tensor parsing error: x")
    assert_still_serving(stub)


def _vm_peak_kib() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


@pytest.mark.parametrize(
    "dtype, field, value",
    [
        (types_pb2.DT_FLOAT, "float_val", [1.0]),
        (types_pb2.DT_STRING, "string_val", [b"a"]),
        (types_pb2.DT_INT64, "int64_val", []),
    ],
)
def test_claimed_shape_is_checked_before_allocating(own, stub, dtype, field, value):
    """Issue 10: a 48-byte request claiming [10^8] with one value made the server allocate ~390 MB
    (DT_STRING: ~660 MB). Filling beyond what is sent is bounded (tensors.MAX_FILL_BYTES a request)."""
    request = predict_request({"x": _tensor(dtype, [10**8], **{field: value})})
    assert request.ByteSize() < 64
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets the peak RSS (VmHWM) of this process
        f.write("5")
    before = _vm_peak_kib()
    rpc_error(stub.Predict, request, INVALID, "tensor parsing error: x", "declares 100000000 elements")
    assert _vm_peak_kib() - before < 64 * 1024, "refusing the request should not cost 64 MB"
    assert_still_serving(stub)


def test_fill_budget_is_per_request(own, stub):
    """Many inputs each under the bound can't add up to more than it."""
    each = {f"x{i}": _tensor(types_pb2.DT_FLOAT, [2**20], float_val=[1.0]) for i in range(5)}  # 4 MiB each
    rpc_error(stub.Predict, predict_request(each), INVALID, "tensor parsing error", "limited to")


@pytest.mark.parametrize("dims", [[1] * 40, [0, 2**62]], ids=["rank 40", "[0, 2^62]"])
def test_shapes_numpy_cannot_hold_are_invalid_argument(own, stub, dims):
    """TF takes up to 254 dims and empty tensors of any other dims; numpy arrays can't hold these."""
    rpc_error(
        stub.Predict,
        predict_request({"x": _tensor(types_pb2.DT_FLOAT, dims)}),
        INVALID,
        "tensor parsing error: x",
        "numpy",
    )


def test_more_values_than_the_shape_holds_is_refused(own, stub):
    """TF keeps the first `count` values and drops the rest; we refuse rather than answer for other input."""
    rpc_error(
        stub.Predict,
        predict_request({"x": _x_tensor(2.0, 5.0, shape=[1])}),
        INVALID,
        "tensor parsing error: x",
        "2 values sent for shape [1]",
    )


def _raw_predict(channel):
    return channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=lambda raw: raw,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )


def test_string_field_that_is_not_utf8_is_invalid_argument(own, channel, stub):
    """A lone UTF-16 surrogate (UTF-8 bytes ED A0 80) in signature_name: the request can't be parsed.
    grpcio alone answers INTERNAL "Exception deserializing request!"; it's the client's bytes."""
    spec = b"\x0a\x07default" + b"\x1a\x03\xed\xa0\x80"  # ModelSpec{name: "default", signature_name: <bad>}
    raw = b"\x0a" + bytes([len(spec)]) + spec
    with pytest.raises(grpc.RpcError) as info:
        _raw_predict(channel)(raw, timeout=TIMEOUT)
    assert info.value.code() == INVALID, info.value.details()
    assert "tensorflow.serving.PredictRequest" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        _raw_predict(channel)(b"\xff\xff\xff", timeout=TIMEOUT)  # not a protobuf at all
    assert info.value.code() == INVALID
    assert_still_serving(stub)


@pytest.mark.parametrize("char", ["s", "\U0001f600"])
def test_huge_echoed_name_gives_a_short_error(own, stub, char):
    """Errors echo request fields; past grpcio's metadata limit a client would see RESOURCE_EXHAUSTED
    instead of the status, so details are cut short (non-ASCII is percent-encoded, 3 bytes per byte)."""
    details = rpc_error(
        stub.Predict,
        predict_request({"x": _x_tensor(2.0)}, signature=char * 20_000),
        grpc.StatusCode.FAILED_PRECONDITION,
        "Serving signature key",
        "more bytes)",
    )
    assert len(details.encode()) < 2200
    assert_still_serving(stub)


# --------------------------------------------------------------------------- servers built around a data plane


@pytest.fixture
def plane_server(own):
    """Starts a gRPC server (build_server) around a DataPlane over the running server's repository."""
    from tfxp.serving.metrics import Metrics
    from tfxp.serving.protocol import build_server

    started = []

    def start(plane):
        server, port, _ = build_server(plane, Metrics(), "127.0.0.1:0")
        server.start()
        started.append(server)
        return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

    yield start
    for server in started:
        server.stop(grace=None)


def test_our_bug_is_internal_with_traceback_in_the_log(own, plane_server, caplog):
    """Issue 10 item 9: an unexpected exception is INTERNAL (not gRPC's UNKNOWN), its traceback logged."""
    from tfxp.serving.dataplane import DataPlane

    def broken_runner(servable, signature, inputs, output_filter=()):
        return {}["no such output"]  # a bug of ours: KeyError

    stub = plane_server(DataPlane(own.background.server.repository, runner=broken_runner))
    with caplog.at_level(logging.ERROR, logger="tfxp.serving.protocol.grpc_server"):
        details = rpc_error(stub.Predict, predict_request({"x": _x_tensor(2.0)}), grpc.StatusCode.INTERNAL, "KeyError")
    assert "see the server log" in details
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records), caplog.text
    assert "Traceback" in caplog.text


def test_signature_method_name_check(own, plane_server):
    """--enable_signature_method_name_check: Classify/Regress then require their method names
    (classifier.cc GetClassificationSignatureDef, regressor.cc); Predict still runs predict methods."""
    from tfxp.serving.dataplane import DataPlane

    stub = plane_server(DataPlane(own.background.server.repository, signature_method_name_check=True))
    rpc_error(
        stub.Classify,
        classify_request("classify_x_to_y"),
        INVALID,
        f"Expected classification signature method_name to be {CLASSIFY}. Was: {PREDICT}",
    )
    rpc_error(
        stub.Regress,
        regress_request("regress_x_to_y"),
        INVALID,
        f"Expected regression signature method_name to be {REGRESS}. Was: {PREDICT}",
    )
    rpc_error(
        stub.MultiInference,
        multi_request(("regress_x_to_y", REGRESS)),
        INVALID,
        "Expected regression signature method_name",
    )
    assert_still_serving(stub)


# --------------------------------------------------------------------------- seeded fuzz


def _fuzz_tensor(rng: random.Random) -> tensor_pb2.TensorProto:
    dtype = rng.choice([rng.choice(list(types_pb2.DataType.values())), types_pb2.DT_FLOAT, rng.randint(0, 200)])
    dims = [rng.choice([0, 1, 1, 2, 3, -1, 10**8, 10**12, 2**62]) for _ in range(rng.choice([0, 1, 1, 2, 3, 33, 40]))]
    proto = _tensor(dtype, dims)
    kind = rng.randrange(6)
    if kind == 0:
        proto.float_val.extend(rng.uniform(-1e30, 1e30) for _ in range(rng.randint(0, 4)))
    elif kind == 1:
        proto.tensor_content = rng.randbytes(rng.choice([0, 1, 3, 4, 8, 16]))
    elif kind == 2:
        proto.string_val.extend(rng.randbytes(rng.randint(0, 5)) for _ in range(rng.randint(0, 3)))
    elif kind == 3:
        proto.int64_val.extend(rng.randint(-(2**63), 2**63 - 1) for _ in range(rng.randint(0, 3)))
    elif kind == 4:
        proto.half_val.extend(rng.randint(-(2**31), 2**31 - 1) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.05:
        proto.tensor_shape.unknown_rank = True
    return proto


def _fuzz_name(rng: random.Random, names: list[str]) -> str:
    weird = ["", "x" * rng.randint(1, 3000), "\u00e9\u4e2d\U0001f600", "../../etc", "a\x00b"]
    return rng.choice(names) if rng.random() < 0.7 else rng.choice(weird)


def _fuzz_request(rng: random.Random):
    signatures = list(ConformanceModel().signatures()) + ["nope"]
    method = rng.choice(["Predict", "Predict", "Classify", "Regress", "MultiInference", "GetModelMetadata"])
    if method == "Predict":
        inputs = {_fuzz_name(rng, ["x", "inputs"]): _fuzz_tensor(rng) for _ in range(rng.randint(0, 3))}
        request = predict_request(
            inputs,
            signature=_fuzz_name(rng, signatures),
            output_filter=[_fuzz_name(rng, ["y", "float"]) for _ in range(rng.randint(0, 2))],
            model=rng.choice([MODEL, MODEL, "", None, "other"]),
        )
    elif method in ("Classify", "Regress"):
        build = classify_request if method == "Classify" else regress_request
        xs = [rng.choice([rng.uniform(-9, 9), {"x2": 1.0}, {"x": float("nan")}]) for _ in range(rng.randint(0, 3))]
        request = build(
            _fuzz_name(rng, signatures),
            xs=xs,
            context=rng.choice([None, {"x": 1.0}]),
            model=rng.choice([MODEL, MODEL, "", None]),
        )
    elif method == "MultiInference":
        tasks = [
            (_fuzz_name(rng, signatures), rng.choice([CLASSIFY, REGRESS, PREDICT, ""]))
            for _ in range(rng.randint(0, 3))
        ]
        request = multi_request(*tasks, xs=[rng.uniform(-9, 9) for _ in range(rng.randint(0, 2))])
    else:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=[_fuzz_name(rng, ["signature_def"]) for _ in range(rng.randint(0, 2))]
        )
        request.model_spec.name = rng.choice([MODEL, "", "zzz"])
    if rng.random() < 0.1 and method != "MultiInference" and request.HasField("model_spec"):
        request.model_spec.version.value = rng.choice([VERSION, 0, -1, 2**62])
    return method, request


FUZZ_REQUESTS = 2000


def test_seeded_fuzz_never_unknown_or_internal(own, stub):
    """Bad input gets a client error code, never UNKNOWN/INTERNAL; memory stays bounded; still serving."""
    rng = random.Random(10)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _vm_peak_kib()
    codes: dict[str, int] = {}
    for i in range(FUZZ_REQUESTS):
        if i % 100 == 0:
            assert_still_serving(stub)
        method, request = _fuzz_request(rng)
        try:
            getattr(stub, method)(request, timeout=TIMEOUT)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
            assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (method, request, error.details())
        codes[code.name] = codes.get(code.name, 0) + 1
    assert _vm_peak_kib() - before < 200 * 1024, "fuzzing grew the server's peak memory by 200 MB"
    assert codes.get("OK", 0) > 40 and codes.get("INVALID_ARGUMENT", 0) > 500, codes
    assert_still_serving(stub)
