"""`tfxp serve`: wires the model repository, data plane, REST and gRPC front ends."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from dataclasses import dataclass

from serving.options import ServerOptions

log = logging.getLogger(__name__)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def model_configs(options: ServerOptions):
    """ModelConfigs from --model_config_file, or the single --model_base_path model."""
    from serving.config import VersionPolicy
    from serving.repository import ModelConfig

    if options.model_config_file is not None:
        return configs_from_proto(_load_server_config(options.model_config_file))
    if not _MODEL_NAME.match(options.model_name):
        raise ValueError(f"invalid model name {options.model_name!r}")
    return [ModelConfig(options.model_name, os.path.abspath(str(options.model_base_path)), VersionPolicy())]


def _load_server_config(path):
    from serving.config import load_model_server_config

    return load_model_server_config(path)


def configs_from_proto(server_config):
    """tensorflow.serving.ModelServerConfig -> ModelConfigs (names already validated)."""
    from serving.config import version_labels, version_policy
    from serving.repository import ModelConfig

    return [
        ModelConfig(config.name, config.base_path, version_policy(config), version_labels(config))
        for config in server_config.model_config_list.config
    ]


@dataclass
class RunningServer:
    """A started server (used by tests and benchmarks, and by `run`)."""

    repository: object
    rest_port: int
    grpc_port: int
    _grpc: object
    _runner: object
    _loop: asyncio.AbstractEventLoop
    _request_logger: object = None

    async def stop(self) -> None:
        self._grpc.stop(grace=2).wait()
        await self._runner.cleanup()
        self.repository.stop()
        if self._request_logger is not None:
            self._request_logger.close()


async def start(options: ServerOptions) -> RunningServer:
    """Loads models (blocking until the first versions are ready), then opens both ports."""
    from aiohttp import web

    from serving import grpc_server
    from serving.dataplane import DataPlane, direct_runner
    from serving.metrics import Metrics
    from serving.repository import ModelRepository
    from serving.rest import RestFrontEnd

    metrics = Metrics()
    repository = ModelRepository(model_configs(options))
    repository.listeners.append(metrics.on_repository_event)
    loop = asyncio.get_running_loop()
    # Initial load happens before the ports open, like tensorflow_model_server.
    await loop.run_in_executor(None, repository.start, options.poll_seconds)

    runner = direct_runner
    if options.enable_batching:
        from serving.batching import BatchingRunner

        runner = BatchingRunner(_batching_parameters(options),
                                on_batch=lambda model, rows: metrics.batch_size.labels(model).observe(rows))
    request_logger = None
    if options.request_log_dir is not None and options.log_sampling > 0:
        from serving.request_log import RequestLogger

        request_logger = RequestLogger(str(options.request_log_dir), options.log_sampling)
    plane = DataPlane(repository, runner, request_logger)

    def reload_config(server_config) -> None:
        from serving.config import validate_model_server_config

        validate_model_server_config(server_config)
        repository.reload_config(configs_from_proto(server_config))

    grpc, grpc_port, health = grpc_server.build_server(plane, metrics, f"{options.host}:{options.grpc_port}",
                                                       reload_config)
    grpc.start()
    health.set("", grpc_server.SERVING if repository.ready() else grpc_server.NOT_SERVING)
    for name in repository.model_names():
        health.set(name, grpc_server.SERVING)

    rest = RestFrontEnd(plane, metrics, max_request_bytes=options.max_request_bytes,
                        request_timeout=options.request_timeout_seconds,
                        monitoring_path=options.monitoring_path)
    app_runner = web.AppRunner(rest.app, access_log=None)
    await app_runner.setup()
    site = web.TCPSite(app_runner, options.host, options.rest_port)
    await site.start()
    rest_port = site._server.sockets[0].getsockname()[1]
    return RunningServer(repository, rest_port, grpc_port, grpc, app_runner, loop, request_logger)


def _batching_parameters(options: ServerOptions):
    from serving.config import BatchingSettings, load_batching_parameters

    if options.batching_parameters_file is None:
        return BatchingSettings()
    return load_batching_parameters(options.batching_parameters_file)


def run(options: ServerOptions) -> None:
    """Serves until SIGINT/SIGTERM."""
    asyncio.run(_serve_forever(options))


async def _serve_forever(options: ServerOptions) -> None:
    server = await start(options)
    print(f"serving {', '.join(server.repository.model_names())}: "
          f"REST http://{options.host}:{server.rest_port}  gRPC {options.host}:{server.grpc_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
