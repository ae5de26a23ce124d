"""The protocol-agnostic data plane on a real repository and a real TF2 SavedModel the test writes.

Checks what both front ends share: TF Serving's `--enable_signature_method_name_check` (off by default),
Classify/Regress on TF2 models whose signatures are all predict methods, the order of checks
(the signature before the examples), and ClassificationResult / RegressionResult post-processing
(classifier.cc, regressor.cc). Runners that return crafted outputs stand in for a model where a real
one can't produce the case (our own layer; the repository and servable are real).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfxp.serving.dataplane import DataPlane, InferenceTask, ModelSpec, direct_runner
from tfxp.serving.errors import Code, ServingError, from_tensorflow_error
from tfxp.serving.repository import ModelConfig, ModelRepository

MODEL = "m"
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
CUSTOM_METHOD = "custom/method"


class _Model(tf.Module):
    """y = 2x + 1, over raw floats (`serving_default`) or tf.Examples with feature x (classify/regress)."""

    def _x(self, serialized):
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": 2.0 * x + 1.0, "z": x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, serialized):
        y = 2.0 * self._x(serialized) + 1.0
        return {
            "scores": tf.concat([y, -y], axis=1),
            "classes": tf.tile(tf.constant([["pos", "neg"]]), [tf.shape(y)[0], 1]),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, serialized):
        return {"outputs": 2.0 * self._x(serialized) + 1.0}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """Version 1 of model `m`, saved with tf.saved_model.save (every method name "predict"), plus a
    signature `custom` whose method name is rewritten to a non-standard one."""
    base = tmp_path_factory.mktemp("dataplane") / MODEL
    module = _Model()
    path = base / "1"
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            "serving_default": module.predict,
            "custom": module.predict,
            "classify_xy": module.classify,
            "regress_xy": module.regress,
        },
    )
    saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    saved.meta_graphs[0].signature_def["custom"].method_name = CUSTOM_METHOD
    (path / "saved_model.pb").write_bytes(saved.SerializeToString())
    repo = ModelRepository([ModelConfig(MODEL, str(base))])
    repo.start(0)
    assert repo.ready()
    yield repo
    repo.stop()


def examples(*xs: float) -> list[bytes]:
    return [
        tf.train.Example(
            features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})
        ).SerializeToString()
        for x in xs
    ]


@contextlib.contextmanager
def raises(code: Code, *needles: str):
    """pytest.raises for a ServingError of `code` whose message holds every needle."""
    with pytest.raises(ServingError) as info:
        yield info
    assert info.value.code is code, (info.value.code, info.value.message)
    for needle in needles:
        assert needle in info.value.message, (needle, info.value.message)


def spec(signature: str = "", name: str = MODEL) -> ModelSpec:
    return ModelSpec(name, signature_name=signature)


# --------------------------------------------------------------------------- method names


def test_classify_and_regress_run_predict_method_signatures_by_default(repository):
    """TF Serving's default (--enable_signature_method_name_check=false): the signature's shape decides."""
    plane = DataPlane(repository)
    assert repository.status(MODEL)[0].version == 1
    result = plane.classify(spec("classify_xy"), examples(1.0, 2.0))
    assert result.value == [[("pos", 3.0), ("neg", -3.0)], [("pos", 5.0), ("neg", -5.0)]]
    assert (result.name, result.version, result.signature_name) == (MODEL, 1, "classify_xy")
    assert plane.regress(spec("regress_xy"), examples(1.0, 2.0)).value == [3.0, 5.0]


def test_method_name_check_on(repository):
    """--enable_signature_method_name_check=true: classifier.cc / regressor.cc / predict_util.cc messages."""
    plane = DataPlane(repository, signature_method_name_check=True)
    with raises(
        Code.INVALID_ARGUMENT, f"Expected classification signature method_name to be {CLASSIFY}. Was: {PREDICT}"
    ):
        plane.classify(spec("classify_xy"), examples(1.0))
    with raises(Code.INVALID_ARGUMENT, f"Expected regression signature method_name to be {REGRESS}. Was: {PREDICT}"):
        plane.regress(spec("regress_xy"), examples(1.0))
    with raises(Code.INVALID_ARGUMENT, "Expected regression signature method_name"):
        plane.multi_inference([InferenceTask(spec("regress_xy"), REGRESS)], examples(1.0))
    with raises(Code.INTERNAL, "Expected prediction signature method_name to be one of", f"Was: {CUSTOM_METHOD}"):
        plane.predict(spec("custom"), {"x": np.array([1.0], np.float32)})
    y = plane.predict(spec(), {"x": np.array([1.0], np.float32)}).value["y"]
    np.testing.assert_array_equal(y, [3.0])


def test_method_name_check_off_runs_any_method(repository):
    outputs = DataPlane(repository).predict(spec("custom"), {"x": np.array([2.0], np.float32)}).value
    np.testing.assert_array_equal(outputs["y"], [5.0])


@pytest.mark.parametrize("batching", [False, True])
def test_predict_async_answers_and_refuses_as_predict(repository, batching):
    """The event loop's predict: the same outputs as the blocking one and the same refusals, run off the
    loop (the executor, or the batching runner's queue)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tfxp.serving.batching import BatchingRunner
    from tfxp.serving.config import BatchingSettings

    runner = BatchingRunner(BatchingSettings(batch_timeout_micros=0)) if batching else direct_runner
    plane = DataPlane(repository, runner)
    x = {"x": np.array([1.0, 2.0], np.float32)}
    with ThreadPoolExecutor(1) as executor:

        async def both(*args, **kwargs):
            return await plane.predict_async(*args, executor=executor, **kwargs)

        result = asyncio.run(both(spec(), x))
        np.testing.assert_array_equal(result.value["y"], plane.predict(spec(), x).value["y"])
        assert (result.name, result.version, result.signature_name) == (MODEL, 1, "serving_default")
        filtered = asyncio.run(both(spec(), x, output_filter=("y",)))  # not batched: runs in the executor
        np.testing.assert_array_equal(filtered.value["y"], result.value["y"])
        with raises(Code.FAILED_PRECONDITION, 'Serving signature key "nope" not found'):
            asyncio.run(both(spec("nope"), x))
        with raises(Code.INVALID_ARGUMENT, "Serving signature name", "not found in signature def"):
            asyncio.run(both(spec("nope"), x, rest=True))
        with raises(Code.NOT_FOUND):
            asyncio.run(both(spec(name="other"), x))


# --------------------------------------------------------------------------- order of checks


def test_examples_are_read_after_the_signature_is_checked(repository):
    """classifier.cc: signature lookup and checks, then InputToSerializedExampleTensor ("Input is empty.")."""
    plane = DataPlane(repository)
    read = []

    def source():
        read.append(True)
        return []

    with raises(Code.INVALID_ARGUMENT, "No signature was found with the name: nope"):
        plane.classify(spec("nope"), source)
    with raises(Code.INVALID_ARGUMENT, "No classification inputs found in SignatureDef"):
        plane.classify(spec("serving_default"), source)
    assert not read
    with raises(Code.INVALID_ARGUMENT, "Input is empty."):
        plane.classify(spec("classify_xy"), source)
    assert read


def test_model_spec_without_name(repository):
    """server_core.cc ServableRequestFromModelSpec: INVALID_ARGUMENT, before any lookup."""
    plane = DataPlane(repository)
    for call in (
        lambda: plane.predict(spec(name=""), {}),
        lambda: plane.classify(spec(name=""), examples(1.0)),
        lambda: plane.regress(spec(name=""), examples(1.0)),
        lambda: plane.metadata(spec(name="")),
        lambda: plane.multi_inference([], examples(1.0)),
    ):
        with raises(Code.INVALID_ARGUMENT, "ModelSpec has no name specified."):
            call()
    with raises(Code.NOT_FOUND, "other"):
        plane.predict(spec(name="other"), {})


def test_predict_output_filter_checks(repository):
    """predict_util.cc PreProcessPrediction."""
    plane = DataPlane(repository)
    inputs = {"x": np.array([1.0], np.float32)}
    assert set(plane.predict(spec(), inputs, ("z",)).value) == {"z"}
    with raises(Code.INVALID_ARGUMENT, "output tensor alias not found in signature: w", "{y,z}"):
        plane.predict(spec(), inputs, ("w",))
    with raises(Code.INVALID_ARGUMENT, "duplicate output tensor alias: y"):
        plane.predict(spec(), inputs, ("y", "y"))


def test_predict_decoder_runs_after_the_signature_is_found(repository):
    plane = DataPlane(repository)
    decoded = []
    with raises(Code.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'):
        plane.predict(spec("nope"), lambda signature: decoded.append(signature) or {})
    assert not decoded
    result = plane.predict(spec(), lambda signature: {"x": np.array([0.5], np.float32)})
    np.testing.assert_array_equal(result.value["y"], [2.0])


def test_multi_inference_results_in_task_order(repository):
    plane = DataPlane(repository)
    results = plane.multi_inference(
        [InferenceTask(spec("regress_xy"), REGRESS), InferenceTask(spec("classify_xy"), CLASSIFY)], examples(1.0)
    )
    assert [r.signature_name for r in results] == ["regress_xy", "classify_xy"]
    assert results[0].value == [3.0]
    assert results[1].value == [[("pos", 3.0), ("neg", -3.0)]]


# --------------------------------------------------------------------------- post-processing


def _crafted(outputs: dict):
    """A runner returning fixed outputs (the servable's own checks still run first)."""

    def runner(servable, signature, inputs, output_filter=()):
        direct_runner(servable, signature, inputs, output_filter)
        return outputs

    return runner


def test_classification_without_classes_has_empty_labels(repository):
    plane = DataPlane(repository, runner=_crafted({"scores": np.array([[0.25, 0.75]], np.float32)}))
    assert plane.classify(spec("classify_xy"), examples(1.0)).value == [[("", 0.25), ("", 0.75)]]


def test_classification_without_scores_has_zero_scores(repository):
    plane = DataPlane(repository, runner=_crafted({"classes": np.array([[b"a", b"b"]], dtype=object)}))
    assert plane.classify(spec("classify_xy"), examples(1.0)).value == [[("a", 0.0), ("b", 0.0)]]


@pytest.mark.parametrize(
    "outputs, needle",
    [
        ({"scores": np.zeros((2, 2), np.float32)}, "Expected scores output batch size of 1. Got: 2"),
        ({"scores": np.zeros((1, 2), np.float64)}, "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE"),
        (
            {"classes": np.array([[b"a"]], dtype=object), "scores": np.zeros((1, 2), np.float32)},
            "Tensors class and score should match in dim_size(1). Got 1 vs. 2",
        ),
        ({"classes": np.array([b"a"], dtype=object)}, "Expected Tensor shape: [batch_size num_classes] but got [1]"),
    ],
)
def test_classification_output_checks(repository, outputs, needle):
    plane = DataPlane(repository, runner=_crafted(outputs))
    with raises(Code.INVALID_ARGUMENT, needle):
        plane.classify(spec("classify_xy"), examples(1.0))


def test_class_label_that_is_not_utf8_is_refused(repository):
    """ClassificationResponse labels are proto strings: a label that is no UTF-8 can't be answered."""
    plane = DataPlane(repository, runner=_crafted({"classes": np.array([[b"\xff"]], dtype=object)}))
    with raises(Code.FAILED_PRECONDITION, "not valid UTF-8"):
        plane.classify(spec("classify_xy"), examples(1.0))


@pytest.mark.parametrize(
    "outputs, expected",
    [
        (np.array([1.5, 2.5], np.float32), [1.5, 2.5]),
        (np.array([[1.5], [2.5]], np.float32), [1.5, 2.5]),
    ],
)
def test_regression_shapes(repository, outputs, expected):
    plane = DataPlane(repository, runner=_crafted({"outputs": outputs}))
    assert plane.regress(spec("regress_xy"), examples(1.0, 2.0)).value == expected


@pytest.mark.parametrize(
    "outputs, needle",
    [
        (np.array(1.0, np.float32), "[batch_size, 1] but got []"),
        (np.array([1.0, 2.0, 3.0], np.float32), "Input batch size did not match output batch size: 2 vs. 3"),
        (np.array([1, 2], np.int64), "Expected output Tensor of DT_FLOAT.  Got: DT_INT64"),
    ],
)
def test_regression_output_checks(repository, outputs, needle):
    plane = DataPlane(repository, runner=_crafted({"outputs": outputs}))
    with raises(Code.INVALID_ARGUMENT, needle):
        plane.regress(spec("regress_xy"), examples(1.0, 2.0))


# --------------------------------------------------------------------------- TensorFlow's errors


@pytest.mark.parametrize(
    "error, code",
    [
        (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"), Code.RESOURCE_EXHAUSTED),
        (tf.errors.FailedPreconditionError(None, None, "Table not initialized."), Code.FAILED_PRECONDITION),
        (
            tf.errors.InvalidArgumentError(
                None,
                None,
                "Graph execution error:\n\nDetected at node 'x'\n"
                "Feature: x (data type: float) is required but could not be found.",
            ),
            Code.INVALID_ARGUMENT,
        ),
    ],
)
def test_tensorflow_errors_keep_their_status(error, code):
    """TF Serving returns Session::Run's status as is; the message is the line that says what went wrong."""
    mapped = from_tensorflow_error(error)
    assert mapped.code is code
    assert "Detected at node" not in mapped.message and mapped.message


def test_other_exceptions_are_not_tensorflow_errors():
    assert from_tensorflow_error(KeyError("x")) is None
    assert from_tensorflow_error(ValueError("x")) is None
