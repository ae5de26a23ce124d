"""Clients for a TF Serving compatible model server (REST and gRPC), one interface.

Rows are raw feature dicts as read from the CSV (strings, numbers, "" or None).
`serving_default` receives them as serialized tf.Examples; `predict_raw` as one
dense tensor per feature with the missing-value markers of `models.features`.

Import cost: nothing here imports TensorFlow at module level. tf.Examples are
encoded by a small protobuf wire writer (checked against `example_pb2` in the
tests) because importing anything under `tensorflow.core` runs
`tensorflow/__init__.py` and loads the whole runtime (~4 s, ~600 MB). The REST
client therefore never loads TensorFlow; the gRPC client must, since
`tensorflow_serving.apis` is built on TensorFlow's protos.
"""
from __future__ import annotations

import abc
import base64
import csv
import json
import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar
from urllib.parse import quote

from tfxp.models import features as F

# Same names as models.signatures (not imported: that module loads TensorFlow).
SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
EXAMPLES_INPUT = "examples"
SIGNATURES = (SERVING_DEFAULT, PREDICT_RAW)
# The raw features both signatures read from a row (the columns a rows file needs).
MODEL_INPUTS: tuple[str, ...] = tuple(f.name for f in F.FEATURES)
PROTOCOLS = ("grpc", "rest")

# gRPC's 4 MB default is hit by a few thousand examples; TF Serving allows INT32_MAX.
MAX_MESSAGE_BYTES = 2**31 - 1
# Retries of UNAVAILABLE: a budget in seconds (a server restart lasts seconds, whatever
# the number of attempts), polled with a short capped backoff so the first call
# after the server is back is at most MAX_BACKOFF_SECONDS late.
RETRY_SECONDS = 10.0
BACKOFF_SECONDS = 0.05  # first retry delay; doubles per attempt
MAX_BACKOFF_SECONDS = 0.25
# gRPC channel reconnection (grpc/doc/connection-backoff.md; defaults: first retry after
# 1 s, x1.6 per failure, at most 120 s). After an outage a channel fails every call at
# once until its next reconnect attempt, so the default schedule made a restart cost
# ~9 s more than the outage. Here a reconnect is tried at least every 0.5 s (a refused
# connect each while the server is down). "min_reconnect_backoff" is, despite its name,
# the minimum time one connect attempt may take (MIN_CONNECT_TIMEOUT, 20 s by default):
# 2 s is ample for a TCP + HTTP/2 handshake and ends a hanging attempt sooner.
GRPC_RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 2000),
)

Row = Mapping[str, Any]
T = TypeVar("T")


