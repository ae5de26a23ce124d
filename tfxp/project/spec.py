"""The project spec model: Project, Label, Column, Gate, the spec's vocabulary (dtypes, kinds, tasks, gated
metrics) and ProjectError. No I/O: `tfxp.project.load` reads and checks a spec, `tfxp.project.dump` writes one.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_FILE = "project.yaml"
# TensorFlow's op-name rule (ops.py _VALID_OP_NAME_REGEX): a model input's name becomes op names.
TF_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/]*")
SCHEMA_FILE = "schema.pbtxt"

# Project spec names -> TFDV (tensorflow_metadata FeatureType) names.
DTYPES = ("float", "int", "string")
SCHEMA_TYPES = {"float": "FLOAT", "int": "INT", "string": "BYTES"}

TASKS = ("binary", "multiclass", "regression")
KINDS = ("numeric", "bucketized", "categorical_int", "vocabulary", "ignored")
# Which raw dtypes each kind can preprocess (tfxp/models/preprocessing.py).
KIND_DTYPES = {
    "numeric": ("float", "int"),
    "bucketized": ("float",),
    "categorical_int": ("int",),
    "vocabulary": ("int", "string"),
    "ignored": DTYPES,
}
DEFAULT_BUCKETS = 10
# Slicing by a continuous column gives one slice per value; TFMA slices by raw values.
SLICE_KINDS = ("categorical_int", "vocabulary", "ignored")

# Gated TFMA metrics per task (the Evaluator computes these) and whether higher is better.
GATE_METRICS: dict[str, dict[str, bool]] = {
    "binary": {"AUC": True, "BinaryAccuracy": True},
    "multiclass": {"SparseCategoricalAccuracy": True},
    "regression": {"MeanSquaredError": False, "RootMeanSquaredError": False, "MeanAbsoluteError": False},
}
# Metrics that are fractions (a bound outside [0, 1] can never pass or never fail).
FRACTION_METRICS = ("AUC", "BinaryAccuracy", "SparseCategoricalAccuracy")

# The hyperparameters a project's `tuning.search_space` may narrow or widen (tfxp/models/tuning.py's SPACE
# has the defaults) and the values each takes: (integer?, lowest, highest, lowest included?).
SEARCH_SPACE_RULES: dict[str, tuple[bool, float, float, bool]] = {
    "units": (True, 1, 4096, True),
    "layers": (True, 1, 8, True),
    "embedding_dim": (True, 1, 512, True),
    "learning_rate": (False, 0.0, 1.0, False),
    "dropout": (False, 0.0, 0.95, True),
    "train_batch_size": (True, 1, 65536, True),
}

# Default class labels of a binary label computed by a hook (the hook returns 0/1), as the taxi model's
# classify signature has always answered.
HOOK_BINARY_CLASSES = ("0", "1")

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


class ProjectError(ValueError):
    """A project spec that can't be used. `file`: the file, `field`: the spec field (e.g. `features[2].kind`)."""

    def __init__(self, file: str | Path | None, field: str, problem: str):
        self.file = str(file) if file is not None else None
        self.field = field
        self.problem = problem
        where = f"{self.file}: " if self.file else ""
        super().__init__(f"{where}{field}: {problem}" if field else f"{where}{problem}")


@dataclass(frozen=True)
class Column:
    """One CSV column other than the label.

    `dtype`: "float" | "int" | "string" (TFDV FLOAT / INT / BYTES). `kind`: how the model uses it
    ("ignored": validated by the schema, not a model input). `required`: a value in every row (the
    schema gives it a `shape`); optional columns may be blank. `buckets`: quantile buckets of a
    bucketized column. `size`: a categorical_int column's values are 0..size-1. `missing_values`: cell
    texts CsvExampleGen reads as missing (e.g. "?", "NA": placeholders in a numeric column), so the column
    is typed and validated from its other cells.
    """

    name: str
    dtype: str
    kind: str
    required: bool = True
    buckets: int = 0
    size: int = 0
    missing_values: tuple[str, ...] = ()

    @property
    def is_input(self) -> bool:
        """True when the model reads this column (kind is not "ignored")."""
        return self.kind != "ignored"


@dataclass(frozen=True)
class Label:
    """The label: a raw CSV column and the task.

    `classes`: binary — (negative, positive) as written in the CSV, the classify signature's two labels;
    multiclass — the K values in output order (the index of the transformed label); regression — ().
    `positive`: binary only, the raw value that is class 1 (== classes[1]). `hook`: optional function
    computing the transformed label from the raw inputs ("module.path:function", or
    "/abs/path/file.py:function" once loaded; written "file.py:function" relative to the project).
    `dtype`: the column's raw dtype (from the schema when the YAML leaves it out).
    """

    column: str
    task: str
    classes: tuple[str, ...] = ()
    positive: str | None = None
    hook: str | None = None
    dtype: str | None = None

    @property
    def num_classes(self) -> int:
        """K for multiclass (the width of `probabilities`), 1 for binary and regression."""
        return len(self.classes) if self.task == "multiclass" else 1


