"""CsvExampleGen with a CSV-aware header: TFX's component, executor and output, one change.

TFX 1.16 reads each file's column names with `line.strip().split(',')`
(`tfx.utils.io_utils.load_csv_column_names`), so a UTF-8 byte-order mark
(Excel's "CSV UTF-8") sticks to the first name and a quoted header (R's
`write.csv`, pandas `QUOTE_ALL`) keeps its quotes: every column then looks
dropped and new to ExampleValidator. The rows themselves are already parsed with
Python's `csv` module (tfx_bsl's `ParseCSVLine`), which handles both. This
executor reads the header with the same parser (`pipeline.csv_files.parse_header`)
and otherwise runs TFX's own steps, so splitting, caching, Dataflow and the
tf.Example output are CsvExampleGen's.

One more difference: TFX guesses each column's type from its cells, so a FLOAT
column whose cells are all whole numbers ("2", as R and Excel write 2.0; tips
of cash trips are all "0") becomes INT, and ExampleValidator then refuses valid
data. Columns the schema declares FLOAT are written as floats when the guess is
INT (any int is a valid float; nothing else is changed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from google.protobuf import json_format, struct_pb2
from tfx import components as tfx_components
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

from tfxp.pipeline.csv_files import parse_header


def read_column_names(csv_file: str) -> list[str]:
    """The header of `csv_file` (local path or gs:// URI) as the CSV parser reads it."""
    with fileio.open(csv_file, "rb") as f:
        return parse_header(f.readline().decode("utf-8"))


_FLOAT_COLUMNS = "float_columns"


def float_columns_config(float_columns: Sequence[str]) -> example_gen_pb2.CustomConfig:
    """ExampleGen's custom_config carrying the schema's FLOAT column names (a Struct in its Any)."""
    struct = struct_pb2.Struct()
    struct.update({_FLOAT_COLUMNS: sorted(float_columns)})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def _float_columns(exec_properties: dict[str, Any]) -> frozenset[str]:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return frozenset()
    config = (
        raw if isinstance(raw, example_gen_pb2.CustomConfig) else json_format.Parse(raw, example_gen_pb2.CustomConfig())
    )
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct) or _FLOAT_COLUMNS not in struct:
        return frozenset()
    return frozenset(struct[_FLOAT_COLUMNS])


def _as_schema_floats(column_infos: list, float_columns: frozenset[str]) -> list:
    """INT guesses of FLOAT schema columns become FLOAT; every other guess stays TFX's."""
    return [
        csv_decoder.ColumnInfo(info.name, csv_decoder.ColumnType.FLOAT)
        if info.type == csv_decoder.ColumnType.INT and info.name in float_columns
        else info
        for info in column_infos
    ]


class _CsvToExample(beam.PTransform):
    """TFX's `_CsvToExample` (tfx 1.16) with the header read by `read_column_names`."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        self._csv_pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
        self._float_columns = _float_columns(exec_properties)

    def expand(self, pipeline: beam.Pipeline):
        csv_files = fileio.glob(self._csv_pattern)
        if not csv_files:
            raise RuntimeError(f"Split pattern {self._csv_pattern} does not match any files.")
        column_names = read_column_names(csv_files[0])
        for csv_file in csv_files[1:]:
            if read_column_names(csv_file) != column_names:
                raise RuntimeError(f"{csv_file}: header differs from {csv_files[0]}'s")
        # TFX's own steps from here on (private names, pinned tfx==1.16.0).
        parsed_csv_lines = (
            pipeline
            | "CreateFilenames" >> beam.Create(csv_files)
            | "ReadFromText" >> beam.ParDo(tfx_csv._ReadCsvRecordsFromTextFile())
            | "ParseCSVLine" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
            | "ExtractParsedCSVLines" >> beam.Keys()
        )
        column_infos = beam.pvalue.AsSingleton(
            parsed_csv_lines
            | "InferColumnTypes"
            >> beam.CombineGlobally(csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True))
            | "FloatColumnsAsSchema" >> beam.Map(_as_schema_floats, self._float_columns)
        )
        return parsed_csv_lines | "ToTFExample" >> beam.ParDo(tfx_csv._ParsedCsvToTfExample(), column_infos)


class Executor(tfx_csv.Executor):
    """CsvExampleGen's executor with `_CsvToExample` above."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExample


class CsvExampleGen(tfx_components.CsvExampleGen):
    """TFX's CsvExampleGen (same spec, node id and outputs) running `Executor`.

    TFX's CsvExampleGen.__init__ takes no custom_config; its base class does.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base: str, input_config: example_gen_pb2.Input, float_columns: Sequence[str] = ()):
        FileBasedExampleGen.__init__(
            self, input_base=input_base, input_config=input_config, custom_config=float_columns_config(float_columns)
        )


def csv_example_gen(input_base: str, pattern: str, float_columns: Sequence[str] = ()) -> CsvExampleGen:
    """CsvExampleGen reading `input_base/pattern` (one input split; TFX splits it train:eval 2:1).

    `float_columns`: the schema's FLOAT features, written as floats even when every cell is a whole number.
    """
    return CsvExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]),
        float_columns=float_columns,
    )
