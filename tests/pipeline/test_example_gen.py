"""The project's CsvExampleGen: the records TFX's CsvExampleGen makes, parsed and encoded in C++.

The reference is TFX 1.16's own `_CsvToExample` transform run on the same files:
the two must produce the same multiset of tf.Examples (compared by their
deterministic serialization), corner cases of TFX's type inference included.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx_bsl.coders import csv_decoder

from tfxp.pipeline import example_gen
from tfxp.pipeline.example_gen import (
    CsvToSerializedExamples,
    Executor,
    as_schema_floats,
    example_gen_config,
    infer_column_type,
    read_column_names,
    split_and_shard,
)
from tfxp.projects import TAXI

INT, FLOAT, STRING, UNKNOWN = (
    csv_decoder.ColumnType.INT,
    csv_decoder.ColumnType.FLOAT,
    csv_decoder.ColumnType.STRING,
    csv_decoder.ColumnType.UNKNOWN,
)
INPUT_BASE = standard_component_specs.INPUT_BASE_KEY


def _canonical(serialized: bytes) -> bytes:
    return tf.train.Example.FromString(serialized).SerializeToString(deterministic=True)


def _records(write, folder: Path) -> list[bytes]:
    """Runs `write(pipeline, prefix)` and reads back the TFRecords it wrote under `folder`."""
    prefix = str(folder / "records")
    with beam.Pipeline() as p:
        write(p, prefix)
    return [r for path in sorted(folder.glob("records*")) for r in tf.compat.v1.io.tf_record_iterator(str(path))]


def _ours(folder: Path, pattern: str = "*.csv", float_columns=(), missing_values=None) -> list[bytes]:
    props = {
        INPUT_BASE: str(folder),
        standard_component_specs.CUSTOM_CONFIG_KEY: example_gen_config(float_columns, missing_values=missing_values),
    }
    out = folder.parent / f"{folder.name}-ours"
    out.mkdir()
    records = _records(
        lambda p, prefix: p | CsvToSerializedExamples(props, pattern) | beam.io.WriteToTFRecord(prefix), out
    )
    return sorted(_canonical(r) for r in records)


def _tfx(folder: Path, pattern: str = "*.csv") -> list[bytes]:
    out = folder.parent / f"{folder.name}-tfx"
    out.mkdir()
    records = _records(
        lambda p, prefix: (
            p
            | tfx_csv._CsvToExample({INPUT_BASE: str(folder)}, pattern)
            | beam.Map(lambda e: e.SerializeToString(deterministic=True))
            | beam.io.WriteToTFRecord(prefix)
        ),
        out,
    )
    return sorted(records)


def _write(folder: Path, text: str, name: str = "data.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


CORNER_CASES = {
    # Empty cells in every type; an all-empty column (a feature without a kind in TFX).
    "missing": "i,f,s,none\n1,1.5,a,\n,,,\n3,,c,\n,2.25,,\n",
    # Whole numbers in one column and decimals in another: INT vs FLOAT, "2" in a FLOAT column.
    "int_float": "a,b\n1,2\n2,2.5\n-3,1e3\n0012,-.5\n",
    # Spellings Python reads and Arrow's parser does not, or reads differently.
    "python_spellings": "ws,under,plus,nan,inf,hex\n 12,1_000,+7,nan,+inf,0x10\n3 ,2,8,1.5,-inf,0x1F\n",
    # An integer beyond int64 makes the column STRING in tfx_bsl; beyond float range is inf.
    "long_ints": "big,huge\n9223372036854775808,1e400\n1,2.5\n",
    # Quoted cells with commas, quotes and line breaks; unicode.
    "quoting": 'name,note\n"Cab, Inc.","say ""hi"""\n"multi\nline","naïve ☕"\n',
    # Blank lines are skipped.
    "blank_lines": "a,b\n1,x\n\n2,y\n\n",
}


@pytest.mark.parametrize("case", sorted(CORNER_CASES))
def test_same_examples_as_tfx_csv_example_gen(tmp_path, case):
    _write(tmp_path / "data", CORNER_CASES[case])
    ours = _ours(tmp_path / "data")
    assert ours  # every case has rows
    assert ours == _tfx(tmp_path / "data")


def test_same_examples_as_tfx_on_the_taxi_data_split_over_files(tmp_path):
    lines = (TAXI / "data" / "taxi.csv").read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    for i in range(3):  # three files of one dataset
        _write(tmp_path / "data", header + "".join(rows[i::3]), f"part{i}.csv")
    ours = _ours(tmp_path / "data")
    assert len(ours) == len(rows)
    assert ours == _tfx(tmp_path / "data")


