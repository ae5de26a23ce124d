"""Loads tensorflow_model_server's config files: models, batching, monitoring.

The same files drive the project's server and the real `tensorflow/serving`
container (see `serving/deploy/`), so they are parsed with TF Serving's own
message definitions and text format:

- `--model_config_file`: `ModelServerConfig` from the `tensorflow-serving-api` wheel.
- `--batching_parameters_file` / `--monitoring_config_file`: `BatchingParameters`
  and `MonitoringConfig` are not shipped in the wheel, so equivalent messages
  (same package, field names, numbers and types) are built at runtime in a
  private descriptor pool.

Every problem raises `ConfigError` naming the file, so a bad deploy fails at
startup instead of serving something unexpected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

# A name becomes a URL segment, a metric label and maybe a directory: no separators,
# no leading dot (so no "..").
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# gs://, s3://, hdfs://... are handed to the file system as is.
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
# BasicBatchScheduler::Options defaults, used by TF Serving for absent fields.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_THREAD_POOL_NAME = "batch_threads"


class ConfigError(ValueError):
    """A config file that can't be read, parsed or accepted."""


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve (TF Serving's `ServableVersionPolicy`)."""

    kind: str = "latest"  # latest | all | specific
    num_versions: int = 1  # only for "latest"
    versions: frozenset[int] = field(default_factory=frozenset)  # only for "specific"

    def select(self, available: Iterable[int]) -> set[int]:
        """The subset of `available` version numbers this policy serves."""
        available = set(available)
        if self.kind == "all":
            return available
        if self.kind == "specific":
            return available & self.versions
        return set(sorted(available)[-self.num_versions :])


def load_model_server_config(path: str | os.PathLike) -> model_server_config_pb2.ModelServerConfig:
    """Parses and validates a text `ModelServerConfig` (`--model_config_file`).

    Relative `base_path`s are rewritten to absolute paths against the config
    file's directory (tensorflow_model_server resolves them against its working
    directory; anchoring them to the file makes a checked-in config portable).
    Raises `ConfigError` naming the file and the problem.
    """
    path = os.fspath(path)
    config = _parse_text(path, model_server_config_pb2.ModelServerConfig())
    return validate_model_server_config(config, source=path, base_dir=os.path.dirname(os.path.abspath(path)))


def validate_model_server_config(
    config: model_server_config_pb2.ModelServerConfig,
    source: str = "<config>",
    base_dir: str | None = None,
) -> model_server_config_pb2.ModelServerConfig:
    """Validates `config` in place (e.g. one from a gRPC `HandleReloadConfigRequest`) and returns it.

    With `base_dir`, relative base paths are made absolute against it.
    """
    if config.WhichOneof("config") == "custom_model_config":
        raise ConfigError(f"{source}: custom_model_config is not supported; use model_config_list")
    seen: set[str] = set()
    for index, model in enumerate(config.model_config_list.config):
        _validate_model(model, f"{source}: model #{index + 1}", seen)
        if base_dir is not None:
            model.base_path = resolve_base_path(model.base_path, base_dir)
    return config


def resolve_base_path(base_path: str, base_dir: str) -> str:
    """`base_path` made absolute against `base_dir`; URIs and absolute paths unchanged."""
    if URI_RE.match(base_path) or os.path.isabs(base_path):
        return base_path
    return os.path.normpath(os.path.join(base_dir, base_path))


def version_policy(model_config: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    """The model's version policy; TF Serving's default (latest 1) when unset."""
    policy = model_config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy(kind="all")
    if kind == "specific":
        return VersionPolicy(kind="specific", versions=frozenset(policy.specific.versions))
    # TF Serving treats num_versions 0 (the proto default) as 1.
    num = policy.latest.num_versions if kind == "latest" else 0
    return VersionPolicy(kind="latest", num_versions=max(num, 1))


def version_labels(model_config: model_server_config_pb2.ModelConfig) -> dict[str, int]:
    """The model's label -> version map, as a plain dict."""
    return dict(model_config.version_labels)


def _validate_model(model: model_server_config_pb2.ModelConfig, where: str, seen: set[str]) -> None:
    if not model.name:
        raise ConfigError(f"{where}: name is empty")
    where = f"{where} ({model.name!r})"
    if not MODEL_NAME_RE.match(model.name):
        raise ConfigError(
            f"{where}: invalid model name; use letters, digits, '_', '.', '-' and start with a letter or digit"
        )
    if model.name in seen:
        raise ConfigError(f"{where}: model listed more than once")
    seen.add(model.name)
    if not model.base_path:
        raise ConfigError(f"{where}: base_path is empty")
    if model.model_platform not in ("", "tensorflow"):
        raise ConfigError(f"{where}: model_platform {model.model_platform!r} is not supported; use 'tensorflow'")
    _validate_policy(model, where)
    for label, version in model.version_labels.items():
        if not label:
            raise ConfigError(f"{where}: empty version label")
        if version < 0:
            raise ConfigError(f"{where}: version label {label!r} points to negative version {version}")


def _validate_policy(model: model_server_config_pb2.ModelConfig, where: str) -> None:
    policy = model.model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return
    versions = list(policy.specific.versions)
    if not versions:
        # An empty list would serve nothing, silently.
        raise ConfigError(f"{where}: model_version_policy specific lists no versions")
    negative = [v for v in versions if v < 0]
    if negative:
        raise ConfigError(f"{where}: model_version_policy specific has negative versions {negative}")


# ------------------------------------------------------------- batching, monitoring


def _int64_field(name: str, number: int) -> descriptor_pb2.FieldDescriptorProto:
    return _message_field(name, number, ".google.protobuf.Int64Value")


def _message_field(name: str, number: int, type_name: str) -> descriptor_pb2.FieldDescriptorProto:
    return descriptor_pb2.FieldDescriptorProto(
        name=name,
        number=number,
        type_name=type_name,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )


def _scalar_field(name: str, number: int, kind: int, repeated: bool = False) -> descriptor_pb2.FieldDescriptorProto:
    label = (
        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
        if repeated
        else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    )
    return descriptor_pb2.FieldDescriptorProto(name=name, number=number, type=kind, label=label)


def _config_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """TF Serving's BatchingParameters (session_bundle_config.proto) and MonitoringConfig
    (monitoring_config.proto), with their field names, numbers and types."""
    fdp = descriptor_pb2.FieldDescriptorProto
    batching = descriptor_pb2.DescriptorProto(
        name="BatchingParameters",
        field=[
            _int64_field("max_batch_size", 1),
            _int64_field("batch_timeout_micros", 2),
            _int64_field("max_enqueued_batches", 3),
            _int64_field("num_batch_threads", 4),
            _message_field("thread_pool_name", 5, ".google.protobuf.StringValue"),
            _scalar_field("allowed_batch_sizes", 6, fdp.TYPE_INT64, repeated=True),
            _scalar_field("pad_variable_length_inputs", 7, fdp.TYPE_BOOL),
        ],
    )
    prometheus = descriptor_pb2.DescriptorProto(
        name="PrometheusConfig",
        field=[
            _scalar_field("enable", 1, fdp.TYPE_BOOL),
            _scalar_field("path", 2, fdp.TYPE_STRING),
        ],
    )
    monitoring = descriptor_pb2.DescriptorProto(
        name="MonitoringConfig",
        field=[
            _message_field("prometheus_config", 1, ".tensorflow.serving.PrometheusConfig"),
        ],
    )
    return descriptor_pb2.FileDescriptorProto(
        # A private name: never clashes with the real .proto should it get installed.
        name="tfxp/serving/tf_serving_runtime_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
        message_type=[batching, prometheus, monitoring],
    )


def _build_messages() -> tuple[type[Message], type[Message], type[Message]]:
    # A private pool: the default one may already hold messages named tensorflow.serving.*.
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(_config_file_descriptor())
    factory = message_factory.MessageFactory(pool)
    return tuple(  # type: ignore[return-value]
        factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "PrometheusConfig", "MonitoringConfig")
    )


BatchingParameters, PrometheusConfig, MonitoringConfig = _build_messages()


@dataclass(frozen=True)
class BatchingSettings:
    """`BatchingParameters` as plain values, TF Serving's defaults filled in."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    thread_pool_name: str = DEFAULT_THREAD_POOL_NAME
    allowed_batch_sizes: tuple[int, ...] = ()  # empty: any size up to max_batch_size
    pad_variable_length_inputs: bool = False


@dataclass(frozen=True)
class MonitoringSettings:
    """`MonitoringConfig.prometheus_config` as plain values."""

    enable: bool = False
    path: str = DEFAULT_PROMETHEUS_PATH  # served on the REST port


def load_batching_parameters(path: str | os.PathLike) -> BatchingSettings:
    """Parses and validates a text `BatchingParameters` file (`--batching_parameters_file`)."""
    path = os.fspath(path)
    params = _parse_text(path, BatchingParameters())
    settings = _batching_settings(params)
    _validate_batching(settings, path)
    return settings


def _wrapped(params: Message, name: str, default: int | str) -> int | str:
    # Wrapper fields tell "unset" from 0, which is how TF Serving applies its defaults.
    return getattr(params, name).value if params.HasField(name) else default


def _batching_settings(params: Message) -> BatchingSettings:
    defaults = BatchingSettings()
    return BatchingSettings(
        max_batch_size=_wrapped(params, "max_batch_size", defaults.max_batch_size),
        batch_timeout_micros=_wrapped(params, "batch_timeout_micros", defaults.batch_timeout_micros),
        num_batch_threads=_wrapped(params, "num_batch_threads", defaults.num_batch_threads),
        max_enqueued_batches=_wrapped(params, "max_enqueued_batches", defaults.max_enqueued_batches),
        thread_pool_name=_wrapped(params, "thread_pool_name", defaults.thread_pool_name),
        allowed_batch_sizes=tuple(params.allowed_batch_sizes),
        pad_variable_length_inputs=params.pad_variable_length_inputs,
    )


def _validate_batching(settings: BatchingSettings, path: str) -> None:
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        value = getattr(settings, name)
        if value <= 0:
            raise ConfigError(f"{path}: {name} must be positive, got {value}")
    if settings.batch_timeout_micros < 0:
        raise ConfigError(f"{path}: batch_timeout_micros must be >= 0, got {settings.batch_timeout_micros}")
    sizes = settings.allowed_batch_sizes
    if not sizes:
        return
    # Neighbouring pairs: sizes[1:] is one shorter, so the zip is deliberately not strict.
    if sizes[0] <= 0 or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise ConfigError(f"{path}: allowed_batch_sizes must be positive and increasing, got {list(sizes)}")
    if sizes[-1] != settings.max_batch_size:
        raise ConfigError(
            f"{path}: the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
            f"max_batch_size ({settings.max_batch_size})"
        )


def load_monitoring_config(path: str | os.PathLike) -> MonitoringSettings:
    """Parses a text `MonitoringConfig` file (`--monitoring_config_file`)."""
    path = os.fspath(path)
    prometheus = _parse_text(path, MonitoringConfig()).prometheus_config
    # TF Serving falls back to its default path when none is given.
    metrics_path = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not metrics_path.startswith("/"):
        raise ConfigError(f"{path}: prometheus_config.path must start with '/', got {metrics_path!r}")
    return MonitoringSettings(enable=prometheus.enable, path=metrics_path)


# ------------------------------------------------------------------------ parsing


# Python's ParseError text starts "<line>:<column> : "; the location is written TF Serving's way instead.
_LOCATION = re.compile(r"^\d+(?::\d+)? : ")


def _parse_text(path: str, message: Message) -> Message:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        # TF Serving's words (tensorflow_model_server_test.py testBadModelConfig looks for the first):
        # protobuf's TextFormat logs "Error parsing text-format <full message name>: <line>:<column>:
        # <problem>", then util/proto_util.h ParseProtoTextFile fails with "Invalid protobuf file: '<path>'".
        problem = _LOCATION.sub("", str(e))
        where = f"{e.GetLine()}:{e.GetColumn()}: " if e.GetLine() is not None else ""
        raise ConfigError(
            f"Invalid protobuf file: '{path}': Error parsing text-format {message.DESCRIPTOR.full_name}: "
            f"{where}{problem}"
        ) from e
