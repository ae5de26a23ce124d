"""Test helpers for real taxi data: CSV rows, the curated schema, tf.Example and tf.Transform forms."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import tfxp.models  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TAXI_CSV = PROJECT_ROOT / "tfxp" / "projects" / "taxi" / "data" / "taxi.csv"
SCHEMA = PROJECT_ROOT / "tfxp" / "projects" / "taxi" / "schema.pbtxt"


# The taxi project's problem (features in its project.yaml's CSV order), its output and label.
from tfxp.projects import taxi_problem  # noqa: E402
from tfxp.projects.taxi.label import TIP_FRACTION  # noqa: E402,F401

TAXI = taxi_problem()
OUTPUT = TAXI.output  # "probability"
TIPS = TAXI.label.column  # "tips"


def taxi_inputs() -> dict[str, str]:
    """The taxi model's raw inputs, {name: dtype} (as tfxp.rows takes them)."""
    return {f.name: f.dtype.value for f in TAXI.features}


def taxi_columns() -> dict[str, str]:
    """Every taxi CSV column but the label, {name: dtype}: the model's inputs and the ignored ones."""
    from tfxp import project

    return {c.name: c.dtype for c in project.load(TAXI_CSV.parent.parent).features}


def read_csv_rows(path: Path = TAXI_CSV, limit: int | None = None) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[:limit] if limit else rows


def load_schema():
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(SCHEMA.read_text(), schema_pb2.Schema())


def raw_feature_spec() -> dict:
    from tensorflow_transform.tf_metadata import schema_utils

    return schema_utils.schema_as_feature_spec(load_schema()).feature_spec


def to_instance(row: dict[str, str], spec: dict) -> dict:
    """A CSV row as tf.Transform's instance dict: FixedLen -> value, VarLen -> list (empty if blank)."""
    import numpy as np
    import tensorflow as tf

    instance = {}
    for name, feature_spec in spec.items():
        text = row.get(name, "")
        if text == "":
            value = None
        elif feature_spec.dtype == tf.string:
            value = text.encode()
        elif feature_spec.dtype == tf.int64:
            value = int(float(text))
        else:
            value = float(text)
        if isinstance(feature_spec, tf.io.FixedLenFeature):
            instance[name] = np.array([value])
        else:
            instance[name] = np.array([] if value is None else [value], dtype=feature_spec.dtype.as_numpy_dtype)
    return instance


def to_example(row: dict[str, str], spec: dict) -> bytes:
    """A CSV row as a serialized tf.Example, blank cells left out (as CsvExampleGen does)."""
    import tensorflow as tf

    feature = {}
    for name, feature_spec in spec.items():
        text = row.get(name, "")
        if text == "":
            feature[name] = tf.train.Feature()  # present but empty, like CsvExampleGen
        elif feature_spec.dtype == tf.string:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
        elif feature_spec.dtype == tf.int64:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(float(text))]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(text)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)
