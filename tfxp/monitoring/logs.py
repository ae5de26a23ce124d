"""Request logs back to raw rows: PredictionLog TFRecords (TF Serving's format, `tfxp serve --request-log`).

A log folder holds TFRecord files of `PredictionLog`s, read oldest file first. A record's time is its
`log_metadata.timestamp_secs` (TF Serving's LogMetadata; `tfxp serve` sets it); a record without one
takes its file's time: the start time in the name `tfxp serve` gives its files
(tfxp.serving.request_log), else the file's modification time (files written by a proxy or clients).

Per record (`LoggedRequest`): the model, the version that answered, the raw rows of the request and the
model's answer per row, and whether the server refused it (the logger writes a refused request with a
response that has no outputs). Rows come back from every request kind: Predict with serialized
tf.Examples (`serving_default`) or one tensor per column (`predict_raw`), Classify, Regress and
MultiInference (tf.Examples). A value equal to `predict_raw`'s missing marker (NaN, "", int64's minimum:
tfxp.rows) is missing, as the model reads it.

The TFRecord framing (length, masked CRC32C, data, masked CRC32C) is read here, not by TensorFlow, so a
truncated file or a corrupt record is counted and skipped instead of ending the pass.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tfxp.monitoring.reference import OUTPUTS
from tfxp.rows import MISSING_INT

# `tfxp serve`'s name for a log file (tfxp.serving.request_log.file_start_time reads it).
_PREFIX = "prediction_log-"


@dataclass
class LoggedRequest:
    """One logged request. `rows`: {column: value or None}, values typed (str, int, float);
    `predictions`: one per row (float probability/value, or the class name for multiclass) when the
    response carries them, else empty; `refused`: the server answered with an error; `time`: epoch
    seconds from the record's log_metadata, None when it has none."""

    model: str
    version: int | None
    signature: str
    rows: list[dict] = field(default_factory=list)
    predictions: list = field(default_factory=list)
    refused: bool = False
    time: float | None = None


class CorruptRecord(ValueError):
    """A TFRecord that fails its checksum, or a file that ends inside a record."""


def file_time(path: str) -> float:
    """Epoch seconds of a log file: the start time in its name when `tfxp serve` wrote it, else its mtime."""
    from tfxp.serving.request_log import file_start_time

    started = file_start_time(os.path.basename(path))
    return started if started is not None else os.path.getmtime(path)


def log_files(directory: str) -> list[tuple[float, str]]:
    """(time, path) of every regular file under `directory` (recursively, dot-files skipped), oldest first.
    Raises FileNotFoundError when `directory` does not exist."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(directory)
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith("."):
                path = os.path.join(root, name)
                found.append((file_time(path), path))
    return sorted(found)


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str) -> Iterator[bytes | CorruptRecord]:
    """The records of one TFRecord file (uncompressed, as the logger writes them); a CorruptRecord in
    place of each record that can't be trusted. A bad length ends the file (nothing after it can be
    framed); a bad data checksum skips that record only."""
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                yield CorruptRecord("ends inside a record header (truncated, or not a TFRecord file)")
                return
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                yield CorruptRecord("a record length fails its checksum (not a TFRecord file, or corrupt)")
                return
            data, footer = f.read(length), f.read(4)
            if len(data) < length or len(footer) < 4:
                yield CorruptRecord("ends inside a record (truncated)")
                return
            if _masked_crc(data) != struct.unpack("<I", footer)[0]:
                yield CorruptRecord("a record fails its checksum (corrupt)")
                continue
            yield data


# (model, version) -> (task, classes) of that version, None when its answers can't be read.
OutputOf = Callable[[str, int | None], tuple[str, tuple[str, ...]] | None]


def parse(record: bytes, outputs: OutputOf) -> LoggedRequest:
    """A serialized PredictionLog as a LoggedRequest. `outputs(model, version)`: the version's task
    (binary, multiclass or regression) and its label's classes, or None when its answers can't be read.
    Raises ValueError for a record that is not a PredictionLog of a Predict, Classify, Regress or
    MultiInference request."""
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    try:
        log = prediction_log_pb2.PredictionLog.FromString(record)
    except DecodeError as exc:
        raise ValueError(f"not a PredictionLog ({exc})") from None
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = _predict(log.predict_log, outputs)
    elif kind in ("classify_log", "regress_log", "multi_inference_log"):
        request = _examples_request(getattr(log, kind), kind, outputs)
    else:
        raise ValueError(
            f"a PredictionLog of kind {kind or 'none'}: only Predict, Classify, Regress and MultiInference"
        )
    request.time = float(log.log_metadata.timestamp_secs) or None
    return request


def _spec(request, response) -> tuple[str, int | None, str]:
    spec = response.model_spec if response.model_spec.name else request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return spec.name or request.model_spec.name, version, spec.signature_name or request.model_spec.signature_name


def _predict(log, outputs) -> LoggedRequest:
    from tfxp.serving.tensors import to_ndarray

    name, version, signature = _spec(log.request, log.response)
    inputs = {key: to_ndarray(proto) for key, proto in log.request.inputs.items()}
    if len(inputs) == 1 and next(iter(inputs.values())).dtype == object and signature != "predict_raw":
        rows = [_example_row_bytes(value) for value in next(iter(inputs.values())).reshape(-1)]
    else:
        rows = _column_rows(inputs)
    refused = len(log.response.outputs) == 0
    predictions = [] if refused else _predict_answers(log.response.outputs, outputs(name, version))
    return LoggedRequest(name, version, signature, rows, predictions, refused)


def _column_rows(inputs: dict) -> list[dict]:
    columns = {key: value.reshape(-1) for key, value in inputs.items()}
    count = min((len(v) for v in columns.values()), default=0)
    return [{key: _value(values[i]) for key, values in columns.items()} for i in range(count)]


def _value(value) -> object:
    """A numpy scalar as a typed Python value, None for a missing marker."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace") or None
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace") or None
    if isinstance(item, float) and math.isnan(item):
        return None
    if isinstance(item, int) and not isinstance(item, bool) and item == MISSING_INT:
        return None
    return item


