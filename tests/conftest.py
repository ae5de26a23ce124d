"""Shared fixtures: real taxi rows and a real tf.Transform output."""

from __future__ import annotations

import functools
import json
import os

import pytest
from taxi_data import TAXI, load_schema, raw_feature_spec, read_csv_rows, to_instance


@pytest.fixture(scope="session")
def taxi_rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=2000)


@pytest.fixture(scope="session")
def transformed(tmp_path_factory, taxi_rows):
    """Runs the project's preprocessing_fn through tf.Transform (Beam) on 2,000 real rows.

    Returns (TFTransformOutput, raw instances, transformed instances).
    """
    import apache_beam as beam
    import numpy as np
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from tfxp.models.preprocessing import preprocessing_fn

    spec = raw_feature_spec()
    instances = [to_instance(r, spec) for r in taxi_rows]
    metadata = dataset_metadata.DatasetMetadata(load_schema())
    out_dir = str(tmp_path_factory.mktemp("transform"))
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--direct_running_mode=in_memory"])) as p:
        with tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp"), force_tf_compat_v1=True):
            data = p | "Create" >> beam.Create(instances, reshuffle=False)
            (transformed_data, _), transform_fn = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(
                functools.partial(preprocessing_fn, custom_config={"problem": TAXI.to_dict()}),
                output_record_batches=False,
            )
            transform_fn | tft_beam.WriteTransformFn(out_dir)
            _ = (
                transformed_data
                | beam.Map(lambda d: json.dumps({k: np.asarray(v).tolist() for k, v in d.items()}))
                | beam.io.WriteToText(os.path.join(out_dir, "transformed.jsonl"), shard_name_template="")
            )
    # TFX's Transform also writes the raw metadata; the serving signatures read it.
    metadata_io.write_metadata(metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    with open(os.path.join(out_dir, "transformed.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return tft.TFTransformOutput(out_dir), instances, rows


def _dataset(rows, batch_size, tft_output=None):
    """Batches of (transformed features, label); with `tft_output`, training batches as run_fn makes
    them (`learn_unknowns`: a few values replaced by the OOV id and, for optional features, "missing")."""
    import numpy as np
    import tensorflow as tf

    from tfxp.models import features as F

    names = F.model_inputs(TAXI)
    features = {n: np.array([np.asarray(r[n]).reshape(-1) for r in rows]) for n in names}
    labels = np.array([[r[F.LABEL_KEY]] for r in rows], dtype=np.float32)
    data = tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(4096, seed=1).batch(batch_size).repeat()
    if tft_output is None:
        return data
    from tfxp.models import model as model_lib

    sizes = model_lib.vocabulary_sizes(tft_output, TAXI.features)
    return data.map(lambda x, y: (model_lib.learn_unknowns(x, TAXI, sizes), y))


@pytest.fixture(scope="session")
def trained_model(transformed, tmp_path_factory):
    """A real model: trained 200 steps on 1,500 transformed rows, saved with all signatures.

    Returns (SavedModel path, eval metrics on the other 500 rows).
    """
    from tfxp.models import model as model_lib, signatures

    tft_output, _, rows = transformed
    problem = TAXI
    model = model_lib.build_model(problem, model_lib.vocabulary_sizes(tft_output, problem.features))
    metrics = model_lib.train(
        model,
        _dataset(rows[:1500], 64, tft_output),
        _dataset(rows[1500:], 250),
        200,
        2,
        str(tmp_path_factory.mktemp("logs")),
    )
    path = str(tmp_path_factory.mktemp("model") / "saved")
    signatures.save(model, tft_output, path, problem)
    return path, metrics


# Fixtures that run tf.Transform, train a model or run a pipeline: a test that uses one (directly or
# through another fixture) is `slow`, so `make test-fast` (-m "not slow") is a quick loop.
SLOW_FIXTURES = frozenset({"transformed", "trained_model", "saved", "converted", "generated", "pushed"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