def test_schema_float_columns_stay_float_when_every_cell_is_whole(tmp_path):
    _write(tmp_path / "a", "tips,hour\n0,1\n2,3\n")
    _write(tmp_path / "b", "tips,hour\n0,1\n2,3\n")
    kinds_a = {
        tf.train.Example.FromString(r).features.feature["tips"].WhichOneof("kind") for r in _ours(tmp_path / "a")
    }
    assert kinds_a == {"int64_list"}
    kinds = {
        name: tf.train.Example.FromString(r).features.feature[name].WhichOneof("kind")
        for r in _ours(tmp_path / "b", float_columns=["tips"])
        for name in ("tips", "hour")
    }
    assert kinds == {"tips": "float_list", "hour": "int64_list"}


@pytest.mark.parametrize(
    "cells, expected",
    [
        (["1", "", "-2"], INT),
        (["", ""], UNKNOWN),
        (["1", "2.5"], FLOAT),
        (["1", " 2"], INT),  # int(b" 2") == 2
        (["1", "nan"], FLOAT),
        (["1", "0x10"], STRING),  # Arrow would read 16; Python does not
        (["nan(1)"], STRING),  # Arrow would read NaN; Python does not
        (["9223372036854775808"], STRING),
        (["9223372036854775808", "1.5"], STRING),
        (["a", "1"], STRING),
    ],
)
def test_column_type_is_tfx_bsls(cells, expected):
    assert infer_column_type(pa.array(cells, pa.string())) == expected
    reference = csv_decoder.ColumnTypeInferrer([0], skip_blank_lines=True)
    accumulator = reference.create_accumulator()
    for cell in cells:
        accumulator = reference.add_input(accumulator, [cell.encode()])
    assert reference.extract_output(accumulator)[0].type == expected


def test_missing_values_cells_are_missing_and_the_column_types_from_the_others(tmp_path):
    """UCI's "?" in a numeric column: without `missing_values` the column is STRING (as in TFX); with it those
    cells are empty features, as a blank cell is, and the column is INT, or FLOAT, by TFX's rules on the rest."""
    for folder in ("a", "b"):
        _write(tmp_path / folder, "horsepower,weight,name\n130,3504.5,?\n?,3693,buick\n150,NA,?\n")
    plain = [tf.train.Example.FromString(r) for r in _ours(tmp_path / "a")]
    assert {e.features.feature["horsepower"].WhichOneof("kind") for e in plain} == {"bytes_list"}
    mapped = [
        tf.train.Example.FromString(r)
        for r in _ours(tmp_path / "b", missing_values={"horsepower": ["?"], "weight": ["NA", "?"]})
    ]
    by_row = sorted(
        (
            list(e.features.feature["horsepower"].int64_list.value),
            list(e.features.feature["weight"].float_list.value),
            list(e.features.feature["name"].bytes_list.value),
        )
        for e in mapped
    )
    # "name" lists no missing_values: its "?" stays a value.
    assert by_row == [([], [3693.0], [b"buick"]), ([130], [3504.5], [b"?"]), ([150], [], [b"?"])]
    for e in mapped:
        assert e.features.feature["horsepower"].WhichOneof("kind") in ("int64_list", None)
        assert e.features.feature["weight"].WhichOneof("kind") in ("float_list", None)


def test_only_int_guesses_of_float_columns_change():
    types = {"tips": INT, "hour": INT, "fare": STRING, "miles": FLOAT}
    widened = as_schema_floats(types, frozenset({"tips", "fare", "miles"}))
    assert widened == {"tips": FLOAT, "hour": INT, "fare": STRING, "miles": FLOAT}


def test_custom_config_travels_as_tfx_passes_it():
    config = example_gen_config(["tips", "fare"], eval_rows=5000)
    # TFX hands proto execution properties to executors as JSON strings.
    as_json = json_format.MessageToJson(config)
    for value in (as_json, config):
        props = {standard_component_specs.CUSTOM_CONFIG_KEY: value}
        assert example_gen._float_columns(props) == {"tips", "fare"}
        assert example_gen._eval_rows(props) == 5000
    assert example_gen._float_columns({}) == frozenset()
    assert example_gen._eval_rows({}) is None
    assert example_gen._eval_rows({standard_component_specs.CUSTOM_CONFIG_KEY: example_gen_config([])}) is None
    with_missing = example_gen_config([], missing_values={"hp": ["?", "NA"]})
    for value in (json_format.MessageToJson(with_missing), with_missing):
        props = {standard_component_specs.CUSTOM_CONFIG_KEY: value}
        assert example_gen._missing_values(props) == {"hp": ["?", "NA"]}
    assert example_gen._missing_values({}) == {}


