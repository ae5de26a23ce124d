"""tfxp.rows: typed values, missing markers, rows files, tf.Examples (checked against TensorFlow's own protos)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from taxi_data import TAXI_CSV, raw_feature_spec, read_csv_rows, to_example

from tfxp import rows as R

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A non-taxi model's raw inputs (penguins-like), in the three dtypes.
PENGUIN_INPUTS = {"bill_length_mm": "DT_FLOAT", "island": "DT_STRING", "year": "DT_INT64"}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=300)


@pytest.fixture(scope="module")
def taxi_inputs() -> dict[str, str]:
    """The taxi schema's columns minus the label, {name: DT_...}: what a served taxi model declares."""
    import tensorflow as tf

    dtypes = {tf.float32: R.DT_FLOAT, tf.int64: R.DT_INT64, tf.string: R.DT_STRING}
    return {name: dtypes[spec.dtype] for name, spec in raw_feature_spec().items() if name != "tips"}


# -- dtypes, markers, values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling, name",
    [
        ("DT_FLOAT", "DT_FLOAT"),
        ("float32", "DT_FLOAT"),
        ("float", "DT_FLOAT"),
        ("FLOAT", "DT_FLOAT"),
        ("DT_INT64", "DT_INT64"),
        ("int64", "DT_INT64"),
        ("int", "DT_INT64"),
        ("INT", "DT_INT64"),
        ("DT_STRING", "DT_STRING"),
        ("string", "DT_STRING"),
        ("bytes", "DT_STRING"),
        ("BYTES", "DT_STRING"),
    ],
)
def test_dtype_names_read_every_spelling_the_project_writes(spelling, name):
    assert R.dtype_name(spelling) == name


def test_dtype_name_reads_feature_enums_and_refuses_others():
    from tfxp.models import features as F

    assert [R.dtype_name(d) for d in (F.DType.FLOAT, F.DType.INT, F.DType.STRING)] == list(R.DTYPES)
    for bad in ("DT_BOOL", "DT_DOUBLE", "float64", None, 3):
        with pytest.raises(ValueError, match=f"unsupported row dtype {bad!r}"):
            R.dtype_name(bad)


def test_missing_markers():
    assert R.missing_marker("DT_INT64") == R.MISSING_INT == -(2**63)  # outside every column's values
    assert math.isnan(R.missing_marker("float32")) and math.isnan(R.MISSING_FLOAT)
    assert R.missing_marker("string") == R.MISSING_STRING == ""


@pytest.mark.parametrize(
    "value, dtype, expected",
    [
        ("300", "DT_INT64", 300),
        ("300.0", "DT_INT64", 300),
        (300.0, "DT_INT64", 300),
        (-7, "DT_INT64", -7),
        (str(2**63 - 1), "DT_INT64", 2**63 - 1),
        (str(-(2**63) + 1), "DT_INT64", -(2**63) + 1),
        ("-1", "DT_INT64", -1),  # a real -1, not "missing"
        ("12.45", "DT_FLOAT", 12.45),
        (" 1e5 ", "DT_FLOAT", 1e5),
        ("inf", "DT_FLOAT", math.inf),
        (3, "DT_FLOAT", 3.0),
        ("Cash", "DT_STRING", "Cash"),
        (5, "DT_STRING", "5"),
        ("caf\u00e9".encode(), "DT_STRING", "caf\u00e9"),
        ("", "DT_INT64", None),
        ("  ", "DT_FLOAT", None),
        (None, "DT_STRING", None),
        ("nan", "DT_FLOAT", None),
        (float("nan"), "DT_INT64", None),
        (b"", "DT_STRING", None),
    ],
)
def test_parse_value(value, dtype, expected):
    assert R.parse_value(value, dtype) == expected


