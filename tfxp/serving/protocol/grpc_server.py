"""gRPC front end: TF Serving's PredictionService and ModelService, plus gRPC health.

Servicers subclass the generated base classes of the official
`tensorflow-serving-api` package; each method decodes protos, calls the data
plane, and encodes the result. Errors: a ServingError leaves with its status code
(TF Serving's); a request that can't even be parsed is INVALID_ARGUMENT; anything
else is our bug: INTERNAL, with the traceback in the server log — never gRPC's
UNKNOWN, and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from concurrent import futures
from dataclasses import dataclass

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

from tfxp.serving.dataplane import DataPlane, InferenceTask, ModelSpec
from tfxp.serving.errors import Code, ServingError
from tfxp.serving.memory import GRPC_EXPANSION, WAIT_SECONDS, MemoryBudget
from tfxp.serving.metrics import Metrics
from tfxp.serving.servable import CLASSIFY_METHOD
from tfxp.serving.tensors import TensorProtoError, to_ndarrays, to_tensor_proto

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving allows INT32_MAX; clients hit gRPC's 4 MB default otherwise
# Error details travel in a trailer, non-ASCII bytes percent-encoded (3 characters each); past grpcio's
# metadata limit the client gets RESOURCE_EXHAUSTED instead of the status (measured: 1,300 emoji do it).
# So a message echoing a huge request field is cut to this many UTF-8 bytes (at most ~6 KiB encoded).
MAX_DETAILS_BYTES = 2048
SIGNATURE_DEF = "signature_def"  # GetModelMetadataImpl::kSignatureDef, the only metadata field
_STATE_NUMBERS = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def _spec(model_spec) -> ModelSpec:
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return ModelSpec(model_spec.name, version, label, model_spec.signature_name)


def _require_model_spec(request) -> None:
    """predict_impl.cc, classification_service.cc, ...: a request without a model_spec is refused."""
    if not request.HasField("model_spec"):
        raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _abort(context, code: Code, message: str):
    encoded = message.encode("utf-8", "backslashreplace")  # a lone surrogate can't go on the wire as itself
    details = encoded[:MAX_DETAILS_BYTES].decode("utf-8", "ignore")
    if len(encoded) > MAX_DETAILS_BYTES:
        details += f"... ({len(encoded) - len(details.encode())} more bytes)"
    context.abort(getattr(grpc.StatusCode, code.name), details)


@contextlib.contextmanager
def _statuses(context, api: str, name: str, outcome: dict | None = None):
    """An RPC's error status: a ServingError's code; INTERNAL for our bugs, traceback logged.
    The code is also written to `outcome["status"]` (request metrics) when given."""

    def fail(code: Code, message: str):
        if outcome is not None:
            outcome["status"] = code.name
        _abort(context, code, message)

    try:
        yield
    except ServingError as error:
        fail(error.code, error.message)
    except MemoryError:
        log.exception("gRPC %s for model %r ran out of memory", api, name)
        fail(Code.RESOURCE_EXHAUSTED, "Out of memory while serving the request")
    except Exception as exc:  # our bug: logged with its traceback, answered INTERNAL
        log.exception("gRPC %s for model %r failed", api, name)
        fail(Code.INTERNAL, f"Internal error ({type(exc).__name__}: {exc}); see the server log")


@contextlib.contextmanager
def _rpc(metrics: Metrics, name: str, api: str, context):
    """`_statuses` inside request metrics, counted by the status code the client gets."""
    with metrics.observe(name, api, "grpc") as outcome, _statuses(context, api, name, outcome):
        yield


def _fill_spec(target, name: str, version: int, signature: str) -> None:
    target.name = name
    target.version.value = version
    if signature:
        target.signature_name = signature


def serialized_examples(input_proto) -> list[bytes]:
    """tensorflow.serving.Input -> serialized tf.Examples (util.cc InputToSerializedExampleTensor).

    With a context, each example is the serialized context followed by the serialized example: parsing
    that merges them, the example's features winning (proto map semantics), exactly as TF Serving does.
    An Input with no examples gives []; the data plane answers "Input is empty.".
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        listed = input_proto.example_list_with_context
        context = listed.context.SerializeToString()
        return [context + e.SerializeToString() for e in listed.examples]
    return []