TFX_DEFAULT = [("train", 2), ("eval", 1)]


@pytest.mark.parametrize(
    "total_rows, eval_rows, keep",
    [
        (1_500_000, None, None),  # no cap: TFX's split
        (300_000, 200_000, None),  # a third is 100k, under the cap
        (1_500_000, 500_000, None),  # exactly a third
        (1_500_000, 200_000, 400_000),  # 200k of the 500k eval rows
        (15_000_000, 200_000, 40_000),
        (10**12, 1, 1),  # at least one millionth
    ],
)
def test_splits_for(total_rows, eval_rows, keep):
    splits = example_gen.splits_for(TFX_DEFAULT, total_rows, eval_rows)
    assert splits.buckets == [2, 3]
    assert splits.eval_keep == keep
    if keep is not None:
        assert (splits.eval_index, splits.spill_index) == (1, 0)


def test_capped_eval_rows_come_out_of_the_uncapped_eval_split():
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn

    capped = example_gen.splits_for(TFX_DEFAULT, 30_000, 1_000)
    uncapped = example_gen.splits_for(TFX_DEFAULT, 30_000, None)
    config = example_gen_pb2.SplitConfig()
    eval_rows = 0
    for i in range(30_000):
        key = f"row {i}".encode()
        split, _ = split_and_shard(key, capped, 5)
        tfx_split = _PartitionFn(key, 2, [2, 3], config)
        assert split_and_shard(key, uncapped, 5)[0] == tfx_split
        assert split <= tfx_split  # eval (1) only where TFX says eval; the rest of them train (0)
        eval_rows += split
    assert abs(eval_rows - 1_000) < 4 * 31  # binomial: sd ~31
    with pytest.raises(ValueError, match="eval_rows"):
        example_gen.splits_for(TFX_DEFAULT, 10, -1)


def test_header_with_bom_and_quotes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes('\ufeff"a","b c"\r\n1,2\r\n'.encode())
    assert read_column_names(str(path)) == ["a", "b c"]


def test_split_is_tfx_partition_rule_on_the_row_key():
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn

    config = example_gen_pb2.SplitConfig()
    for i in range(200):
        record = f"record {i}".encode()
        split, shard = split_and_shard(record, example_gen.Splits([2, 3]), 7)
        assert split == _PartitionFn(record, 2, [2, 3], config)
        assert 0 <= shard < 7


# ------------------------------------------------------------------------- the executor


