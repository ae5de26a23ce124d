"""The Keras model trained for real, saved with its signatures, reloaded; signatures agree."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from taxi_data import OUTPUT, TAXI, raw_feature_spec, to_example

from tfxp.models import features as F, signatures

N_CHECK = 200


@pytest.fixture(scope="module")
def saved(trained_model):
    return trained_model


def _raw_tensors(rows):
    """Dense raw tensors as a JSON/mobile client sends them: blanks become the missing markers."""
    out = {}
    for feature in TAXI.features:
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
    assert set(loaded.signatures) == {
        signatures.SERVING_DEFAULT,
        signatures.PREDICT_RAW,
        signatures.TRANSFORM_FEATURES,
        signatures.CLASSIFICATION,
        signatures.REGRESSION,
    }
    raw_inputs = loaded.signatures[signatures.PREDICT_RAW].structured_input_signature[1]
    assert set(raw_inputs) == {f.name for f in TAXI.features}
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
    )[OUTPUT].numpy()
    from_raw = loaded.signatures[signatures.PREDICT_RAW](**_raw_tensors(rows))[OUTPUT].numpy()
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
    np.testing.assert_allclose(from_raw[OUTPUT].numpy(), from_examples[OUTPUT].numpy(), atol=1e-6)


def test_transform_features_matches_tf_transform_batch_output(saved, transformed, taxi_rows):
    """No training/serving skew: the serving-time transform equals Transform's batch output."""
    path, _ = saved
    _, _, batch_rows = transformed
    loaded = tf.saved_model.load(path)
    spec = raw_feature_spec()
    rows = taxi_rows[:N_CHECK]
    out = loaded.signatures[signatures.TRANSFORM_FEATURES](examples=tf.constant([to_example(r, spec) for r in rows]))
    for name in [*F.model_inputs(TAXI), F.LABEL_KEY]:
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
    inputs = {name: tf.reshape(transformed[name], [-1, 1]) for name in F.model_inputs(TAXI)}
    via_keras = keras_model(inputs).numpy().reshape(-1)
    via_signature = loaded.signatures[signatures.SERVING_DEFAULT](examples=examples)[OUTPUT].numpy()
    np.testing.assert_allclose(via_keras, via_signature, atol=1e-6)


def test_classification_and_regression_signatures_carry_tf_serving_methods(saved, taxi_rows):
    from tfxp.serving.servable import read_signature_defs

    path, _ = saved
    defs = read_signature_defs(path)
    assert defs[signatures.CLASSIFICATION].method_name == "tensorflow/serving/classify"
    assert defs[signatures.REGRESSION].method_name == "tensorflow/serving/regress"
    assert defs[signatures.SERVING_DEFAULT].method_name == "tensorflow/serving/predict"
    loaded = tf.saved_model.load(path)
    examples = tf.constant([to_example(r, raw_feature_spec()) for r in taxi_rows[:10]])
    probability = loaded.signatures[signatures.SERVING_DEFAULT](examples=examples)[OUTPUT].numpy()
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
    used = {f.name for f in TAXI.features}
    trimmed = [to_example(r, {k: v for k, v in spec.items() if k in used}) for r in taxi_rows[:5]]
    a = loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant(full))[OUTPUT].numpy()
    b = loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant(trimmed))[OUTPUT].numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_vocabulary_tables_have_a_row_per_id_transform_can_emit(saved, transformed, taxi_rows):
    from tfxp.models import model as model_lib

    tft_output, _, _ = transformed
    spaces = model_lib.vocabulary_sizes(tft_output, TAXI.features)
    vocabulary_features = [f for f in TAXI.features if f.kind is F.Kind.VOCABULARY]
    assert set(spaces) == {f.name for f in vocabulary_features}
    for feature in vocabulary_features:
        assert spaces[feature.name] == tft_output.vocabulary_size_by_name(feature.name)
        assert spaces[feature.name] < F.VOCAB_SIZE
    # One shared table: a row range per categorical feature, nothing more.
    keras_model = tf.keras.models.load_model(saved[0], compile=False)
    table = keras_model.get_layer(model_lib.CATEGORICAL_TABLE)
    categorical = [f for f in TAXI.features if f.kind is not F.Kind.NUMERIC]
    assert table.input_dim == sum(F.id_space(f, spaces.get(f.name, 0)) for f in categorical)
    # An unseen category maps to its feature's last row (the OOV id), which exists.
    unseen = dict(taxi_rows[0], company="Never Seen Cab Co", payment_type="Barter")
    out = tf.saved_model.load(saved[0]).signatures[signatures.PREDICT_RAW](**_raw_tensors([unseen]))
    assert np.isfinite(out[OUTPUT].numpy()).all()


