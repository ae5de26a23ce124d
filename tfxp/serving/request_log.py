"""Sampled request logging as `PredictionLog` TFRecords (TF Serving's format).

Open-source TF Serving registers no log collector, so its logging config is inert; here a sampled
fraction of requests is written, with their responses, to TFRecord files of
`tensorflow.serving.PredictionLog` records (`tensorflow_serving/apis/prediction_log.proto`), for
skew and drift analysis (`tfxp monitor`, `tfxp/monitoring/logs.py`).

What a record holds (the contract the monitor reads):
- one of `predict_log`, `classify_log`, `regress_log`, `multi_inference_log`: the request as the
  model ran it (its `model_spec` with the model name, the version that answered and the signature
  name; Predict's `inputs` as decoded tensors, Classify/Regress/MultiInference's
  `input.example_list.examples` as tf.Examples; REST's JSON examples as the tf.Examples the model
  ran; gRPC's example_list_with_context as each example merged with the context, the example's
  features winning, as TF Serving runs them) and the response TF Serving would send;
- `log_metadata`, as TF Serving's RequestLogger writes it: `model_spec` (name, version,
  signature_name; MultiInference: name and version only, its tasks name their signatures) and
  `sampling_config.sampling_rate`; also LogMetadata's `timestamp_secs` (the second the record was
  written).
- **Refused requests**: a request that resolved a version and was then refused with an error
  (its inputs could not be decoded for the signature, the signature is unknown or misshapen, the
  model refused a value, the deadline passed) is logged, when sampled, with the request as far as it
  was decoded (the inputs or examples if decoded, else only its `model_spec`) and a response that
  has `model_spec` set and NO outputs (Predict: empty `outputs`; Classify/Regress: no `result`;
  MultiInference: no `results`). A response without outputs is the refusal marker. (So a Predict
  on a signature that has no outputs at all would read as refused.)
  Requests that never resolved a version (no or unknown model name, unknown version or label)
  are not logged: there is no version to charge them to.

Files: `prediction_log-<UTC start %Y%m%dT%H%M%S.mmmZ>-<pid>-<seq>.tfrecord` (FILE_NAME_PATTERN,
`file_start_time`), the start being when the file's first record was written; a file is closed
and a new one started once it holds `max_records_per_file` records or is `rotate_seconds` old
(checked at each write). Each record is flushed as written, so a concurrent reader sees every
complete record; a file being written is never renamed. Readers window records by their file's
start time: a record was written within `rotate_seconds` of it.

Logging never changes an answer: a record that can't be built or written is reported through
`logging` (at most once a minute) and counted in `RequestLogger.failures`, never raised.
"""

from __future__ import annotations

import calendar
import functools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tfxp.serving.servable import CLASSIFY_METHOD
from tfxp.serving.tensors import varint

log = logging.getLogger(__name__)

FILE_PREFIX = "prediction_log-"
FILE_SUFFIX = ".tfrecord"
# prediction_log-20261204T223015.123Z-4242-0.tfrecord: UTC start to the millisecond, pid, sequence.
FILE_NAME_PATTERN = re.compile(
    r"^prediction_log-(?P<start>\d{8}T\d{6})\.(?P<ms>\d{3})Z-(?P<pid>\d+)-(?P<seq>\d+)\.tfrecord$"
)
_START_FORMAT = "%Y%m%dT%H%M%S"
DEFAULT_ROTATE_SECONDS = 60.0
DEFAULT_MAX_RECORDS_PER_FILE = 10_000
FAILURE_REPORT_SECONDS = 60.0  # at most one log line per this many seconds about records not written


def file_name(start: float, pid: int, sequence: int) -> str:
    """The log file name for a file started at `start` (epoch seconds) by process `pid`."""
    millis = int(round(start * 1000))
    seconds, ms = divmod(millis, 1000)
    return f"{FILE_PREFIX}{time.strftime(_START_FORMAT, time.gmtime(seconds))}.{ms:03d}Z-{pid}-{sequence}{FILE_SUFFIX}"


def file_start_time(name: str) -> float | None:
    """Epoch seconds (to the millisecond) at which a request-log file was started, from its name.

    `name` may be a path; its last component is parsed. None when it is not a request-log file
    name (FILE_NAME_PATTERN) or names no real time.
    """
    match = FILE_NAME_PATTERN.match(os.path.basename(name))
    if match is None:
        return None
    try:
        parsed = time.strptime(match["start"], _START_FORMAT)
    except ValueError:  # e.g. month 13: the pattern checks digits, not dates
        return None
    return calendar.timegm(parsed) + int(match["ms"]) / 1000


