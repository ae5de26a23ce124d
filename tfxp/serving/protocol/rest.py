"""REST front end (aiohttp): TF Serving 2.16.1's REST API, its routes, bodies, status codes and messages.

Routing is TF Serving's (`model_servers/http_server.cc`, `http_rest_api_handler.cc`, `http_rest_api_util.cc`):

- Every request whose path, query included, fully matches `(?i)/v1/.*` is the model handler's. It
  answers POST `/v1/models/{name}[/versions/{digits}|/labels/{label}]:(classify|regress|predict)` and
  GET `/v1/models[/{name}][/versions/{digits}|/labels/{label}][/metadata]`, with those two regexes
  (case-insensitive, but the verb and "metadata" are compared in lower case afterwards, as TF Serving
  does: `:PREDICT` is a malformed request, `/METADATA` a status request). Anything else under /v1/ is
  400 "Malformed request: <method> <path>"; `GET /v1/models` is 400 "Missing model name in request.";
  a version that does not fit an int64 is 400 "Failed to convert version: <v> to numeric.".
  OPTIONS is a CORS preflight: 200 with an http(s) `Origin`, else 400.
- Extensions live outside /v1/, so they change no answer TF Serving defines: `GET /tfxp/models` lists
  the configured models, `GET /readyz` is 200 when every model has a version loaded (else 503), and
  the Prometheus page is at the monitoring path. Other paths are 404.

Every answer of the model handler is JSON with `Content-Type: application/json`; an error is
`{"error": "<message>"}` with TF Serving's HTTP status for its code. A failure of this server itself
(a bug) is a JSON 500 too, with its traceback in the server log. The body is read as sent, as
TF Serving's libevent server reads it (a `Content-Encoding: gzip` body is not decompressed).

Beyond TF Serving: a body over `max_request_bytes` is 413 (refused on its Content-Length before it
is read). The request deadline (`request_timeout`, 504) covers reading the body, decoding, running
and encoding. A :predict body up to SMALL_BODY_BYTES is decoded on the event loop and its run awaited
there (the data plane's predict_async: with batching on, no thread waits for the batch); every other
body is decoded, run and encoded in the worker pool, never on the event loop, and stops at the
deadline (the JSON decoders' checkpoints). The model never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from tfxp.serving.dataplane import DataPlane, ModelSpec
from tfxp.serving.errors import Code, ServingError, from_tensorflow_error
from tfxp.serving.memory import REST_JSON_EXPANSION, WAIT_SECONDS, MemoryBudget
from tfxp.serving.metrics import CONTENT_TYPE_LATEST, Metrics
from tfxp.serving.protocol._json_common import CodecError
from tfxp.serving.protocol._json_request import decode_examples, decode_predict_request, signature_name
from tfxp.serving.protocol._json_response import (
    encode_classify_response,
    encode_predict_response,
    encode_regress_response,
)
from tfxp.serving.protocol._json_text import LARGE_BODY_BYTES, dumps, gc_paused, parse_json, to_utf8

if sys.version_info >= (3, 11):
    from asyncio import timeout_at
else:  # aiohttp's own dependency on 3.10: the same context manager asyncio gained in 3.11
    from async_timeout import timeout_at

log = logging.getLogger(__name__)

# http_rest_api_util.h kHTTPRestApiHandlerPathRegex, and http_rest_api_util.cc's two route regexes.
# RE2's \d is ASCII; [0-9] keeps Python from matching other digits.
_V1_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_PREDICTION_API = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE
)
_MODEL_STATUS_API = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE
)
_VERBS = ("classify", "regress", "predict")
_CORS_ORIGIN = re.compile(r"https?://")
_INT64_MAX = 2**63 - 1

# A :predict body up to this size is decoded on the event loop, and its answer encoded there when the
# outputs hold at most SMALL_OUTPUT_VALUES values: each costs tens of microseconds, less than a hand-off
# to a worker thread and back (docs/benchmarks.md, "Serving"). Larger ones are the worker pool's.
SMALL_BODY_BYTES = 16 * 1024
SMALL_OUTPUT_VALUES = 4096

MODELS_PATH = "/tfxp/models"  # extension: the configured models (TF Serving has no such route)
READY_PATH = "/readyz"  # extension: readiness independent of one model
_JSON_HEADERS = {"Content-Type": "application/json"}


def _json_response(text: str, status: int = 200) -> web.Response:
    return web.Response(body=to_utf8(text), status=status, headers=_JSON_HEADERS)


def error_response(code: Code, message: str, status: int | None = None) -> web.Response:
    """`{"error": message}` with the HTTP status TF Serving gives `code` (or `status`)."""
    return _json_response(dumps({"error": message}), status or code.http_status)


@dataclass(frozen=True)
class Route:
    """A /v1/ request as TF Serving's ParseModelInfo reads it.

    `matched`: the method's regex matched (POST: prediction API, GET: status API). `action`: the verb
    or "metadata" as written in the path ("" for none). `error`: a version that is not an int64.
    """

    method: str
    path: str
    matched: bool = False
    name: str = ""
    version: int | None = None
    label: str | None = None
    action: str = ""
    error: ServingError | None = None

    @classmethod
    def parse(cls, method: str, path: str) -> Route:
        regex = {"POST": _PREDICTION_API, "GET": _MODEL_STATUS_API}.get(method)
        match = regex.fullmatch(path) if regex is not None else None
        if match is None:
            return cls(method, path)
        name, version_text, label, action = (group or "" for group in match.groups())
        try:
            version = _version(version_text) if version_text else None
        except ServingError as error:
            return cls(method, path, True, unquote(name), error=error)
        # DecodeArg (curl_easy_unescape): %XX escapes; "+" stays "+".
        return cls(method, path, True, unquote(name), version, unquote(label) if label else None, action)

    @property
    def api(self) -> str:
        """The metrics' api label (a fixed set of values)."""
        if self.method == "POST" and self.matched and self.action in _VERBS:
            return self.action
        if self.method == "GET" and self.matched:
            return "metadata" if self.action == "metadata" else "status"
        return "other"


