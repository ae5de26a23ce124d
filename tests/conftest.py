"""Shared fixtures: real taxi rows and a real tf.Transform output."""

from __future__ import annotations

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
    from transform_harness import run_transform

    spec = raw_feature_spec()
    instances = [to_instance(r, spec) for r in taxi_rows]
    tft_output, rows = run_transform(instances, load_schema(), TAXI, str(tmp_path_factory.mktemp("transform")))
    return tft_output, instances, rows


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