# -- predict_raw refuses what it cannot answer (issue 10, item 14) ---------------------------------


def _predict_raw_error(loaded, tensors) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        loaded.signatures[signatures.PREDICT_RAW](**tensors)
    return str(info.value)


def _required_features() -> list[F.Feature]:
    spec = raw_feature_spec()
    return [f for f in TAXI.features if isinstance(spec[f.name], tf.io.FixedLenFeature)]


# predict_raw compares every input's length with the first input's (the project's CSV order).
FIRST, SECOND = TAXI.features[0].name, TAXI.features[1].name


def test_predict_raw_refuses_an_input_shorter_or_longer_than_the_others(saved, taxi_rows):
    """`pickup_census_tract: [T]` for two rows used to give row 0 the second row's tract (a 200)."""
    loaded = tf.saved_model.load(saved[0])
    tract = "17031081500"  # a census tract T, given for both rows (the column is blank in almost every CSV row)
    tensors = _raw_tensors([dict(r, pickup_census_tract=tract) for r in taxi_rows[:2]])
    good = loaded.signatures[signatures.PREDICT_RAW](**tensors)[OUTPUT].numpy()
    assert good.shape == (2,)
    tract = tensors["pickup_census_tract"]
    for bad in (tract[1:], tf.concat([tract, tract[:1]], 0), tract[:0]):  # shorter, longer, empty
        message = _predict_raw_error(loaded, {**tensors, "pickup_census_tract": bad})
        assert (
            f"predict_raw: input pickup_census_tract has {int(bad.shape[0])} values but input {FIRST} "
            "has 2: every input needs one value per row"
        ) in message
    # The first input is the reference length: a short one names the next input that differs.
    message = _predict_raw_error(loaded, {**tensors, FIRST: tensors[FIRST][:1]})
    assert f"input {SECOND} has 2 values but input {FIRST} has 1" in message
    # A string and a float column too (every dtype is checked, not only the sparse-converted ones).
    for name in ("company", "dropoff_latitude", "payment_type"):
        message = _predict_raw_error(loaded, {**tensors, name: tf.concat([tensors[name]] * 2, 0)})
        assert f"input {name} has 4 values but input {FIRST} has 2" in message


def test_predict_raw_refuses_rows_missing_a_required_input_as_serving_default_does(saved, taxi_rows):
    loaded = tf.saved_model.load(saved[0])
    spec = raw_feature_spec()
    rows = taxi_rows[:3]
    required = _required_features()
    assert {f.name for f in required} == {
        "trip_miles",
        "fare",
        "trip_start_hour",
        "trip_start_day",
        "trip_start_month",
        "payment_type",
    }
    markers = {F.DType.FLOAT: "NaN", F.DType.INT: str(F.MISSING_INT), F.DType.STRING: "empty string"}
    for feature in required:
        blank = [rows[0], dict(rows[1], **{feature.name: ""}), dict(rows[2], **{feature.name: ""})]
        message = _predict_raw_error(loaded, _raw_tensors(blank))
        assert (
            f"predict_raw: required input {feature.name} is missing (the marker {markers[feature.dtype]}) in rows [1 2]"
        ) in message, message
        # serving_default refuses the same rows, naming the same feature.
        with pytest.raises(tf.errors.InvalidArgumentError, match=feature.name):
            loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant([to_example(r, spec) for r in blank]))
    # Many rows: the first and last few are named, not all of them.
    many = [dict(taxi_rows[0], fare="") for _ in range(40)]
    assert "in rows [0 1 2 3 4 ... 35 36 37 38 39]" in _predict_raw_error(loaded, _raw_tensors(many))