def _version(text: str) -> int:
    """absl::SimpleAtoi into an int64 (the regex already allows only ASCII digits)."""
    digits = text.lstrip("0")
    # Checked by length first: int() refuses more than 4300 digits with a ValueError.
    if len(digits) > 19 or int(digits or "0") > _INT64_MAX:
        raise ServingError(Code.INVALID_ARGUMENT, f"Failed to convert version: {text} to numeric.")
    return int(digits or "0")


class RestFrontEnd:
    """The aiohttp application (`app`) serving TF Serving's REST API from a DataPlane."""

    def __init__(
        self,
        plane: DataPlane,
        metrics: Metrics,
        *,
        max_request_bytes: int,
        request_timeout: float,
        monitoring_path: str,
        workers: int = 32,
        budget: MemoryBudget | None = None,
    ):
        self._plane = plane
        self._budget = budget
        self._metrics = metrics
        metrics.use_model_names(plane.repository.model_names)
        self._timeout = request_timeout
        self._max_request_bytes = max_request_bytes
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rest")
        # auto_decompress off: TF Serving's HTTP server (libevent) reads the body as sent, whatever its
        # Content-Encoding says, so a gzip body is a JSON parse error there and here.
        self.app = web.Application(
            client_max_size=max_request_bytes, middlewares=[self._errors], handler_args={"auto_decompress": False}
        )
        self.app.router.add_get(monitoring_path, self._prometheus)
        self.app.router.add_get(MODELS_PATH, self._list_models)
        self.app.router.add_get(READY_PATH, self._ready)
        self.app.router.add_route("*", "/{path:.*}", self._dispatch)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        """Whatever fails outside the model handler (aiohttp's own errors, a bug) still answers JSON."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 413:
                return error_response(Code.RESOURCE_EXHAUSTED, f"Request body too large: {exc.text}", 413)
            return _json_response(dumps({"error": exc.reason or str(exc)}), exc.status)
        except Exception as exc:  # noqa: BLE001 - the catch-all: never aiohttp's plain-text 500
            return _internal_error(exc, request)

    # -- extensions and metrics ------------------------------------------------------------
    async def _prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _list_models(self, request: web.Request) -> web.Response:
        return _json_response(dumps({"models": self._plane.repository.model_names()}))

    async def _ready(self, request: web.Request) -> web.Response:
        ready = self._plane.ready()
        return _json_response(dumps({"ready": ready}), 200 if ready else 503)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path  # as sent: TF Serving matches the raw path and query
        if not _V1_PATH.fullmatch(path):
            return error_response(Code.NOT_FOUND, f"Not found: {request.method} {path}")
        if request.method == "OPTIONS":
            return _cors_preflight(request)
        return await self._model_handler(request, Route.parse(request.method, path))

    # -- TF Serving's model handler ------------------------------------------------------------
    async def _model_handler(self, request: web.Request, route: Route) -> web.Response:
        deadline = time.monotonic() + self._timeout
        with self._metrics.observe(route.name, route.api, "rest") as outcome:
            try:
                return await self._process(request, route, deadline)
            except Exception as exc:  # noqa: BLE001 - every failure is answered in JSON
                code, response = _failure(exc, request)
                outcome["status"] = code.name
                return response

    async def _process(self, request: web.Request, route: Route, deadline: float) -> web.Response:
        """HttpRestApiHandler::ProcessRequest."""
        if route.error is not None:
            raise route.error
        if route.method == "POST" and route.matched and route.action in _VERBS:
            self._check_declared_length(request)
            async with self._reserved(request, deadline):
                body = await _within(deadline, request.read())
                if route.action == "predict" and len(body) <= SMALL_BODY_BYTES:
                    # Shielded: past the deadline the answer is 504, while the run (and its hold on the
                    # version, which can't unload mid-run) continues to its end, as a worker thread's does.
                    predicting = asyncio.ensure_future(self._predict_small(route, body, deadline))
                    predicting.add_done_callback(_retrieved)
                    return _json_response(await _within(deadline, asyncio.shield(predicting)))
                return _json_response(await self._call(deadline, self._infer, route, body, deadline))
        if route.method == "GET" and route.matched:
            if not route.name:
                raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
            if route.action == "metadata":
                return _json_response(await self._call(deadline, self._metadata, route))
            return _json_response(await self._call(deadline, self._status, route))
        raise ServingError(Code.INVALID_ARGUMENT, f"Malformed request: {route.method} {route.path}")

    @contextlib.asynccontextmanager
    async def _reserved(self, request: web.Request, deadline: float) -> AsyncIterator[None]:
        """The memory budget's charge for this request (its body's size x REST_JSON_EXPANSION), from before
        the body is read until the answer is made; RESOURCE_EXHAUSTED (429) if it doesn't fit within
        WAIT_SECONDS. A body without a Content-Length (chunked) is charged the most it may be,
        --max-request-bytes."""
        if self._budget is None:
            yield
            return
        body_size = self._max_request_bytes if request.content_length is None else request.content_length
        size = body_size * REST_JSON_EXPANSION
        wait = min(WAIT_SECONDS, max(deadline - time.monotonic(), 0))
        async with self._budget.reserved_async(size, wait) as granted:
            if not granted:
                raise ServingError(Code.RESOURCE_EXHAUSTED, self._budget.refusal(size))
            yield

    def _check_declared_length(self, request: web.Request) -> None:
        """A Content-Length over the limit is refused (413) before any of the body is waited for."""
        if request.content_length is not None and request.content_length > self._max_request_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=self._max_request_bytes, actual_size=request.content_length)

    async def _call(self, deadline: float, fn: Callable, *args) -> str:
        """`fn(*args)` in the worker pool, answered by the deadline (the thread stops at its next checkpoint)."""
        _check_deadline(deadline)  # before the work is submitted: no thread for a request already late
        loop = asyncio.get_running_loop()
        return await _within(deadline, loop.run_in_executor(self._pool, fn, *args))

    async def _predict_small(self, route: Route, body: bytes, deadline: float) -> str:
        """:predict for a body of at most SMALL_BODY_BYTES: decoded on the event loop (tens of
        microseconds), run by the data plane's predict_async (a batching server queues it without
        blocking a thread; else it runs in the worker pool), encoded on the loop unless the outputs
        are large. For a 1-row request this is one thread hand-off fewer with batching."""
        spec, decode, formats = self._predict_request(route, parse_json(body), deadline)
        result = await self._plane.predict_async(spec, decode, self._pool, deadline=deadline, rest=True)
        if sum(np.size(value) for value in result.value.values()) <= SMALL_OUTPUT_VALUES:
            return encode_predict_response(result.value, formats[0])
        return await self._call(deadline, encode_predict_response, result.value, formats[0])

    def _predict_request(self, route: Route, request: dict, deadline: float):
        """(ModelSpec, decoder by the signature's dtypes, the list the decoder appends the request's
        format to) for a parsed :predict body."""
        checkpoint = functools.partial(_check_deadline, deadline)
        checkpoint()
        signature = signature_name(request)
        formats: list = []

        def decode(signature_def):
            inputs, fmt = decode_predict_request(request, signature_def.inputs, signature, checkpoint)
            formats.append(fmt)
            return inputs

        return ModelSpec(route.name, route.version, route.label, signature), decode, formats

    # -- blocking parts, run in the worker pool -------------------------------------------------
    def _infer(self, route: Route, body: bytes, deadline: float) -> str:
        """:predict / :classify / :regress, from the body to the response text, in TF Serving's order:
        predict parses, reads signature_name, resolves the servable and signature, then decodes the
        inputs by the signature's dtypes; classify/regress parse the whole request (examples too)
        first, then resolve the servable and signature; then the run and the response."""
        # A large body's decoded objects live until the answer is written: the garbage collector
        # stays paused that long, so it never traverses them (_json_text.gc_paused).
        large = len(body) >= LARGE_BODY_BYTES
        with gc_paused() if large else contextlib.nullcontext():
            return self._infer_json(route, body, deadline)

    def _infer_json(self, route: Route, body: bytes, deadline: float) -> str:
        checkpoint = functools.partial(_check_deadline, deadline)
        request = parse_json(body)
        if route.action == "predict":
            spec, decode, formats = self._predict_request(route, request, deadline)
            result = self._plane.predict(spec, decode, deadline=deadline, rest=True)
            checkpoint()
            return encode_predict_response(result.value, formats[0])
        checkpoint()
        spec = ModelSpec(route.name, route.version, route.label, signature_name(request))
        # The whole body becomes a ClassificationRequest / RegressionRequest before any model or
        # signature is looked up (ProcessClassifyRequest: FillClassificationRequestFromJson, then
        # Classify), so a malformed example is TF Serving's parse error even for an unknown model
        # or signature.
        examples = decode_examples(request, checkpoint)
        if route.action == "classify":
            result = self._plane.classify(spec, examples, deadline)
            return encode_classify_response(result.value)
        result = self._plane.regress(spec, examples, deadline)
        return encode_regress_response(result.value)

    def _metadata(self, route: Route) -> str:
        """GetModelMetadataResponse as TF Serving's ToJsonString writes it: MessageToJsonString with
        always_print_primitive_fields and preserve_proto_field_names, so default-valued fields are
        printed ("defaults": {}, "dim": [], "unknown_rank": false, "name": "")."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        result = self._plane.metadata(ModelSpec(route.name, route.version, route.label))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in result.value.items():
            signature_map.signature_def[key].CopyFrom(value)
        # get_model_metadata_impl.cc: the bundle's name and version only (signature_name stays "").
        model_spec = model_pb2.ModelSpec(name=result.name)
        model_spec.version.value = result.version

        def to_dict(message):
            return json_format.MessageToDict(
                message, including_default_value_fields=True, preserving_proto_field_name=True
            )

        return dumps({"model_spec": to_dict(model_spec), "metadata": {"signature_def": to_dict(signature_map)}})

    def _status(self, route: Route) -> str:
        """GetModelStatusResponse as JSON (its fields carry json_name = the proto names).

        A label is ignored, as get_model_status_impl.cc ignores ModelSpec.version_label: the answer
        lists every version of the model, whatever the label (even an unknown one).
        """
        statuses = self._plane.status(route.name, route.version, None)
        return dumps(
            {
                "model_version_status": [
                    {
                        "version": str(s.version),
                        "state": s.state,
                        "status": {"error_code": s.error_code, "error_message": s.error_message},
                    }
                    for s in statuses
                ]
            }
        )