@pytest.mark.parametrize(
    "value, dtype, match",
    [
        ("3.5", "DT_INT64", "not an integer"),
        ("inf", "DT_INT64", "not an integer"),
        (True, "DT_INT64", "boolean"),
        (False, "DT_FLOAT", "boolean"),
        ("cheap", "DT_FLOAT", "could not convert"),
        (str(2**63), "DT_INT64", "out of int64 range"),
        (-(2**63) - 1, "DT_INT64", "out of int64 range"),
        (str(-(2**63)), "DT_INT64", "the int missing marker"),
        (b"\xff", "DT_STRING", "utf-8"),
    ],
)
def test_parse_value_refuses(value, dtype, match):
    with pytest.raises(ValueError, match=match):
        R.parse_value(value, dtype)


def test_row_errors_name_row_column_and_dtype():
    with pytest.raises(R.RowError, match=r"row 3: year: cannot read '3.5' as int64 \('3.5' is not an integer\)"):
        R.row_value({"year": "3.5"}, "year", "DT_INT64", 3)
    assert R.row_value({}, "year", "DT_INT64") is None  # no such key: missing


def test_raw_columns_follow_the_inputs_with_markers():
    rows = [
        {"bill_length_mm": "39.1", "island": "Torgersen", "year": "2007", "species": "Adelie"},
        {"bill_length_mm": "", "island": None},
    ]
    columns = R.raw_columns(rows, PENGUIN_INPUTS)
    assert list(columns) == list(PENGUIN_INPUTS)  # the label and unknown columns are not inputs
    assert columns["bill_length_mm"][0] == 39.1 and math.isnan(columns["bill_length_mm"][1])
    assert columns["island"] == ["Torgersen", ""] and columns["year"] == [2007, R.MISSING_INT]
    with pytest.raises(R.RowError, match="row 1: year"):
        R.raw_columns([rows[0], {"year": "soon"}], PENGUIN_INPUTS)


# -- tf.Example ---------------------------------------------------------------------------------


def test_examples_equal_tensorflows_examples(rows, taxi_inputs):
    """Bytes TensorFlow reads as the tf.Example it builds itself from the same CSV row."""
    from tensorflow.core.example import example_pb2

    spec = {name: s for name, s in raw_feature_spec().items() if name in taxi_inputs}
    for index, row in enumerate(rows):
        ours = example_pb2.Example.FromString(R.encode_example(row, taxi_inputs, index))
        assert ours == example_pb2.Example.FromString(to_example(row, spec)), f"row {index}"


def test_examples_parse_in_tensorflow_with_values_and_missing(rows, taxi_inputs):
    import numpy as np
    import tensorflow as tf

    spec = {name: s for name, s in raw_feature_spec().items() if name in taxi_inputs}
    varlen = [name for name, s in spec.items() if isinstance(s, tf.io.VarLenFeature)]
    sample = rows[:50] + [dict(rows[0], **{name: "" for name in varlen})]
    parsed = tf.io.parse_example(R.encode_examples(sample, taxi_inputs), spec)
    for name, feature_spec in spec.items():
        if isinstance(feature_spec, tf.io.VarLenFeature):
            dense = tf.sparse.to_dense(parsed[name]).numpy()
            lengths = np.bincount(parsed[name].indices.numpy()[:, 0], minlength=len(sample))
        else:
            dense, lengths = parsed[name].numpy(), [1] * len(sample)
        for i, row in enumerate(sample):
            expected = R.parse_value(row[name], taxi_inputs[name])
            assert lengths[i] == (0 if expected is None else 1), (name, i)
            if expected is None:
                continue
            got = dense[i][0]
            if taxi_inputs[name] == R.DT_STRING:
                assert got.decode() == expected
            elif taxi_inputs[name] == R.DT_FLOAT:
                assert got == pytest.approx(expected, rel=1e-6)
            else:
                assert got == expected
    # A required (FixedLen) feature left blank is refused by the parser, naming it.
    required = next(name for name, s in spec.items() if isinstance(s, tf.io.FixedLenFeature))
    with pytest.raises(tf.errors.InvalidArgumentError, match=required):
        tf.io.parse_example(R.encode_examples([dict(rows[0], **{required: ""})], taxi_inputs), spec)


