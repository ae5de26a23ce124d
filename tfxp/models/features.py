"""What the model code knows of a problem: feature kinds and dtypes, the label and task, output names.

A project (tfxp/project.py) becomes a `Problem` (`Project.problem()`), which reaches the model code
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
                {"name": f.name, "kind": f.kind.value, "dtype": f.dtype.value, "size": f.size} for f in self.features
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
                Feature(f["name"], Kind(f["kind"]), DType(f["dtype"]), f.get("size", 0)) for f in d["features"]
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


def transformed_name(name: str) -> str:
    return f"{name}_xf"


def missing_value(dtype: DType) -> object:
    return {DType.INT: MISSING_INT, DType.FLOAT: MISSING_FLOAT, DType.STRING: MISSING_STRING}[dtype]
