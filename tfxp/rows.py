"""Rows: raw feature values as CSV/JSONL files hold them, typed, with missing markers, and as tf.Examples.

One module for every place that turns rows into model inputs: the serving clients
(`tfxp.serving.client`, `tfxp predict`), the mobile runtime (`tfxp.mobile.runtime`)
and the pipeline's MobilePusher (eval tf.Examples back to rows). A row is a mapping
of column name -> cell: a CSV string, a JSON value, None; "", None, NaN and an
absent key all mean "missing".

Dtypes are named as TF Serving's model metadata names them: DT_FLOAT, DT_INT64,
DT_STRING (`dtype_name` also reads "float32"/"int64"/"string" of model_spec.json
and "float"/"int"/"string" of project.yaml). Dense tensors can't leave a value out,
so each dtype has a missing marker that reads as "absent": MISSING_FLOAT (NaN),
MISSING_INT (-2**63, int64's minimum: outside every domain a CSV column can hold, so a real
-1 or 0 is never read as "missing") and MISSING_STRING ("").

No TensorFlow: importing anything under `tensorflow.core` runs `tensorflow/__init__.py`
and loads the whole runtime (~2-4 s, ~1,600 modules), which `tfxp predict --help`, the
REST client and the TFLite runtime must not pay. tf.Examples are therefore built
with protobuf from a descriptor of tensorflow/core/example/{example,feature}.proto
declared here, in a private descriptor pool (the same message names and field
numbers, so the bytes are tf.Examples; tests/test_rows.py checks them against TF's
`example_pb2`). numpy is not needed either.
"""

from __future__ import annotations

import csv
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DT_FLOAT = "DT_FLOAT"
DT_INT64 = "DT_INT64"
DT_STRING = "DT_STRING"
DTYPES: tuple[str, ...] = (DT_FLOAT, DT_INT64, DT_STRING)

# int64's minimum: exact as a double too (-2**63), so JSON clients and float32 TFLite graphs hold it exactly.
# tfxp init refuses a column holding it.
MISSING_INT = -(2**63)
MISSING_FLOAT = float("nan")
MISSING_STRING = ""
_MISSING: dict[str, int | float | str] = {DT_INT64: MISSING_INT, DT_FLOAT: MISSING_FLOAT, DT_STRING: MISSING_STRING}

# Every spelling of a row dtype this project writes: TF Serving metadata, model_spec.json /
# models.features.DType values, project.yaml, TFDV schema types.
_DTYPE_ALIASES: dict[str, str] = {
    DT_FLOAT: DT_FLOAT,
    "float32": DT_FLOAT,
    "float": DT_FLOAT,
    "FLOAT": DT_FLOAT,
    DT_INT64: DT_INT64,
    "int64": DT_INT64,
    "int": DT_INT64,
    "INT": DT_INT64,
    DT_STRING: DT_STRING,
    "string": DT_STRING,
    "bytes": DT_STRING,
    "BYTES": DT_STRING,
}
# As error messages name them for people writing CSV files.
_SHOWN = {DT_FLOAT: "float32", DT_INT64: "int64", DT_STRING: "string"}

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Row = Mapping[str, Any]


class RowError(ValueError):
    """A row value that cannot be read as its input's dtype; names the row (0-based) and column."""


def dtype_name(dtype: Any) -> str:
    """DT_FLOAT, DT_INT64 or DT_STRING for a dtype in any spelling of `_DTYPE_ALIASES`.

    Also takes enums whose `.value` is such a spelling (`tfxp.models.features.DType`).
    Raises ValueError naming the dtype for anything else (e.g. DT_BOOL, DT_DOUBLE:
    no row value is read as those).
    """
    key = getattr(dtype, "value", dtype)
    try:
        return _DTYPE_ALIASES[key]
    except (KeyError, TypeError):
        raise ValueError(f"unsupported row dtype {dtype!r}: rows hold {', '.join(DTYPES)}") from None