def _cors_preflight(request: web.Request) -> web.Response:
    """http_server.cc: OPTIONS is OK with an http(s) Origin, else FAILED_PRECONDITION (empty body there)."""
    if _CORS_ORIGIN.search(request.headers.get("Origin", "")):
        return web.Response(status=200)
    return error_response(Code.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")


async def _within(deadline: float, awaitable: Awaitable):
    """`awaitable`'s result, or DEADLINE_EXCEEDED (504) once `deadline` (time.monotonic(), which is the
    event loop's clock) passes. A timeout context, not asyncio.wait_for: wait_for wraps the awaitable in
    a new Task each time, a measurable share of a small request's event-loop work."""
    try:
        async with timeout_at(deadline):
            return await awaitable
    except asyncio.TimeoutError:
        raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None


def _retrieved(task: asyncio.Future) -> None:
    """Marks a shielded task's outcome as seen: after a 504 nobody awaits it, and asyncio would log
    its exception ("never retrieved") as if it were a bug."""
    if not task.cancelled():
        task.exception()


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded")


def _failure(exc: Exception, request: web.Request) -> tuple[Code, web.Response]:
    """Any exception of the model handler -> (its status code, the JSON answer)."""
    if isinstance(exc, ServingError):
        return exc.code, error_response(exc.code, exc.message)
    if isinstance(exc, CodecError):
        code = Code[exc.code]
        return code, error_response(code, str(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        # Not a TF Serving answer (it has no body limit): 413, counted as RESOURCE_EXHAUSTED.
        return Code.RESOURCE_EXHAUSTED, error_response(
            Code.RESOURCE_EXHAUSTED, f"Request body too large: {exc.text}", 413
        )
    if isinstance(exc, (RequestPayloadError, HttpProcessingError)):  # e.g. a broken chunked encoding
        return Code.INVALID_ARGUMENT, error_response(Code.INVALID_ARGUMENT, f"Malformed request body: {exc}")
    mapped = from_tensorflow_error(exc)  # a model's error keeps its TensorFlow status code
    if mapped is not None:
        return mapped.code, error_response(mapped.code, mapped.message)
    return Code.INTERNAL, _internal_error(exc, request)


def _internal_error(exc: BaseException, request: web.Request) -> web.Response:
    """A bug of this server: logged with its traceback, answered as JSON 500 (as KServe's catch-all)."""
    log.error("internal error on %s %s", request.method, request.raw_path, exc_info=exc)
    return error_response(Code.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}")
