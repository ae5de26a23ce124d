"""Int columns of large magnitude (Unix timestamps, ids kept on purpose) convert to TFLite (issue 17).

float32 holds integers exactly only up to 2**24: cast first, a timestamp of ~1.4e9 lost its low bits
and the z-score was a difference of nearly equal numbers, which no (mean, std) reproduced, so
MobilePusher failed after the serving push ("no (mean, std) reproduces the transform (max error
0.0046)", on two of three datasets tried). The transform now centres ints in int64 before the cast;
the TFLite graph does the same with the offset it finds.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tfxp.models import features as F

PROBLEM = F.Problem(
    (
        F.Feature("listing_id", F.Kind.NUMERIC, F.DType.INT),
        F.Feature("last_review", F.Kind.NUMERIC, F.DType.INT, required=False),
        F.Feature("price", F.Kind.NUMERIC, F.DType.FLOAT),
    ),
    F.Label("rating", F.DType.FLOAT, F.Task.REGRESSION),
)


def _schema(schema_of):
    from tensorflow_metadata.proto.v0 import schema_pb2

    return schema_of(
        (
            ("listing_id", schema_pb2.INT, True),
            ("last_review", schema_pb2.INT, False),
            ("price", schema_pb2.FLOAT, True),
            ("rating", schema_pb2.FLOAT, True),
        )
    )


def _training_rows() -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(400):
        rows.append(
            {
                "listing_id": [int(1_400_000_000 + rng.integers(0, 60_000_000))],  # beyond 2**24 apart too
                "last_review": [] if i % 7 == 0 else [int(1_356_998_400 + rng.integers(0, 3 * 10**8))],
                "price": [float(rng.normal(120, 40))],
                "rating": [float(rng.normal(4, 0.5))],
            }
        )
    return rows


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory, schema_of):
    import functools

    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from tfxp.models.preprocessing import preprocessing_fn

    rows = _training_rows()
    out_dir = str(tmp_path_factory.mktemp("large_ints"))
    schema = _schema(schema_of)
    metadata = dataset_metadata.DatasetMetadata(schema)
    fn = functools.partial(preprocessing_fn, custom_config={"problem": PROBLEM.to_dict()})
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--direct_running_mode=in_memory"])) as p:
        with tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp"), force_tf_compat_v1=True):
            data = p | beam.Create(rows, reshuffle=False)
            transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(fn)
            transform_fn | tft_beam.WriteTransformFn(out_dir)
    metadata_io.write_metadata(metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(out_dir)


def test_large_ints_convert_and_the_tflite_preprocessing_follows_the_transform(transform_output):
    from tfxp.mobile import graph
    from tfxp.mobile.preprocessing_params import TransformProbe, extract_preprocessing
    from tfxp.models import model as model_lib

    probe = TransformProbe(transform_output, PROBLEM)
    params = extract_preprocessing(transform_output, PROBLEM, probe)  # raised ConversionError before
    by_name = {p.name: p for p in params}
    assert abs(by_name["listing_id"].offset - 1_430_000_000) < 5_000_000  # near the mean, in int64
    assert by_name["price"].offset == 0
    module = graph.build_module(model_lib.build_model(PROBLEM), params, PROBLEM)
    rng = np.random.default_rng(4)
    cols = {
        "listing_id": np.asarray(1_400_000_000 + rng.integers(-(10**8), 10**8, 64), np.int64),
        "last_review": np.asarray(1_356_998_400 + rng.integers(0, 3 * 10**8, 64), np.int64),
        "price": np.asarray(rng.normal(120, 40, 64), np.float32),
    }
    cols["last_review"][:4] = F.MISSING_INT
    want = probe.columns(cols)
    got = {name: value.numpy().reshape(-1) for name, value in module.preprocess(cols).items()}
    assert set(got) == set(want) == set(F.model_inputs(PROBLEM))
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6, err_msg=name)
    # Neighbouring ids stay apart (cast first, steps of 128 made them equal).
    z = probe.columns({**cols, "listing_id": np.asarray([1_430_000_000, 1_430_000_001] * 32, np.int64)})
    assert z[F.transformed_name("listing_id")][0] != z[F.transformed_name("listing_id")][1]
    assert (want[F.indicator_name("last_review")][:4] == 1).all()


def test_int_z_scores_are_those_of_the_training_values_in_float64(transform_output):
    # int_z_score analyzes mean and variance in one pass (issue 25) and centres in int64: the z-score of
    # a value ~1.4e9 is the float64 one to float32 precision, for values present in training and not.
    from tfxp.mobile.preprocessing_params import TransformProbe

    probe = TransformProbe(transform_output, PROBLEM)
    rows = _training_rows()
    for name in ("listing_id", "last_review"):
        train = np.asarray([r[name][0] for r in rows if r[name]], np.float64)
        mean, std = train.mean(), train.std()
        values = np.asarray([int(mean) + d for d in (-3 * int(std), -12_345, -1, 0, 1, 7, 12_345, 3 * int(std))])
        cols = {
            "listing_id": values if name == "listing_id" else np.full(len(values), 1_430_000_000, np.int64),
            "last_review": values if name == "last_review" else np.full(len(values), 1_400_000_000, np.int64),
            "price": np.full(len(values), 120.0, np.float32),
        }
        got = probe.columns(cols)[F.transformed_name(name)].astype(np.float64)
        np.testing.assert_allclose(got, (values - mean) / std, rtol=1e-6, atol=1e-6, err_msg=name)
