"""The project's CsvExampleGen: header parsed as CSV, schema FLOAT columns kept FLOAT."""

from __future__ import annotations

from google.protobuf import json_format
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

from tfxp.pipeline.example_gen import _as_schema_floats, _float_columns, float_columns_config, read_column_names

INT, FLOAT, STRING = csv_decoder.ColumnType.INT, csv_decoder.ColumnType.FLOAT, csv_decoder.ColumnType.STRING


def test_float_columns_travel_in_custom_config_as_tfx_passes_it():
    config = float_columns_config(["tips", "fare"])
    # TFX hands proto execution properties to executors as JSON strings.
    as_json = json_format.MessageToJson(config)
    for value in (as_json, config):
        assert _float_columns({standard_component_specs.CUSTOM_CONFIG_KEY: value}) == {"tips", "fare"}
    assert _float_columns({}) == frozenset()


def test_only_int_guesses_of_float_columns_change():
    infos = [
        csv_decoder.ColumnInfo("tips", INT),
        csv_decoder.ColumnInfo("hour", INT),
        csv_decoder.ColumnInfo("fare", STRING),
        csv_decoder.ColumnInfo("miles", FLOAT),
    ]
    widened = _as_schema_floats(infos, frozenset({"tips", "fare", "miles"}))
    assert [(i.name, i.type) for i in widened] == [("tips", FLOAT), ("hour", INT), ("fare", STRING), ("miles", FLOAT)]


def test_header_with_bom_and_quotes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes('\ufeff"a","b c"\r\n1,2\r\n'.encode())
    assert read_column_names(str(path)) == ["a", "b c"]
