"""CsvExampleGen with its CSV parsing and tf.Example encoding in C++: TFX's component, a faster executor.

TFX 1.16's CsvExampleGen turns each CSV line into a `tf.train.Example` in Python
(~3,700 rows/s on one core here: 406 s for 1.5M rows) and then reshuffles every
example through Beam, which the in-memory DirectRunner holds in RAM. This
executor keeps the component (spec, node id, driver, so spans, versions,
caching and the output artifact are TFX's) and produces the same records
faster, in two Beam passes over blocks of rows rather than rows:

1. A profile of the files (`ProfileCsv`): row count and column types, by
   tfx_bsl's `ColumnTypeInferrer` rules evaluated on Apache Arrow arrays
   (`infer_column_type`). A column is INT when every non-empty cell is an int64
   integer, FLOAT when every cell is a number, STRING otherwise (an integer
   beyond int64 makes it STRING, as in tfx_bsl), UNKNOWN when every cell is
   empty. Cells Arrow's parser would read differently from Python's
   `int()`/`float()` (" 12", "1_000", "+inf", "nan", "0x10") are decided by
   tfx_bsl's own per-value rule. Columns the schema declares FLOAT stay FLOAT
   when every cell is a whole number ("2" as R and Excel write 2.0; the tips of
   cash trips are all "0").
   Cells a column lists in the project's `missing_values` ("?", "NA": placeholders
   in a numeric column) are empty before anything else reads them (`_read_blocks`),
   so they are missing cells and the column types from its other cells.
2. Rows to records (`to_examples`): pyarrow's CSV reader (RFC 4180 quoting,
   multi-line quoted cells, blank lines skipped, as TFX's reader) in blocks;
   each column becomes a list column (a missing cell an empty list, as TFX's
   `_ParsedCsvToTfExample` writes it; an all-empty column a feature without a
   kind) and tfx_bsl's `RecordBatchToExamplesEncoder` serialises the block.
3. Splits and shuffling (`Executor.Do`): each row goes to a split by TFX's
   `_PartitionFn` rule (SHA-256 against the output config's hash buckets; 2:1
   train:eval by default), of its cells rather than of its serialized record
   (see `row_keys`), with the eval split optionally capped (`splits_for`), and
   to one of N shards by another part of the same hash. Shards are spilled to
   temporary files, then each shard is shuffled in memory (seeded by its index:
   the output is a function of the input) and written as one gzipped TFRecord
   file, `Split-<name>/data_tfrecord-<shard>-of-<N>.gz`. Memory is bounded by a
   shard (~`SHARD_CSV_BYTES` of CSV), not by the dataset, and the Trainer still
   reads shuffled rows when the CSV is sorted (by date, by label).

Parallelism is per CSV file in pass 1 and per shard in pass 3: on Dataflow,
many input files spread the parsing.

The CSV header is read with Python's `csv` module (`pipeline.csv_files.parse_header`),
so a UTF-8 byte-order mark or quoted names are handled as `tfxp run`'s preflight reads them.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx import components as tfx_components
from tfx.components.example_gen import base_example_gen_executor, driver, utils, write_split
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils
from tfx_bsl.coders import csv_decoder, example_coder

from tfxp.pipeline import spans
from tfxp.pipeline.csv_files import INT_CELL, NUMBER_CELL, parse_header

ColumnType = csv_decoder.ColumnType
ColumnTypes = dict[str, ColumnType]

# ~32 MB of CSV per output shard: ~140 MB of taxi tf.Examples, what one worker
# holds while it shuffles a shard.
SHARD_CSV_BYTES = 32 << 20
# Arrow parses the CSV in blocks of this many bytes (one record batch each).
_BLOCK_BYTES = 8 << 20
_SHARD_FILE = write_split.DEFAULT_FILE_NAME  # "data_tfrecord", TFX's name
_SPILL_DIR = "_shards_tmp"

# Cells whose Arrow parse equals Python's int() / float() (checked in tests/pipeline/test_example_gen.py).
_INT_CELL, _NUMBER_CELL = INT_CELL, NUMBER_CELL


def read_column_names(csv_file: str) -> list[str]:
    """The header of `csv_file` (local path or gs:// URI) as the CSV parser reads it."""
    with fileio.open(csv_file, "rb") as f:
        return parse_header(f.readline().decode("utf-8"))


# ------------------------------------------------------------------------- custom_config


_FLOAT_COLUMNS = "float_columns"
_EVAL_ROWS = "eval_rows"
_MISSING_VALUES = "missing_values"
_INPUT_FILES = "input_files"
# The Examples artifact's custom property holding those files as JSON: [{"path", "sha256", "bytes", "rows"[, "span"]}].
INPUT_FILES_PROPERTY = "input_files"
EVAL_SPLIT = "eval"

MissingValues = Mapping[str, Sequence[str]]
# A file the preflight read: (name relative to the data folder, sha256, bytes, rows) and, of a span, its span.
InputFile = tuple[str, str, int, int] | tuple[str, str, int, int, int | None]


def _file_entry(path: str, sha256: str, size: int, rows: int, span: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "sha256": sha256, "bytes": size, "rows": rows}
    if span is not None:
        entry["span"] = span
    return entry


def example_gen_config(
    float_columns: Sequence[str],
    eval_rows: int | None = None,
    missing_values: MissingValues | None = None,
    input_files: Sequence[InputFile] = (),
) -> example_gen_pb2.CustomConfig:
    """ExampleGen's custom_config (a Struct in its Any): the schema's FLOAT column names, the eval split's cap,
    per column the cell texts read as missing (project.yaml's `missing_values`), and the input files the
    preflight read ((name, sha256, bytes, rows[, span]); ContentFingerprintDriver fingerprints the input by
    them). A file's entry has "span" when it has one (a `{SPAN}` pattern), else no "span" key."""
    struct = struct_pb2.Struct()
    struct.update({_FLOAT_COLUMNS: sorted(float_columns)})
    if input_files:
        struct.update({_INPUT_FILES: [_file_entry(*f) for f in sorted(input_files, key=lambda f: f[0])]})
    if eval_rows is not None:
        struct.update({_EVAL_ROWS: eval_rows})
    if missing_values:
        struct.update({_MISSING_VALUES: {name: list(texts) for name, texts in sorted(missing_values.items())}})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def _custom_struct(exec_properties: dict[str, Any]) -> struct_pb2.Struct:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    struct = struct_pb2.Struct()
    if not raw:
        return struct
    config = (
        raw if isinstance(raw, example_gen_pb2.CustomConfig) else json_format.Parse(raw, example_gen_pb2.CustomConfig())
    )
    config.custom_config.Unpack(struct)
    return struct


def _float_columns(exec_properties: dict[str, Any]) -> frozenset[str]:
    struct = _custom_struct(exec_properties)
    return frozenset(struct[_FLOAT_COLUMNS]) if _FLOAT_COLUMNS in struct else frozenset()


def input_files_of(exec_properties: dict[str, Any]) -> list[dict[str, Any]]:
    """The preflight's input files from custom_config: [{"path", "sha256", "bytes" (int), "rows" (int)[, "span"
    (int)]}]; [] without."""
    files = json_format.MessageToDict(_custom_struct(exec_properties)).get(_INPUT_FILES) or []
    # A Struct holds numbers as doubles.
    return [
        {**f, "bytes": int(f["bytes"]), "rows": int(f["rows"]), **({"span": int(f["span"])} if "span" in f else {})}
        for f in files
    ]


def _eval_rows(exec_properties: dict[str, Any]) -> int | None:
    struct = _custom_struct(exec_properties)
    return int(struct[_EVAL_ROWS]) if _EVAL_ROWS in struct else None


def _missing_values(exec_properties: dict[str, Any]) -> dict[str, list[str]]:
    struct = _custom_struct(exec_properties)
    if _MISSING_VALUES not in struct:
        return {}
    return {name: [str(t) for t in texts] for name, texts in struct[_MISSING_VALUES].items()}


def as_schema_floats(types: ColumnTypes, float_columns: frozenset[str]) -> ColumnTypes:
    """INT guesses of FLOAT schema columns become FLOAT; every other guess stays as inferred."""
    return {
        name: ColumnType.FLOAT if kind == ColumnType.INT and name in float_columns else kind
        for name, kind in types.items()
    }


# ------------------------------------------------------------------------- column types


def _python_type(cell: str) -> ColumnType:
    # tfx_bsl's own per-cell rule (private, pinned tfx-bsl 1.16), on the bytes it sees.
    return csv_decoder._InferValueType(cell.encode("utf-8"))


def _all_match(cells: pa.Array, pattern: str) -> bool:
    return bool(pc.all(pc.match_substring_regex(cells, pattern)).as_py())


def _fits_int64(cells: pa.Array) -> bool:
    try:
        pc.cast(cells, pa.int64())
    except pa.ArrowInvalid:
        return False
    return True


def infer_column_type(cells: pa.Array) -> ColumnType:
    """The type tfx_bsl's ColumnTypeInferrer gives a column of CSV cells (Arrow strings, "" = empty).

    INT: every non-empty cell an integer in int64; FLOAT: every cell a number
    (Python's float()), at least one not such an integer; STRING: any other cell,
    or an integer beyond int64 (tfx_bsl: "long integer values"); UNKNOWN: no
    non-empty cell. Plain decimal cells are decided by Arrow's C++ parser; any
    column with another spelling by tfx_bsl's own rule, per distinct value.
    """
    values = pc.filter(cells, pc.not_equal(cells, ""))
    if len(values) == 0:
        return ColumnType.UNKNOWN
    if _all_match(values, _INT_CELL):
        if _fits_int64(values):
            return ColumnType.INT
    elif _all_match(values, _NUMBER_CELL):
        integers = pc.filter(values, pc.match_substring_regex(values, _INT_CELL))
        if _fits_int64(integers):
            return ColumnType.FLOAT
    return max(_python_type(cell) for cell in pc.unique(values).to_pylist())


def merge_types(a: ColumnTypes, b: ColumnTypes) -> ColumnTypes:
    """Column types of two parts of a dataset: the higher in UNKNOWN < INT < FLOAT < STRING (tfx_bsl's order)."""
    return {name: max(a.get(name, ColumnType.UNKNOWN), b.get(name, ColumnType.UNKNOWN)) for name in {*a, *b}}


# ------------------------------------------------------------------------- reading


class _FileReader(io.RawIOBase):
    """A TensorFlow/TFX file (gs://, ram://) as the raw stream pyarrow reads: GFile lacks `closed`."""

    def __init__(self, path: str):
        super().__init__()
        self._file = fileio.open(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def as_missing(block: pa.RecordBatch, missing_values: MissingValues) -> pa.RecordBatch:
    """`block` with each column's `missing_values` cells (exact texts) made empty: missing cells."""
    if not missing_values:
        return block
    columns = []
    for name, cells in zip(block.schema.names, block.columns, strict=True):
        texts = missing_values.get(name)
        if texts:
            cells = pc.if_else(pc.is_in(cells, value_set=pa.array(list(texts), pa.string())), "", cells)
        columns.append(cells)
    return pa.RecordBatch.from_arrays(columns, block.schema.names)


def _read_blocks(
    csv_file: str, column_names: list[str], missing_values: MissingValues | None = None
) -> Iterator[pa.RecordBatch]:
    """`csv_file`'s data rows as record batches of string columns ("" for an empty cell, and for a cell
    `missing_values` lists for its column)."""
    read_options = pa_csv.ReadOptions(column_names=column_names, skip_rows=1, block_size=_BLOCK_BYTES)
    # Quoted cells may hold line breaks, as TFX's reader (and tfxp's preflight) allow.
    parse_options = pa_csv.ParseOptions(newlines_in_values=True)
    convert_options = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in column_names}, strings_can_be_null=False
    )
    # A local file read by Arrow itself; any other URI (gs://) through TensorFlow's file systems.
    source = csv_file if os.path.exists(csv_file) else io.BufferedReader(_FileReader(csv_file), _BLOCK_BYTES)
    try:
        reader = pa_csv.open_csv(
            source, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
        for block in reader:
            yield as_missing(block, missing_values or {})
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{csv_file}: not readable as CSV: {exc}") from None
    finally:
        if not isinstance(source, str):
            source.close()


def _values(cells: pa.Array, kind: ColumnType) -> pa.Array:
    """Non-empty `cells` converted as TFX's _int_handler / _float_handler / _bytes_handler do."""
    if kind == ColumnType.STRING:
        return pc.cast(cells, pa.large_binary())
    if kind == ColumnType.INT and _all_match(cells, _INT_CELL) and _fits_int64(cells):
        return pc.cast(cells, pa.int64())
    if kind == ColumnType.FLOAT and _all_match(cells, _NUMBER_CELL):
        # float() then float32, as tf.train.FloatList stores it.
        return pc.cast(pc.cast(cells, pa.float64()), pa.float32())
    # Other spellings (" 12", "nan", "1e400"): Python's int()/float() on the bytes, once per distinct value.
    convert, arrow_type = (int, pa.int64()) if kind == ColumnType.INT else (float, pa.float32())
    encoded = pc.dictionary_encode(cells)
    converted = pa.array([convert(v.encode("utf-8")) for v in encoded.dictionary.to_pylist()], arrow_type)
    return converted.take(encoded.indices)


def _list_column(cells: pa.Array, kind: ColumnType) -> pa.Array:
    """One value per non-empty cell, an empty list per empty cell; None (no kind) for an all-empty column."""
    if kind in (ColumnType.UNKNOWN, ColumnType.IGNORE):
        return pa.nulls(len(cells), pa.large_list(pa.int64()))
    present = pc.not_equal(cells, "")
    offsets = pa.concat_arrays(
        [pa.array([0], pa.int64()), pc.cumulative_sum(pc.cast(present, pa.int64())).cast(pa.int64())]
    )
    return pa.LargeListArray.from_arrays(offsets, _values(pc.filter(cells, present), kind))


def to_examples(block: pa.RecordBatch, types: ColumnTypes, encoder: Any) -> list[bytes]:
    """Serialized tf.Examples of a block of string columns, one per row, features in column order.

    `encoder`: a tfx_bsl RecordBatchToExamplesEncoder.
    """
    columns = [_list_column(block.column(i), types[name]) for i, name in enumerate(block.schema.names)]
    return encoder.encode(pa.RecordBatch.from_arrays(columns, block.schema.names))


@dataclasses.dataclass(frozen=True)
class CsvProfile:
    """What the first pass learns of a set of CSV files: column types (tfx_bsl's rules) and data rows."""

    types: ColumnTypes
    rows: int

    def merge(self, other: CsvProfile) -> CsvProfile:
        return CsvProfile(merge_types(self.types, other.types), self.rows + other.rows)


class _ProfileFile(beam.DoFn):
    def __init__(self, column_names: list[str], missing_values: MissingValues):
        self._column_names = column_names
        self._missing_values = missing_values

    def process(self, csv_file: str) -> Iterator[CsvProfile]:
        profile = CsvProfile({}, 0)
        for block in _read_blocks(csv_file, self._column_names, self._missing_values):
            block_types = {name: infer_column_type(block.column(i)) for i, name in enumerate(block.schema.names)}
            profile = profile.merge(CsvProfile(block_types, block.num_rows))
        yield profile


class _MergeProfiles(beam.CombineFn):
    def create_accumulator(self) -> CsvProfile:
        return CsvProfile({}, 0)

    def add_input(self, accumulator: CsvProfile, profile: CsvProfile) -> CsvProfile:
        return accumulator.merge(profile)

    def merge_accumulators(self, accumulators) -> CsvProfile:
        merged = CsvProfile({}, 0)
        for profile in accumulators:
            merged = merged.merge(profile)
        return merged

    def extract_output(self, accumulator: CsvProfile) -> CsvProfile:
        return accumulator


def _schema_floats(profile: CsvProfile, float_columns: frozenset[str]) -> CsvProfile:
    return CsvProfile(as_schema_floats(profile.types, float_columns), profile.rows)


def csv_files_of(input_base: str, split_pattern: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """(files matching `input_base/split_pattern`, their shared column names); of several patterns (a window
    of spans), each pattern's files in turn.

    Raises RuntimeError when a pattern matches nothing or two files' headers differ.
    """
    csv_files = []
    for one in [split_pattern] if isinstance(split_pattern, str) else split_pattern:
        pattern = os.path.join(input_base, one)
        matched = sorted(fileio.glob(pattern))
        if not matched:
            raise RuntimeError(f"Split pattern {pattern} does not match any files.")
        csv_files += matched
    column_names = read_column_names(csv_files[0])
    for csv_file in csv_files[1:]:
        if read_column_names(csv_file) != column_names:
            raise RuntimeError(f"{csv_file}: header differs from {csv_files[0]}'s")
    return csv_files, column_names


class ProfileCsv(beam.PTransform):
    """PCollection of CSV file paths -> a one-element PCollection: their CsvProfile.

    Columns the schema declares FLOAT (`float_columns`) are FLOAT where the cells made them INT; cells
    `missing_values` lists are missing.
    """

    def __init__(
        self,
        column_names: list[str],
        float_columns: frozenset[str] = frozenset(),
        missing_values: MissingValues | None = None,
    ):
        self._column_names = column_names
        self._float_columns = float_columns
        self._missing_values = dict(missing_values or {})

    def expand(self, csv_files: beam.PCollection) -> beam.PCollection:
        return (
            csv_files
            | "ProfileFiles" >> beam.ParDo(_ProfileFile(self._column_names, self._missing_values))
            | "MergeProfiles" >> beam.CombineGlobally(_MergeProfiles())
            | "FloatColumnsAsSchema" >> beam.Map(_schema_floats, self._float_columns)
        )


class _EncodeFile(beam.DoFn):
    """CSV file -> serialized tf.Example lists, one per block of rows."""

    def __init__(self, column_names: list[str], missing_values: MissingValues):
        self._column_names = column_names
        self._missing_values = missing_values

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def process(self, csv_file: str, profile: CsvProfile) -> Iterator[list[bytes]]:
        for block in _read_blocks(csv_file, self._column_names, self._missing_values):
            yield to_examples(block, profile.types, self._encoder)


class CsvToSerializedExamples(beam.PTransform):
    """Pipeline -> PCollection of serialized tf.Examples of the CSV files `input_base/split_pattern`.

    What `Executor` writes, unsplit and unshuffled (used by `tfxp init`'s statistics).
    """

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        self._csv_files, self._column_names = csv_files_of(
            exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern
        )
        self._float_columns = _float_columns(exec_properties)
        self._missing_values = _missing_values(exec_properties)

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        files = pipeline | "CsvFiles" >> beam.Create(self._csv_files)
        profile = files | "Profile" >> ProfileCsv(self._column_names, self._float_columns, self._missing_values)
        return (
            files
            | "Encode"
            >> beam.ParDo(_EncodeFile(self._column_names, self._missing_values), beam.pvalue.AsSingleton(profile))
            | "Records" >> beam.FlatMap(lambda records: records)
        )


# ------------------------------------------------------------------------- splitting and shards


def shard_count(csv_bytes: int) -> int:
    """Output files per split: one per started SHARD_CSV_BYTES of input CSV."""
    return max(1, math.ceil(csv_bytes / SHARD_CSV_BYTES))


def row_keys(block: pa.RecordBatch) -> list[bytes]:
    """Each row's cells joined (in C++): what a row's split and shard are a function of.

    Not the serialized tf.Example, as TFX hashes: tfx_bsl's encoder writes the
    feature map in an order that changes from one process to the next.
    """
    return pc.binary_join_element_wise(*block.columns, "\x1f").cast(pa.binary()).to_pylist()


def split_and_shard(key: bytes, splits: Splits, shards: int) -> tuple[int, int]:
    """(split index, shard) of a row with key `key` (`row_keys`).

    The split by TFX's base_example_gen_executor._PartitionFn rule: SHA-256 as an
    integer, modulo the total hash buckets, then the split whose cumulative bucket
    count exceeds it; then the eval cap (`Splits`). The shard from the digest's
    first 8 bytes. Equal rows always meet.
    """
    digest = hashlib.sha256(key).digest()
    value = int.from_bytes(digest, "big")
    split = bisect.bisect(splits.buckets, value % splits.buckets[-1])
    if split == splits.eval_index and (value // splits.buckets[-1]) % KEEP_SCALE >= splits.eval_keep:
        split = splits.spill_index
    return split, int.from_bytes(digest[:8], "big") % shards


class _SpillShards(beam.DoFn):
    """CSV file -> ((split index, shard), spill file path) for each shard it has rows for."""

    def __init__(
        self,
        column_names: list[str],
        split_buckets: list[tuple[str, int]],
        eval_rows: int | None,
        shards: int,
        spill_dir: str,
        missing_values: MissingValues,
    ):
        self._column_names, self._split_buckets, self._eval_rows = column_names, split_buckets, eval_rows
        self._shards, self._spill_dir = shards, spill_dir
        self._missing_values = missing_values

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def process(self, csv_file: str, profile: CsvProfile) -> Iterator[tuple[tuple[int, int], str]]:
        splits = splits_for(self._split_buckets, profile.rows, self._eval_rows)
        if splits.eval_keep is not None:
            logging.info("eval split capped at ~%d of %d rows", self._eval_rows, profile.rows)
        writers: dict[tuple[int, int], tuple[str, Any]] = {}
        # A unique name per attempt: a retried bundle never appends to another's file.
        attempt = uuid.uuid4().hex
        try:
            for block in _read_blocks(csv_file, self._column_names, self._missing_values):
                records = to_examples(block, profile.types, self._encoder)
                for row_key, record in zip(row_keys(block), records, strict=True):
                    key = split_and_shard(row_key, splits, self._shards)
                    if key not in writers:
                        path = f"{self._spill_dir}/{key[0]}-{key[1]:05d}-{attempt}.tfrecord"
                        writers[key] = (path, tf.io.TFRecordWriter(path))
                    writers[key][1].write(record)
        finally:
            for _, writer in writers.values():
                writer.close()
        for key, (path, _) in sorted(writers.items()):
            yield key, path


class _WriteShard(beam.DoFn):
    """((split index, shard), spill files) -> the shard's gzipped TFRecord file, rows shuffled."""

    def __init__(self, split_uris: list[str], shards: int):
        self._split_uris, self._shards = split_uris, shards

    def process(self, element: tuple[tuple[int, int], list[str]]) -> Iterator[tuple[int, int]]:
        (split, shard), spill_files = element
        records = [record for path in sorted(spill_files) for record in tf.compat.v1.io.tf_record_iterator(path)]
        random.Random(shard).shuffle(records)
        target = f"{self._split_uris[split]}/{_SHARD_FILE}-{shard:05d}-of-{self._shards:05d}.gz"
        # Written aside and renamed: a retried or killed write never leaves half a shard.
        partial = f"{target}.partial-{uuid.uuid4().hex}"
        with tf.io.TFRecordWriter(partial, options="GZIP") as writer:
            for record in records:
                writer.write(record)
        fileio.rename(partial, target, overwrite=True)
        yield split, len(records)


# A capped eval split keeps this many millionths of its rows, at most: 1e-6 is the finest cap.
KEEP_SCALE = 1_000_000


@dataclasses.dataclass(frozen=True)
class Splits:
    """How rows hash into the output splits: TFX's cumulative hash buckets, and an optional eval cap.

    `eval_keep`: of the rows TFX's rule puts in split `eval_index`, the ones whose second hash
    (digest // total buckets, mod KEEP_SCALE) is below `eval_keep` stay; the others go to split
    `spill_index` (train). None: no cap.
    """

    buckets: list[int]
    eval_index: int = -1
    eval_keep: int | None = None
    spill_index: int = 0


def splits_for(split_buckets: list[tuple[str, int]], total_rows: int, eval_rows: int | None) -> Splits:
    """The Splits of `split_buckets` ((name, hash_buckets) in output order, as SplitConfig lists them).

    With `eval_rows`, the "eval" split is capped at about that many rows: a hash-chosen subset of the
    rows TFX's split would put there (the rest train), so a capped eval split is nested in the
    uncapped one and later runs on more data keep evaluating on rows of the same kind. No cap when
    the configured share gives at most `eval_rows` rows. Raises ValueError for a negative cap.
    """
    names = [name for name, _ in split_buckets]
    buckets = list(itertools.accumulate(count for _, count in split_buckets))
    if eval_rows is not None and eval_rows < 0:
        raise ValueError(f"eval_rows must be >= 0, got {eval_rows}")
    if eval_rows is None or EVAL_SPLIT not in names or len(names) < 2 or total_rows == 0:
        return Splits(buckets)
    eval_index = names.index(EVAL_SPLIT)
    # Expected rows of the uncapped eval split.
    eval_expected = total_rows * split_buckets[eval_index][1] / buckets[-1]
    if eval_expected <= eval_rows:
        return Splits(buckets)
    keep = max(1, int(eval_rows * KEEP_SCALE / eval_expected))
    spill_index = next(i for i in range(len(names)) if i != eval_index)
    return Splits(buckets, eval_index, keep, spill_index)


def _csv_bytes(csv_files: list[str]) -> int:
    return sum(fileio.stat(path).length for path in csv_files)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """CsvExampleGen's executor: Arrow parsing, tfx_bsl encoding, sharded shuffle (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return CsvToSerializedExamples

    def Do(
        self,
        input_dict: dict[str, list],
        output_dict: dict[str, list],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes each output split as shuffled gzipped TFRecord shards of serialized tf.Examples.

        Raises RuntimeError when a split pattern matches no file or headers differ,
        ValueError when a file isn't readable as CSV.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_names = utils.generate_output_split_names(input_config, output_config)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.split_names = artifact_utils.encode_split_names(split_names)
        split_uris = [artifact_utils.get_split_uri([examples], name) for name in split_names]
        spill_dir = os.path.join(examples.uri, _SPILL_DIR)
        fileio.makedirs(spill_dir)
        for uri in split_uris:
            fileio.makedirs(uri)

        if output_config.split_config.splits:
            # One input split, hashed into the output splits (TFX's rule: input must have one split).
            if len(input_config.splits) != 1:
                raise ValueError("input must have only one split when output splits are configured")
            split_buckets = [(split.name, split.hash_buckets) for split in output_config.split_config.splits]
            inputs = [(input_config.splits[0].pattern, split_buckets, list(range(len(split_names))))]
        else:
            # Input splits map one to one onto output splits (no cap: the user chose the files).
            inputs = [(split.pattern, [(split.name, 1)], [index]) for index, split in enumerate(input_config.splits)]

        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        float_columns = _float_columns(exec_properties)
        eval_rows = _eval_rows(exec_properties) if output_config.split_config.splits else None
        missing_values = _missing_values(exec_properties)
        window_patterns = spans.patterns_of(exec_properties)
        with self._make_beam_pipeline() as pipeline:
            for number, (pattern, split_buckets, output_splits) in enumerate(inputs):
                # A window of spans (ContentFingerprintDriver): every span's files, as one input.
                csv_files, column_names = csv_files_of(input_base, window_patterns or pattern)
                shards = shard_count(_csv_bytes(csv_files))
                logging.info("%s: %d CSV file(s) -> %d shard(s) per split", pattern, len(csv_files), shards)
                files = pipeline | f"CsvFiles[{number}]" >> beam.Create(csv_files)
                profile = files | f"Profile[{number}]" >> ProfileCsv(column_names, float_columns, missing_values)
                targets = [split_uris[i] for i in output_splits]
                _ = (
                    files
                    | f"SpillShards[{number}]"
                    >> beam.ParDo(
                        _SpillShards(column_names, split_buckets, eval_rows, shards, spill_dir, missing_values),
                        beam.pvalue.AsSingleton(profile),
                    )
                    | f"GroupShards[{number}]" >> beam.GroupByKey()
                    | f"WriteShards[{number}]" >> beam.ParDo(_WriteShard(targets, shards))
                )
        fileio.rmtree(spill_dir)
        for uri in split_uris:
            if not fileio.glob(f"{uri}/*"):
                # A split no row hashed into (tiny data): an empty file, as Beam's TFRecord sink would write.
                with tf.io.TFRecordWriter(f"{uri}/{_SHARD_FILE}-00000-of-00001.gz", options="GZIP"):
                    pass

        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload_format:
            examples_utils.set_payload_format(examples, payload_format)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        if file_format:
            examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
        files = input_files_of(exec_properties)
        if files:
            # The data's identity travels with the examples (MLMD, the model card): path, sha256, bytes, rows.
            examples.set_string_custom_property(INPUT_FILES_PROPERTY, json.dumps(files, sort_keys=True))
        logging.info("Examples generated.")


def content_fingerprint(input_files: Sequence[Mapping[str, Any]]) -> str:
    """ "sha256:<hex>" over each input file's name and content digest, in name order."""
    digest = hashlib.sha256()
    for entry in sorted(input_files, key=lambda e: e["path"]):
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return "sha256:" + digest.hexdigest()


class ContentFingerprintDriver(driver.FileBasedDriver):
    """TFX's FileBasedDriver (spans, versions, patterns) whose input fingerprint is the files' content, and
    which reads a rolling window of spans.

    TFX fingerprints file-based input by size and mtime (io_utils.generate_fingerprint; tensorflow/tfx#4226):
    a same-size edit whose mtime is kept (`cp -p`, `rsync -t`, an archive) reused the cached model, and a
    `touch` re-ran everything. With the input files the preflight hashed (custom_config, `_INPUT_FILES`),
    the fingerprint is their content digest: the cache follows content. Without them (on Vertex AI the
    preflight doesn't run) TFX's own fingerprint stays.

    A `{SPAN}` pattern with `range_config.rolling_range.num_spans` N > 1, which TFX 1.16's ExampleGen refuses:
    TFX's driver resolves the latest span (a rolling range of one: the Examples artifact's `span`, `version`),
    then `spans.resolve_window` the N - 1 spans before it by TFX's static-range matching, refusing a gap
    (SpanError); the executor reads each span's pattern (exec property `spans.SPAN_PATTERNS_PROPERTY`).
    Without the preflight's files, the fingerprint is TFX's, per span.
    """

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        num_spans = rolling_spans_of(exec_properties)
        if num_spans > 1:
            input_config = example_gen_pb2.Input()
            proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
            pattern = input_config.splits[0].pattern
            requested = exec_properties[standard_component_specs.RANGE_CONFIG_KEY]
            # What TFX's ExampleGen resolves itself: the latest span.
            exec_properties[standard_component_specs.RANGE_CONFIG_KEY] = proto_utils.proto_to_json(_rolling_range(1))
        resolved = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        input_base = resolved[standard_component_specs.INPUT_BASE_KEY]
        if num_spans > 1:
            resolved[standard_component_specs.RANGE_CONFIG_KEY] = requested  # recorded as asked
            window = spans.resolve_window(input_base, pattern, num_spans)
            logging.info("span window: %s", window.describe())
            resolved[spans.SPAN_PATTERNS_PROPERTY] = spans.patterns_json(window)
            resolved[utils.FINGERPRINT_PROPERTY_NAME] = "\n".join(
                io_utils.generate_fingerprint(f"span-{span}", os.path.join(input_base, window.patterns[span]))
                for span in window.spans
            )
        files = input_files_of(resolved)
        if files:
            resolved[utils.FINGERPRINT_PROPERTY_NAME] = content_fingerprint(files)
        return resolved


def _rolling_range(num_spans: int) -> range_config_pb2.RangeConfig:
    return range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(num_spans=num_spans))


def rolling_spans_of(exec_properties: dict[str, Any]) -> int:
    """`range_config.rolling_range.num_spans` of ExampleGen's exec properties; 1 without a rolling range."""
    raw = exec_properties.get(standard_component_specs.RANGE_CONFIG_KEY)
    if not raw:
        return 1
    config = raw if isinstance(raw, range_config_pb2.RangeConfig) else range_config_pb2.RangeConfig()
    if not isinstance(raw, range_config_pb2.RangeConfig):
        proto_utils.json_to_proto(raw, config)
    return config.rolling_range.num_spans if config.HasField("rolling_range") else 1


class CsvExampleGen(tfx_components.CsvExampleGen):
    """TFX's CsvExampleGen (same spec, node id and outputs) running `Executor`, fingerprinting its input by
    content (ContentFingerprintDriver).

    TFX's CsvExampleGen.__init__ takes no custom_config; its base class does.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = ContentFingerprintDriver

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        float_columns: Sequence[str] = (),
        eval_rows: int | None = None,
        missing_values: MissingValues | None = None,
        input_files: Sequence[InputFile] = (),
        range_config: range_config_pb2.RangeConfig | None = None,
    ):
        FileBasedExampleGen.__init__(
            self,
            input_base=input_base,
            input_config=input_config,
            custom_config=example_gen_config(float_columns, eval_rows, missing_values, input_files),
            range_config=range_config,
        )


def csv_example_gen(
    input_base: str,
    pattern: str,
    float_columns: Sequence[str] = (),
    eval_rows: int | None = None,
    missing_values: MissingValues | None = None,
    input_files: Sequence[InputFile] = (),
    rolling_spans: int | None = None,
) -> CsvExampleGen:
    """CsvExampleGen reading `input_base/pattern` (one input split; TFX splits it train:eval 2:1).

    `float_columns`: the schema's FLOAT features, written as floats even when every cell is a whole number.
    `eval_rows`: cap on the eval split's rows (see `splits_for`); None keeps TFX's 2:1.
    `missing_values`: column -> cell texts written as missing (project.yaml's `missing_values`).
    `input_files`: (name, sha256, bytes, rows[, span]) per file, from the preflight: the cache follows their content.
    `rolling_spans`: with a `{SPAN}` pattern, read the latest N spans (`RangeConfig.rolling_range`; None: 1, the
    latest, TFX's default). Raises ValueError for it without a `{SPAN}` spec, or below 1.
    """
    if rolling_spans is not None and (rolling_spans < 1 or not spans.has_span(pattern)):
        raise ValueError(f"rolling_spans={rolling_spans} needs a {{SPAN}} pattern and N >= 1 (pattern {pattern})")
    return CsvExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]),
        float_columns=float_columns,
        eval_rows=eval_rows,
        missing_values=missing_values,
        input_files=input_files,
        range_config=_rolling_range(rolling_spans or 1) if spans.has_span(pattern) else None,
    )