def _input_arrays(inputs) -> dict:
    """TF Serving (saved_model::GetInputValues): a TensorProto that is no tensor is INVALID_ARGUMENT
    "tensor parsing error: <alias>"; we add the reason."""
    try:
        return to_ndarrays(inputs)
    except TensorProtoError as exc:
        raise ServingError(Code.INVALID_ARGUMENT, f"tensor parsing error: {exc.alias} ({exc})") from None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane, metrics: Metrics):
        self._plane = plane
        self._metrics = metrics

    def Predict(self, request, context):
        spec = _spec(request.model_spec)
        with _rpc(self._metrics, spec.name, "predict", context):
            _require_model_spec(request)
            # Decoded once the signature is found: a bad tensor for an unknown model is NOT_FOUND first.
            result = self._plane.predict(
                spec, lambda signature: _input_arrays(request.inputs), tuple(request.output_filter), _deadline(context)
            )
            response = predict_pb2.PredictResponse()
            _fill_spec(response.model_spec, result.name, result.version, result.signature_name)
            for key, value in result.value.items():
                to_tensor_proto(value, response.outputs[key])
            return response

    def Classify(self, request, context):
        spec = _spec(request.model_spec)
        with _rpc(self._metrics, spec.name, "classify", context):
            _require_model_spec(request)
            result = self._plane.classify(spec, lambda: serialized_examples(request.input), _deadline(context))
            response = classification_pb2.ClassificationResponse()
            _fill_spec(response.model_spec, result.name, result.version, result.signature_name)
            _fill_classifications(response.result, result.value)
            return response

    def Regress(self, request, context):
        spec = _spec(request.model_spec)
        with _rpc(self._metrics, spec.name, "regress", context):
            _require_model_spec(request)
            result = self._plane.regress(spec, lambda: serialized_examples(request.input), _deadline(context))
            response = regression_pb2.RegressionResponse()
            _fill_spec(response.model_spec, result.name, result.version, result.signature_name)
            _fill_regressions(response.result, result.value)
            return response

    def MultiInference(self, request, context):
        tasks = [InferenceTask(_spec(task.model_spec), task.method_name) for task in request.tasks]
        with _rpc(self._metrics, tasks[0].spec.name if tasks else "", "multi_inference", context):
            results = self._plane.multi_inference(tasks, lambda: serialized_examples(request.input), _deadline(context))
            response = inference_pb2.MultiInferenceResponse()
            for task, result in zip(tasks, results, strict=True):
                out = response.results.add()
                if task.method_name == CLASSIFY_METHOD:
                    _fill_classifications(out.classification_result, result.value)
                else:
                    _fill_regressions(out.regression_result, result.value)
                _fill_spec(out.model_spec, result.name, result.version, result.signature_name)
            return response

    def GetModelMetadata(self, request, context):
        spec = _spec(request.model_spec)
        with _rpc(self._metrics, spec.name, "metadata", context):
            _require_model_spec(request)
            _check_metadata_fields(request.metadata_field)
            result = self._plane.metadata(spec)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _fill_spec(response.model_spec, result.name, result.version, "")
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in result.value.items():
                signature_map.signature_def[key].CopyFrom(value)
            response.metadata[SIGNATURE_DEF].Pack(signature_map)
            return response