def missing_marker(dtype: Any) -> int | float | str:
    """The value a dense input holds for "missing": -2**63 (DT_INT64), NaN (DT_FLOAT), "" (DT_STRING)."""
    return _MISSING[dtype_name(dtype)]


def parse_value(value: Any, dtype: Any) -> int | float | str | None:
    """One raw cell as a Python value of `dtype`; None when missing ("", blanks, None, NaN).

    `value`: a CSV string, a JSON value (number, string, null) or UTF-8 bytes.
    DT_INT64 takes "300" and "300.0" (exported CSVs write ints so), not "3.5"
    (it would be silently truncated) nor booleans, within int64.
    DT_FLOAT takes any float text Python reads ("1e5", "inf"); NaN is missing.
    DT_STRING takes any value as its text. Raises ValueError (or TypeError) saying why.
    """
    dtype = dtype_name(dtype)
    if isinstance(value, bytes):
        value = value.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if dtype == DT_STRING:
        return value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if dtype == DT_FLOAT:
        number = float(value)
        return None if math.isnan(number) else number
    return _parse_int(value)


def _parse_int(value: Any) -> int | None:
    number: int | None = value if isinstance(value, int) else None
    if number is None:
        try:
            number = int(value) if isinstance(value, str) else None
        except ValueError:
            number = None
    if number is None:
        real = float(value)
        if math.isnan(real):
            return None
        if not real.is_integer():  # also refuses inf
            raise ValueError(f"{value!r} is not an integer")
        number = int(real)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{value!r} is out of int64 range")
    if number == MISSING_INT:
        raise ValueError(f"{value!r} is int64's minimum, the int missing marker: write the cell empty for missing")
    return number


def row_value(row: Row, name: str, dtype: Any, index: int = 0) -> int | float | str | None:
    """`parse_value` of `row[name]` (None when the row has no such key).

    Raises RowError naming the row and column for a bad value; ValueError for an unsupported `dtype`.
    """
    dtype = dtype_name(dtype)  # outside the try: a bad dtype is the caller's error, not the row's
    value = row.get(name)
    try:
        return parse_value(value, dtype)
    except (TypeError, ValueError) as exc:
        raise RowError(f"row {index}: {name}: cannot read {value!r} as {_SHOWN[dtype]} ({exc})") from None


def raw_columns(rows: Sequence[Row], inputs: Mapping[str, Any]) -> dict[str, list]:
    """Rows as dense raw inputs (TF Serving `predict_raw`, TFLite): one list per input, in `inputs` order.

    `inputs`: {input name: dtype}. Each list has one Python value per row (int,
    float or str), missing values as the dtype's marker. Columns of a row that
    are not inputs (the label, ids) are ignored. Raises RowError.
    """
    columns: dict[str, list] = {}
    for name, dtype in inputs.items():
        dtype = dtype_name(dtype)
        marker = _MISSING[dtype]
        column = []
        for index, row in enumerate(rows):
            value = row_value(row, name, dtype, index)
            column.append(marker if value is None else value)
        columns[name] = column
    return columns


# -- tf.Example, TF-free ----------------------------------------------------------------------


