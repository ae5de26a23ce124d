"""The HTTP layer under the REST API, hardened against hostile and careless clients (issue 26).

aiohttp's own HTTP server is kept (its C parser, keep-alive, pipelining) and changed where it would let
one client hold resources or answer outside TF Serving's JSON:

- Every error the HTTP layer writes itself is `{"error": "..."}` with `Content-Type: application/json`:
  what the parser refuses (a bad or lower-case method, raw bytes in the path, a request line over 8,190
  bytes, `*` as a path: 400), an `Expect` other than `100-continue` (417), a handler that timed out (504)
  or failed (500). aiohttp writes these as text/plain before any middleware runs.
- A request line without an HTTP version (HTTP/0.9, which has no status line or headers to carry an
  error) closes the connection unanswered; aiohttp would answer it 200. One of HTTP/2 or later (text on
  this HTTP/1 port) gets a JSON 505 with an HTTP/1.1 status line and is closed; aiohttp would answer it
  `HTTP/2.0 200 OK`.
- Timeouts, as nginx's `client_header_timeout` / `keepalive_timeout` and Envoy's `request_headers_timeout`
  / `idle_timeout`: the head of a request must be complete `header_read_timeout` seconds after the
  connection opens or after its first byte arrives (else 408 and the connection is closed); a connection
  with no request in progress is closed after `keepalive_timeout` seconds (aiohttp's own timer, whose
  default is 3,630 s). The body is covered by the request deadline (`--request-timeout`, 504).
- At most `max_connections` connections are open at once (nginx's `worker_connections`, Envoy's
  `max_downstream_connections`): one more is answered 503 `{"error": ...}` and closed as soon as it is
  accepted, so its descriptor is back at once and no request of it is read.
- A refused request's unread body is drained for at most `lingering_seconds` (aiohttp: 10 s; nginx's
  `lingering_time` is 30 s, but it reads only while bytes keep coming) so the client can read its answer,
  then the connection is closed: a `Content-Length: 10^12` request costs 2 s of reading, not 10.

Built on aiohttp 3.14's `web_protocol.RequestHandler` (its `handle_error`, `data_received`,
`connection_made`) and `web_server.Server`; tests/serving/test_hostile_load.py checks each rule over
raw sockets, so a change of aiohttp's internals fails there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion10
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection limits of the REST port (seconds; a count), from `tfxp serve`'s flags (ServerOptions
    holds their defaults)."""

    header_read_timeout: float
    keepalive_timeout: float
    max_connections: int
    lingering_seconds: float = 2.0


def json_error_bytes(status: int, message: str, *, close: bool = True) -> bytes:
    """A whole HTTP/1.1 response `{"error": message}` (for writing where no aiohttp response exists)."""
    body = json.dumps({"error": message}).encode()
    phrase = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode("ascii") + body


def json_error_response(status: int, message: str, *, close: bool = True) -> web.Response:
    """`{"error": message}` as an aiohttp response; with `close`, one that closes its connection."""
    response = web.Response(
        status=status, body=json.dumps({"error": message}).encode(), content_type="application/json"
    )
    if close:
        response.force_close()
    return response


def _one_line(text: str, limit: int = 500) -> str:
    """aiohttp's parser messages span lines (the offending bytes, a caret under them): one line, bounded."""
    return " ".join(text.split())[:limit]


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol with the module's rules (see the module docstring)."""

    def __init__(self, manager: GuardedServer, limits: ConnectionLimits, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None

    # -- connection limit ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        if manager is not None and len(manager.connections) >= self._limits.max_connections:
            self._refuse(transport)
            return
        super().connection_made(transport)
        # nginx's client_header_timeout: a connection that never completes a head is closed.
        self._arm_header_timer()

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        """503 JSON and close, without registering with the server or reading anything."""
        self._manager = None  # connection_lost then does nothing (RequestHandler checks it)
        assert isinstance(transport, asyncio.WriteTransport)
        message = f"Too many connections: the server holds its maximum of {self._limits.max_connections}"
        transport.write(json_error_bytes(503, message))
        transport.close()  # after the write is flushed

    # -- header read timeout --------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:  # a request head (or a parse error) was completed
            self._cancel_header_timer()
        elif data and self._waiting_for_request():
            self._arm_header_timer()

    def _waiting_for_request(self) -> bool:
        """No request in progress: bytes arriving now belong to the next request's head."""
        return self._waiter is not None and not self._waiter.done()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self._limits.header_read_timeout > 0:
            self._header_timer = self._loop.call_later(self._limits.header_read_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is None or not self._waiting_for_request():
            return
        log.debug("closing a connection whose request head did not arrive in %s s", self._limits.header_read_timeout)
        self.transport.write(
            json_error_bytes(408, f"Request head not received within {self._limits.header_read_timeout:g} s")
        )
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    # -- JSON errors ----------------------------------------------------------------------------
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own error answers (parser errors: 400; a handler's timeout 504, failure 500), in JSON."""
        super().handle_error(request, status, exc, message)  # logs; raises if an answer was already started
        if status >= 500 or not message:
            text = HTTPStatus(status).phrase
        else:
            text = f"Malformed HTTP request: {_one_line(message)}"
        return json_error_response(status, text)


def guarded_handler(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """`handler` (the application), with an HTTPException that escapes it (the router's `Expect` check:
    417) answered in JSON instead of aiohttp's text/plain, and HTTP/0.9 refused.

    HTTP/0.9 has no status line or headers, so nothing can carry an error: the connection is closed
    unanswered (the answer aiohttp would write then fails as a client disconnect, logged at debug)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.version < HttpVersion10:
            request.protocol.force_close()
            return web.Response(status=400)
        if request.version.major > 1:
            return _version_not_supported(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return json_error_response(exc.status, exc.text or exc.reason, close=False)

    return handle


def _version_not_supported(request: web.BaseRequest) -> web.StreamResponse:
    """A request line of HTTP/2 or later on this HTTP/1 text port: a JSON 505 with an HTTP/1.1 status line
    (aiohttp would answer it as if it spoke that version, e.g. `HTTP/2.0 200 OK`), then the connection is
    closed (as nginx: 505 for a major version over 1). Written on the transport because aiohttp's response
    would carry the request's version; the response returned after it is dropped with the connection."""
    transport = request.transport
    major, minor = request.version
    if transport is not None:
        message = f"HTTP/{major}.{minor} is not supported on this port: send HTTP/1.1 (gRPC has its own port)"
        transport.write(json_error_bytes(505, message))
        transport.close()
    return web.Response(status=505)


class GuardedServer(web.Server):
    """aiohttp's low-level server making GuardedRequestHandler connections."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, **kwargs: Any):
        super().__init__(guarded_handler(handler), **kwargs)
        self._limits = limits

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, self._limits, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose server is a GuardedServer with `limits`."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any):
        super().__init__(
            app, keepalive_timeout=limits.keepalive_timeout, lingering_time=limits.lingering_seconds, **kwargs
        )
        self._limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the application's start-up, then aiohttp's Server
        return GuardedServer(
            plain.request_handler,
            limits=self._limits,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