class RequestLogger:
    """Writes sampled `PredictionLog` records to rotating TFRecord files in `directory` (thread-safe).

    `sampling_rate` in [0, 1] (ValueError otherwise) is each request's chance of being logged;
    `rotate_seconds` > 0 and `max_records_per_file` >= 1 bound each file (ValueError otherwise).
    """

    def __init__(
        self,
        directory: str,
        sampling_rate: float,
        max_records_per_file: int = DEFAULT_MAX_RECORDS_PER_FILE,
        rotate_seconds: float = DEFAULT_ROTATE_SECONDS,
    ):
        if not 0.0 <= sampling_rate <= 1.0:
            raise ValueError("sampling rate must be within [0, 1]")
        if max_records_per_file < 1:
            raise ValueError("max_records_per_file must be at least 1")
        if not rotate_seconds > 0:
            raise ValueError("rotate_seconds must be positive")
        self._dir = directory
        self.sampling_rate = sampling_rate
        self._max = max_records_per_file
        self._rotate_seconds = rotate_seconds
        self._lock = threading.Lock()
        self._writer = None
        self._closed = False
        self._count = 0
        self._opened = 0.0  # time.monotonic() of the current file's first record
        self._sequence = 0
        self._random = random.Random()
        self._reported_at: float | None = None  # time.monotonic() of the last failure logged
        self.failures = 0  # records that could not be built or written
        os.makedirs(directory, exist_ok=True)

    def sampled(self) -> bool:
        return self.sampling_rate > 0 and self._random.random() < self.sampling_rate

    def log(self, build: Callable[[], bytes]) -> None:
        """Samples one request; if sampled, writes `build()` (a serialized PredictionLog) with its
        log_metadata's sampling_config and timestamp_secs set. Never raises: a failure is logged and
        counted."""
        if not self.sampled():
            return
        try:
            record = build() + _log_metadata_wire(self.sampling_rate, int(time.time()))
            self._write(record)
        except Exception as exc:  # noqa: BLE001 - a log record must never fail the request it records
            self._failed(exc)

    def write(self, prediction_log) -> None:
        """Writes one `prediction_log_pb2.PredictionLog` as is, flushed. Raises OSError (tf.errors) on
        a write failure."""
        self._write(prediction_log.SerializeToString())

    def _write(self, record: bytes) -> None:
        with self._lock:
            if self._closed:  # a request still running as the server stops: no new file after close()
                raise ValueError("the request log is closed")
            if self._writer is None or self._count >= self._max or self._expired():
                self._rotate()
            self._writer.write(record)
            self._writer.flush()
            self._count += 1

    def _expired(self) -> bool:
        return time.monotonic() - self._opened >= self._rotate_seconds

    def _rotate(self) -> None:
        import tensorflow as tf

        self._close_writer()
        start = time.time()
        path = os.path.join(self._dir, file_name(start, os.getpid(), self._sequence))
        while os.path.exists(path):  # a clock set back: TFRecordWriter would truncate the old file
            self._sequence += 1
            path = os.path.join(self._dir, file_name(start, os.getpid(), self._sequence))
        self._sequence += 1
        self._writer = tf.io.TFRecordWriter(path)
        self._opened = time.monotonic()
        self._count = 0

    def _close_writer(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def _failed(self, exc: Exception) -> None:
        """Counts a failure; logs it if none was logged in the last FAILURE_REPORT_SECONDS (a full disk
        fails every request: one line a minute, with the count, instead of one per request)."""
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            failures = self.failures
            due = self._reported_at is None or now - self._reported_at >= FAILURE_REPORT_SECONDS
            if due:
                self._reported_at = now
        if due:
            log.error(
                "request log record not written (the request was answered; %d records lost so far): %s: %s",
                failures,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )

    def close(self) -> None:
        """Closes the current file; records logged afterwards are counted as failures, not written."""
        with self._lock:
            self._closed = True
            self._close_writer()


# -- records -----------------------------------------------------------------------------------
@dataclass
class LoggedRequest:
    """What a request's record holds so far, filled in as the data plane resolves and decodes it.

    `version` is the version that answered; `request` the decoded inputs ({alias: array}, Predict)
    or serialized tf.Examples (a sequence of bytes, Classify/Regress/MultiInference), None until
    decoded.
    """

    name: str
    version: int
    signature_name: str
    request: object = None


@dataclass(frozen=True)
class LoggedTask:
    """A MultiInference task as logged: its model name, signature name and method name."""

    name: str
    signature_name: str
    method_name: str


def predict_log(logged: LoggedRequest, outputs: Mapping[str, object] | None) -> bytes:
    """A serialized PredictionLog with `predict_log`: the decoded inputs (if any) and `outputs` ({alias: array});
    `outputs` None is a refusal: a response with `model_spec` and no outputs."""
    from tensorflow_serving.apis import prediction_log_pb2

    from tfxp.serving.tensors import to_tensor_proto

    record = prediction_log_pb2.PredictionLog()
    _fill_spec(record.log_metadata.model_spec, logged)
    request, response = record.predict_log.request, record.predict_log.response
    request.model_spec.CopyFrom(record.log_metadata.model_spec)
    response.model_spec.CopyFrom(record.log_metadata.model_spec)
    for key, value in (logged.request or {}).items():
        to_tensor_proto(value, request.inputs[key])
    for key, value in (outputs or {}).items():
        to_tensor_proto(value, response.outputs[key])
    return record.SerializeToString()


def classify_log(logged: LoggedRequest, classifications: Sequence[Sequence[tuple[str, float]]] | None) -> bytes:
    """A serialized PredictionLog with `classify_log`: the examples (if decoded) and, per example, its
    [(label, score), ...]; `classifications` None is a refusal (a response without `result`)."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    _fill_spec(record.log_metadata.model_spec, logged)
    request, response = record.classify_log.request, record.classify_log.response
    request.model_spec.CopyFrom(record.log_metadata.model_spec)
    response.model_spec.CopyFrom(record.log_metadata.model_spec)
    if classifications is not None:
        fill_classifications(response.result, classifications)
    return record.SerializeToString() + _request_input_wire("classify_log", logged.request)


def regress_log(logged: LoggedRequest, regressions: Sequence[float] | None) -> bytes:
    """A serialized PredictionLog with `regress_log`: the examples (if decoded) and one value per example;
    `regressions` None is a refusal (a response without `result`)."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    _fill_spec(record.log_metadata.model_spec, logged)
    request, response = record.regress_log.request, record.regress_log.response
    request.model_spec.CopyFrom(record.log_metadata.model_spec)
    response.model_spec.CopyFrom(record.log_metadata.model_spec)
    if regressions is not None:
        fill_regressions(response.result, regressions)
    return record.SerializeToString() + _request_input_wire("regress_log", logged.request)


def multi_inference_log(logged: LoggedRequest, tasks: Sequence[LoggedTask], results: Sequence[object] | None) -> bytes:
    """A serialized PredictionLog with `multi_inference_log`: the tasks (the answering version on each task that
    names the logged model), the examples (if decoded) and one result per task (classifications or
    regressions, by the task's method); `results` None is a refusal (a response without `results`).
    `log_metadata.model_spec` has the model name and version, no signature (each task has its own)."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    _fill_spec(record.log_metadata.model_spec, LoggedRequest(logged.name, logged.version, ""))
    request, response = record.multi_inference_log.request, record.multi_inference_log.response
    for task in tasks:
        item = request.tasks.add(method_name=task.method_name)
        item.model_spec.name = task.name
        if task.name == logged.name:
            item.model_spec.version.value = logged.version
        if task.signature_name:
            item.model_spec.signature_name = task.signature_name
    for item, task, value in zip(request.tasks, tasks, results or (), strict=results is not None):
        out = response.results.add()
        out.model_spec.CopyFrom(item.model_spec)
        if task.method_name == CLASSIFY_METHOD:
            fill_classifications(out.classification_result, value)
        else:
            fill_regressions(out.regression_result, value)
    return record.SerializeToString() + _request_input_wire("multi_inference_log", logged.request)


def fill_classifications(result_proto, rows: Sequence[Sequence[tuple[str, float]]]) -> None:
    """ClassificationResult from per-example [(label, score), ...]."""
    for row in rows:
        classifications = result_proto.classifications.add()
        for label, score in row:
            classifications.classes.add(label=label, score=score)


def fill_regressions(result_proto, values: Sequence[float]) -> None:
    """RegressionResult from one value per example."""
    for value in values:
        result_proto.regressions.add(value=value)


def _fill_spec(target, logged: LoggedRequest) -> None:
    target.name = logged.name
    target.version.value = logged.version
    if logged.signature_name:
        target.signature_name = logged.signature_name


# The examples go into a record as bytes: protobuf's wire format merges a message's fields given
# twice, so PredictionLog bytes followed by `classify_log { request { input { example_list {...} } } }`
# parse as one record with the examples in it. Parsing them into messages to serialize them again
# made a 1,000-example Classify record cost 27 ms; this way it costs 4.3 ms (measured on this machine).
def _request_input_wire(kind: str, serialized: Sequence[bytes] | None) -> bytes:
    """`<kind>.request.input.example_list.examples` as PredictionLog wire bytes (b"" for None).

    A context+example concatenation (gRPC's example_list_with_context) is one example whose
    parse merges the two, the example's features winning: the example TF Serving ran."""
    if serialized is None:
        return b""
    *outer, examples = _field_numbers(kind, "request", "input", "example_list", "examples")
    wire = b"".join(_length_delimited(examples, bytes(e)) for e in serialized)
    for number in reversed(outer):
        wire = _length_delimited(number, wire)
    return wire


@functools.cache
def _field_numbers(*path: str) -> tuple[int, ...]:
    """The field numbers along a path of field names from PredictionLog, read from the protos."""
    from tensorflow_serving.apis import prediction_log_pb2

    descriptor, numbers = prediction_log_pb2.PredictionLog.DESCRIPTOR, []
    for name in path:
        field = descriptor.fields_by_name[name]
        numbers.append(field.number)
        descriptor = field.message_type
    return tuple(numbers)


def _log_metadata_wire(sampling_rate: float, timestamp_secs: int) -> bytes:
    """`log_metadata { sampling_config { sampling_rate } timestamp_secs }` as PredictionLog wire bytes."""
    from tensorflow_serving.apis import logging_pb2

    metadata = logging_pb2.LogMetadata(timestamp_secs=timestamp_secs)
    metadata.sampling_config.sampling_rate = sampling_rate
    return _length_delimited(_field_numbers("log_metadata")[0], metadata.SerializeToString())


def _length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload
