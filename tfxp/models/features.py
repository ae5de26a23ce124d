"""What the model code knows of a problem: feature kinds and dtypes, the label and task, output names.

A project (tfxp/project/) becomes a `Problem` (`Project.problem()`), which reaches the model code
in TFX's `custom_config` and is saved with the model; no feature name is spelled in shared code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Missing values in raw-tensor inputs (the `predict_raw` signature, TFLite): dense tensors cannot
# omit a value, so each dtype has a marker that reads as "absent"; defined with the rows in tfxp.rows.
from tfxp.rows import MISSING_FLOAT, MISSING_INT, MISSING_STRING


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
    # False: the schema lets the value be absent (a SparseTensor in the transform). A missing optional
    # value is never read as a real one: NUMERIC gets the training mean plus a missing indicator
    # (`indicator_name`), the categorical kinds their own id (MISSING_ID).
    required: bool = True


class Task(enum.Enum):
    """What the model predicts (the `task` of a project spec)."""

    BINARY = "binary"  # P(positive class): float32 [N]
    MULTICLASS = "multiclass"  # per-class probabilities: float32 [N, K]
    REGRESSION = "regression"  # one value per row, in the label's units: float32 [N]


@dataclass(frozen=True)
class Label:
    """The label of a problem.

    `column`: the raw CSV column; `dtype`: its raw type. `classes`: binary —
    (negative, positive) as written in the CSV; multiclass — the K values in
    output order; regression — empty. `hook`: optional "module:function" or
    "/abs/path/file.py:function" computing the transformed label from the raw
    inputs instead (int64 class index for binary/multiclass, float32 for
    regression), e.g. the taxi project's big_tipper.
    """

    column: str
    dtype: DType
    task: Task
    classes: tuple[str, ...] = ()
    hook: str | None = None

    @property
    def num_classes(self) -> int:
        """K outputs of a multiclass model; 1 for binary and regression."""
        return len(self.classes) if self.task is Task.MULTICLASS else 1


@dataclass(frozen=True)
class Problem:
    """What the model code needs of a project: the input features (ignored columns left out), the label
    and the slices TFMA reports. JSON-safe through `to_dict`/`from_dict` (TFX `custom_config`)."""

    features: tuple[Feature, ...]
    label: Label
    slices: tuple[str, ...] = ()

    def by_name(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def output(self) -> str:
        """The predict output's name: `probability`, `probabilities` or `prediction`."""
        return OUTPUTS[self.label.task]

    def to_dict(self) -> dict:
        return {
            "features": [
                {"name": f.name, "kind": f.kind.value, "dtype": f.dtype.value, "size": f.size, "required": f.required}
                for f in self.features
            ],
            "label": {
                "column": self.label.column,
                "dtype": self.label.dtype.value,
                "task": self.label.task.value,
                "classes": list(self.label.classes),
                "hook": self.label.hook,
            },
            "slices": list(self.slices),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        label = d["label"]
        return cls(
            features=tuple(
                Feature(f["name"], Kind(f["kind"]), DType(f["dtype"]), f.get("size", 0), f.get("required", True))
                for f in d["features"]
            ),
            label=Label(
                label["column"],
                DType(label["dtype"]),
                Task(label["task"]),
                tuple(label.get("classes") or ()),
                label.get("hook"),
            ),
            slices=tuple(d.get("slices") or ()),
        )


# The transformed label's name (preprocessing_fn output, TFMA's label_key).
LABEL_KEY = "label"
# Predict output names per task, shared by the signatures, TFMA and the clients.
OUTPUTS = {Task.BINARY: "probability", Task.MULTICLASS: "probabilities", Task.REGRESSION: "prediction"}


VOCAB_SIZE = 1000
OOV_BUCKETS = 1
BUCKETS = 10

# Categorical ids (BUCKETIZED, CATEGORICAL_INT, VOCABULARY), one layout for every kind, so no real value
# can share an id with "missing" or "unknown":
#   MISSING_ID (0)      the value is absent (optional features only);
#   1 .. n              the n values learned: buckets 0..n-1, ints 0..size-1, vocabulary entries in order;
#   n + 1 (oov_id)      a value outside what was learned: an int outside 0..size-1, a string or int not in
#                       the vocabulary (BUCKETIZED has none: its buckets cover every number).
# The Trainer trains the missing and OOV ids by replacing a few training values with them
# (models.model.TRAIN_OOV_RATE, TRAIN_MISSING_RATE): otherwise they would keep their random initial
# embedding, since every training value is in the vocabulary and a required column is never missing.
MISSING_ID = 0

# A NUMERIC value whose z-score (models.preprocessing) is beyond +-Z_LIMIT has no answer: every
# serving signature refuses the row (models.signatures.check_in_range) and the TFLite models answer
# NaN (mobile.graph). Such a value is nothing the model learned (n training values lie within
# sqrt(n - 1) standard deviations of their mean, so no training value of a split under 10**8 rows is
# refused), and its activations overflow float32 inside the network, where runtimes disagree: LiteRT's
# XNNPACK answered NaN for a fare of 1e30 where TensorFlow and tflite-runtime answered 0.0.
Z_LIMIT = 1e4


def learned_values(feature: Feature, vocabulary_size: int = 0) -> int:
    """n, the ids of learned values (1..n): BUCKETIZED buckets, CATEGORICAL_INT size, VOCABULARY entries."""
    return vocabulary_size if feature.kind is Kind.VOCABULARY else feature.size


def oov_id(feature: Feature, vocabulary_size: int = 0) -> int | None:
    """The id of an unknown value (n + 1); None for BUCKETIZED and NUMERIC, which have none."""
    if feature.kind in (Kind.CATEGORICAL_INT, Kind.VOCABULARY):
        return learned_values(feature, vocabulary_size) + 1
    return None


def id_space(feature: Feature, vocabulary_size: int = 0) -> int:
    """How many ids a categorical feature's embedding rows cover: missing + learned (+ OOV)."""
    n = learned_values(feature, vocabulary_size)
    return n + (2 if feature.kind in (Kind.CATEGORICAL_INT, Kind.VOCABULARY) else 1)


def transformed_name(name: str) -> str:
    return f"{name}_xf"


def indicator_name(name: str) -> str:
    """The missing indicator of an optional NUMERIC feature (float32 1.0 where absent, else 0.0).

    Never equal to a `transformed_name` (those end in `_xf`)."""
    return f"{name}_xf_missing"


def model_inputs(problem: Problem) -> list[str]:
    """The Keras model's input names (`preprocessing_fn`'s outputs minus the label): each feature's
    `transformed_name`, then the `indicator_name` of each optional NUMERIC feature."""
    names = [transformed_name(f.name) for f in problem.features]
    return names + [indicator_name(f.name) for f in problem.features if has_indicator(f)]


def has_indicator(feature: Feature) -> bool:
    """An optional NUMERIC feature: its transform imputes the training mean and adds `indicator_name`."""
    return feature.kind is Kind.NUMERIC and not feature.required


def missing_value(dtype: DType) -> object:
    return {DType.INT: MISSING_INT, DType.FLOAT: MISSING_FLOAT, DType.STRING: MISSING_STRING}[dtype]
