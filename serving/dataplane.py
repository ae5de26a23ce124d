"""The protocol-agnostic data plane: predict / classify / regress / metadata / status.

REST and gRPC front ends are thin adapters that decode their wire format into
these calls (numpy arrays and serialized tf.Examples) and encode the results.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from serving.errors import Code, ServingError
from serving.repository import ModelRepository, VersionStatus
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable, Signature

DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    @property
    def signature(self) -> str:
        return self.signature_name or DEFAULT_SIGNATURE


@dataclass
class Result:
    name: str
    version: int
    signature_name: str
    value: object  # outputs dict (predict), per-example class scores (classify) or floats (regress)


# A runner executes a signature; the batching layer substitutes one that merges requests.
Runner = Callable[[Servable, str, Mapping[str, np.ndarray], tuple], dict]
# Builds a request's input tensors from the signature that will run them.
Decoder = Callable[[Signature], Mapping[str, np.ndarray]]


def direct_runner(servable: Servable, signature: str, inputs: Mapping[str, np.ndarray],
                  output_filter: tuple = ()) -> dict:
    return servable.run(signature, inputs, output_filter)


class DataPlane:
    def __init__(self, repository: ModelRepository, runner: Runner = direct_runner, request_logger=None):
        self.repository = repository
        self._runner = runner
        self._request_logger = request_logger

    def predict(self, spec: ModelSpec, inputs: Mapping[str, np.ndarray] | Decoder, output_filter: tuple = (),
                deadline: float | None = None) -> Result:
        """Runs a signature of the resolved version.

        `inputs` may be a function of that version's signature, for front ends
        that decode by the inputs' dtypes (REST's JSON): then the version that
        decodes the request is the one that runs it, even while a new one loads.
        """
        with self.repository.servable(spec.name, spec.version, spec.label) as servable:
            # Like TF Serving, Predict runs any signature; Classify/Regress check the method.
            signature = _predict_signature(servable, spec.signature)
            if callable(inputs):
                inputs = inputs(signature)
            _check_deadline(deadline)
            outputs = self._runner(servable, signature.name, inputs, tuple(output_filter))
            result = Result(spec.name, servable.version, signature.name, outputs)
        if self._request_logger is not None and self._request_logger.sampled():
            self._request_logger.write(_predict_log(result, inputs))
        return result

    def classify(self, spec: ModelSpec, examples: list[bytes], deadline: float | None = None) -> Result:
        with self.repository.servable(spec.name, spec.version, spec.label) as servable:
            signature = _example_signature(servable, spec.signature, CLASSIFY_METHOD)
            _check_deadline(deadline)
            outputs = self._runner(servable, signature.name, _examples_input(signature, examples), ())
            return Result(spec.name, servable.version, signature.name, _classifications(outputs, len(examples)))

    def regress(self, spec: ModelSpec, examples: list[bytes], deadline: float | None = None) -> Result:
        with self.repository.servable(spec.name, spec.version, spec.label) as servable:
            signature = _example_signature(servable, spec.signature, REGRESS_METHOD)
            _check_deadline(deadline)
            outputs = self._runner(servable, signature.name, _examples_input(signature, examples), ())
            values = np.asarray(outputs["outputs"], dtype=np.float64).reshape(-1)
            if values.shape[0] != len(examples):
                raise ServingError(Code.INVALID_ARGUMENT, "regression output must have one value per example")
            return Result(spec.name, servable.version, signature.name, values.tolist())

    def metadata(self, spec: ModelSpec) -> Result:
        """The SignatureDef map (TF Serving's only metadata field), keyed by signature name."""
        with self.repository.servable(spec.name, spec.version, spec.label) as servable:
            return Result(spec.name, servable.version, "", servable.signature_defs)

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        return self.repository.status(name, version, label)

    def ready(self) -> bool:
        return self.repository.ready()


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline exceeded before the request could run")


def _predict_signature(servable: Servable, name: str) -> Signature:
    """TF Serving's Predict (predict_util.cc RunPredict) reports an unknown signature as FAILED_PRECONDITION.
    REST resolves the signature first (`signature()`, INVALID_ARGUMENT as in GetInfoMap); both are HTTP 400."""
    try:
        return servable.signature(name)
    except ServingError as error:
        raise ServingError(Code.FAILED_PRECONDITION, error.message) from None


def _example_signature(servable: Servable, name: str, method: str) -> Signature:
    signature = servable.signature(name)
    if signature.method != method:
        kind = method.rsplit("/", 1)[-1]
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method}",
        )
    return signature


def _examples_input(signature: Signature, examples: list[bytes]) -> dict[str, np.ndarray]:
    if not examples:
        raise ServingError(Code.INVALID_ARGUMENT, "Input is empty")
    (key,) = signature.inputs  # classify/regress signatures take one serialized-examples tensor
    return {key: np.array(examples, dtype=object)}


def _classifications(outputs: Mapping[str, np.ndarray], count: int) -> list[list[tuple[str, float]]]:
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    if scores is None and classes is None:
        raise ServingError(Code.INVALID_ARGUMENT, "classification signature has neither 'classes' nor 'scores'")
    rows = []
    for i in range(count):
        row_scores = np.asarray(scores[i]).reshape(-1) if scores is not None else None
        row_classes = np.asarray(classes[i]).reshape(-1) if classes is not None else None
        width = len(row_scores) if row_scores is not None else len(row_classes)
        labels = [(c.decode() if isinstance(c, bytes) else str(c)) for c in row_classes] if row_classes is not None \
            else [str(j) for j in range(width)]
        values = [float(s) for s in row_scores] if row_scores is not None else [0.0] * width
        rows.append(list(zip(labels, values)))
    return rows


def _predict_log(result: Result, inputs: Mapping[str, np.ndarray]):
    """A PredictionLog record of one served request and its response."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from serving.tensors import to_tensor_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = result.name
    request.model_spec.version.value = result.version
    request.model_spec.signature_name = result.signature_name
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(to_tensor_proto(value))
    for key, value in result.value.items():
        response.outputs[key].CopyFrom(to_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(request)
    log.predict_log.response.CopyFrom(response)
    log.log_metadata.model_spec.CopyFrom(request.model_spec)
    return log
