"""`tfxp serve`: wires the model repository, data plane, REST and gRPC front ends.

Start-up order:
1. the model config is read (a bad config file fails at once);
2. both ports are bound, not yet listening: a port in use fails at once instead
   of after the models load, and clients are refused while models load, as by
   tensorflow_model_server (which opens its ports once its models are loaded);
3. the models are loaded (one log line per version loaded, unloaded or failed;
   a warning per base path that is missing or holds no version);
4. gRPC and REST start serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import threading
from dataclasses import dataclass, field
from typing import TextIO

from tfxp.serving.options import ServerOptions

log = logging.getLogger(__name__)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RELOAD_CONFIG_REQUEST = "HandleReloadConfigRequest"


def model_configs(options: ServerOptions):
    """ModelConfigs from --model_config_file, or the single --model_base_path model."""
    server_config = _initial_server_config(options)
    if server_config is not None:
        return configs_from_proto(server_config)
    return [_single_model(options)]


def _initial_server_config(options: ServerOptions):
    """The parsed --model_config_file (a ModelServerConfig), or None without one."""
    if options.model_config_file is None:
        return None
    return _load_server_config(options.model_config_file)


def _single_model(options: ServerOptions):
    from tfxp.serving.config import VersionPolicy
    from tfxp.serving.repository import ModelConfig

    if not _MODEL_NAME.match(options.model_name):
        raise ValueError(f"invalid model name {options.model_name!r}")
    return ModelConfig(options.model_name, os.path.abspath(str(options.model_base_path)), VersionPolicy())


def _load_server_config(path):
    from tfxp.serving.config import load_model_server_config

    return load_model_server_config(path)


def configs_from_proto(server_config):
    """tensorflow.serving.ModelServerConfig -> ModelConfigs (names already validated)."""
    from tfxp.serving.config import version_labels, version_policy
    from tfxp.serving.repository import ModelConfig

    return [
        ModelConfig(config.name, config.base_path, version_policy(config), version_labels(config))
        for config in server_config.model_config_list.config
    ]


class ModelConfigs:
    """The ModelServerConfig in force, whichever way it arrives: the config file at
    start-up, a poll of that file, or a gRPC HandleReloadConfigRequest.

    As TF Serving's ServerCore::ReloadConfig, a new config replaces the whole old
    one; with file polling on, the file wins on the next poll after a gRPC reload
    (TF Serving re-applies the file on every poll).
    """

    def __init__(self, repository, current=None):
        self._repository = repository
        self._lock = threading.Lock()
        self.current = current  # the last applied ModelServerConfig, None for --model-base-path
        self.on_change: list = []  # callables() run after each applied config

    def apply(self, server_config, source: str) -> None:
        """Validates and applies `server_config`; raises serving.config.ConfigError (a ValueError) if invalid."""
        from tfxp.serving.config import validate_model_server_config

        if server_config.WhichOneof("config") is None:
            # ServerCore::ReloadConfig: "Taking no action for empty config." (An empty or
            # half-written config file must not unload every model.)
            return
        validate_model_server_config(server_config, source=source)
        configs = configs_from_proto(server_config)
        with self._lock:
            self._repository.reload_config(configs)
            self.current = server_config
        log.info("applied the model config from %s: %s", source, ", ".join(c.name for c in configs) or "no models")
        for callback in self.on_change:
            callback()


class ConfigFilePoller:
    """Re-reads --model_config_file every `seconds` and applies it when it differs from
    the config in force (TF Serving's --model_config_file_poll_wait_seconds,
    Server::PollFilesystemAndReloadConfig). A file that can't be read or is invalid
    is logged (once per distinct error) and the current config keeps serving."""

    def __init__(self, path, seconds: float, configs: ModelConfigs):
        self._path, self._seconds, self._configs = path, seconds, configs
        self._stop = threading.Event()
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="model-config-file-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds):
            self.poll_once()

    def poll_once(self) -> None:
        from tfxp.serving.config import ConfigError
        from tfxp.serving.errors import ServingError

        try:
            server_config = _load_server_config(self._path)
            if server_config.WhichOneof("config") is None:
                self._report(
                    f"model config file {self._path} is empty; the current config keeps serving", logging.WARNING
                )
                return
            if server_config != self._configs.current:
                self._configs.apply(server_config, str(self._path))
        except (ConfigError, ServingError) as exc:  # invalid, or labels a version not AVAILABLE
            self._report(f"model config file not applied, the current config keeps serving: {exc}")
        except Exception as exc:  # noqa: BLE001 - the poller must outlive any one bad poll
            self._report(f"model config file poll failed: {type(exc).__name__}: {exc}", exc_info=True)
        else:
            self._last_error = None

    def _report(self, message: str, level: int = logging.ERROR, exc_info: bool = False) -> None:
        if message != self._last_error:
            log.log(level, "%s", message, exc_info=exc_info)
        self._last_error = message


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
    config_poller: ConfigFilePoller | None = None
    model_configs: ModelConfigs | None = field(default=None, repr=False)

    async def stop(self) -> None:
        if self.config_poller is not None:
            self.config_poller.stop()
        self._grpc.stop(grace=2).wait()
        await self._runner.cleanup()
        self.repository.stop()
        if self._request_logger is not None:
            self._request_logger.close()


async def start(options: ServerOptions) -> RunningServer:
    """Reads the config files, binds both ports, loads models (blocking until the first versions
    are loaded or have failed), then serves. Raises OSError naming a port in use, ValueError
    (serving.config.ConfigError) for a bad config file: both before any model loads."""
    server_config = _initial_server_config(options)
    configs = configs_from_proto(server_config) if server_config is not None else [_single_model(options)]
    repository = _repository(options, configs, str(options.model_config_file))
    batching = _batching_parameters(options) if options.enable_batching else None
    rest_sockets = bind_port(options.host, options.rest_port, "REST")
    try:
        grpc_sockets = bind_port(options.host, options.grpc_port, "gRPC")
    except BaseException:
        _close(rest_sockets)
        raise
    try:
        return await _start_bound(options, repository, server_config, batching, rest_sockets, grpc_sockets)
    finally:
        _close(grpc_sockets)  # gRPC binds its own socket; ours only held the port meanwhile


def _repository(options: ServerOptions, configs, source: str):
    """The ModelRepository (nothing loaded yet); a config labelling versions is refused here
    unless --allow-version-labels-for-unavailable-models, as tensorflow_model_server refuses
    to start (ServerCore's first ReloadConfig). Raises serving.config.ConfigError."""
    from tfxp.serving.config import ConfigError
    from tfxp.serving.errors import ServingError
    from tfxp.serving.repository import ModelRepository

    try:
        return ModelRepository(
            configs, allow_version_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models
        )
    except ServingError as exc:
        raise ConfigError(
            f"{source}: {exc.message} (at start-up no version is loaded yet: start without labels and add them "
            "once the versions are AVAILABLE, or pass --allow-version-labels-for-unavailable-models)"
        ) from exc


async def _start_bound(
    options: ServerOptions, repository, server_config, batching, rest_sockets, grpc_sockets
) -> RunningServer:
    from tfxp.serving import protocol
    from tfxp.serving.log_limits import route_protobuf_log
    from tfxp.serving.metrics import Metrics

    route_protobuf_log()  # a gRPC request's bad string would otherwise write a C++ ERROR line each time
    metrics = Metrics()
    budget = _memory_budget(options)
    repository.listeners.append(metrics.on_repository_event)
    model_configs_ = ModelConfigs(repository, server_config)
    grpc_port = grpc_sockets[0].getsockname()[1]
    grpc = request_logger = None
    try:
        await asyncio.get_running_loop().run_in_executor(None, repository.start, options.poll_seconds)
        plane, request_logger = _data_plane(options, repository, metrics, batching)

        def reload_config(config) -> None:
            model_configs_.apply(config, RELOAD_CONFIG_REQUEST)

        _close(grpc_sockets)
        grpc, grpc_port, health = _build_grpc(
            protocol,
            plane,
            metrics,
            _grpc_address(options.host, grpc_port),
            reload_config if options.enable_reload_config_request else None,
            options,
            budget,
        )
        _track_health(health, repository, model_configs_, protocol)
        grpc.start()
        app_runner = await _serve_rest(options, plane, metrics, rest_sockets, budget)
    except BaseException:
        _close(rest_sockets)
        if grpc is not None:
            grpc.stop(grace=None)
        if request_logger is not None:
            request_logger.close()
        repository.stop()
        raise
    poller = None
    if options.model_config_file is not None and options.model_config_file_poll_seconds > 0:
        poller = ConfigFilePoller(options.model_config_file, options.model_config_file_poll_seconds, model_configs_)
        poller.start()
    return RunningServer(
        repository,
        rest_sockets[0].getsockname()[1],
        grpc_port,
        grpc,
        app_runner,
        asyncio.get_running_loop(),
        request_logger,
        poller,
        model_configs_,
    )


def _data_plane(options: ServerOptions, repository, metrics, batching):
    """(DataPlane, RequestLogger or None) as the options ask."""
    from tfxp.serving.dataplane import DataPlane, direct_runner

    runner = direct_runner
    if batching is not None:
        from tfxp.serving.batching import BatchingRunner

        runner = BatchingRunner(batching, on_batch=lambda model, rows: metrics.batch_size.labels(model).observe(rows))
    request_logger = None
    if options.request_log_dir is not None and options.log_sampling > 0:
        from tfxp.serving.request_log import RequestLogger

        request_logger = RequestLogger(
            str(options.request_log_dir), options.log_sampling, rotate_seconds=options.request_log_rotate_seconds
        )
    plane = DataPlane(
        repository, runner, request_logger, signature_method_name_check=options.enable_signature_method_name_check
    )
    return plane, request_logger


def _memory_budget(options: ServerOptions):
    """The server-wide MemoryBudget of in-flight requests (--request-memory-budget-bytes, else its default)."""
    from tfxp.serving.memory import MemoryBudget, MemoryTrimmer, default_budget_bytes

    capacity = options.request_memory_budget_bytes or default_budget_bytes(options.max_request_bytes)
    log.debug("memory budget for in-flight requests: %d bytes", capacity)
    return MemoryBudget(capacity, MemoryTrimmer())


async def _serve_rest(options: ServerOptions, plane, metrics, sockets: list[socket.socket], budget=None):
    """Starts REST on the bound sockets; returns the aiohttp AppRunner (cleaned up by RunningServer.stop)."""
    from aiohttp import web

    from tfxp.serving.protocol import RestFrontEnd
    from tfxp.serving.protocol._http_guard import ConnectionLimits, GuardedAppRunner

    rest = RestFrontEnd(
        plane,
        metrics,
        max_request_bytes=options.max_request_bytes,
        request_timeout=options.request_timeout_seconds,
        monitoring_path=options.monitoring_path,
        budget=budget,
    )
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(_MalformedRequestFilter())
    limits = ConnectionLimits(
        header_read_timeout=options.header_read_timeout_seconds,
        keepalive_timeout=options.keepalive_timeout_seconds,
        max_connections=options.max_connections,
    )
    app_runner = GuardedAppRunner(rest.app, limits, access_log=None)
    await app_runner.setup()
    for sock in sockets:
        await web.SockSite(app_runner, sock).start()
    return app_runner


def _build_grpc(protocol, plane, metrics, address: str, reload_config, options: ServerOptions, budget=None):
    try:
        return protocol.build_server(
            plane,
            metrics,
            address,
            reload_config,
            handshake_timeout_seconds=options.header_read_timeout_seconds,
            idle_timeout_seconds=options.keepalive_timeout_seconds,
            budget=budget,
        )
    except RuntimeError as exc:  # grpcio >= 1.60 raises instead of returning port 0
        raise OSError(f"gRPC port {address} can't be bound: {exc}") from None


def _track_health(health, repository, model_configs_: ModelConfigs, protocol) -> None:
    """grpc.health.v1: "" is SERVING when every model has a version; each model by name."""
    known: set[str] = set()

    def update(*_event) -> None:
        names = set(repository.model_names())
        for name in names | known:
            health.set(name, protocol.SERVING if repository.available(name) else protocol.NOT_SERVING)
        known.update(names)
        health.set("", protocol.SERVING if repository.ready() else protocol.NOT_SERVING)

    update()
    repository.listeners.append(update)
    model_configs_.on_change.append(update)


def bind_port(host: str, port: int, what: str) -> list[socket.socket]:
    """Sockets bound to `port` on every address of `host`, not listening yet.

    Port 0 picks a free port (the same on every address). Raises OSError naming
    the port when it is in use: also when another gRPC server holds it (gRPC's
    own sockets set SO_REUSEPORT and would silently share the port; ours don't).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"{what} address {host!r} can't be resolved: {exc}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in _unique_addresses(infos):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:  # e.g. no IPv6 in this container: skipped, as asyncio's create_server does
                continue
            sockets.append(sock)
            # As asyncio and gRPC do: a restart may bind while old connections sit in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as exc:
        _close(sockets)
        error = OSError(f"{what} port {host}:{port} can't be bound: {exc.strerror or exc}")
        error.errno = exc.errno  # e.g. errno.EADDRINUSE, for callers that branch on it
        raise error from None
    if not sockets:
        raise OSError(f"{what} address {host!r}: no usable address family")
    return sockets


def _unique_addresses(infos):
    seen = set()
    for family, kind, proto, _, address in infos:
        if (family, address[:2]) not in seen:
            seen.add((family, address[:2]))
            yield family, kind, proto, address


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _grpc_address(host: str, port: int) -> str:
    """host:port, an IPv6 address in brackets (as gRPC targets and URLs write it)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _batching_parameters(options: ServerOptions):
    from tfxp.serving.config import BatchingSettings, load_batching_parameters

    if options.batching_parameters_file is None:
        return BatchingSettings()
    return load_batching_parameters(options.batching_parameters_file)


class _MalformedRequestFilter(logging.Filter):
    """Makes aiohttp's report of a malformed HTTP request (a 4xx it answers itself) one warning line,
    at most log_limits.BURST a minute per kind of error, the others counted on the next one logged.

    aiohttp logs each with a full traceback at ERROR; a client sending garbage is
    not a server error, and a fuzzer or port scanner would flood the log.
    """

    def __init__(self) -> None:
        from tfxp.serving.log_limits import RepeatLimiter

        super().__init__()
        self._limiter = RepeatLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        from tfxp.serving.log_limits import summarised

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            admitted, suppressed = self._limiter.admit(type(exc).__name__)
            if not admitted:
                return False
            detail = " ".join(str(exc.message).split())  # one line: aiohttp's messages span several
            record.msg = summarised(f"{record.msg}: {exc.code} {type(exc).__name__}: {detail}"[:500], suppressed)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class _ConsoleFormatter(logging.Formatter):
    """One line per record: INFO as is, warnings and errors prefixed ("error: ...").

    Tracebacks are left out; the log file's handler still gets them.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def console_handler(stream: TextIO) -> logging.Handler:
    """A handler for the `serving` logger that prints the server's own lines to `stream`."""
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO)
    handler.setFormatter(_ConsoleFormatter())
    return handler


def run(options: ServerOptions) -> None:
    """Serves until SIGINT/SIGTERM."""
    asyncio.run(_serve_forever(options))


async def _serve_forever(options: ServerOptions) -> None:
    server = await start(options)
    print(
        f"serving {', '.join(server.repository.model_names())}: "
        f"REST http://{_grpc_address(options.host, server.rest_port)}  "
        f"gRPC {_grpc_address(options.host, server.grpc_port)}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