def test_predict_raw_checks_run_before_the_transform(saved, taxi_rows):
    """A longer optional column used to fail inside the transform ("indices[2] ... out of bounds")."""
    loaded = tf.saved_model.load(saved[0])
    tensors = _raw_tensors(taxi_rows[:2])
    longer = tf.constant([1, 2, 3], tf.int64)
    message = _predict_raw_error(loaded, {**tensors, "dropoff_census_tract": longer})
    assert "out of bounds" not in message and "input dropoff_census_tract has 3 values" in message
    # An empty batch is still an answer (zero rows), as for serving_default.
    empty = {name: value[:0] for name, value in tensors.items()}
    assert loaded.signatures[signatures.PREDICT_RAW](**empty)[OUTPUT].shape == (0,)


def test_every_signature_refuses_an_infinite_float_the_schema_disallows(saved, taxi_rows):
    """serving_default (and Classify/Regress through it) answered a tf.Example with fare=inf."""
    loaded = tf.saved_model.load(saved[0])
    spec = raw_feature_spec()
    rows = [taxi_rows[0], dict(taxi_rows[1], fare="inf")]
    examples = tf.constant([to_example(r, spec) for r in rows])
    for name, key in (
        (signatures.SERVING_DEFAULT, "examples"),
        (signatures.CLASSIFICATION, "inputs"),
        (signatures.REGRESSION, "inputs"),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match="input fare is infinite"):
            loaded.signatures[name](**{key: examples})
    # An optional float (sparse after parsing) is checked too; finite rows still answer.
    optional = [dict(taxi_rows[0], dropoff_latitude="-inf")]
    with pytest.raises(tf.errors.InvalidArgumentError, match="input dropoff_latitude is infinite"):
        loaded.signatures[signatures.SERVING_DEFAULT](examples=tf.constant([to_example(r, spec) for r in optional]))
    good = loaded.signatures[signatures.SERVING_DEFAULT](examples=examples[:1])[OUTPUT].numpy()
    assert good.shape == (1,) and np.isfinite(good).all()


def test_every_signature_refuses_a_number_beyond_z_limit(saved, taxi_rows):
    """A fare of 1e30 was answered 0.0 (TF, tflite-runtime) and NaN (LiteRT's XNNPACK): float32
    overflow inside the network, from a value the model never learned. Every signature refuses
    it, naming the input and the row; a missing optional number (z = 0) and a large but
    learnable one are still answered."""
    loaded = tf.saved_model.load(saved[0])
    spec = raw_feature_spec()
    for name, value in (("fare", "1e30"), ("trip_miles", "-1e12"), ("trip_seconds", str(2**62))):
        rows = [taxi_rows[0], dict(taxi_rows[1], **{name: value})]
        pattern = f"input {name} is more than 10000 standard deviations from its training mean.* in rows \\[1\\]"
        with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
            loaded.signatures[signatures.PREDICT_RAW](**_raw_tensors(rows))
        examples = tf.constant([to_example(r, spec) for r in rows])
        for signature, key in (
            (signatures.SERVING_DEFAULT, "examples"),
            (signatures.CLASSIFICATION, "inputs"),
            (signatures.REGRESSION, "inputs"),
        ):
            with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
                loaded.signatures[signature](**{key: examples})
    fine = [dict(taxi_rows[0], fare="5000"), dict(taxi_rows[1], trip_seconds="")]
    out = loaded.signatures[signatures.PREDICT_RAW](**_raw_tensors(fine))[OUTPUT].numpy()
    assert out.shape == (2,) and np.isfinite(out).all()


