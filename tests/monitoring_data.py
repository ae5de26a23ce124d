"""Hand-made monitoring inputs shared by tests/monitoring: a model version carrying a monitoring reference built
from real TFDV statistics of the taxi CSV (written by reference.write as the Pusher writes it), and real
PredictionLog TFRecords of rows. Fixtures: tests/monitoring/conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from taxi_data import read_csv_rows

from tfxp.monitoring import reference
from tfxp.project.spec import Monitoring

MODEL = "taxi"
FEATURES = {"fare": "DT_FLOAT", "payment_type": "DT_STRING", "trip_start_hour": "DT_INT64"}
PROBLEM = {
    "features": [
        {"name": "fare", "kind": "numeric", "dtype": "float32", "size": 0, "required": True},
        {"name": "payment_type", "kind": "vocabulary", "dtype": "string", "size": 0, "required": True},
        {"name": "trip_start_hour", "kind": "categorical_int", "dtype": "int64", "size": 24, "required": True},
    ],
    "label": {"column": "tips", "dtype": "float32", "task": "binary", "classes": ["0", "1"], "hook": None},
    "slices": [],
}


def typed(row: dict) -> dict:
    return {
        "fare": float(row["fare"]),
        "payment_type": row["payment_type"],
        "trip_start_hour": int(row["trip_start_hour"]),
    }


def shuffled_rows() -> list[dict]:
    """Taxi rows in a random order: the CSV's own order has stretches unlike the whole (rows 6,500-7,100
    differ from the first 5,000 by L-infinity 0.17 on payment_type), which a monitor rightly reports."""
    import random

    rows = [typed(r) for r in read_csv_rows(limit=8000) if r["fare"]]
    random.Random(11).shuffle(rows)
    return rows


def make_base_path(folder: Path, rows: list[dict]) -> Path:
    """A model base path with version 1 carrying a monitoring reference (training = the first 5,000 rows)."""
    import pandas as pd
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    base = folder / MODEL
    version = base / "1"
    (version / "assets.extra").mkdir(parents=True)
    (version / reference.PROBLEM_FILE).write_text(json.dumps(PROBLEM))
    stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame(rows[:5000]), n_jobs=1)
    schema = text_format.MessageToString(tfdv.infer_schema(stats))
    answers = list(np.random.default_rng(0).uniform(size=1000))
    reference.write(str(version), stats.SerializeToString(), schema, PROBLEM, Monitoring(), answers)
    return base


ANSWERS = np.random.default_rng(1)


def log_record(row: dict, version: int = 1, refused: bool = False) -> bytes:
    """A logged serving_default request of `row`; its answer drawn as the eval answers were (uniform)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tfxp.rows import encode_example

    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request
    request.model_spec.name, request.model_spec.signature_name = MODEL, "serving_default"
    request.model_spec.version.value = version
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([encode_example(row, FEATURES)]))
    log.predict_log.response.model_spec.CopyFrom(request.model_spec)
    if not refused:
        answer = np.array([ANSWERS.uniform()], np.float32)
        log.predict_log.response.outputs["probability"].CopyFrom(tf.make_tensor_proto(answer))
    return log.SerializeToString()


def write_log_file(folder: Path, hour: int, records: list[bytes], index: int = 0) -> Path:
    """`records` as `tfxp serve` would name a file started on 2026-12-01 at <hour>:00 (records without a time)."""
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"prediction_log-20261201T{hour:02d}0000.000Z-1-{index}.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path
