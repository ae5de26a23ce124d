"""The Keras model trained for real, saved with its signatures, reloaded; signatures agree."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models import signatures

from taxi_data import raw_feature_spec, to_example

N_CHECK = 200


@pytest.fixture(scope="module")
def saved(trained_model):
    return trained_model


def _raw_tensors(rows):
    """Dense raw tensors as a JSON/mobile client sends them: blanks become the missing markers."""
    out = {}
    for feature in F.FEATURES:
        values = []
        for row in rows:
            text = row[feature.name]
            if text == "":
                values.append(F.missing_value(feature.dtype))
            elif feature.dtype is F.DType.INT:
                values.append(int(float(text)))
            elif feature.dtype is F.DType.FLOAT:
                values.append(float(text))
            else:
                values.append(text)
        dtype = {F.DType.INT: tf.int64, F.DType.FLOAT: tf.float32, F.DType.STRING: tf.string}[feature.dtype]
        out[feature.name] = tf.constant(values, dtype=dtype)
    return out


def test_training_learns(saved):
    _, metrics = saved
    assert metrics["auc"] > 0.8, metrics
    assert metrics["binary_accuracy"] > 0.7, metrics


def test_saved_model_has_the_three_signatures(saved):
    path, _ = saved
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {signatures.SERVING_DEFAULT, signatures.PREDICT_RAW,
                                      signatures.TRANSFORM_FEATURES, signatures.CLASSIFICATION,
                                      signatures.REGRESSION}
    raw_inputs = loaded.signatures[signatures.PREDICT_RAW].structured_input_signature[1]
    assert set(raw_inputs) == {f.name for f in F.FEATURES}
    examples_input = loaded.signatures[signatures.SERVING_DEFAULT].structured_input_signature[1]
    assert set(examples_input) == {signatures.EXAMPLES_INPUT}


def test_serving_default_and_predict_raw_agree_including_missing_values(saved, taxi_rows):
    path, _ = saved
    loaded = tf.saved_model.load(path)
    rows = taxi_rows[:N_CHECK]
    assert any(r["dropoff_latitude"] == "" for r in rows), "need rows with missing optional values"
    spec = raw_feature_spec()
    from_examples = loaded.signatures[signatures.SERVING_DEFAULT](
        examples=tf.constant([to_example(r, spec) for r in rows])
    )[F.OUTPUT].numpy()
    from_raw = loaded.signatures[signatures.PREDICT_RAW](**_raw_tensors(rows))[F.OUTPUT].numpy()
    assert from_examples.shape == (N_CHECK,)
    np.testing.assert_allclose(from_raw, from_examples, atol=1e-6)
    assert 0.0 <= from_raw.min() and from_raw.max() <= 1.0
    assert from_raw.std() > 0.01  # a trained model, not a constant


def test_every_optional_feature_missing_agrees(saved, taxi_rows):
    path, _ = saved
    loaded = tf.saved_model.load(path)
    spec = raw_feature_spec()
    optional = {n for n, s in spec.items() if isinstance(s, tf.io.VarLenFeature)}
    row = {k: ("" if k in optional else v) for k, v in taxi_rows[0].items()}
    from_examples = loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant([to_example(row, spec)]))
    from_raw = loaded.signatures[signatures.PREDICT_RAW](**_raw_tensors([row]))
    np.testing.assert_allclose(from_raw[F.OUTPUT].numpy(), from_examples[F.OUTPUT].numpy(), atol=1e-6)


def test_transform_features_matches_tf_transform_batch_output(saved, transformed, taxi_rows):
    """No training/serving skew: the serving-time transform equals Transform's batch output."""
    path, _ = saved
    _, _, batch_rows = transformed
    loaded = tf.saved_model.load(path)
    spec = raw_feature_spec()
    rows = taxi_rows[:N_CHECK]
    out = loaded.signatures[signatures.TRANSFORM_FEATURES](examples=tf.constant([to_example(r, spec) for r in rows]))
    for name in [F.transformed_name(f.name) for f in F.FEATURES] + [F.LABEL]:
        served = out[name].numpy().reshape(-1)
        batch = np.array([np.asarray(r[name]).reshape(-1)[0] for r in batch_rows[:N_CHECK]])
        np.testing.assert_allclose(served, batch, rtol=1e-5, atol=1e-5, err_msg=name)