def test_trainer_input_applies_the_transform_graph_to_raw_examples(transformed, taxi_rows, tmp_path):
    """The Trainer reads raw ExampleGen examples (Transform no longer materialises a transformed
    copy): its batches must be what tf.Transform's batch output was, features and label."""
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils
    from tfx.types import artifact_utils, standard_artifacts

    from tfxp.models import model as model_lib

    tft_output, _, batch_rows = transformed
    spec = raw_feature_spec()
    # As CsvExampleGen writes a split: GZIP TFRecords of tf.Examples under Split-<name>/.
    split_dir = tmp_path / "Split-train"
    split_dir.mkdir()
    with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options="GZIP") as writer:
        for row in taxi_rows[:N_CHECK]:
            writer.write(to_example(row, spec))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = artifact_utils.encode_split_names(["train"])
    accessor = DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None,
        data_view_decode_fn=None,
    )

    dataset = model_lib.transformed_dataset([str(split_dir / "*")], accessor, tft_output, N_CHECK)
    features, label = next(iter(dataset))

    assert set(features) == set(F.model_inputs(TAXI))
    assert label.dtype == tf.int64
    names = sorted(features)
    got = np.stack([features[n].numpy() for n in names] + [label.numpy()], axis=1).astype(np.float64)
    expected = np.array(
        [[np.asarray(r[n]).reshape(-1)[0] for n in [*names, F.LABEL_KEY]] for r in batch_rows[:N_CHECK]], np.float64
    )
    assert got.shape == expected.shape == (N_CHECK, len(names) + 1)
    # The dataset shuffles (TFXIO's default, as before): compare the rows in one canonical order.
    np.testing.assert_allclose(got[np.lexsort(got.T)], expected[np.lexsort(expected.T)], rtol=1e-5, atol=1e-5)


# -- every id serving can produce is trained (issue 17, kind 5) -------------------------------------


def test_training_trains_the_unknown_and_missing_ids_of_every_categorical_feature(transformed):
    """Every training value is in its vocabulary and a required column is never missing, so without
    `learn_unknowns` the OOV and missing rows of the embedding table kept their random initial values,
    and an unseen category got an arbitrary answer. Trained as run_fn trains, each of them moves."""
    from conftest import _dataset

    from tfxp.models import model as model_lib

    tft_output, _, rows = transformed
    sizes = model_lib.vocabulary_sizes(tft_output, TAXI.features)
    model = model_lib.build_model(TAXI, sizes)
    table = model.get_layer(model_lib.CATEGORICAL_TABLE)
    before = table.get_weights()[0].copy()
    model_lib.train(model, _dataset(rows[:1500], 64, tft_output), _dataset(rows[1500:], 250), 100, 1)
    after = table.get_weights()[0]
    offset = 0
    for feature in (f for f in TAXI.features if f.kind is not F.Kind.NUMERIC):
        space = F.id_space(feature, sizes.get(feature.name, 0))
        special = {"missing": F.MISSING_ID}
        if F.oov_id(feature, sizes.get(feature.name, 0)) is not None:
            special["unknown"] = F.oov_id(feature, sizes.get(feature.name, 0))
        for what, local_id in special.items():
            if what == "missing" and feature.required:
                continue  # refused at serving: never looked up
            row = offset + local_id
            assert not np.allclose(before[row], after[row]), f"{feature.name}: {what} id {local_id} was not trained"
        offset += space


def test_learn_unknowns_replaces_the_given_shares():
    from tfxp.models import model as model_lib

    feature = F.Feature("color", F.Kind.VOCABULARY, F.DType.STRING, required=False)
    number = F.Feature("x", F.Kind.NUMERIC, F.DType.FLOAT, required=False)
    problem = F.Problem((feature, number), F.Label("y", F.DType.INT, F.Task.BINARY, ("0", "1")))
    n = 200_000
    batch = {
        F.transformed_name("color"): tf.fill([n], tf.constant(3, tf.int64)),
        F.transformed_name("x"): tf.fill([n], 1.5),
        F.indicator_name("x"): tf.zeros([n]),
    }
    out = {k: v.numpy() for k, v in model_lib.learn_unknowns(batch, problem, {"color": 5}, 0.05, 0.1).items()}
    ids = out[F.transformed_name("color")]
    assert set(np.unique(ids)) == {F.MISSING_ID, 3, 6}  # 6: the OOV id of a 5-entry vocabulary
    assert abs(np.mean(ids == F.MISSING_ID) - 0.1) < 0.01
    assert abs(np.mean(ids == 6) - 0.05 * 0.9) < 0.01  # then 10% of all become missing
    x, indicator = out[F.transformed_name("x")], out[F.indicator_name("x")]
    np.testing.assert_array_equal(x == 0, indicator == 1)  # missing: the mean (z = 0) and its flag
    assert abs(np.mean(indicator) - 0.1) < 0.01