class ServingClientError(Exception):
    """A failed call: `code` is the gRPC status name (str) or the HTTP status (int).

    `message` is the server's own error text (REST `{"error": ...}`, gRPC details).
    """

    def __init__(self, code: str | int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RowError(ValueError):
    """A row value that cannot be read as its feature's dtype (raised before any call)."""


class _Unavailable(Exception):
    """Internal: a retryable failure; carries the error to raise once retries run out."""

    def __init__(self, error: ServingClientError):
        super().__init__(str(error))
        self.error = error


# -- rows -> values -------------------------------------------------------------------------

_EXAMPLE_COLUMNS: tuple[tuple[str, F.DType], ...] = (
    tuple((f.name, f.dtype) for f in F.FEATURES) + tuple(F.UNUSED_COLUMNS)
)


def parse_value(value: Any, dtype: F.DType) -> int | float | str | None:
    """One raw cell as its feature's Python value; None when missing ("", None, NaN)."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if dtype is F.DType.STRING:
        return value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if dtype is F.DType.FLOAT:
        number = float(value)
        return None if math.isnan(number) else number
    return _parse_int(value)


def _parse_int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    number = float(value)
    if math.isnan(number):
        return None
    # "300.0" is common in exported CSVs; "3.5" is not an int and would be silently truncated.
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)


def _row_value(row: Row, index: int, name: str, dtype: F.DType) -> int | float | str | None:
    try:
        return parse_value(row.get(name), dtype)
    except (TypeError, ValueError) as exc:
        raise RowError(f"row {index}: {name}: cannot read {row.get(name)!r} as {dtype.value} ({exc})") from None


def raw_columns(rows: Sequence[Row]) -> dict[str, list]:
    """Rows as `predict_raw` inputs: one list per feature, missing values as markers."""
    columns: dict[str, list] = {}
    for feature in F.FEATURES:
        marker = F.missing_value(feature.dtype)
        column = []
        for index, row in enumerate(rows):
            value = _row_value(row, index, feature.name, feature.dtype)
            column.append(marker if value is None else value)
        columns[feature.name] = column
    return columns


# -- tf.Example wire encoding ----------------------------------------------------------------
# Example{features=1: Features{feature=1: map<string, Feature>}};
# Feature{oneof kind: bytes_list=1, float_list=2, int64_list=3}, each list `repeated value = 1`.

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1  # negatives as two's complement, as protobuf does for int64
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature_bytes(value: int | float | str | None, dtype: F.DType) -> bytes:
    if value is None:
        return b""  # present but empty, like CsvExampleGen's blank cells
    if dtype is F.DType.STRING:
        return _field(1, _field(1, value.encode("utf-8")))
    if dtype is F.DType.FLOAT:
        return _field(2, _field(1, struct.pack("<f", value)))
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError(f"{value} is out of int64 range")
    return _field(3, _field(1, _varint(value)))


def encode_example(row: Row, index: int = 0) -> bytes:
    """A raw row as a serialized tf.Example, built as tests/taxi_data.py `to_example` does.

    Every model feature plus the unused schema columns is written (the
    `serving_default` parser requires all non-label schema columns); blanks are
    present-but-empty features. The label and unknown columns are skipped.
    """
    entries = []
    for name, dtype in _EXAMPLE_COLUMNS:
        value = _row_value(row, index, name, dtype)
        try:
            feature = _feature_bytes(value, dtype)
        except (OverflowError, struct.error) as exc:
            raise RowError(f"row {index}: {name}: {exc}") from None
        entries.append(_field(1, _field(1, name.encode()) + _field(2, feature)))
    return _field(1, b"".join(entries))


def encode_examples(rows: Sequence[Row]) -> list[bytes]:
    """Serialized tf.Examples, one per row."""
    return [encode_example(row, index) for index, row in enumerate(rows)]


# -- targets and row files -------------------------------------------------------------------


def parse_target(target: str, protocol: str | None = None) -> tuple[str, str]:
    """`http(s)://host:port` -> ("rest", url); `host:port` -> ("grpc", "host:port").

    `protocol="rest"` turns a bare `host:port` into `http://host:port`;
    `grpc://host:port` is accepted too. Raises ValueError on a malformed target
    or a protocol that contradicts the URL scheme.
    """
    if protocol not in (None, *PROTOCOLS):
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, rest = None, target
    scheme = scheme.lower() if scheme else None
    if scheme not in (None, "http", "https", "grpc"):
        raise ValueError(f"unsupported scheme {scheme!r} in {target!r}")
    address = rest.rstrip("/")
    _check_host_port(address, target)
    wanted = protocol or ("grpc" if scheme in (None, "grpc") else "rest")
    if scheme in ("http", "https") and wanted == "grpc":
        raise ValueError(f"{target!r} is an HTTP URL; gRPC targets are host:port")
    if scheme == "grpc" and wanted == "rest":
        raise ValueError(f"{target!r} is a gRPC target; REST targets are http://host:port")
    if wanted == "grpc":
        return "grpc", address
    return "rest", f"{scheme or 'http'}://{address}"


def _check_host_port(address: str, target: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in address:
        raise ValueError(f"expected host:port or http://host:port, got {target!r}")


@dataclass(frozen=True)
class RowsFile:
    """A rows file: `rows` (one dict per row) and `columns` (the CSV header, or every key
    some JSONL object has, in order of first appearance)."""

    path: Path
    rows: list[dict]
    columns: tuple[str, ...]


class MissingColumnsError(ValueError):
    """A rows file has no column for some model inputs (raised before any call).

    `missing`: every such input; `required`/`optional`: the split of `missing`.
    """

    def __init__(self, path: Path, required: Sequence[str], optional: Sequence[str]):
        self.required, self.optional = list(required), list(optional)
        self.missing = self.required + self.optional
        parts = [f"required: {', '.join(self.required)}" if self.required else "",
                 f"optional: {', '.join(self.optional)}" if self.optional else ""]
        super().__init__(f"{path} has no column for the model inputs {', '.join(self.missing)} "
                         f"({'; '.join(p for p in parts if p)})")


def read_rows(path: str | Path) -> list[dict]:
    """Rows from a `.csv` (header row; cells stay strings) or `.jsonl` (one object per line)."""
    return read_rows_file(path).rows


def read_rows_file(path: str | Path) -> RowsFile:
    """`read_rows` with the file's columns. Raises ValueError naming file:line for a CSV
    line whose cell count differs from the header's (csv.DictReader would fill the
    gap with None, i.e. silently missing values), a repeated header name, bad JSON."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".jsonl":
        return _read_jsonl(path)
    raise ValueError(f"{path}: rows must be a .csv or .jsonl file")