@dataclass(frozen=True)
class Gate:
    """A blessing gate on the overall slice (TFMA metric threshold).

    `bound`: the floor (higher_is_better) or ceiling. `max_change`: the largest allowed change against
    the blessed baseline in the bad direction (absolute, >= 0).
    """

    metric: str
    bound: float
    max_change: float
    higher_is_better: bool = True


@dataclass(frozen=True)
class Monitoring:
    """`tfxp monitor`'s comparator thresholds and window size floor (project.yaml `monitoring:`, optional).

    Statistics as TFDV's comparators: L-infinity for categorical features, Jensen-Shannon divergence for
    numeric ones and for the prediction distribution. A finding is over when its value exceeds the
    threshold. `min_rows`: the fewest rows a window needs for a verdict. `features`: (name, skew, drift)
    overrides, None keeping the default.

    The defaults come from bench/monitor.py on the taxi eval split (docs/monitoring.md has the table):
    windows of 500 clean rows reached L-infinity 0.056 and JSD 0.016 at most, while swapping a categorical
    feature's two main values gave L-infinity >= 0.28 and scaling fare by 1.5 gave JSD >= 0.10. Vertex AI's
    0.3 misses such a swap; the TFDV tutorial's 0.01 fires on clean windows.
    """

    min_rows: int = 500
    categorical_skew: float = 0.15
    categorical_drift: float = 0.15
    numeric_skew: float = 0.05
    numeric_drift: float = 0.05
    prediction_skew: float = 0.05
    prediction_drift: float = 0.05
    features: tuple[tuple[str, float | None, float | None], ...] = ()

    def of(self, name: str, kind: str) -> tuple[float, float]:
        """(skew, drift) thresholds of feature `name` of `kind` ("categorical" or "numeric")."""
        skew, drift = (
            (self.categorical_skew, self.categorical_drift)
            if kind == "categorical"
            else (self.numeric_skew, self.numeric_drift)
        )
        for feature, feature_skew, feature_drift in self.features:
            if feature == name:
                skew = skew if feature_skew is None else feature_skew
                drift = drift if feature_drift is None else feature_drift
        return skew, drift

    def spec_dict(self) -> dict[str, Any]:
        """The `monitoring:` mapping of project.yaml (as tfxp.project.load parses it)."""
        spec: dict[str, Any] = {
            "min_rows": self.min_rows,
            "skew": {"categorical": self.categorical_skew, "numeric": self.numeric_skew},
            "drift": {"categorical": self.categorical_drift, "numeric": self.numeric_drift},
            "prediction": {"skew": self.prediction_skew, "drift": self.prediction_drift},
        }
        if self.features:
            spec["features"] = {
                name: {k: v for k, v in (("skew", skew), ("drift", drift)) if v is not None}
                for name, skew, drift in self.features
            }
        return spec

    def to_json(self) -> str:
        """This object as JSON (a TFX Parameter), read back by `from_json`."""
        import json
        from dataclasses import asdict

        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Monitoring:
        """Monitoring from `to_json`'s JSON; "{}" gives the defaults. Raises ValueError for other JSON."""
        import json
        from dataclasses import fields

        data = json.loads(text)
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise ValueError(f"not monitoring thresholds: {text[:200]}")
        if "features" in data:
            data["features"] = tuple(tuple(item) for item in data["features"])
        return cls(**data)