def _example_class() -> type:
    """tensorflow.Example, from a descriptor declared here (see the module docstring)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    Field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="tfxp/rows/example.proto", package="tensorflow", syntax="proto3")

    def message(container: Any, name: str, *fields: tuple[str, int, int, int, str]) -> Any:
        proto = container.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:  # scalar fields have none (an empty one would be read as a type named "")
                field.type_name = type_name
        return proto

    repeated, optional = Field.LABEL_REPEATED, Field.LABEL_OPTIONAL
    message(file.message_type, "BytesList", ("value", 1, Field.TYPE_BYTES, repeated, ""))
    # Numbers are packed, as feature.proto declares them ([packed = true]; proto3's default too).
    for name, kind in (("FloatList", Field.TYPE_FLOAT), ("Int64List", Field.TYPE_INT64)):
        message(file.message_type, name, ("value", 1, kind, repeated, "")).field[0].options.packed = True
    feature = message(
        file.message_type,
        "Feature",
        ("bytes_list", 1, Field.TYPE_MESSAGE, optional, ".tensorflow.BytesList"),
        ("float_list", 2, Field.TYPE_MESSAGE, optional, ".tensorflow.FloatList"),
        ("int64_list", 3, Field.TYPE_MESSAGE, optional, ".tensorflow.Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message(
        file.message_type, "Features", ("feature", 1, Field.TYPE_MESSAGE, repeated, ".tensorflow.Features.FeatureEntry")
    )
    entry = message(
        features.nested_type,
        "FeatureEntry",
        ("key", 1, Field.TYPE_STRING, optional, ""),
        ("value", 2, Field.TYPE_MESSAGE, optional, ".tensorflow.Feature"),
    )
    entry.options.map_entry = True  # map<string, Feature> feature = 1
    message(file.message_type, "Example", ("features", 1, Field.TYPE_MESSAGE, optional, ".tensorflow.Features"))

    # A private pool: TensorFlow, when loaded too, registers its own tensorflow.Example in the default one.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tensorflow.Example"))


_EXAMPLE: type | None = None


def example_class() -> Any:
    """The protobuf class of tensorflow.Example (TF-free; built once). Its bytes are TF's tf.Example."""
    global _EXAMPLE
    if _EXAMPLE is None:
        _EXAMPLE = _example_class()
    return _EXAMPLE


def encode_example(row: Row, features: Mapping[str, Any], index: int = 0) -> bytes:
    """A raw row as a serialized tf.Example with one feature per entry of `features` ({name: dtype}).

    A missing value is a present-but-empty feature, as CsvExampleGen writes blank
    cells: `tf.io.parse_example` reads it as absent for a VarLenFeature (optional)
    and refuses it for a FixedLenFeature without default (required). Columns of
    the row not in `features` (the label, unknown ones) are left out. Map keys are
    written sorted (deterministic bytes). Raises RowError on a value its dtype
    can't hold (an int beyond int64, a finite float beyond float32).
    """
    example = example_class()()
    entries = example.features.feature
    for name, dtype in features.items():
        dtype = dtype_name(dtype)
        value = row_value(row, name, dtype, index)
        feature = entries[name]
        if value is None:
            feature.SetInParent()
        elif isinstance(value, str):  # DT_STRING: parse_value gives str for strings only
            feature.bytes_list.value.append(value.encode("utf-8"))
        elif dtype == DT_FLOAT and isinstance(value, float):
            if math.isfinite(value) and not _fits_float32(value):
                # protobuf would store inf: not the value the row says.
                raise RowError(f"row {index}: {name}: {value!r} is out of float32 range")
            feature.float_list.value.append(value)
        else:
            feature.int64_list.value.append(value)
    return example.SerializeToString(deterministic=True)


def _fits_float32(value: float) -> bool:
    """Whether a finite double rounds to a finite float32."""
    try:
        struct.pack("<f", value)
    except OverflowError:
        return False
    return True


def encode_examples(rows: Sequence[Row], features: Mapping[str, Any]) -> list[bytes]:
    """Serialized tf.Examples, one per row (see `encode_example`)."""
    return [encode_example(row, features, index) for index, row in enumerate(rows)]


def decode_example(data: bytes) -> dict[str, list]:
    """A serialized tf.Example as {feature name: values}, by name: bytes (bytes_list), float or int.

    A present-but-empty feature gives []. Raises ValueError when `data` is not a tf.Example.
    """
    from google.protobuf.message import DecodeError

    try:
        example = example_class().FromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a serialized tf.Example ({exc})") from None
    decoded = {}
    for name, feature in sorted(example.features.feature.items()):  # map order is unspecified
        kind = feature.WhichOneof("kind")
        decoded[name] = list(getattr(feature, kind).value) if kind else []
    return decoded