def test_examples_are_deterministic_and_typed_values_encode_like_strings():
    row = {"bill_length_mm": "39.1", "island": "Torgersen", "year": "2007"}
    typed = {"year": 2007.0, "island": "Torgersen", "bill_length_mm": 39.1, "species": "Adelie"}
    assert R.encode_example(row, PENGUIN_INPUTS) == R.encode_example(typed, PENGUIN_INPUTS)
    reordered = dict(reversed(list(PENGUIN_INPUTS.items())))
    assert R.encode_example(row, reordered) == R.encode_example(row, PENGUIN_INPUTS)  # map keys sorted


def test_example_extremes_and_refusals():
    from tensorflow.core.example import example_pb2

    for value in (-1, 0, 127, 128, 2**63 - 1, -(2**63) + 1):
        example = example_pb2.Example.FromString(R.encode_example({"year": value}, {"year": "int64"}))
        assert list(example.features.feature["year"].int64_list.value) == [value]
    largest = 3.4028234663852886e38  # float32's max: kept, not inf
    example = example_pb2.Example.FromString(R.encode_example({"x": largest}, {"x": "float"}))
    assert list(example.features.feature["x"].float_list.value) == [largest]
    assert math.isinf(R.decode_example(R.encode_example({"x": "-inf"}, {"x": "float"}))["x"][0])
    with pytest.raises(R.RowError, match=r"row 4: x: 1e\+39 is out of float32 range"):
        R.encode_example({"x": "1e39"}, {"x": "DT_FLOAT"}, 4)
    with pytest.raises(R.RowError, match="row 0: year: .*out of int64 range"):
        R.encode_example({"year": str(2**63)}, {"year": "DT_INT64"})


def test_decode_reads_tensorflows_examples(rows):
    import tensorflow as tf

    spec = raw_feature_spec()
    for row in rows[:50]:
        data = to_example(row, spec)  # built by TensorFlow, the label included
        decoded = R.decode_example(data)
        reference = tf.train.Example.FromString(data).features.feature
        assert set(decoded) == set(reference)
        for name, values in decoded.items():
            kind = reference[name].WhichOneof("kind")
            assert values == (list(getattr(reference[name], kind).value) if kind else [])
        back = R.example_row(data)
        for name, cell in row.items():
            dtype = {tf.float32: "DT_FLOAT", tf.int64: "DT_INT64", tf.string: "DT_STRING"}[spec[name].dtype]
            expected = R.parse_value(cell, dtype)
            got = R.parse_value(back[name], dtype)
            if dtype == "DT_FLOAT" and expected is not None:
                # The example holds float32: the cell reads back as exactly that value.
                assert got == float(tf.constant(expected, tf.float32).numpy()), name
            else:
                assert got == expected, name
    with pytest.raises(ValueError, match="not a serialized tf.Example"):
        R.decode_example(b"\xff\xff")


# -- rows files --------------------------------------------------------------------------------


def test_read_rows_csv_keeps_strings():
    rows = R.read_rows(TAXI_CSV)
    assert len(rows) == len(read_csv_rows())
    assert rows[0]["fare"] == "12.45" and rows[0]["pickup_latitude"] == ""


def test_read_rows_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"fare": 12.45, "company": null}\n\n{"fare": "3", "trip_seconds": 60}\n')
    assert R.read_rows(path) == [{"fare": 12.45, "company": None}, {"fare": "3", "trip_seconds": 60}]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("rows.jsonl", '{"fare": 1}\n[1, 2]\n', "rows.jsonl:2: expected a JSON object"),
        ("rows.jsonl", '{"fare": \n', "rows.jsonl:1: invalid JSON"),
        ("rows.txt", "fare\n1\n", ".csv or .jsonl"),
        ("rows.csv", "fare,company\n1,A\n2\n", r"rows.csv:3: 1 cells, the header has 2"),  # DictReader: None
        ("rows.csv", "fare,company\n1,A,extra\n", r"rows.csv:2: 3 cells, the header has 2"),
        ("rows.csv", "fare,fare\n1,2\n", "header names fare more than once"),
    ],
)
def test_read_rows_rejects(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        R.read_rows(path)


def test_read_rows_file_gives_the_columns(tmp_path):
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("\ufefffare,company\n1.5,\n\n2,Acme\n", encoding="utf-8")  # a BOM, a blank line
    read = R.read_rows_file(csv_path)
    assert read.columns == ("fare", "company")  # the byte order mark is not part of the name
    assert read.rows == [{"fare": "1.5", "company": ""}, {"fare": "2", "company": "Acme"}]
    assert R.read_rows_file(TAXI_CSV).columns == tuple(TAXI_CSV.read_text().splitlines()[0].split(","))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"fare": 1}\n{"company": "A", "fare": 2}\n')
    assert R.read_rows_file(jsonl).columns == ("fare", "company")  # every key some row has


