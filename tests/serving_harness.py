"""Running the project's model server in tests: publish versions, start/stop a server thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "taxi"
FIRST_VERSION = 1


@dataclass
class ServerHandle:
    rest_url: str
    grpc_target: str
    model: str
    base_path: Path | None  # None for an external server
    version: int | None
    server: object = None
    loop: object = None

    @property
    def external(self) -> bool:
        return self.base_path is None


def publish(model_dir: str, base_path: Path, version: int) -> Path:
    """Copies a SavedModel in as a version, with a TF Serving warmup file, atomically."""
    from tfxp.pipeline.publish import publish_version

    _, path = publish_version(model_dir, str(base_path), add_files=_add_warmup, version=version)
    return Path(path)


def _add_warmup(staging: str) -> None:
    import tensorflow as tf
    from taxi_data import raw_feature_spec, read_csv_rows, to_example
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "serving_default"
    examples = [to_example(r, raw_feature_spec()) for r in read_csv_rows(limit=5)]
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)  # the model's transform_output is there
    with tf.io.TFRecordWriter(os.path.join(staging, "assets.extra", "tf_serving_warmup_requests")) as writer:
        writer.write(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            ).SerializeToString()
        )


class BackgroundServer:
    """Runs `serving.server.start` on its own event loop thread."""

    def __init__(self, options):
        from tfxp.serving import server as server_lib

        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        box: dict = {}

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                box["server"] = self.loop.run_until_complete(server_lib.start(options))
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                box["error"] = exc
            ready.set()
            if "server" in box:
                self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(120)
        if "error" in box:
            raise box["error"]
        self.server = box["server"]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_server(base_path: Path, **overrides) -> BackgroundServer:
    from tfxp.serving.options import ServerOptions

    options = ServerOptions(
        model_base_path=base_path,
        model_name=MODEL_NAME,
        rest_port=0,
        grpc_port=0,
        poll_seconds=overrides.pop("poll_seconds", 0.2),
        **overrides,
    )
    return BackgroundServer(options)


@contextlib.contextmanager
def serving_front_end(front) -> Iterator[str]:
    """A RestFrontEnd (its `app`) served on loopback, its event loop in a thread; yields the base URL."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(front.app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
