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
"""
from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
from tfx import components as tfx_components
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

from pipeline.csv_files import parse_header


def read_column_names(csv_file: str) -> list[str]:
    """The header of `csv_file` (local path or gs:// URI) as the CSV parser reads it."""
    with fileio.open(csv_file, "rb") as f:
        return parse_header(f.readline().decode("utf-8"))


class _CsvToExample(beam.PTransform):
    """TFX's `_CsvToExample` (tfx 1.16) with the header read by `read_column_names`."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        self._csv_pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)

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
            | "InferColumnTypes" >> beam.CombineGlobally(
                csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True))
        )
        return parsed_csv_lines | "ToTFExample" >> beam.ParDo(tfx_csv._ParsedCsvToTfExample(), column_infos)


class Executor(tfx_csv.Executor):
    """CsvExampleGen's executor with `_CsvToExample` above."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExample


class CsvExampleGen(tfx_components.CsvExampleGen):
    """TFX's CsvExampleGen (same spec, node id and outputs) running `Executor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)


def csv_example_gen(input_base: str, pattern: str) -> CsvExampleGen:
    """CsvExampleGen reading `input_base/pattern` (one input split; TFX splits it train:eval 2:1)."""
    return CsvExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]
        ),
    )
