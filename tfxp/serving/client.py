"""Clients for a TF Serving compatible model server (REST and gRPC): one interface, any model this pipeline pushes.

A client learns the model from its metadata (REST `GET /v1/models/<m>/metadata`, gRPC
GetModelMetadata), read once per client and again after a version change: when the
server refuses a request (a new version may take other inputs; the request is then
rebuilt once) or, over gRPC, when a predict answer names another version:

- Inputs: the raw inputs of the `predict_raw` signature, {name: DT_FLOAT | DT_INT64 |
  DT_STRING}. `predict_raw` gets rows as one dense tensor per input, missing values as
  the markers of `tfxp.rows`; `serving_default` gets them as serialized tf.Examples
  with those features (one model, one raw feature set; the signature itself only
  declares `examples`). No feature list is imported, so any model with these two
  signatures is served (binary, multiclass, regression).
- Outputs: whatever the chosen signature returns. `predict(rows)` gives one result per
  row: a float for a [N] output (binary `probability`, regression `prediction`), a list
  of K floats for [N, K] (multiclass `probabilities`), {output name: value} when the
  signature has several outputs.
- Class names: not in the metadata (a signature declares tensors, not their values);
  `class_scores(row)` asks the `classification` signature for them with one row.

Rows are raw feature dicts as read from CSV/JSONL (`tfxp.rows`: strings, numbers, "" or None).

Import cost: nothing here imports TensorFlow at module level, and `tfxp.rows` builds
tf.Examples without it, so the REST client never loads TensorFlow (~2-4 s); the gRPC
client must, since `tensorflow_serving.apis` is built on TensorFlow's protos.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
import math
import os
import re
import struct
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from tfxp import rows as R

# Re-exported: rows files and values were read here before tfxp.rows existed (cli, mobile, bench use these names).
from tfxp.rows import (  # noqa: F401
    MissingColumnsError,
    RowError,
    RowsFile,
    check_columns,
    encode_examples,
    parse_value,
    raw_columns,
    read_rows,
    read_rows_file,
)

# The server's one signature type, under the names this module has always given it.
from tfxp.serving.signature_def import Signature, TensorInfo

# Same names as models.signatures (not imported: that module loads TensorFlow).
SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
EXAMPLES_INPUT = "examples"
SIGNATURES = (SERVING_DEFAULT, PREDICT_RAW)
# TF Serving's Classify signature of classification models: `classes` (the label's values, [N, K]
# strings) and `scores` ([N, K]), both in output order; a serialized tf.Example per row.
CLASSIFICATION = "classification"
CLASSES_OUTPUT, SCORES_OUTPUT = "classes", "scores"
PROTOCOLS = ("grpc", "rest")
# Output dtypes whose values are floats (REST JSON may write 1.0 as 1).
FLOAT_DTYPES = ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16")

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


class ModelMetadataError(ServingClientError):
    """The served model's metadata does not fit the request (code FAILED_PRECONDITION, raised before predicting).

    The chosen signature is missing, there is no `predict_raw` to learn the raw
    inputs from, a raw input has a dtype no row value is read as, or
    `serving_default` does not take one DT_STRING tensor of serialized tf.Examples.
    """

    def __init__(self, message: str):
        super().__init__("FAILED_PRECONDITION", message)


class _Unavailable(Exception):
    """Internal: a retryable failure; carries the error to raise once retries run out."""

    def __init__(self, error: ServingClientError):
        super().__init__(str(error))
        self.error = error


# -- model metadata ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelMetadata:
    """A served model version's SignatureDefMap, as GetModelMetadata (REST `.../metadata`) gives it."""

    model: str
    version: int | None
    signatures: dict[str, Signature]

    def signature(self, name: str) -> Signature:
        """The SignatureDef `name`. Raises ModelMetadataError naming the signatures there are."""
        if name not in self.signatures:
            raise ModelMetadataError(
                f"model {self._name()} has no {name!r} signature "
                f"(it has {', '.join(sorted(self.signatures)) or 'none'})"
            )
        return self.signatures[name]

    def raw_inputs(self) -> dict[str, str]:
        """{raw input name: DT_FLOAT | DT_INT64 | DT_STRING}, by name: the inputs of `predict_raw`.

        They are the features of both signatures: `predict_raw` takes them as tensors,
        `serving_default` as tf.Example features. Raises ModelMetadataError when the model
        has no `predict_raw` or an input's dtype is not one rows hold.
        """
        if PREDICT_RAW not in self.signatures:
            raise ModelMetadataError(
                f"model {self._name()} has no {PREDICT_RAW!r} signature (it has "
                f"{', '.join(sorted(self.signatures)) or 'none'}): its inputs are the raw features this client "
                "sends, as tensors or as tf.Example features"
            )
        inputs = {}
        for name, info in sorted(self.signatures[PREDICT_RAW].inputs.items()):
            if info.dtype not in R.DTYPES:
                raise ModelMetadataError(
                    f"model {self._name()}: {PREDICT_RAW} input {name} is {info.dtype}; "
                    f"rows are read as {', '.join(R.DTYPES)}"
                )
            inputs[name] = info.dtype
        return inputs

    def examples_input(self, name: str) -> str:
        """The tensor key of signature `name`'s one input, a DT_STRING of serialized tf.Examples."""
        inputs = self.signature(name).inputs
        if len(inputs) != 1 or next(iter(inputs.values())).dtype != R.DT_STRING:
            shown = ", ".join(f"{key} ({info.dtype})" for key, info in sorted(inputs.items())) or "none"
            raise ModelMetadataError(
                f"model {self._name()}: {name} takes {shown}; this client sends "
                "serialized tf.Examples to a signature with one DT_STRING input"
            )
        return next(iter(inputs))

    def summary(self) -> dict:
        """{signature name: {"inputs": {key: "DT_..."}, "outputs": {key: "DT_..."}}}."""
        return {
            name: {
                "inputs": {key: info.dtype for key, info in sig.inputs.items()},
                "outputs": {key: info.dtype for key, info in sig.outputs.items()},
            }
            for name, sig in self.signatures.items()
        }

    def _name(self) -> str:
        return self.model if self.version is None else f"{self.model} version {self.version}"


