"""The serving floor: the same grpcio and aiohttp servers `tfxp serve` runs, doing nothing.

`python -m bench.floor_server REST_PORT GRPC_PORT` answers
  * gRPC `/tensorflow.serving.PredictionService/Predict` with an empty response, request bytes not parsed
    (grpcio's thread-pool server, as tfxp.serving.protocol.grpc_server builds it: 32 workers);
  * REST `POST /v1/models/{name}:predict` with `{}` after reading the body (aiohttp, as
    tfxp.serving.protocol.rest), and `GET /readyz` with 200.
What a request costs between these two processes on this machine before any model or protocol work:
bench/serving.py measures it beside `tfxp serve` (issue 25's serving target is relative to it).
"""

from __future__ import annotations

import asyncio
import sys
from concurrent import futures


def _grpc_server(port: int):
    import grpc

    def predict(request: bytes, context) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(predict)},  # bytes in, bytes out: no (de)serialisation
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), handlers=[handler])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


async def _rest_server(port: int) -> None:
    from aiohttp import web

    async def predict(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/models/{name}", predict)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    rest_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
    grpc_server = _grpc_server(grpc_port)
    try:
        asyncio.run(_rest_server(rest_port))
    finally:
        grpc_server.stop(0)


if __name__ == "__main__":
    main()