def test_check_columns_with_known_optional_inputs(tmp_path):
    inputs, optional = ["a", "b", "c", "d"], {"c", "d"}
    path = tmp_path / "rows.csv"
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(R.MissingColumnsError) as raised:
        R.check_columns(R.read_rows_file(path), inputs, optional)
    assert raised.value.missing == ["a", "b", "c", "d"] and raised.value.optional_known
    assert str(raised.value) == f"{path} has no column for the model inputs a, b, c, d (required: a, b; optional: c, d)"
    with pytest.raises(R.MissingColumnsError) as raised:  # the flag never excuses a required column
        R.check_columns(R.read_rows_file(path), inputs, optional, allow_missing_optional=True)
    assert (raised.value.required, raised.value.optional) == (["a", "b"], [])
    required_only = tmp_path / "required.csv"
    required_only.write_text("b,a\n")
    with pytest.raises(R.MissingColumnsError) as raised:
        R.check_columns(R.read_rows_file(required_only), inputs, optional)
    assert (raised.value.required, raised.value.optional) == ([], ["c", "d"])
    R.check_columns(R.read_rows_file(required_only), inputs, optional, allow_missing_optional=True)


def test_check_columns_when_the_model_does_not_say_which_inputs_are_optional(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("b,x\n1,2\n")
    with pytest.raises(R.MissingColumnsError) as raised:
        R.check_columns(R.read_rows_file(path), ["a", "b", "c"], None)
    assert (raised.value.required, raised.value.optional, raised.value.optional_known) == ([], ["a", "c"], False)
    assert str(raised.value) == f"{path} has no column for the model inputs a, c"
    R.check_columns(R.read_rows_file(path), ["a", "b", "c"], None, allow_missing_optional=True)
    R.check_columns(R.read_rows_file(path), ["b"], None)


# -- import cost --------------------------------------------------------------------------------


def test_rows_do_not_import_tensorflow_or_numpy(tmp_path):
    code = (
        "import json, sys\n"
        "from tfxp import rows as R\n"
        "inputs = {'fare': 'DT_FLOAT', 'company': 'DT_STRING', 'trip_seconds': 'DT_INT64'}\n"
        "rows = R.read_rows(sys.argv[1])[:20]\n"
        "examples = R.encode_examples(rows, inputs)\n"
        "back = [R.example_row(e) for e in examples]\n"
        "R.raw_columns(back, inputs)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'numpy', 'tfx', 'tensorflow_serving'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(TAXI_CSV)], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_mobile_pusher_reads_eval_examples_back_as_the_csv_rows(tmp_path, rows):
    """tfxp/pipeline/components.py `_eval_rows`: ExampleGen's GZIP TFRecords -> rows, read by tfxp.rows."""
    import tensorflow as tf

    from tfxp.pipeline.components import _eval_rows

    spec = raw_feature_spec()
    split = tmp_path / "Split-eval"
    split.mkdir()
    with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for row in rows[:20]:
            writer.write(to_example(row, spec))
    back = _eval_rows(str(tmp_path), 15)
    assert len(back) == 15
    for row, read in zip(rows, back, strict=False):  # `back` is the first 15 of the rows, not all of them
        assert set(read) == set(row)
        assert all((read[name] == "") == (cell == "") for name, cell in row.items())
        assert read["company"] == row["company"] and read["trip_start_hour"] == row["trip_start_hour"]
        if row["fare"]:
            assert float(read["fare"]) == float(tf.constant(float(row["fare"]), tf.float32).numpy())
