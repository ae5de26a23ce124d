"""preprocessing_fn run through real tf.Transform (Beam) on 2,000 real taxi rows."""

from __future__ import annotations

import numpy as np
from taxi_data import TAXI, TIP_FRACTION

from tfxp.models import features as F


def _column(rows, name):
    return np.array([np.asarray(r[name]).reshape(-1)[0] for r in rows])


def test_every_feature_and_the_label_are_produced(transformed):
    _, _, rows = transformed
    expected = {*F.model_inputs(TAXI), F.LABEL_KEY}
    assert set(rows[0]) == expected
    assert len(rows) == 2000


def test_numeric_features_are_z_scored_over_the_values_present(transformed):
    _, instances, rows = transformed
    for feature in TAXI.features:
        if feature.kind is F.Kind.NUMERIC:
            values = _column(rows, F.transformed_name(feature.name))
            present = np.array([len(i[feature.name]) > 0 for i in instances])
            assert abs(values[present].mean()) < 1e-3, feature.name
            assert abs(values[present].std() - 1.0) < 1e-2, feature.name
            # A missing value is the training mean (z = 0), flagged by its indicator; never 0 raw.
            assert (values[~present] == 0).all(), feature.name
            if F.has_indicator(feature):
                indicator = _column(rows, F.indicator_name(feature.name))
                np.testing.assert_array_equal(indicator, (~present).astype(np.float32))


def test_label_is_tip_above_twenty_percent_of_fare(transformed):
    _, instances, rows = transformed
    # Row order is preserved by the in-memory runner with reshuffle=False.
    for instance, row in zip(instances, rows, strict=True):
        # float32, as in the graph: 5.01 > 0.2 * 25.05 differs between float32 and float64.
        fare = np.float32(instance["fare"][0])
        tips = np.float32(instance["tips"][0])
        assert row[F.LABEL_KEY] == int(tips > np.float32(TIP_FRACTION) * fare)
    labels = _column(rows, F.LABEL_KEY)
    assert 0.1 < labels.mean() < 0.9  # both classes present in real data


def test_categorical_and_bucket_ids_stay_in_range(transformed):
    tft_output, instances, rows = transformed
    for feature in TAXI.features:
        values = _column(rows, F.transformed_name(feature.name))
        present = np.array([len(i[feature.name]) > 0 for i in instances])
        if feature.kind is not F.Kind.NUMERIC:
            assert (values[~present] == F.MISSING_ID).all(), feature.name
            assert (values[present] != F.MISSING_ID).all(), feature.name
        if feature.kind is F.Kind.CATEGORICAL_INT:
            raw = np.array([int(i[feature.name][0]) for i in instances])
            np.testing.assert_array_equal(values, raw + 1)  # ids 1..size: every value is in range
        elif feature.kind is F.Kind.BUCKETIZED:
            assert values.min() >= 0 and values.max() <= feature.size, feature.name
            assert len(set(values.tolist())) > 2, feature.name
        elif feature.kind is F.Kind.VOCABULARY:
            size = tft_output.vocabulary_size_by_name(feature.name)
            # Every training value is in the vocabulary: none gets the OOV id here.
            assert values.min() >= 0 and values.max() <= size, feature.name


def test_vocabulary_ranks_most_frequent_value_first(transformed):
    tft_output, instances, rows = transformed
    vocab = tft_output.vocabulary_by_name("payment_type")
    counts = {}
    for i in instances:
        value = i["payment_type"][0]
        counts[value] = counts.get(value, 0) + 1
    assert vocab[0] == max(counts, key=counts.get)
    ids = _column(rows, F.transformed_name("payment_type"))
    cash = [r for r, i in zip(ids, instances, strict=True) if i["payment_type"][0] == vocab[0]]
    assert set(cash) == {1}  # id 0 is MISSING_ID


def test_missing_optional_values_get_their_own_id(transformed):
    _, instances, rows = transformed
    missing = [k for k, i in enumerate(instances) if len(i["dropoff_latitude"]) == 0]
    assert missing, "the sample should contain rows without dropoff coordinates"
    # A missing latitude is not a latitude of 0.0 (once the lowest bucket): it is MISSING_ID.
    ids = _column(rows, F.transformed_name("dropoff_latitude"))
    assert {ids[k] for k in missing} == {F.MISSING_ID}
    assert F.MISSING_ID not in {ids[k] for k in range(len(ids)) if k not in missing}