def _signatures(signature_defs: Mapping[str, Mapping[str, Any]]) -> dict[str, Signature]:
    """A SignatureDefMap as JSON (REST's `signature_def`, or gRPC's via MessageToDict) -> Signatures."""
    return {
        name: Signature(
            inputs={key: TensorInfo.from_json(info) for key, info in (sig.get("inputs") or {}).items()},
            outputs={key: TensorInfo.from_json(info) for key, info in (sig.get("outputs") or {}).items()},
            method_name=sig.get("method_name", ""),
            name=name,
        )
        for name, sig in signature_defs.items()
    }


def _version(value: Any) -> int | None:
    """model_spec.version as JSON writes it ("2", or {"value": "2"} from MessageToDict)."""
    if isinstance(value, Mapping):
        value = value.get("value")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# -- targets -----------------------------------------------------------------------------------


def parse_target(target: str, protocol: str | None = None) -> tuple[str, str]:
    """`http(s)://host:port` -> ("rest", url); `host:port` -> ("grpc", "host:port").

    `protocol="rest"` turns a bare `host:port` into `http://host:port`;
    `grpc://host:port` is accepted too. Raises ValueError on a malformed target
    or a protocol that contradicts the URL scheme.
    """
    if protocol not in (None, *PROTOCOLS):
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    prefix, sep, rest = target.partition("://")
    scheme = prefix.lower() if sep and prefix else None
    if not sep:
        rest = target
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


# -- the interface -----------------------------------------------------------------------------