def test_keras_reload_on_transformed_features_matches_serving_default(saved, taxi_rows):
    path, _ = saved
    keras_model = tf.keras.models.load_model(path)
    loaded = tf.saved_model.load(path)
    spec = raw_feature_spec()
    examples = tf.constant([to_example(r, spec) for r in taxi_rows[:N_CHECK]])
    transformed = loaded.signatures[signatures.TRANSFORM_FEATURES](examples=examples)
    inputs = {F.transformed_name(f.name): tf.reshape(transformed[F.transformed_name(f.name)], [-1, 1])
              for f in F.FEATURES}
    via_keras = keras_model(inputs).numpy().reshape(-1)
    via_signature = loaded.signatures[signatures.SERVING_DEFAULT](examples=examples)[F.OUTPUT].numpy()
    np.testing.assert_allclose(via_keras, via_signature, atol=1e-6)


def test_classification_and_regression_signatures_carry_tf_serving_methods(saved, taxi_rows):
    from serving.servable import read_signature_defs

    path, _ = saved
    defs = read_signature_defs(path)
    assert defs[signatures.CLASSIFICATION].method_name == "tensorflow/serving/classify"
    assert defs[signatures.REGRESSION].method_name == "tensorflow/serving/regress"
    assert defs[signatures.SERVING_DEFAULT].method_name == "tensorflow/serving/predict"
    loaded = tf.saved_model.load(path)
    examples = tf.constant([to_example(r, raw_feature_spec()) for r in taxi_rows[:10]])
    probability = loaded.signatures[signatures.SERVING_DEFAULT](examples=examples)[F.OUTPUT].numpy()
    scores = loaded.signatures[signatures.CLASSIFICATION](inputs=examples)["scores"].numpy()
    np.testing.assert_allclose(scores[:, 1], probability, atol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    regressed = loaded.signatures[signatures.REGRESSION](inputs=examples)["outputs"].numpy()
    np.testing.assert_allclose(regressed, probability, atol=1e-6)


def test_serving_default_accepts_examples_without_columns_the_model_ignores(saved, taxi_rows):
    path, _ = saved
    loaded = tf.saved_model.load(path)
    spec = raw_feature_spec()
    full = [to_example(r, spec) for r in taxi_rows[:5]]
    used = {f.name for f in F.FEATURES}
    trimmed = [to_example(r, {k: v for k, v in spec.items() if k in used}) for r in taxi_rows[:5]]
    a = loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant(full))[F.OUTPUT].numpy()
    b = loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant(trimmed))[F.OUTPUT].numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_vocabulary_tables_have_a_row_per_id_transform_can_emit(saved, transformed, taxi_rows):
    from models import model as model_lib

    tft_output, _, _ = transformed
    spaces = model_lib.vocabulary_id_spaces(tft_output)
    vocabulary_features = [f for f in F.FEATURES if f.kind is F.Kind.VOCABULARY]
    assert set(spaces) == {f.name for f in vocabulary_features}
    for feature in vocabulary_features:
        assert spaces[feature.name] == max(tft_output.vocabulary_size_by_name(feature.name), 1) + F.OOV_BUCKETS
        assert spaces[feature.name] < F.VOCAB_SIZE
    # One shared table: a row range per categorical feature, nothing more.
    keras_model = tf.keras.models.load_model(saved[0], compile=False)
    table = keras_model.get_layer(model_lib.CATEGORICAL_TABLE)
    small_ints = sum(f.size for f in F.FEATURES if f.kind not in (F.Kind.NUMERIC, F.Kind.VOCABULARY))
    assert table.input_dim == sum(spaces.values()) + small_ints
    # An unseen category maps to the last row (the OOV bucket), which exists.
    unseen = dict(taxi_rows[0], company="Never Seen Cab Co", payment_type="Barter")
    out = tf.saved_model.load(saved[0]).signatures[signatures.PREDICT_RAW](**_raw_tensors([unseen]))
    assert np.isfinite(out[F.OUTPUT].numpy()).all()