def example_row(data: bytes) -> dict[str, str]:
    """A serialized tf.Example back as the CSV row it came from: one string cell per feature, "" when empty.

    Floats are written exactly (`repr` of the stored float32 value as a double),
    so `parse_value` reads back the value the example holds; bytes are decoded as
    UTF-8 (invalid bytes replaced). Only the first value of a multi-valued feature is kept.
    """
    row = {}
    for name, values in decode_example(data).items():
        if not values:
            row[name] = ""
            continue
        value = values[0]
        if isinstance(value, bytes):
            row[name] = value.decode("utf-8", "replace")
        else:
            row[name] = repr(value) if isinstance(value, float) else str(value)
    return row


# -- rows files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowsFile:
    """A rows file: `rows` (one dict per row) and `columns` (the CSV header, or every key
    some JSONL object has, in order of first appearance)."""

    path: Path
    rows: list[dict]
    columns: tuple[str, ...]


class MissingColumnsError(ValueError):
    """A rows file has no column for some model inputs (raised before any prediction).

    `missing`: every such input; `required`/`optional`: the split of `missing`.
    `optional_known` False: the model does not say which inputs are optional (TF
    Serving metadata doesn't), so every missing input is listed as `optional` and
    the message does not split them.
    """

    def __init__(self, path: Path, required: Sequence[str], optional: Sequence[str], optional_known: bool = True):
        self.path = path
        self.required, self.optional = list(required), list(optional)
        self.missing = self.required + self.optional
        self.optional_known = optional_known
        message = f"{path} has no column for the model inputs {', '.join(self.missing)}"
        if optional_known:
            parts = [
                f"required: {', '.join(self.required)}" if self.required else "",
                f"optional: {', '.join(self.optional)}" if self.optional else "",
            ]
            message += f" ({'; '.join(p for p in parts if p)})"
        super().__init__(message)


def read_rows(path: str | Path) -> list[dict]:
    """Rows from a `.csv` (header row; cells stay strings) or `.jsonl` (one object per line)."""
    return read_rows_file(path).rows


def read_rows_file(path: str | Path) -> RowsFile:
    """`read_rows` with the file's columns.

    Raises ValueError naming file:line for a CSV line whose cell count differs from
    the header's (csv.DictReader would fill the gap with None, i.e. silently missing
    values), a repeated header name, invalid JSON or a JSONL line that is not an
    object, and for a file that is neither .csv nor .jsonl; UnicodeDecodeError for
    bytes that are not UTF-8; csv.Error for malformed quoting; OSError if unreadable.
    """
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
            rows.append(dict(zip(header, cells, strict=True)))
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


def check_columns(
    rows_file: RowsFile,
    inputs: Sequence[str],
    optional: Iterable[str] | None = (),
    allow_missing_optional: bool = False,
) -> None:
    """Refuses a rows file that has no column for some model `inputs`.

    A file without a column for an input (a CSV header of `foo,bar`, a typo in a
    name) would otherwise be read as "missing in every row" and answered.
    `optional` inputs may be absent only with `allow_missing_optional`; required
    ones never. `optional=None`: the model does not say which inputs are optional,
    so with `allow_missing_optional` any may be absent and the model itself refuses
    rows missing a required one. A JSONL row may still omit a key its file has
    elsewhere (read as missing in that row). Raises MissingColumnsError.
    """
    absent = [name for name in inputs if name not in rows_file.columns]
    if optional is None:
        if absent and not allow_missing_optional:
            raise MissingColumnsError(rows_file.path, [], absent, optional_known=False)
        return
    optional = set(optional)
    required = [name for name in absent if name not in optional]
    refused_optional = [] if allow_missing_optional else [name for name in absent if name in optional]
    if required or refused_optional:
        raise MissingColumnsError(rows_file.path, required, refused_optional)
