"""Server options, mirroring tensorflow_model_server's flags."""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from pathlib import Path

# nginx's worker_connections in Debian's nginx.conf is 768, its built-in default 512 per worker; 1,024
# keeps well under the usual descriptor limits while no real client population behind a balancer nears it.
MAX_CONNECTIONS = 1024


def default_max_connections() -> int:
    """MAX_CONNECTIONS, or half the process's descriptor limit (RLIMIT_NOFILE) if that is lower: the other
    half stays for gRPC's connections, model files and logs, so a flood of REST connections can't make
    the server fail to open a file."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft // 2))


@dataclass(frozen=True)
class ServerOptions:
    model_base_path: Path | None = None  # one model at this base path, named `model_name`
    model_name: str = "default"
    model_config_file: Path | None = None  # text ModelServerConfig; replaces the two above
    # Re-read model_config_file every N seconds and apply changes; 0 = read once
    # (TF Serving's --model_config_file_poll_wait_seconds).
    model_config_file_poll_seconds: float = 0.0
    # ModelService/HandleReloadConfigRequest: on by default, as in TF Serving; off
    # answers UNIMPLEMENTED (any client of the gRPC port could load any readable path).
    enable_reload_config_request: bool = True
    # A label may point at a version that is not AVAILABLE when it is first set (not when an
    # existing label moves): TF Serving's --allow_version_labels_for_unavailable_models.
    allow_version_labels_for_unavailable_models: bool = False
    host: str = "127.0.0.1"  # loopback unless told otherwise
    rest_port: int = 8501  # 0 = pick a free port
    grpc_port: int = 8500  # 0 = pick a free port
    poll_seconds: float = 1.0  # file system poll; 0 = load once; < 0 = never
    # Classify/Regress (and Predict) check signature method names; off by default, as in TF Serving
    # (--enable_signature_method_name_check).
    enable_signature_method_name_check: bool = False
    enable_batching: bool = False
    batching_parameters_file: Path | None = None
    request_log_dir: Path | None = None
    log_sampling: float = 0.0  # fraction of requests written as PredictionLog records
    # A request-log file is closed and a new one started after this many seconds (or 10,000 records).
    request_log_rotate_seconds: float = 60.0
    max_request_bytes: int = 64 * 1024 * 1024
    # Memory for in-flight requests, server-wide, REST and gRPC (issue 26; serving.memory): each request is
    # charged its body's size x what decoding makes of it; beyond the budget a request waits up to 1 s, then
    # RESOURCE_EXHAUSTED / 429. None: serving.memory.default_budget_bytes (a quarter of memory).
    request_memory_budget_bytes: int | None = None
    request_timeout_seconds: float = 30.0  # TF Serving's REST default: 30,000 ms
    monitoring_path: str = "/monitoring/prometheus/metrics"
    # Connections (issue 26; nginx's client_header_timeout / keepalive_timeout, Envoy's request_headers_timeout
    # / idle_timeout): a request head must be complete this many seconds after the connection opens or its
    # first byte arrives (REST: 408 and closed; gRPC: the HTTP/2 handshake must finish in this time) ...
    header_read_timeout_seconds: float = 10.0
    # ... and a connection with no request in progress is closed after this many seconds (REST and gRPC).
    keepalive_timeout_seconds: float = 75.0
    # REST connections open at once; one more is answered 503 and closed at once.
    max_connections: int = field(default_factory=default_max_connections)
