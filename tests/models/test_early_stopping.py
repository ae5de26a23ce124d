"""Early stopping on held-out training rows (issue 23): which rows are held out, that they are never trained on,
and that training stops PATIENCE measurements after the best held-out loss, keeping the best weights."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfxp.models import features as F, model as model_lib

X = F.Feature("x", F.Kind.NUMERIC, F.DType.FLOAT)
COLOR = F.Feature("color", F.Kind.CATEGORICAL_INT, F.DType.INT, size=50)
REGRESSION = F.Problem((X, COLOR), F.Label("y", F.DType.FLOAT, F.Task.REGRESSION))


def _rows(n: int, seed: int = 0) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    color = rng.integers(1, 51, size=n)
    features = {F.transformed_name("x"): x, F.transformed_name("color"): color}
    return features, (x + rng.normal(scale=2.0, size=n)).astype(np.float32)


def _weighted(features: dict, labels: np.ndarray, batch: int = 32) -> tf.data.Dataset:
    """(features, label, weight) batches as transformed_dataset yields them for training."""
    held = model_lib.held_out({k: tf.constant(v) for k, v in features.items()}).numpy()
    weights = np.where(held, 0.0, 1.0).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((features, labels, weights)).shuffle(512, seed=1).batch(batch).repeat()


def test_held_out_rows_are_a_share_chosen_by_the_row_alone():
    features, _ = _rows(20_000)
    tensors = {k: tf.constant(v) for k, v in features.items()}
    held = model_lib.held_out(tensors).numpy()
    assert abs(held.mean() - model_lib.VALIDATION_SHARE) < 0.01
    # The same row is on the same side in any batch, in any order, duplicated or not.
    order = np.random.default_rng(3).permutation(20_000)
    shuffled = model_lib.held_out({k: tf.constant(np.concatenate([v[order], v[:50]])) for k, v in features.items()})
    np.testing.assert_array_equal(shuffled.numpy()[:20_000], held[order])
    np.testing.assert_array_equal(shuffled.numpy()[20_000:], held[:50])


def test_held_out_rows_move_no_weight():
    features, labels = _rows(256)
    data = tf.data.Dataset.from_tensor_slices((features, labels, np.zeros(256, np.float32))).batch(64).repeat()
    model = model_lib.build_model(REGRESSION, label_scale=(0.0, 1.0))
    before = [w.copy() for w in model.get_weights()]
    model_lib.train(model, data, data, 30, 1, task=F.Task.REGRESSION)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_training_stops_after_the_best_held_out_loss_and_keeps_its_weights():
    """A noisy 300-row table and a model with a 50-row embedding to memorise it: the held-out loss turns up
    long before 3,000 steps."""
    features, labels = _rows(300)
    model = model_lib.build_model(REGRESSION, hidden_units=(128, 128), label_scale=(0.0, 2.2))
    results = model_lib.train(model, _weighted(features, labels), _weighted(*_rows(300, seed=9)), 3000, 5,
                              task=F.Task.REGRESSION, learning_rate=1e-2)  # fmt: skip
    assert results["steps"] < 3000
    assert results["best_step"] == results["steps"] - model_lib.PATIENCE * model_lib.VALIDATION_EVERY
    # The kept weights are the best step's, whose held-out loss is below the last step's.
    assert 0 < results["validation_loss"] < results["validation_loss_last"]


def test_without_weights_every_step_trains_and_nothing_is_held_out():
    features, labels = _rows(256)
    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(64).repeat()
    model = model_lib.build_model(REGRESSION, label_scale=(0.0, 2.2))
    results = model_lib.train(model, data, data, 40, 1, task=F.Task.REGRESSION)
    assert results["steps"] == results["best_step"] == 40
    assert not any(name.startswith("validation_") for name in results)
