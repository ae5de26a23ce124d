"""REST front end (aiohttp): TF Serving's routes, bodies and error mapping.

The handler decodes JSON with `serving.json_codec`, calls the data plane in a
worker thread (TensorFlow calls block), and encodes the reply. Every error is
`{"error": "..."}` with TF Serving's status for its code.
"""
from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from aiohttp import web

from serving import json_codec
from serving.dataplane import DataPlane, ModelSpec
from serving.errors import Code, ServingError
from serving.metrics import CONTENT_TYPE_LATEST, Metrics

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$",
    re.IGNORECASE,
)
_VERBS = ("predict", "classify", "regress")


def _json_response(body: dict, status: int = 200) -> web.Response:
    return web.Response(text=json_codec.dumps(body), status=status, content_type="application/json")


def error_response(code: Code, message: str, status: int | None = None) -> web.Response:
    return _json_response({"error": message}, status or code.http_status)


class RestFrontEnd:
    def __init__(self, plane: DataPlane, metrics: Metrics, *, max_request_bytes: int,
                 request_timeout: float, monitoring_path: str, workers: int = 32):
        self._plane = plane
        self._metrics = metrics
        self._timeout = request_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rest")
        self.app = web.Application(client_max_size=max_request_bytes, middlewares=[self._errors])
        self.app.router.add_get(monitoring_path, self._prometheus)
        self.app.router.add_get("/v1/models", self._list_models)  # extension: TF Serving has no list route
        self.app.router.add_get("/readyz", self._ready)  # extension: readiness independent of one model
        # Like TF Serving, every (?i)/v1/.* request reaches the model handler (routes are case-insensitive).
        self.app.router.add_route("*", "/{api:(?i:v1)}/{tail:.*}", self._models)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        """Every failure, including aiohttp's own (404, 405, 413), leaves as {"error": ...}."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 413:
                return error_response(Code.RESOURCE_EXHAUSTED, f"Request body too large: {exc.text}", 413)
            return _json_response({"error": exc.reason or str(exc)}, exc.status)

    async def _prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _list_models(self, request: web.Request) -> web.Response:
        return _json_response({"models": self._plane.repository.model_names()})

    async def _ready(self, request: web.Request) -> web.Response:
        ready = self._plane.ready()
        return _json_response({"ready": ready}, 200 if ready else 503)

    async def _models(self, request: web.Request) -> web.Response:
        match = _ROUTE.match(request.raw_path.split("?", 1)[0])
        if not match:
            return error_response(Code.INVALID_ARGUMENT, f"Malformed request: {request.method} {request.raw_path}")
        name = unquote(match["name"])
        label = unquote(match["label"]) if match["label"] else None
        verb = (match["verb"] or "").lower()
        api = verb or ("metadata" if match["metadata"] else "status")
        with self._metrics.observe(name, api, "rest") as outcome:
            try:
                version = _version(match["version"])
                spec = ModelSpec(name, version, label)
                if verb:
                    if request.method != "POST" or verb not in _VERBS:
                        raise ServingError(Code.INVALID_ARGUMENT,
                                           f"Malformed request: {request.method} {request.raw_path}")
                    try:
                        body = await request.read()
                    except web.HTTPRequestEntityTooLarge as exc:
                        outcome["status"] = Code.RESOURCE_EXHAUSTED.name
                        return error_response(Code.RESOURCE_EXHAUSTED, f"Request body too large: {exc.text}", 413)
                    return await self._infer(verb, spec, body)
                if request.method != "GET":
                    raise ServingError(Code.INVALID_ARGUMENT, f"Malformed request: {request.method} {request.raw_path}")
                if match["metadata"]:
                    return await self._call(self._metadata, spec)
                return await self._call(self._status, spec)
            except ServingError as error:
                outcome["status"] = error.code.name
                return error_response(error.code, error.message)
            except json_codec.CodecError as error:
                outcome["status"] = Code.INVALID_ARGUMENT.name
                return error_response(Code.INVALID_ARGUMENT, str(error))

    async def _call(self, fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, fn, *args), self._timeout)
        except asyncio.TimeoutError:
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None

    async def _infer(self, verb: str, spec: ModelSpec, body: bytes) -> web.Response:
        request = json_codec.parse_json(body)
        signature = request.get("signature_name", "")
        if not isinstance(signature, str):
            raise json_codec.CodecError("'signature_name' must be a string")
        spec = ModelSpec(spec.name, spec.version, spec.label, signature)
        deadline = time.monotonic() + self._timeout
        if verb == "predict":
            return await self._call(self._predict, spec, request, deadline)
        examples = json_codec.decode_examples(request)
        if verb == "classify":
            result = await self._call(self._plane.classify, spec, examples, deadline)
            return _json_response(json_codec.encode_classify_response(result.value))
        result = await self._call(self._plane.regress, spec, examples, deadline)
        return _json_response(json_codec.encode_regress_response(result.value))

    # -- blocking parts, run in the worker pool -------------------------------------------
    def _predict(self, spec: ModelSpec, request: dict, deadline: float) -> web.Response:
        formats = []

        def decode(signature):
            inputs, fmt = json_codec.decode_predict_request(request, signature.inputs)
            formats.append(fmt)
            return inputs

        result = self._plane.predict(spec, decode, deadline=deadline)
        return _json_response(json_codec.encode_predict_response(result.value, formats[0]))

    def _metadata(self, spec: ModelSpec) -> web.Response:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        result = self._plane.metadata(spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in result.value.items():
            signature_map.signature_def[key].CopyFrom(value)
        return _json_response({
            "model_spec": {"name": result.name, "signature_name": "", "version": str(result.version)},
            "metadata": {"signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)},
        })

    def _status(self, spec: ModelSpec) -> web.Response:
        statuses = self._plane.status(spec.name, spec.version, spec.label)
        return _json_response({"model_version_status": [
            {"version": str(s.version), "state": s.state,
             "status": {"error_code": s.error_code, "error_message": s.error_message}}
            for s in statuses
        ]})


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise ServingError(Code.INVALID_ARGUMENT, f"Failed to convert version: {text} to numeric.")
    return int(text)