class ServingClient(abc.ABC):
    """Predict, status and metadata calls against one model (optionally one version or label).

    Every attempt has a `timeout` (seconds). UNAVAILABLE failures (gRPC
    UNAVAILABLE, HTTP 503, connection refused) are retried for up to
    `retry_seconds` after the first attempt, with a short capped backoff; any
    other failure raises ServingClientError at once. A call therefore takes at
    most about `retry_seconds + timeout`.
    """

    def __init__(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 10.0,
        retry_seconds: float = RETRY_SECONDS,
        signature: str = SERVING_DEFAULT,
    ):
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
        self._metadata: ModelMetadata | None = None

    def model_metadata(self, refresh: bool = False) -> ModelMetadata:
        """The served model's SignatureDefs: fetched on first use (or `refresh`), then kept."""
        if refresh or self._metadata is None:
            self._metadata = self._fetch_metadata()
        return self._metadata

    def model_inputs(self) -> dict[str, str]:
        """{raw input name: "DT_FLOAT" | "DT_INT64" | "DT_STRING"}: the row columns `predict` reads.

        From the metadata (see `ModelMetadata.raw_inputs`); raises ModelMetadataError
        or, when the server can't be asked, ServingClientError.
        """
        return self.model_metadata().raw_inputs()

    def outputs(self) -> dict[str, TensorInfo]:
        """The chosen signature's outputs, by name: what each `predict` result holds."""
        return dict(sorted(self.model_metadata().signature(self.signature).outputs.items()))

    def class_scores(self, row: Row) -> tuple[list[str], list[float]]:
        """The `classification` signature's `classes` and `scores` for one raw row: the class names in
        output order (multiclass: the K classes of `probabilities`; binary: negative, positive, the
        latter being `probability`'s) and their scores.

        A Predict call on that signature (TF Serving runs classify signatures through Predict too),
        with the row as a tf.Example, for this client's version or label. Raises ModelMetadataError
        when the model has no such signature (regression), RowError for a value the row can't hold,
        ServingClientError when the server refuses.
        """
        metadata = self.model_metadata()
        signature = metadata.signature(CLASSIFICATION)
        if not {CLASSES_OUTPUT, SCORES_OUTPUT} <= set(signature.outputs):
            raise ModelMetadataError(
                f"model {metadata._name()}: {CLASSIFICATION} has outputs {', '.join(sorted(signature.outputs))}, "
                f"not {CLASSES_OUTPUT} and {SCORES_OUTPUT}"
            )
        examples = R.encode_examples([row], metadata.raw_inputs())
        outputs = self._predict_examples(examples, metadata.examples_input(CLASSIFICATION), signature, CLASSIFICATION)
        classes, scores = outputs[CLASSES_OUTPUT][0], outputs[SCORES_OUTPUT][0]
        if not isinstance(classes, list) or not isinstance(scores, list) or len(classes) != len(scores):
            raise ServingClientError(
                "INTERNAL", f"{CLASSIFICATION} answered classes {str(classes)[:200]} for scores {str(scores)[:200]}"
            )
        # A class name that is not UTF-8 shows its bytes escaped, never as a bytes object.
        return [c if isinstance(c, str) else c.decode("utf-8", "backslashreplace") for c in classes], scores

    def predict(self, rows: Iterable[Row]) -> list[Any]:
        """One result per row, in order: a float for a [N] output, a list of K floats for [N, K],
        {output name: value} when the signature has several outputs.

        `rows`: raw feature dicts (CSV strings, JSON values; "", None, NaN or no key
        for missing). Raises RowError before the predict call on a value its
        input's dtype can't hold, ModelMetadataError when the model doesn't fit (see
        there), ServingClientError when the server refuses or fails.
        """
        rows = list(rows)
        if not rows:
            return []  # TF Serving rejects empty batches; nothing to ask
        metadata = self.model_metadata()
        try:
            return self._predict_rows(metadata, rows)
        except ServingClientError as exc:
            # A request built for the version the metadata describes is refused: another
            # version (other inputs or signatures) may have replaced it. Re-read the metadata
            # and, if it changed, ask once more. A client pinned to a version can't see a change.
            if self.version is not None or exc.code not in (400, "INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                raise
            fresh = self.model_metadata(refresh=True)
            if fresh == metadata:
                raise
            return self._predict_rows(fresh, rows)

    def _predict_rows(self, metadata: ModelMetadata, rows: list[Row]) -> list[Any]:
        signature = metadata.signature(self.signature)
        inputs = metadata.raw_inputs()
        if self.signature == PREDICT_RAW:
            outputs = self._predict_raw(R.raw_columns(rows, inputs), inputs, signature)
        else:
            examples = R.encode_examples(rows, inputs)
            input_name = metadata.examples_input(self.signature)
            outputs = self._predict_examples(examples, input_name, signature, self.signature)
        return _per_row(outputs, len(rows))

    @abc.abstractmethod
    def status(self) -> list[dict]:
        """[{"version": int, "state": "AVAILABLE" | ...}] for the model (or its version/label)."""

    def metadata(self) -> dict:
        """{signature name: {"inputs": {name: "DT_..."}, "outputs": {name: "DT_..."}}}, asked afresh."""
        return self.model_metadata(refresh=True).summary()

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the connection; the client is unusable afterwards."""

    @abc.abstractmethod
    def _fetch_metadata(self) -> ModelMetadata: ...

    @abc.abstractmethod
    def _predict_examples(
        self, examples: list[bytes], input_name: str, signature: Signature, signature_name: str
    ) -> dict[str, list]:
        """{output name: one value per row} of signature `signature_name` (`signature`) for serialized tf.Examples."""

    @abc.abstractmethod
    def _predict_raw(
        self, columns: dict[str, list], inputs: Mapping[str, str], signature: Signature
    ) -> dict[str, list]:
        """{output name: one value per row}."""

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


def _per_row(outputs: Mapping[str, list], count: int) -> list[Any]:
    """{output: per-row values} -> per-row results: the value for one output, else {output: value}."""
    if not outputs:
        raise ServingClientError("INTERNAL", "the server returned no outputs")
    for name, values in outputs.items():
        if len(values) != count:
            raise ServingClientError("INTERNAL", f"server returned {len(values)} values of {name} for {count} rows")
    if len(outputs) == 1:
        return list(next(iter(outputs.values())))
    names = sorted(outputs)
    return [{name: outputs[name][i] for name in names} for i in range(count)]


# -- REST ----------------------------------------------------------------------------------------


def rest_predict_body(
    signature: str, examples: list[bytes] | None = None, columns: Mapping[str, list] | None = None
) -> str:
    """The JSON predict body: row format of b64 examples, or columnar raw tensors.

    A single-input signature's row format is a plain list of values. NaN
    markers go out as the JSON literal NaN, which TF Serving accepts.
    """
    if examples is not None:
        body: dict = {
            "signature_name": signature,
            "instances": [{"b64": base64.b64encode(e).decode("ascii")} for e in examples],
        }
    else:
        body = {"signature_name": signature, "inputs": dict(columns or {})}
    return json.dumps(body, allow_nan=True, separators=(",", ":"))


def rest_outputs(payload: Any, signature: Signature) -> dict[str, list]:
    """A REST predict answer's `predictions` (row format) or `outputs` (columnar) as {output: per-row values}.

    TF Serving writes a signature's only output unnamed (a list over rows), several
    outputs by name: `[{name: value}, ...]` in row format, `{name: [...]}` columnar.
    Values of float outputs become floats (JSON may write 1.0 as 1), `{"b64": ...}`
    bytes. Raises ServingClientError (INTERNAL) for another layout.
    """
    only = next(iter(signature.outputs)) if len(signature.outputs) == 1 else "outputs"
    if isinstance(payload, Mapping) and not _is_b64(payload):
        columns = dict(payload)
    elif isinstance(payload, list) and payload and all(isinstance(v, Mapping) and not _is_b64(v) for v in payload):
        names = list(payload[0])
        if any(set(v) != set(names) for v in payload):
            raise ServingClientError("INTERNAL", f"predictions name different outputs per row: {str(payload)[:200]}")
        columns = {name: [v[name] for v in payload] for name in names}
    elif isinstance(payload, list):
        columns = {only: payload}
    else:
        raise ServingClientError("INTERNAL", f"unexpected prediction payload: {str(payload)[:200]}")
    for name, values in columns.items():
        if not isinstance(values, list):
            raise ServingClientError("INTERNAL", f"output {name} is not a list over rows: {str(values)[:200]}")
        info = signature.outputs.get(name)
        is_float = info is None or info.dtype in FLOAT_DTYPES  # unknown: numbers, as predictions are
        columns[name] = [_json_value(v, is_float) for v in values]
    return columns


def _is_b64(value: Mapping) -> bool:
    return len(value) == 1 and "b64" in value


def _json_value(value: Any, is_float: bool) -> Any:
    if isinstance(value, list):
        return [_json_value(v, is_float) for v in value]
    if isinstance(value, Mapping) and _is_b64(value):
        return base64.b64decode(value["b64"])
    if is_float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


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

    def _predict_examples(
        self, examples: list[bytes], input_name: str, signature: Signature, signature_name: str
    ) -> dict[str, list]:
        # Row format of a single-input signature: the input is not named.
        body = rest_predict_body(signature_name, examples=examples)
        return rest_outputs(self._call("POST", ":predict", body).get("predictions"), signature)

    def _predict_raw(
        self, columns: dict[str, list], inputs: Mapping[str, str], signature: Signature
    ) -> dict[str, list]:
        body = rest_predict_body(self.signature, columns=columns)
        return rest_outputs(self._call("POST", ":predict", body).get("outputs"), signature)

    def _fetch_metadata(self) -> ModelMetadata:
        answer = self._call("GET", "/metadata")
        metadata = answer.get("metadata") or {}
        signature_map = (metadata.get("signature_def") or {}).get("signature_def") or {}
        version = _version((answer.get("model_spec") or {}).get("version"))
        return ModelMetadata(self.model, version, _signatures(signature_map))

    def status(self) -> list[dict]:
        statuses = self._call("GET", "").get("model_version_status") or []
        return [{"version": int(s.get("version", 0)), "state": s.get("state", "UNKNOWN")} for s in statuses]

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
    # urllib3 starts it with its connection object ("<urllib3.connection.HTTPConnection object at
    # 0x7f...>: Failed to establish a new connection: ..."): a repr, not a reason.
    return _OBJECT_REPR.sub("", str(getattr(exc, "reason", exc)))


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>:? ?")


# -- gRPC ----------------------------------------------------------------------------------------


class GrpcClient(ServingClient):
    """TF Serving's gRPC PredictionService / ModelService. Loads TensorFlow's protos (~4 s).

    When it is the first to load TensorFlow, TensorFlow's C++ logging is set to fatal errors only
    (TF_CPP_MIN_LOG_LEVEL=3, unless set already): its start-up lines (CUDA probing, oneDNN, CPU
    features) are about a runtime this client doesn't run, and would land on the console of the
    program using it. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
    """

    def __init__(self, target: str, model: str, **kwargs: Any):
        if "tensorflow" not in sys.modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        super().__init__(model, **kwargs)
        self.target = target
        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                *GRPC_RECONNECT_OPTIONS,
            ],
        )
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

    def predict_request(self, inputs: Mapping[str, Any], signature_name: str | None = None) -> Any:
        """A PredictRequest for this client's model spec and the given TensorProtos, for its signature
        or `signature_name`."""
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name or self.signature)
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        return request

    def _predict_examples(
        self, examples: list[bytes], input_name: str, signature: Signature, signature_name: str
    ) -> dict[str, list]:
        return self._predict({input_name: tensor_proto(examples, R.DT_STRING)}, signature_name)

    def _predict_raw(
        self, columns: dict[str, list], inputs: Mapping[str, str], signature: Signature
    ) -> dict[str, list]:
        return self._predict({name: tensor_proto(columns[name], dtype) for name, dtype in inputs.items()})

    def _predict(self, inputs: Mapping[str, Any], signature_name: str | None = None) -> dict[str, list]:
        request = self.predict_request(inputs, signature_name)
        response = self._call(self._prediction.Predict, request)
        if response.model_spec.HasField("version"):
            self.last_version = response.model_spec.version.value
            if self._metadata is not None and self._metadata.version not in (None, self.last_version):
                # Another version answered: the next predict re-reads its metadata (this
                # answer is read from its own tensors, which carry names and shapes).
                self._metadata = None
        return {name: tensor_rows(proto, name) for name, proto in response.outputs.items()}

    def status(self) -> list[dict]:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return [{"version": s.version, "state": state_name(s.state)} for s in response.model_version_status]

    def _fetch_metadata(self) -> ModelMetadata:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" in response.metadata:
            response.metadata["signature_def"].Unpack(signature_map)
        as_json = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        version = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return ModelMetadata(self.model, version, _signatures(as_json.get("signature_def", {})))

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


# TensorProto value fields and tensor_content formats (struct codes) of the dtypes read or written here.
_VALUE_FIELDS = {
    "DT_FLOAT": "float_val",
    "DT_DOUBLE": "double_val",
    "DT_INT32": "int_val",
    "DT_INT64": "int64_val",
    "DT_STRING": "string_val",
    "DT_BOOL": "bool_val",
}
_CONTENT_FORMATS = {"DT_FLOAT": "f", "DT_DOUBLE": "d", "DT_INT32": "i", "DT_INT64": "q", "DT_BOOL": "?"}


def tensor_proto(values: Sequence[Any], dtype: Any) -> Any:
    """A rank-1 TensorProto built field by field (no `tf.make_tensor_proto`, no TF ops).

    `dtype`: DT_FLOAT, DT_INT64 or DT_STRING in any spelling `tfxp.rows.dtype_name` reads.
    """
    from tensorflow.core.framework import tensor_pb2, types_pb2

    dtype = R.dtype_name(dtype)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(dtype))
    proto.tensor_shape.dim.add(size=len(values))
    if dtype == R.DT_STRING:
        values = [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
    getattr(proto, _VALUE_FIELDS[dtype]).extend(values)
    return proto


def tensor_values(proto: Any, name: str = "output") -> tuple[list, tuple[int, ...]]:
    """A TensorProto's values, flat, and its shape: whether packed in tensor_content or not.

    DT_FLOAT as the shortest decimal of each float32 (0.1, as REST answers give it),
    DT_DOUBLE floats, ints, bools, DT_STRING as str (bytes when not UTF-8). Raises
    ServingClientError (INTERNAL) naming `name` for another dtype.
    """
    from tensorflow.core.framework import types_pb2

    dtype = types_pb2.DataType.Name(proto.dtype)
    if dtype not in _VALUE_FIELDS:
        raise ServingClientError("INTERNAL", f"{name} has dtype {dtype}, which this client does not read")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    size = math.prod(shape)
    if proto.tensor_content and dtype in _CONTENT_FORMATS:
        code = _CONTENT_FORMATS[dtype]
        count = len(proto.tensor_content) // struct.calcsize(code)
        values = list(struct.unpack(f"<{count}{code}", proto.tensor_content))
    else:
        values = list(getattr(proto, _VALUE_FIELDS[dtype]))
        # A single repeated value stands for a whole tensor of that value (TensorProto convention).
        values = values * size if len(values) == 1 and size > 1 else values
    if dtype == "DT_FLOAT":
        values = _shortest_float32(values)
    elif dtype == "DT_STRING":
        values = [_text(v) for v in values]
    return values, shape


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def tensor_rows(proto: Any, name: str = "output") -> list:
    """A TensorProto as one value per row (its first dimension): a scalar for [N], a list for [N, K], ...

    Raises ServingClientError (INTERNAL) for a scalar tensor (no rows) or values that don't fill the shape.
    """
    values, shape = tensor_values(proto, name)
    if not shape:
        raise ServingClientError("INTERNAL", f"{name} is a scalar, not one value per row")
    if len(values) != math.prod(shape):
        raise ServingClientError("INTERNAL", f"{name} has {len(values)} values for shape {list(shape)}")
    return _nest(values, shape)


def _nest(values: list, shape: tuple[int, ...]) -> list:
    if len(shape) == 1:
        return values
    step = math.prod(shape[1:])
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def tensor_floats(proto: Any) -> list[float]:
    """A DT_FLOAT/DT_DOUBLE TensorProto's values, flat. Raises ServingClientError for another dtype."""
    from tensorflow.core.framework import types_pb2

    if types_pb2.DataType.Name(proto.dtype) not in ("DT_FLOAT", "DT_DOUBLE"):
        raise ServingClientError("INTERNAL", f"tensor has dtype {types_pb2.DataType.Name(proto.dtype)}, not a float")
    return tensor_values(proto)[0]


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


def route_label(key: str, canary_percent: float, canary: str = "canary", stable: str = "stable") -> str:
    """The version label a request with routing `key` goes to: `canary` for `canary_percent` (0-100) of keys.

    TF Serving does not split traffic itself: clients pick a label per request. The split is a stable
    hash (sha256 of the UTF-8 key, mod 100, not Python's salted hash()), so one key always goes to the
    same label across processes and runs. Raises ValueError when `canary_percent` is outside 0-100.
    """
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary_percent must be 0-100, got {canary_percent}")
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return canary if bucket < canary_percent else stable


def split_by_label(keys: Sequence[str], canary_percent: float) -> dict[str, list[int]]:
    """{label: the positions of the keys routed to it, in order} by `route_label`; labels without keys left out.
    Raises ValueError when `canary_percent` is outside 0-100."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(route_label(key, canary_percent), []).append(index)
    return groups


class LabelRouter:
    """Splits predictions between the versions labelled `canary` and `stable`, as TF Serving expects clients
    to: `canary_percent` (0-100) of route keys go to `canary` (route_label: a stable hash of the key).

    `make_client(label)` opens a client for one label, e.g. `lambda label: RestClient(url, "taxi",
    label=label)`; clients are opened when first needed and closed by `close()`. A batch is sent as one
    request per label (rows grouped by label, answers put back in row order). Raises ValueError for a
    `canary_percent` outside 0-100.
    """

    def __init__(self, make_client: Callable[[str], ServingClient], canary_percent: float):
        route_label("", canary_percent)  # validates
        self.canary_percent = canary_percent
        self._make_client = make_client
        self.clients: dict[str, ServingClient] = {}

    def client(self, label: str) -> ServingClient:
        if label not in self.clients:
            self.clients[label] = self._make_client(label)
        return self.clients[label]

    def predict(self, rows: Sequence[Row], keys: Sequence[str]) -> tuple[list[Any], list[str]]:
        """(one result per row as ServingClient.predict gives it, the label each row went to). Raises
        ValueError when rows and keys differ in length, and what the clients raise."""
        if len(rows) != len(keys):
            raise ValueError(f"{len(rows)} rows but {len(keys)} route keys")
        results: list[Any] = [None] * len(rows)
        labels = [route_label(key, self.canary_percent) for key in keys]
        for label, positions in split_by_label(keys, self.canary_percent).items():
            answers = self.client(label).predict([rows[i] for i in positions])
            for position, answer in zip(positions, answers, strict=True):
                results[position] = answer
        return results, labels

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def __enter__(self) -> LabelRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