def _read_csv(path: Path) -> RowsFile:
    # utf-8-sig: spreadsheet exports start with a byte order mark, which would
    # otherwise become part of the first column's name.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise ValueError(f"{path}:1: the header names {', '.join(repeated)} more than once")
        rows = []
        for cells in reader:
            if not cells:
                continue  # a blank line, as csv.DictReader skips it
            if len(cells) != len(header):
                raise ValueError(f"{path}:{reader.line_num}: {len(cells)} cells, the header has {len(header)}")
            rows.append(dict(zip(header, cells)))
    return RowsFile(path, rows, tuple(header))


def _read_jsonl(path: Path) -> RowsFile:
    rows = []
    columns: dict[str, None] = {}  # ordered set
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
            columns.update(dict.fromkeys(row))
    return RowsFile(path, rows, tuple(columns))


def check_columns(rows_file: RowsFile, inputs: Sequence[str], optional: Iterable[str] = (),
                  allow_missing_optional: bool = False) -> None:
    """Refuses a rows file that has no column for some model `inputs`.

    A file without a column for an input (a CSV header of `foo,bar`, a typo in a
    name) would otherwise be read as "missing in every row" and answered.
    `optional` inputs may be absent only with `allow_missing_optional`; required
    ones never. A JSONL row may still omit a key its file has elsewhere (read as
    missing in that row). Raises MissingColumnsError.
    """
    optional = set(optional)
    absent = [name for name in inputs if name not in rows_file.columns]
    required = [name for name in absent if name not in optional]
    refused_optional = [] if allow_missing_optional else [name for name in absent if name in optional]
    if required or refused_optional:
        raise MissingColumnsError(rows_file.path, required, refused_optional)