def _check_metadata_fields(fields) -> None:
    """get_model_metadata_impl.cc ValidateGetModelMetadataRequest."""
    if not fields:
        raise ServingError(Code.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != SIGNATURE_DEF:
            raise ServingError(Code.INVALID_ARGUMENT, f"Metadata field {field} is not supported")


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
        with _rpc(self._metrics, spec.name, "status", context):
            _require_model_spec(request)  # get_model_status_impl.cc; an empty name is NOT_FOUND there
            statuses = self._plane.status(spec.name, spec.version, spec.label)
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in statuses:
                item = response.model_version_status.add()
                item.version = status.version
                item.state = _STATE_NUMBERS[status.state]
                item.status.error_code = getattr(grpc.StatusCode, status.error_code).value[0]
                item.status.error_message = status.error_message
            return response

    def HandleReloadConfigRequest(self, request, context):
        if self._reload_config is None:
            _abort(context, Code.UNIMPLEMENTED, "config reload is not enabled")
        # A refused config is the RPC's status, as model_service_impl.cc's `return
        # ToGRPCStatus(status)`: INVALID_ARGUMENT for an invalid config, FAILED_PRECONDITION
        # for a label on a version that is not AVAILABLE. The config in force stays.
        with _statuses(context, "reload_config", ""):
            try:
                self._reload_config(request.config)
            except ValueError as error:  # serving.config.ConfigError
                raise ServingError(Code.INVALID_ARGUMENT, str(error)) from error
            return model_management_pb2.ReloadConfigResponse()


# --------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class _Undecodable:
    """A request whose bytes are not its message (e.g. a string field that is not UTF-8)."""

    message_type: str
    reason: str


@dataclass(frozen=True)
class _Received:
    """A request as the deserializer hands it to the handler: the message (or _Undecodable) and its size
    on the wire, which the memory budget charges."""

    message: object
    nbytes: int


def _lenient(message_class):
    """A request deserializer that hands a parse failure to the handler, which answers INVALID_ARGUMENT;
    grpcio itself would answer INTERNAL "Exception deserializing request!"."""

    def deserialize(data: bytes) -> _Received:
        try:
            return _Received(message_class.FromString(data), len(data))
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's bytes
            return _Received(_Undecodable(message_class.DESCRIPTOR.full_name, str(exc) or type(exc).__name__), 0)

    return deserialize


def _guarded(behavior, budget: MemoryBudget | None):
    """`behavior(request, context)` for a `_Received` request: an undecodable one is INVALID_ARGUMENT; a
    decoded one runs holding the memory budget's charge for its size, or is RESOURCE_EXHAUSTED when that
    doesn't fit within WAIT_SECONDS (or the RPC's deadline)."""

    @functools.wraps(behavior)
    def handle(received: _Received, context):
        request = received.message
        if isinstance(request, _Undecodable):
            _abort(
                context,
                Code.INVALID_ARGUMENT,
                f"Could not parse the request as {request.message_type} ({request.reason}); "
                "string fields must be valid UTF-8",
            )
        if budget is None:
            return behavior(request, context)
        remaining = context.time_remaining()
        wait = WAIT_SECONDS if remaining is None else min(WAIT_SECONDS, remaining)
        charge = received.nbytes * GRPC_EXPANSION
        with budget.reserved(charge, wait) as granted:
            if not granted:
                _abort(context, Code.RESOURCE_EXHAUSTED, budget.refusal(charge))
            return behavior(request, context)

    return handle


_PREDICTION_METHODS = {
    "Classify": (classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
    "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
    "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
    "MultiInference": (inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
    "GetModelMetadata": (
        get_model_metadata_pb2.GetModelMetadataRequest,
        get_model_metadata_pb2.GetModelMetadataResponse,
    ),
}
_MODEL_METHODS = {
    "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest, get_model_status_pb2.GetModelStatusResponse),
    "HandleReloadConfigRequest": (model_management_pb2.ReloadConfigRequest, model_management_pb2.ReloadConfigResponse),
}


def _handler(service: str, servicer, methods: dict, budget: MemoryBudget | None) -> grpc.GenericRpcHandler:
    """Like the generated add_*Servicer_to_server, with lenient request deserializers and the memory budget."""
    return grpc.method_handlers_generic_handler(
        service,
        {
            name: grpc.unary_unary_rpc_method_handler(
                _guarded(getattr(servicer, name), budget),
                request_deserializer=_lenient(request_class),
                response_serializer=response_class.SerializeToString,
            )
            for name, (request_class, response_class) in methods.items()
        },
    )


def build_server(
    plane: DataPlane,
    metrics: Metrics,
    address: str,
    reload_config=None,
    max_workers: int = 32,
    *,
    handshake_timeout_seconds: float = 120.0,
    idle_timeout_seconds: float | None = None,
    budget: MemoryBudget | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Returns (server, bound port, health servicer); the caller starts it.

    `handshake_timeout_seconds`: a connection that has not finished its HTTP/2 handshake by then is
    closed (gRPC's default: 120 s); `idle_timeout_seconds`: a connection with no RPC in progress that long
    is closed with a GOAWAY (gRPC's default: never), as the REST port's keep-alive timeout (issue 26)."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # so_reuseport off: with it, a second server on a busy port binds silently and
        # steals half the connections instead of failing at start-up.
        ("grpc.so_reuseport", 0),
        ("grpc.server_handshake_timeout_ms", int(handshake_timeout_seconds * 1000)),
    ]
    if idle_timeout_seconds is not None:
        options.append(("grpc.max_connection_idle_ms", int(idle_timeout_seconds * 1000)))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"), options=options
    )
    server.add_generic_rpc_handlers(
        (
            _handler(
                "tensorflow.serving.PredictionService",
                PredictionServicer(plane, metrics),
                _PREDICTION_METHODS,
                budget,
            ),
            _handler(
                "tensorflow.serving.ModelService", ModelServicer(plane, metrics, reload_config), _MODEL_METHODS, budget
            ),
        )
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC to {address}")
    return server, port, health_servicer


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
