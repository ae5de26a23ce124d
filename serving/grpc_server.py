"""gRPC front end: TF Serving's PredictionService and ModelService, plus gRPC health.

Servicers subclass the generated base classes of the official
`tensorflow-serving-api` package; each method decodes protos, calls the data
plane, and encodes the result.
"""
from __future__ import annotations

import contextlib
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.dataplane import DataPlane, ModelSpec
from serving.errors import Code, ServingError
from serving.metrics import Metrics
from serving.tensors import to_ndarray, to_tensor_proto

MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving allows INT32_MAX; clients hit gRPC's 4 MB default otherwise
_STATE_NUMBERS = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def _spec(model_spec) -> ModelSpec:
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return ModelSpec(model_spec.name, version, label, model_spec.signature_name)


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _abort(context, error: ServingError):
    context.abort(getattr(grpc.StatusCode, error.code.name), error.message)


def _fill_spec(target, name: str, version: int, signature: str) -> None:
    target.name = name
    target.version.value = version
    if signature:
        target.signature_name = signature


def serialized_examples(input_proto) -> list[bytes]:
    """tensorflow.serving.Input -> serialized tf.Examples, context merged into each example."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        listed = input_proto.example_list_with_context
        out = []
        for example in listed.examples:
            merged = type(example)()
            merged.CopyFrom(listed.context)
            for key, feature in example.features.feature.items():
                merged.features.feature[key].CopyFrom(feature)
            out.append(merged.SerializeToString())
        return out
    raise ServingError(Code.INVALID_ARGUMENT, "Input is empty")


def _input_array(alias: str, proto):
    """A malformed TensorProto is the client's error (TF Serving: INVALID_ARGUMENT "tensor parsing error")."""
    try:
        return to_ndarray(proto)
    except (ValueError, TypeError) as exc:
        raise ServingError(Code.INVALID_ARGUMENT, f"tensor parsing error: {alias} ({exc})") from None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane, metrics: Metrics):
        self._plane = plane
        self._metrics = metrics

    @contextlib.contextmanager
    def _call(self, name: str, method: str, context):
        """Request metrics around one RPC; a ServingError aborts it with TF Serving's status code."""
        with self._metrics.observe(name, method, "grpc") as outcome:
            try:
                yield
            except ServingError as error:
                outcome["status"] = error.code.name
                _abort(context, error)

    def Predict(self, request, context):
        spec = _spec(request.model_spec)
        with self._call(spec.name, "predict", context):
            inputs = {k: _input_array(k, v) for k, v in request.inputs.items()}
            result = self._plane.predict(spec, inputs, tuple(request.output_filter), _deadline(context))
            response = predict_pb2.PredictResponse()
            _fill_spec(response.model_spec, result.name, result.version, result.signature_name)
            for key, value in result.value.items():
                response.outputs[key].CopyFrom(to_tensor_proto(value))
            return response

    def Classify(self, request, context):
        spec = _spec(request.model_spec)
        with self._call(spec.name, "classify", context):
            result = self._plane.classify(spec, serialized_examples(request.input), _deadline(context))
            response = classification_pb2.ClassificationResponse()
            _fill_spec(response.model_spec, result.name, result.version, result.signature_name)
            _fill_classifications(response.result, result.value)
            return response

    def Regress(self, request, context):
        spec = _spec(request.model_spec)
        with self._call(spec.name, "regress", context):
            result = self._plane.regress(spec, serialized_examples(request.input), _deadline(context))
            response = regression_pb2.RegressionResponse()
            _fill_spec(response.model_spec, result.name, result.version, result.signature_name)
            _fill_regressions(response.result, result.value)
            return response

    def MultiInference(self, request, context):
        examples_cache = None
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            spec = _spec(task.model_spec)
            with self._call(spec.name, "multi_inference", context):
                examples_cache = examples_cache or serialized_examples(request.input)
                if task.method_name == "tensorflow/serving/classify":
                    result = self._plane.classify(spec, examples_cache, _deadline(context))
                    out = response.results.add()
                    _fill_classifications(out.classification_result, result.value)
                elif task.method_name == "tensorflow/serving/regress":
                    result = self._plane.regress(spec, examples_cache, _deadline(context))
                    out = response.results.add()
                    _fill_regressions(out.regression_result, result.value)
                else:
                    raise ServingError(Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}")
                _fill_spec(out.model_spec, result.name, result.version, result.signature_name)
        return response

    def GetModelMetadata(self, request, context):
        spec = _spec(request.model_spec)
        with self._call(spec.name, "metadata", context):
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError(Code.INVALID_ARGUMENT, "Metadata field signature_def is the only one supported")
            result = self._plane.metadata(spec)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _fill_spec(response.model_spec, result.name, result.version, "")
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in result.value.items():
                signature_map.signature_def[key].CopyFrom(value)
            response.metadata["signature_def"].Pack(signature_map)
            return response


def _fill_regressions(result_proto, values) -> None:
    for value in values:
        result_proto.regressions.add().value = value


def _fill_classifications(result_proto, rows) -> None:
    for row in rows:
        classifications = result_proto.classifications.add()
        for label, score in row:
            item = classifications.classes.add()
            item.label = label
            item.score = score


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane, metrics: Metrics, reload_config=None):
        self._plane = plane
        self._metrics = metrics
        self._reload_config = reload_config  # callable(ModelServerConfig) or None

    def GetModelStatus(self, request, context):
        spec = _spec(request.model_spec)
        with self._metrics.observe(spec.name, "status", "grpc") as outcome:
            try:
                statuses = self._plane.status(spec.name, spec.version, spec.label)
            except ServingError as error:
                outcome["status"] = error.code.name
                _abort(context, error)
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in statuses:
                item = response.model_version_status.add()
                item.version = status.version
                item.state = _STATE_NUMBERS[status.state]
                item.status.error_code = getattr(grpc.StatusCode, status.error_code).value[0]
                item.status.error_message = status.error_message
            return response

    def HandleReloadConfigRequest(self, request, context):
        response = model_management_pb2.ReloadConfigResponse()
        if self._reload_config is None:
            _abort(context, ServingError(Code.UNIMPLEMENTED, "config reload is not enabled"))
        try:
            self._reload_config(request.config)
        except (ServingError, ValueError) as error:
            message = getattr(error, "message", str(error))
            response.status.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
            response.status.error_message = message
        return response


def build_server(plane: DataPlane, metrics: Metrics, address: str, reload_config=None,
                 max_workers: int = 32) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Returns (server, bound port, health servicer); the caller starts it."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(plane, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(plane, metrics, reload_config), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC to {address}")
    return server, port, health_servicer


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