def optional_features(schema_path: str | Path) -> frozenset[str]:
    """Model inputs a raw schema (schema.pbtxt) lets be absent: features without `shape`.

    TFX parses such features as VarLenFeatures (tensorflow_transform's
    schema_utils), so `serving_default` accepts examples without them and
    `predict_raw` reads their marker as "absent". tensorflow_metadata's protos
    load without TensorFlow.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(Path(schema_path).read_text(encoding="utf-8"), schema_pb2.Schema())
    with_shape = {feature.name for feature in schema.feature if feature.HasField("shape")}
    return frozenset(f.name for f in F.FEATURES if f.name not in with_shape)


# -- the interface -----------------------------------------------------------------------------


class ServingClient(abc.ABC):
    """Predict, status and metadata calls against one model (optionally one version or label).

    Every attempt has a `timeout` (seconds). UNAVAILABLE failures (gRPC
    UNAVAILABLE, HTTP 503, connection refused) are retried for up to
    `retry_seconds` after the first attempt, with a short capped backoff; any
    other failure raises ServingClientError at once. A call therefore takes at
    most about `retry_seconds + timeout`.
    """

    def __init__(self, model: str, *, version: int | None = None, label: str | None = None,
                 timeout: float = 10.0, retry_seconds: float = RETRY_SECONDS, signature: str = SERVING_DEFAULT):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise ValueError(f"version must be a non-negative int, got {version!r}")
        if signature not in SIGNATURES:
            raise ValueError(f"unsupported signature {signature!r}; use one of {', '.join(SIGNATURES)}")
        if not timeout > 0 or not retry_seconds >= 0:
            raise ValueError("timeout must be > 0 and retry_seconds >= 0")
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.signature = signature
        # The version that answered the last predict, when the protocol says (gRPC does).
        self.last_version: int | None = version

    def predict(self, rows: Iterable[Row]) -> list[float]:
        """One probability per row, in order. Raises RowError before calling on bad values."""
        rows = list(rows)
        if not rows:
            return []  # TF Serving rejects empty batches; nothing to ask
        if self.signature == PREDICT_RAW:
            probabilities = self._predict_raw(raw_columns(rows))
        else:
            probabilities = self._predict_examples(encode_examples(rows))
        if len(probabilities) != len(rows):
            raise ServingClientError("INTERNAL", f"server returned {len(probabilities)} values for {len(rows)} rows")
        return probabilities

    @abc.abstractmethod
    def status(self) -> list[dict]:
        """[{"version": int, "state": "AVAILABLE" | ...}] for the model (or its version/label)."""

    @abc.abstractmethod
    def metadata(self) -> dict:
        """{signature name: {"inputs": {name: "DT_..."}, "outputs": {name: "DT_..."}}}."""

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the connection; the client is unusable afterwards."""

    @abc.abstractmethod
    def _predict_examples(self, examples: list[bytes]) -> list[float]: ...

    @abc.abstractmethod
    def _predict_raw(self, columns: dict[str, list]) -> list[float]: ...

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _with_retries(self, call: Callable[[], T]) -> T:
        """`call()`, retried on _Unavailable until `retry_seconds` have passed since the first attempt."""
        give_up = time.monotonic() + self.retry_seconds
        delay = BACKOFF_SECONDS
        while True:
            try:
                return call()
            except _Unavailable as unavailable:
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    raise unavailable.error from None
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def _signature_summary(signature_defs: Mapping[str, Mapping[str, Any]]) -> dict:
    """SignatureDefMap as JSON -> {name: {"inputs": {k: dtype}, "outputs": {k: dtype}}}."""
    return {
        name: {
            part: {key: info.get("dtype", "DT_INVALID") for key, info in (sig.get(part) or {}).items()}
            for part in ("inputs", "outputs")
        }
        for name, sig in signature_defs.items()
    }


def _floats(values: Any) -> list[float]:
    """A single-output prediction (plain list) or a multi-output one (pick `probability`)."""
    if isinstance(values, Mapping):
        values = values.get(F.OUTPUT)
    if isinstance(values, list) and values and isinstance(values[0], Mapping):
        values = [v.get(F.OUTPUT) for v in values]
    if not isinstance(values, list):
        raise ServingClientError("INTERNAL", f"unexpected prediction payload: {str(values)[:200]}")
    # [[p], [p]] shapes appear when a model keeps a trailing dimension of 1.
    return [float(v[0] if isinstance(v, list) else v) for v in values]


# -- REST ----------------------------------------------------------------------------------------


def rest_predict_body(signature: str, examples: list[bytes] | None = None,
                      columns: Mapping[str, list] | None = None) -> str:
    """The JSON predict body: row format of b64 examples, or columnar raw tensors.

    A single-input signature's row format is a plain list of values. NaN
    markers go out as the JSON literal NaN, which TF Serving accepts.
    """
    if examples is not None:
        body: dict = {"signature_name": signature,
                      "instances": [{"b64": base64.b64encode(e).decode("ascii")} for e in examples]}
    else:
        body = {"signature_name": signature, "inputs": dict(columns or {})}
    return json.dumps(body, allow_nan=True, separators=(",", ":"))