def _example_row_bytes(data: bytes) -> dict:
    from tfxp.rows import example_class

    return _example_row(example_class().FromString(data))


def _example_row(example, context=None) -> dict:
    row = {}
    for source in (context, example):
        if source is None:
            continue
        for name, feature in source.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = getattr(feature, kind).value if kind else ()
            row[name] = _value(values[0]) if len(values) else None
    return row


def _predict_answers(tensors, output: tuple[str, tuple[str, ...]] | None) -> list:
    from tfxp.serving.tensors import to_ndarray

    if output is None:
        return []
    task, classes = output
    key = OUTPUTS[task]
    if key not in tensors:
        return []  # an output_filter left the answer out
    values = to_ndarray(tensors[key])
    if task == "multiclass":
        return [classes[int(i)] if int(i) < len(classes) else None for i in values.reshape(len(values), -1).argmax(1)]
    return [float(v) for v in values.reshape(-1)]


def _examples_request(log, kind: str, outputs) -> LoggedRequest:
    name, version, signature = _spec(log.request, log.response)
    which = log.request.input.WhichOneof("kind")
    rows = []
    if which == "example_list":
        rows = [_example_row(e) for e in log.request.input.example_list.examples]
    elif which == "example_list_with_context":
        data = log.request.input.example_list_with_context
        rows = [_example_row(e, data.context) for e in data.examples]
    response = log.response
    if kind == "multi_inference_log":
        refused = len(response.results) == 0
        results = [r for r in response.results if r.WhichOneof("result")]
        first = getattr(results[0], results[0].WhichOneof("result")) if results else None
        answers = _result_answers(first, outputs(name, version)) if first is not None and not refused else []
    else:
        refused = not response.HasField("result")
        answers = [] if refused else _result_answers(response.result, outputs(name, version))
    return LoggedRequest(name, version, signature, rows, answers, refused)


def _result_answers(result, output: tuple[str, tuple[str, ...]] | None) -> list:
    """Answers of a ClassificationResult or RegressionResult in the prediction's terms."""
    if output is None:
        return []
    task, classes = output
    if hasattr(result, "classifications"):
        answers = []
        for classification in result.classifications:
            scores = {c.label: c.score for c in classification.classes}
            if not scores:
                answers.append(None)
            elif task == "binary" and classes:
                answers.append(scores.get(classes[-1]))
            else:
                answers.append(max(scores, key=scores.get))
        return answers
    return [r.value for r in result.regressions] if task != "multiclass" else []
