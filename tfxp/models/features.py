"""The single source of feature names, kinds and their preprocessing parameters.

Every other module (preprocessing, model, signatures, schema checks, clients)
reads features from here; nothing else spells a feature name.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    """How a raw feature is preprocessed."""

    NUMERIC = "numeric"  # float, z-scored
    BUCKETIZED = "bucketized"  # float, quantile buckets, one-hot
    CATEGORICAL_INT = "categorical_int"  # small int range, one-hot by value
    VOCABULARY = "vocabulary"  # int or string, top-k vocabulary, one-hot


class DType(enum.Enum):
    """Raw (CSV) value type of a feature."""

    INT = "int64"
    FLOAT = "float32"
    STRING = "string"


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    dtype: DType
    # CATEGORICAL_INT: number of distinct values (0..size-1); BUCKETIZED: buckets.
    size: int = 0


# Missing values in raw-tensor inputs (the `predict_raw` signature, TFLite):
# dense tensors cannot omit a value, so each dtype has a marker that reads as
# "absent". The curated schema bounds every int feature at >= 0, so -1 is never data.
MISSING_INT = -1
MISSING_FLOAT = float("nan")
MISSING_STRING = ""

VOCAB_SIZE = 1000
OOV_BUCKETS = 1
BUCKETS = 10

FEATURES: tuple[Feature, ...] = (
    Feature("trip_miles", Kind.NUMERIC, DType.FLOAT),
    Feature("fare", Kind.NUMERIC, DType.FLOAT),
    Feature("trip_seconds", Kind.NUMERIC, DType.INT),
    Feature("pickup_latitude", Kind.BUCKETIZED, DType.FLOAT, BUCKETS),
    Feature("pickup_longitude", Kind.BUCKETIZED, DType.FLOAT, BUCKETS),
    Feature("dropoff_latitude", Kind.BUCKETIZED, DType.FLOAT, BUCKETS),
    Feature("dropoff_longitude", Kind.BUCKETIZED, DType.FLOAT, BUCKETS),
    Feature("trip_start_hour", Kind.CATEGORICAL_INT, DType.INT, 24),
    Feature("trip_start_day", Kind.CATEGORICAL_INT, DType.INT, 8),
    Feature("trip_start_month", Kind.CATEGORICAL_INT, DType.INT, 13),
    Feature("payment_type", Kind.VOCABULARY, DType.STRING),
    Feature("company", Kind.VOCABULARY, DType.STRING),
    Feature("pickup_census_tract", Kind.VOCABULARY, DType.INT),
    Feature("dropoff_census_tract", Kind.VOCABULARY, DType.INT),
    Feature("pickup_community_area", Kind.VOCABULARY, DType.INT),
    Feature("dropoff_community_area", Kind.VOCABULARY, DType.INT),
)

# Raw columns: the label's inputs, and columns present in the CSV but unused by
# the model (kept in the schema so validation still covers them).
TIPS = "tips"
FARE = "fare"
UNUSED_COLUMNS: tuple[tuple[str, DType], ...] = (("trip_start_timestamp", DType.INT),)

# Transformed label: 1 when the tip is more than 20% of the fare.
LABEL = "big_tipper"
TIP_FRACTION = 0.2

# Serving output name, shared by the signatures and the clients.
OUTPUT = "probability"

# Slices the Evaluator reports besides the overall one.
SLICE_COLUMNS: tuple[str, ...] = ("trip_start_hour", "payment_type")


def by_name(name: str) -> Feature:
    for feature in FEATURES:
        if feature.name == name:
            return feature
    raise KeyError(name)


def transformed_name(name: str) -> str:
    return f"{name}_xf"


def missing_value(dtype: DType) -> object:
    return {DType.INT: MISSING_INT, DType.FLOAT: MISSING_FLOAT, DType.STRING: MISSING_STRING}[dtype]
