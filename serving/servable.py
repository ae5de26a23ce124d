"""One loaded model version: its signatures, their tensor specs, and how to run them."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from serving.errors import Code, ServingError
from serving.json_codec import STRING, TensorInfo
from serving.tensors import to_ndarray

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


@dataclass(frozen=True)
class Signature:
    name: str
    method: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


def is_complete_version(path: str) -> bool:
    """A SavedModel directory that has finished being written (TF Serving's users
    see half-copied versions load too early otherwise; we also refuse them)."""
    # TF's SavedModel writers always write variables/variables.index, even for
    # models without variables; TFX's Pusher copies saved_model.pb last.
    return os.path.isfile(os.path.join(path, "saved_model.pb")) and os.path.isfile(
        os.path.join(path, "variables", "variables.index")
    )


def read_signature_defs(path: str):
    """The SignatureDef map as TF Serving reports it (from saved_model.pb, method names included)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    meta_graph = saved_model.meta_graphs[0]
    return meta_graph.signature_def


class Servable:
    """A loaded version. Counts in-flight requests so unloading can wait for them."""

    def __init__(self, name: str, version: int, path: str):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path)
        self.signatures: dict[str, Signature] = {}
        for key, sig_def in self.signature_defs.items():
            if key.startswith("__"):  # e.g. __saved_model_init_op
                continue
            self.signatures[key] = Signature(
                name=key,
                method=sig_def.method_name or PREDICT_METHOD,
                inputs={k: TensorInfo.from_proto(v) for k, v in sig_def.inputs.items()},
                outputs={k: TensorInfo.from_proto(v) for k, v in sig_def.outputs.items()},
            )
        self._in_flight = 0
        self._idle = threading.Condition()

    # -- request accounting -------------------------------------------------
    def acquire(self) -> None:
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # -- inference ------------------------------------------------------------
    def signature(self, name: str) -> Signature:
        try:
            return self.signatures[name]
        except KeyError:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def. '
                f"Available: {sorted(self.signatures)}",
            ) from None

    def validate(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                 output_filter: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Checks names, dtypes and shapes; returns the inputs as arrays of the signature's dtypes."""
        signature = self.signature(signature_name)
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input names {sorted(inputs)} do not match signature '{signature_name}': "
                f"missing {missing}, unexpected {extra}; expected inputs: {sorted(signature.inputs)}",
            )
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise ServingError(Code.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        return {key: _to_array(key, inputs[key], spec) for key, spec in signature.inputs.items()}

    def execute(self, signature_name: str, arrays: Mapping[str, np.ndarray],
                output_filter: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Runs the signature on already validated arrays."""
        import tensorflow as tf

        signature = self.signatures[signature_name]
        tensors = {k: tf.constant(v, dtype=tf.string if signature.inputs[k].dtype == STRING else None)
                   for k, v in arrays.items()}
        try:
            outputs = self._loaded.signatures[signature_name](**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise ServingError(Code.INVALID_ARGUMENT, _first_line(exc)) from None
        wanted = output_filter or tuple(signature.outputs)
        return {k: outputs[k].numpy() for k in wanted}

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_filter: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        return self.execute(signature_name, self.validate(signature_name, inputs, output_filter), output_filter)

    def warm_up(self) -> int:
        """Replays assets.extra/tf_serving_warmup_requests (PredictionLog TFRecord); returns the count."""
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {k: to_ndarray(v) for k, v in request.inputs.items()}
                self.run(request.model_spec.signature_name or "serving_default", inputs)
                count += 1
        return count


_NOISE = ("[[", "Detected at node", "File ", "Graph execution error", "Node:", "Stack trace")


def _first_line(exc: Exception) -> str:
    """The line of a TensorFlow error that says what was wrong with the request.

    TF's messages start with "Graph execution error:" and a stack of node
    locations; the cause (e.g. "Feature: x ... is required but could not be
    found.") is one of the later lines.
    """
    lines = [line.strip() for line in str(getattr(exc, "message", exc)).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_NOISE)]
    return (useful or lines or [type(exc).__name__])[-1 if useful else 0]


def _to_array(key: str, value, spec: TensorInfo) -> np.ndarray:
    """The input as an array of exactly the signature's dtype; like TF Serving, no casting."""
    value = np.asarray(value)
    if spec.dtype == STRING:
        if value.dtype.kind not in ("O", "S", "U"):
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"input '{key}' expects string but {value.dtype} is provided")
        value = value.astype(object)
    elif value.dtype != spec.dtype:
        provided = "string" if value.dtype.kind in ("O", "S", "U") else str(value.dtype)
        raise ServingError(Code.INVALID_ARGUMENT, f"input '{key}' expects {spec.dtype} but {provided} is provided")
    if spec.shape is not None:
        if value.ndim != len(spec.shape) or any(d is not None and d != v for d, v in zip(spec.shape, value.shape)):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input '{key}' has shape {list(value.shape)}, signature expects "
                f"{[-1 if d is None else d for d in spec.shape]}",
            )
    return value