class RestClient(ServingClient):
    """TF Serving's REST API (`/v1/models/...`) over a `requests.Session`."""

    def __init__(self, base_url: str, model: str, **kwargs: Any):
        import requests

        super().__init__(model, **kwargs)
        self.base_url = base_url.rstrip("/")
        self._requests = requests
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"

    @property
    def model_url(self) -> str:
        url = f"{self.base_url}/v1/models/{quote(self.model, safe='')}"
        if self.version is not None:
            return f"{url}/versions/{self.version}"
        if self.label is not None:
            return f"{url}/labels/{quote(self.label, safe='')}"
        return url

    def _predict_examples(self, examples: list[bytes]) -> list[float]:
        body = rest_predict_body(self.signature, examples=examples)
        return _floats(self._call("POST", ":predict", body).get("predictions"))

    def _predict_raw(self, columns: dict[str, list]) -> list[float]:
        body = rest_predict_body(self.signature, columns=columns)
        return _floats(self._call("POST", ":predict", body).get("outputs"))

    def status(self) -> list[dict]:
        statuses = self._call("GET", "").get("model_version_status") or []
        return [{"version": int(s.get("version", 0)), "state": s.get("state", "UNKNOWN")} for s in statuses]

    def metadata(self) -> dict:
        metadata = self._call("GET", "/metadata").get("metadata") or {}
        signature_map = (metadata.get("signature_def") or {}).get("signature_def") or {}
        return _signature_summary(signature_map)

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, suffix: str, body: str | None = None) -> dict:
        url = self.model_url + suffix
        return self._with_retries(lambda: self._once(method, url, body))

    def _once(self, method: str, url: str, body: str | None) -> dict:
        exceptions = self._requests.exceptions
        try:
            response = self._session.request(method, url, data=body, timeout=self.timeout)
        except exceptions.Timeout:
            # Checked before ConnectionError: ConnectTimeout is both, and is not "refused".
            raise ServingClientError(504, f"no answer from {url} within {self.timeout} s") from None
        except exceptions.ConnectionError as exc:
            raise _Unavailable(ServingClientError(503, f"cannot connect to {url}: {_reason(exc)}")) from None
        if response.status_code == 503:
            raise _Unavailable(ServingClientError(503, _error_text(response)))
        if response.status_code != 200:
            raise ServingClientError(response.status_code, _error_text(response))
        try:
            payload = json.loads(response.text)
        except ValueError:
            raise ServingClientError(response.status_code, f"non-JSON answer: {response.text[:200]}") from None
        if not isinstance(payload, dict):
            raise ServingClientError(response.status_code, f"unexpected answer: {response.text[:200]}")
        return payload