@dataclass(frozen=True)
class Project:
    """A loaded project spec.

    `data`: absolute local path or a URI (gs://), None when the spec names no data (then
    `tfxp run --data` must). `dir`: the project folder (None for a project built from a dict).
    `features`: every CSV column except the label, in CSV order.
    """

    name: str
    label: Label
    features: tuple[Column, ...]
    thresholds: tuple[Gate, ...]
    slices: tuple[str, ...] = ()
    data: str | None = None
    dir: Path | None = field(default=None, compare=False)
    monitoring: Monitoring = field(default_factory=Monitoring)
    # The model card's considerations (project.yaml `intended_use:` and `limitations:`, optional free text).
    intended_use: str | None = None
    limitations: str | None = None
    # project.yaml `tuning: search_space: {name: [values]}`: the choices `tfxp run --tune` searches per
    # hyperparameter (SEARCH_SPACE_RULES), replacing the defaults of the names given.
    search_space: tuple[tuple[str, tuple[float, ...]], ...] = ()

    @property
    def inputs(self) -> tuple[Column, ...]:
        """The model's input columns (ignored ones left out), in CSV order."""
        return tuple(c for c in self.features if c.is_input)

    @property
    def missing_values(self) -> dict[str, list[str]]:
        """Column -> cell texts read as missing, for the columns that have some (CsvExampleGen's config)."""
        return {c.name: list(c.missing_values) for c in self.features if c.missing_values}

    @property
    def schema_path(self) -> Path | None:
        """`<dir>/schema.pbtxt`, None when the project has no folder."""
        return self.dir / SCHEMA_FILE if self.dir is not None else None

    def problem(self):
        """What the model code learns (tfxp.models.features.Problem): the input columns (ignored ones
        left out) as features, the label and task, the slices (see `to_problem_dict`)."""
        from tfxp.models import features as F

        return F.Problem.from_dict(self.to_problem_dict())

    def column(self, name: str) -> Column:
        """The feature column `name`. Raises KeyError (the label is not a feature column)."""
        for column in self.features:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_problem_dict(self) -> dict[str, Any]:
        """The model code's view, as `tfxp.models.features.Problem.from_dict` reads it (custom_config["problem"]):
        the input columns (ignored ones left out) with TF dtype names (float32 / int64 / string) and `size` (a
        categorical_int's size, a bucketized column's buckets), the label (binary classes are [negative,
        positive]) and the slices. Raises ValueError if the label's dtype is unknown (a project not loaded
        against its schema)."""
        if self.label.dtype is None:
            raise ValueError(f"project {self.name}: the label's dtype is unknown; load the project with its schema")
        tf_dtypes = {"float": "float32", "int": "int64", "string": "string"}
        return {
            "features": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "dtype": tf_dtypes[c.dtype],
                    "size": c.size or c.buckets,
                    "required": c.required,
                }
                for c in self.inputs
            ],
            "label": {
                "column": self.label.column,
                "dtype": tf_dtypes[self.label.dtype],
                "task": self.label.task,
                "classes": list(self.label.classes),
                "hook": self.label.hook,
            },
            "slices": list(self.slices),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (TFX `custom_config["project"]`, the SavedModel's `tfxp_project.json`).

        Paths are as loaded (absolute), so the model code finds a file hook wherever it runs from.
        """
        label: dict[str, Any] = {"column": self.label.column, "task": self.label.task}
        if self.label.dtype is not None:
            label["dtype"] = self.label.dtype
        if self.label.task != "regression":
            label["classes"] = list(self.label.classes)
        if self.label.positive is not None:
            label["positive"] = self.label.positive
        if self.label.hook is not None:
            label["hook"] = self.label.hook
        features = []
        for c in self.features:
            entry: dict[str, Any] = {"name": c.name, "dtype": c.dtype, "kind": c.kind, "required": c.required}
            if c.kind == "bucketized":
                entry["buckets"] = c.buckets
            if c.kind == "categorical_int":
                entry["size"] = c.size
            if c.missing_values:
                entry["missing_values"] = list(c.missing_values)
            features.append(entry)
        out: dict[str, Any] = {"name": self.name}
        if self.data is not None:
            out["data"] = self.data
        out.update(
            label=label,
            features=features,
            slices=list(self.slices),
            thresholds=[
                {
                    "metric": g.metric,
                    "higher_is_better": g.higher_is_better,
                    "bound": g.bound,
                    "max_change": g.max_change,
                }
                for g in self.thresholds
            ],
        )
        if self.monitoring != Monitoring():
            out["monitoring"] = self.monitoring.spec_dict()
        for key in ("intended_use", "limitations"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.search_space:
            out["tuning"] = {"search_space": {name: list(values) for name, values in self.search_space}}
        return out


def is_uri(path: str) -> bool:
    """True for a URI such as gs://bucket/data (kept as written), False for a local path."""
    return "://" in path


def check_hook(hook: str) -> tuple[str, str]:
    """Splits a label hook "file.py:function" or "package.module:function" into (module or file, function).

    Raises ValueError saying what is wrong with the syntax.
    """
    target, sep, function = hook.rpartition(":")
    if not sep or not target:
        raise ValueError(f'{hook!r} is not "file.py:function" or "package.module:function"')
    if not function.isidentifier() or keyword.iskeyword(function):
        raise ValueError(f"{function!r} in {hook!r} is not a Python function name")
    if not target.endswith(".py") and not _DOTTED.match(target):
        raise ValueError(f"{target!r} in {hook!r} is neither a .py file nor a dotted module name")
    return target, function