def _read_gzip_tfrecords(path: Path) -> list[bytes]:
    """TFRecord framing read by hand: proves the files are plain gzipped TFRecords."""
    data, out, at = gzip.decompress(path.read_bytes()), [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        out.append(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
    return out


def _do(data: str, output: str, eval_rows: int | None = None) -> standard_artifacts.Examples:
    """Runs Executor.Do as TFX calls it: one input split, TFX's default train:eval 2:1 output splits."""
    examples = standard_artifacts.Examples()
    examples.uri = output
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single", pattern="*.csv")])
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
            ]
        )
    )
    props = {
        INPUT_BASE: data,
        standard_component_specs.INPUT_CONFIG_KEY: json_format.MessageToJson(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: json_format.MessageToJson(output_config),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.CUSTOM_CONFIG_KEY: json_format.MessageToJson(example_gen_config(["tips"], eval_rows)),
    }
    Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
    assert examples.split_names == '["train", "eval"]'
    return examples


def _run_executor(
    data: Path, output: Path, shard_csv_bytes: int, monkeypatch, eval_rows: int | None = None
) -> dict[str, list[Path]]:
    monkeypatch.setattr(example_gen, "SHARD_CSV_BYTES", shard_csv_bytes)
    _do(str(data), str(output), eval_rows)
    return {name: sorted((output / f"Split-{name}").iterdir()) for name in ("train", "eval")}


def test_executor_writes_shuffled_shards_of_every_row(tmp_path, monkeypatch):
    # A CSV sorted by its label: the output must not keep that order.
    rows = [f"{i},{int(i >= 600)}" for i in range(1200)]
    csv = _write(tmp_path / "data", "id,label\n" + "\n".join(rows) + "\n")
    files = _run_executor(tmp_path / "data", tmp_path / "out", 2_000, monkeypatch)

    shards = -(-csv.stat().st_size // 2_000)  # one per started 2 kB of CSV
    assert shards == 4
    for name in ("train", "eval"):
        assert [p.name for p in files[name]] == [f"data_tfrecord-{s:05d}-of-{shards:05d}.gz" for s in range(shards)]
    assert not (tmp_path / "out" / "_shards_tmp").exists()

    def ids(path):
        return [tf.train.Example.FromString(r).features.feature["id"].int64_list.value[0] for r in path]

    per_split = {name: [i for p in files[name] for i in ids(_read_gzip_tfrecords(p))] for name in files}
    assert sorted(per_split["train"] + per_split["eval"]) == list(range(1200))
    # Hash split 2:1 (TFX's rule): about 800 / 400.
    assert 700 < len(per_split["train"]) < 900
    # Shuffled within each shard: not ascending.
    first = ids(_read_gzip_tfrecords(files["train"][0]))
    assert first != sorted(first)
    # Each row went where TFX's partition rule sends its key, in the shard the key names.
    for name, index in (("train", 0), ("eval", 1)):
        for shard, path in enumerate(files[name]):
            for row in ids(_read_gzip_tfrecords(path)):
                key = f"{row}\x1f{int(row >= 600)}".encode()
                assert split_and_shard(key, example_gen.Splits([2, 3]), shards) == (index, shard)


def test_executor_caps_the_eval_split(tmp_path, monkeypatch):
    _write(tmp_path / "data", "id\n" + "".join(f"{i}\n" for i in range(3000)))
    capped = _run_executor(tmp_path / "data", tmp_path / "capped", 100_000, monkeypatch, eval_rows=300)
    uncapped = _run_executor(tmp_path / "data", tmp_path / "uncapped", 100_000, monkeypatch)

    def rows(paths):
        return {r for p in paths for r in map(_canonical, _read_gzip_tfrecords(p))}

    assert 240 < len(rows(capped["eval"])) < 360  # 300 expected, hash-chosen
    assert len(rows(capped["eval"])) + len(rows(capped["train"])) == 3000
    # The capped eval rows are a subset of the uncapped ones: the cap only moves rows into train.
    assert rows(capped["eval"]) < rows(uncapped["eval"])


def test_executor_output_is_a_function_of_the_input(tmp_path, monkeypatch):
    _write(tmp_path / "data", "a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(500)))

    def digest(out):
        files = _run_executor(tmp_path / "data", tmp_path / out, 2_000, monkeypatch)
        # Parsed and re-serialized deterministically: the encoder's feature order varies between processes.
        return {
            (name, p.name): hashlib.sha256(b"".join(_canonical(r) for r in _read_gzip_tfrecords(p))).hexdigest()
            for name, paths in files.items()
            for p in paths
        }

    assert digest("one") == digest("two")


def test_executor_writes_an_empty_file_for_a_split_no_row_reached(tmp_path, monkeypatch):
    _write(tmp_path / "data", "a\n1\n")
    files = _run_executor(tmp_path / "data", tmp_path / "out", 4_000, monkeypatch)
    counts = [len(_read_gzip_tfrecords(p)) for paths in files.values() for p in paths]
    assert sum(counts) == 1
    assert all(paths for paths in files.values())


def test_arrow_error_names_the_file(tmp_path):
    path = _write(tmp_path / "data", "a,b\n1,2\n3\n")
    with pytest.raises(Exception, match=str(path)):
        _ours(tmp_path / "data")


def test_executor_reads_and_writes_through_tensorflow_file_systems(tmp_path):
    """gs:// on Dataflow/Vertex goes through the same file API; TF's ram:// file system stands in for it."""
    data, output = f"ram://eg-{tmp_path.name}/data", f"ram://eg-{tmp_path.name}/out"
    tf.io.gfile.makedirs(data)
    with tf.io.gfile.GFile(f"{data}/data.csv", "w") as f:
        f.write("a,b\n" + "".join(f"{i},x{i % 3}\n" for i in range(300)))
    _do(data, output)
    rows = [
        r
        for name in ("train", "eval")
        for path in tf.io.gfile.glob(f"{output}/Split-{name}/*.gz")
        for r in tf.compat.v1.io.tf_record_iterator(path, tf.io.TFRecordOptions("GZIP"))
    ]
    assert len(rows) == 300
    assert not tf.io.gfile.exists(f"{output}/_shards_tmp")