def _error_text(response: Any) -> str:
    """The server's `{"error": ...}` message, else the raw body or reason."""
    try:
        payload = json.loads(response.text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return payload["error"]
    return response.text.strip()[:500] or str(response.reason)


def _reason(exc: Exception) -> str:
    # requests nests urllib3's reason several levels deep; the innermost text is the useful part.
    while exc.args and isinstance(exc.args[0], Exception):
        exc = exc.args[0]
    return str(getattr(exc, "reason", exc))


# -- gRPC ----------------------------------------------------------------------------------------


class GrpcClient(ServingClient):
    """TF Serving's gRPC PredictionService / ModelService. Loads TensorFlow's protos (~4 s)."""

    def __init__(self, target: str, model: str, **kwargs: Any):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        super().__init__(model, **kwargs)
        self.target = target
        self._grpc = grpc
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            *GRPC_RECONNECT_OPTIONS,
        ])
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _fill_spec(self, spec: Any, signature: str | None = None) -> None:
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature:
            spec.signature_name = signature

    def predict_request(self, inputs: Mapping[str, Any]) -> Any:
        """A PredictRequest for this client's model spec and the given TensorProtos."""
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, self.signature)
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        return request

    def _predict_examples(self, examples: list[bytes]) -> list[float]:
        return self._predict({EXAMPLES_INPUT: tensor_proto(examples, F.DType.STRING)})

    def _predict_raw(self, columns: dict[str, list]) -> list[float]:
        return self._predict({f.name: tensor_proto(columns[f.name], f.dtype) for f in F.FEATURES})

    def _predict(self, inputs: Mapping[str, Any]) -> list[float]:
        request = self.predict_request(inputs)
        response = self._call(self._prediction.Predict, request)
        if response.model_spec.HasField("version"):
            self.last_version = response.model_spec.version.value
        if F.OUTPUT not in response.outputs:
            raise ServingClientError("INTERNAL", f"no {F.OUTPUT!r} output in {sorted(response.outputs)}")
        return tensor_floats(response.outputs[F.OUTPUT])

    def status(self) -> list[dict]:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return [{"version": s.version, "state": state_name(s.state)} for s in response.model_version_status]

    def metadata(self) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" in response.metadata:
            response.metadata["signature_def"].Unpack(signature_map)
        as_json = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return _signature_summary(as_json.get("signature_def", {}))

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., T], request: Any) -> T:
        return self._with_retries(lambda: self._once(method, request))

    def _once(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            error = ServingClientError(exc.code().name, exc.details() or "")
            if exc.code() is self._grpc.StatusCode.UNAVAILABLE:
                raise _Unavailable(error) from None
            raise error from None


_DT = {F.DType.INT: "DT_INT64", F.DType.FLOAT: "DT_FLOAT", F.DType.STRING: "DT_STRING"}
_VALUE_FIELDS = {F.DType.INT: "int64_val", F.DType.FLOAT: "float_val", F.DType.STRING: "string_val"}


def tensor_proto(values: Sequence[Any], dtype: F.DType) -> Any:
    """A rank-1 TensorProto built field by field (no `tf.make_tensor_proto`, no TF ops)."""
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(_DT[dtype]))
    proto.tensor_shape.dim.add(size=len(values))
    if dtype is F.DType.STRING:
        values = [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
    getattr(proto, _VALUE_FIELDS[dtype]).extend(values)
    return proto


def tensor_floats(proto: Any) -> list[float]:
    """A DT_FLOAT/DT_DOUBLE TensorProto's values, whether packed in tensor_content or not."""
    from tensorflow.core.framework import types_pb2

    formats = {types_pb2.DT_FLOAT: ("float_val", "f"), types_pb2.DT_DOUBLE: ("double_val", "d")}
    if proto.dtype not in formats:
        raise ServingClientError("INTERNAL", f"{F.OUTPUT} has dtype {types_pb2.DataType.Name(proto.dtype)}")
    field, code = formats[proto.dtype]
    if proto.tensor_content:
        count = len(proto.tensor_content) // struct.calcsize(code)
        values = list(struct.unpack(f"<{count}{code}", proto.tensor_content))
    else:
        values = list(getattr(proto, field))
        size = math.prod(d.size for d in proto.tensor_shape.dim)
        # A single repeated value stands for a whole tensor of that value (TensorProto convention).
        values = values * size if len(values) == 1 and size > 1 else values
    return _shortest_float32(values) if code == "f" else values


def _shortest_float32(values: list[float]) -> list[float]:
    """float32 values as their shortest decimal (0.1, not 0.10000000149), as REST answers give them."""
    import numpy as np

    return [float(str(v)) for v in np.asarray(values, np.float32)]


def connect(target: str, model: str, *, protocol: str | None = None, **kwargs: Any) -> ServingClient:
    """A RestClient or GrpcClient for `target`, per `parse_target`."""
    kind, address = parse_target(target, protocol)
    if kind == "rest":
        return RestClient(address, model, **kwargs)
    return GrpcClient(address, model, **kwargs)
