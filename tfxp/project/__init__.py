"""A project: `project.yaml` + `schema.pbtxt` in one folder — the contract between `tfxp init`,
`tfxp run --project`, the model code and the clients (issue 11; format: README "Bring your own data").

TF-free (PyYAML, and `tensorflow_metadata` protos to read the schema), so the CLI, the clients and the
converter can read a project without loading TensorFlow.

    project = load("penguins/")          # -> Project, checked against penguins/schema.pbtxt
    config = project.to_dict()           # JSON-safe: TFX custom_config["project"], tfxp_project.json
    same = from_dict(config)             # the model code's view (no schema check: the pipeline did it)
    dump(project, "copy/project.yaml")   # YAML with a header comment

Every problem is a `ProjectError` naming the file and the field (`penguins/project.yaml: features[2].kind:
...`), so a person editing the YAML knows what to change.

project.yaml (`tfxp init` writes one, with comments saying what it saw in the data):

    name: penguins                 # [a-z0-9][a-z0-9_-]*: names the pipeline and the served model
    data: data/penguins.csv        # optional: CSV file or folder, relative to the folder, absolute or gs://
    label:
      column: species
      task: multiclass             # binary | multiclass | regression
      classes: [Adelie, Chinstrap, Gentoo]  # multiclass: output order; binary: [negative, positive]
      # positive: "1"              # binary: the raw value that is class 1 (default: classes[1]; "1" with a hook)
      # hook: label.py:make        # optional: "file.py:function" (relative) or "package.module:function"
      # dtype: string              # optional: checked against, or filled from, the schema
    features:                      # every CSV column except the label, in CSV order
      - {name: island, dtype: string, kind: vocabulary, required: true}
      - {name: bill_length_mm, dtype: float, kind: bucketized, buckets: 10, required: false}
      - {name: year, dtype: int, kind: categorical_int, size: 10}     # required defaults to true
      - {name: horsepower, dtype: int, kind: numeric, required: false, missing_values: ["?"]}
    slices: [island]               # categorical columns TFMA reports separately
    thresholds:                    # blessing gates, all must pass; metrics per task: GATE_METRICS
      - {metric: SparseCategoricalAccuracy, bound: 0.44, max_change: 0.02}  # higher_is_better: the metric's
"""

from __future__ import annotations

import keyword
import math
import os
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
_FRACTION_METRICS = ("AUC", "BinaryAccuracy", "SparseCategoricalAccuracy")

# Default class labels of a binary label computed by a hook (the hook returns 0/1), as the taxi model's
# classify signature has always answered.
HOOK_BINARY_CLASSES = ("0", "1")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
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
        return out


# ----------------------------------------------------------------------------------------------- parsing


class _Reader:
    """Typed access to the YAML mapping, each error naming the file and the field path."""

    def __init__(self, file: str | None):
        self.file = file

    def error(self, field_path: str, problem: str) -> ProjectError:
        return ProjectError(self.file, field_path, problem)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
        if not isinstance(value, Mapping):
            raise self.error(
                path or "(top level)", f"expected a mapping of {', '.join(allowed)}, got {_describe(value)}"
            )
        for key in value:
            if key not in allowed:
                raise self.error(_join(path, str(key)), f"unknown field; allowed: {', '.join(allowed)}")
        for key in required:
            if key not in value or value[key] is None:
                raise self.error(_join(path, key), "missing (required)")
        return dict(value)

    def string(self, value: Any, path: str) -> str:
        # YAML 1.1 reads `yes`, `no`, `on`, `null`, `1.0` as non-strings: say how to keep the text.
        if not isinstance(value, str):
            raise self.error(path, f'expected a string, got {_describe(value)}; quote it in the YAML (e.g. "no")')
        if not value:
            raise self.error(path, "empty")
        return value

    def value_text(self, value: Any, path: str) -> str:
        """A raw CSV value (class names): a string, or an integer written without quotes."""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.error(
                path,
                f"expected the value as written in the CSV, got {_describe(value)}; quote "
                'it in the YAML (e.g. "1.0", "yes")',
            )
        text = str(value)
        if not text:
            raise self.error(path, "empty (a blank label is not a class)")
        return text

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {_describe(value)}")
        return value

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(path, f"expected a finite number, got {_describe(value)}")
        return float(value)

    def positive_int(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(path, f"expected an integer >= 1, got {_describe(value)}")
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.error(path, f"{_describe(value)} is not one of {' | '.join(choices)}")
        return value

    def sequence(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {_describe(value)}")
        return value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__}"
    return repr(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_uri(path: str) -> bool:
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


def _parse_label(r: _Reader, raw: Any, base: Path | None, check_files: bool) -> Label:
    d = r.mapping(raw, "label", ("column", "task", "classes", "positive", "hook", "dtype"), ("column", "task"))
    column = r.string(d["column"], "label.column")
    task = r.choice(d["task"], "label.task", TASKS)
    dtype = r.choice(d["dtype"], "label.dtype", DTYPES) if d.get("dtype") is not None else None
    hook = None
    if d.get("hook") is not None:
        hook = r.string(d["hook"], "label.hook")
        try:
            target, function = check_hook(hook)
        except ValueError as exc:
            raise r.error("label.hook", str(exc)) from None
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_absolute():
                if base is None:
                    raise r.error("label.hook", f"{target} is relative, but the project has no folder")
                path = base / path
            if check_files and not path.is_file():
                raise r.error("label.hook", f"{path}: no such file")
            hook = f"{path.resolve()}:{function}"
    classes: tuple[str, ...] = ()
    if d.get("classes") is not None:
        items = r.sequence(d["classes"], "label.classes")
        classes = tuple(r.value_text(v, f"label.classes[{i}]") for i, v in enumerate(items))
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        if duplicates:
            raise r.error("label.classes", f"listed more than once: {', '.join(duplicates)}")
    positive = r.value_text(d["positive"], "label.positive") if d.get("positive") is not None else None

    if task == "regression":
        if classes or positive is not None:
            raise r.error("label.classes" if classes else "label.positive", "a regression label has no classes")
        if dtype == "string":
            raise r.error("label.dtype", "a regression label must be numeric (float or int)")
    elif task == "multiclass":
        if positive is not None:
            raise r.error("label.positive", "only a binary label has a positive class")
        if len(classes) < 2:
            raise r.error("label.classes", "a multiclass label lists its values (at least 2), in output order")
    else:  # binary
        if classes and len(classes) != 2:
            raise r.error("label.classes", f"a binary label has 2 classes [negative, positive], got {len(classes)}")
        if positive is None:
            if classes:
                positive = classes[1]
            elif hook is not None:
                positive = HOOK_BINARY_CLASSES[1]
            else:
                raise r.error(
                    "label.positive", "a binary label names its positive class (the raw value that is class 1)"
                )
        if not classes:
            classes = (
                HOOK_BINARY_CLASSES
                if hook is not None and positive == HOOK_BINARY_CLASSES[1]
                else (f"not {positive}", positive)
            )
        elif classes[1] != positive:
            raise r.error(
                "label.classes",
                f"binary classes are [negative, positive]; the positive class "
                f"{positive!r} must come second, got {list(classes)}",
            )
    return Label(column=column, task=task, classes=classes, positive=positive, hook=hook, dtype=dtype)


def _parse_column(r: _Reader, raw: Any, i: int) -> Column:
    path = f"features[{i}]"
    d = r.mapping(
        raw, path, ("name", "dtype", "kind", "required", "buckets", "size", "missing_values"), ("name", "dtype", "kind")
    )
    name = r.string(d["name"], f"{path}.name")
    path = f"features[{i}] ({name})"
    dtype = r.choice(d["dtype"], f"{path}.dtype", DTYPES)
    kind = r.choice(d["kind"], f"{path}.kind", KINDS)
    if dtype not in KIND_DTYPES[kind]:
        raise r.error(f"{path}.kind", f"{kind} needs a {' or '.join(KIND_DTYPES[kind])} column, this one is {dtype}")
    if kind != "ignored" and not TF_NAME.fullmatch(name):
        # A model input names a signature input, a Keras Input and ops: TensorFlow refuses other names
        # (e.g. "mean radius": "not a valid root scope name").
        raise r.error(
            f"{path}.name",
            "a model input's name must be letters, digits and _ . - / (not starting "
            "with _ - /): rename the CSV column, or make the column kind: ignored",
        )
    required = r.boolean(d["required"], f"{path}.required") if "required" in d else True
    buckets = size = 0
    if d.get("buckets") is not None:
        if kind != "bucketized":
            raise r.error(f"{path}.buckets", "only a bucketized column has buckets")
        buckets = r.positive_int(d["buckets"], f"{path}.buckets")
        if buckets < 2:
            raise r.error(f"{path}.buckets", "at least 2 buckets")
    elif kind == "bucketized":
        buckets = DEFAULT_BUCKETS
    if d.get("size") is not None:
        if kind != "categorical_int":
            raise r.error(f"{path}.size", "only a categorical_int column has a size")
        size = r.positive_int(d["size"], f"{path}.size")
    elif kind == "categorical_int":
        raise r.error(f"{path}.size", "missing: a categorical_int column's values are 0..size-1")
    missing_values = _parse_missing_values(r, d.get("missing_values"), f"{path}.missing_values")
    return Column(
        name=name, dtype=dtype, kind=kind, required=required, buckets=buckets, size=size, missing_values=missing_values
    )


def _parse_missing_values(r: _Reader, raw: Any, path: str) -> tuple[str, ...]:
    """A list of cell texts read as missing: non-empty strings (quote `null`, `-` or numbers), each once."""
    if raw is None:
        return ()
    values = tuple(r.string(v, f"{path}[{i}]") for i, v in enumerate(r.sequence(raw, path)))
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise r.error(path, f"listed more than once: {', '.join(duplicates)}")
    return values


def _parse_gate(r: _Reader, raw: Any, i: int, task: str) -> Gate:
    path = f"thresholds[{i}]"
    d = r.mapping(raw, path, ("metric", "higher_is_better", "bound", "max_change"), ("metric", "bound", "max_change"))
    allowed = GATE_METRICS[task]
    metric = d["metric"]
    if metric not in allowed:
        raise r.error(
            f"{path}.metric", f"{_describe(metric)} is not a gated metric of a {task} task; one of {', '.join(allowed)}"
        )
    path = f"thresholds[{i}] ({metric})"
    higher = allowed[metric]
    if "higher_is_better" in d and r.boolean(d["higher_is_better"], f"{path}.higher_is_better") != higher:
        raise r.error(f"{path}.higher_is_better", f"{metric} is {'higher' if higher else 'lower'} is better")
    bound = r.number(d["bound"], f"{path}.bound")
    if metric in _FRACTION_METRICS and not 0.0 <= bound <= 1.0:
        raise r.error(f"{path}.bound", f"{metric} is between 0 and 1, got {bound}")
    if metric not in _FRACTION_METRICS and bound < 0:
        raise r.error(f"{path}.bound", f"{metric} is >= 0, got {bound}")
    max_change = r.number(d["max_change"], f"{path}.max_change")
    if max_change < 0:
        raise r.error(f"{path}.max_change", f"the worst allowed change is >= 0, got {max_change}")
    return Gate(metric=metric, bound=bound, max_change=max_change, higher_is_better=higher)


def _parse(raw: Any, file: str | None, base: Path | None, check_files: bool = True) -> Project:
    r = _Reader(file)
    d = r.mapping(
        raw,
        "",
        ("name", "data", "label", "features", "slices", "thresholds"),
        ("name", "label", "features", "thresholds"),
    )
    name = r.string(d["name"], "name")
    if not _NAME.match(name):
        raise r.error(
            "name", f"{name!r}: use lowercase letters, digits, '_' and '-' (it names the pipeline and the served model)"
        )
    data = None
    if d.get("data") is not None:
        data = r.string(d["data"], "data")
        if not _is_uri(data) and not Path(data).is_absolute():
            if base is None:
                raise r.error("data", f"{data} is relative, but the project has no folder")
            data = str((base / data).resolve())
    label = _parse_label(r, d["label"], base, check_files)

    features = tuple(_parse_column(r, c, i) for i, c in enumerate(r.sequence(d["features"], "features")))
    names = [c.name for c in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise r.error("features", f"listed more than once: {', '.join(duplicates)}")
    if label.column in names:
        raise r.error(
            f"features[{names.index(label.column)}]", f"{label.column} is the label column; list it under label only"
        )
    if not any(c.is_input for c in features):
        raise r.error("features", "no model input: every column is ignored")

    slices = tuple(r.string(s, f"slices[{i}]") for i, s in enumerate(r.sequence(d.get("slices") or [], "slices")))
    for i, s in enumerate(slices):
        if s not in names:
            raise r.error(f"slices[{i}]", f"{s!r} is not a feature column (columns: {', '.join(names)})")
        column = features[names.index(s)]
        if column.kind not in SLICE_KINDS or column.dtype == "float":
            raise r.error(
                f"slices[{i}]",
                f"{s} is a {column.dtype} {column.kind} column: slice by a categorical column (one slice per value)",
            )
    if len(set(slices)) != len(slices):
        raise r.error("slices", "a column is listed more than once")

    thresholds = tuple(
        _parse_gate(r, g, i, label.task) for i, g in enumerate(r.sequence(d["thresholds"], "thresholds"))
    )
    if not thresholds:
        raise r.error("thresholds", "at least one gate: without one every model would be blessed and pushed")
    metrics = [g.metric for g in thresholds]
    if len(set(metrics)) != len(metrics):
        raise r.error("thresholds", "a metric is gated more than once")
    return Project(name=name, label=label, features=features, thresholds=thresholds, slices=slices, data=data, dir=base)


def from_dict(d: Mapping[str, Any], dir: Path | str | None = None, check_files: bool = False) -> Project:
    """A Project from `Project.to_dict()` output (or a parsed project.yaml), validated (not against a schema).

    `dir`: the folder relative `data` and file hooks are resolved against. `check_files`: also require a
    file hook to exist (off by default: the model code gets the dict where `load` already checked it).
    Raises ProjectError.
    """
    return _parse(d, None, Path(dir).resolve() if dir is not None else None, check_files)


# ------------------------------------------------------------------------------------------------ loading


def project_dir(path: Path | str) -> Path:
    """The project folder of `path`: the folder itself, or the folder of a `project.yaml` given as a file."""
    path = Path(path)
    return path.parent if path.is_file() else path


def load(path: Path | str) -> Project:
    """Reads `<dir>/project.yaml` and checks it against `<dir>/schema.pbtxt`.

    `path`: the project folder (or its project.yaml). Relative `data` and file hooks are resolved against the
    folder. Raises ProjectError (naming the file and the field) for a missing file, YAML that doesn't parse,
    an invalid spec, or a spec that disagrees with the schema.
    """
    import yaml

    folder = project_dir(path).resolve()
    spec_file = folder / PROJECT_FILE
    if not spec_file.is_file():
        raise ProjectError(
            spec_file,
            "",
            "no such file (a project folder holds project.yaml and schema.pbtxt; `tfxp init` writes them)",
        )
    try:
        raw = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise ProjectError(spec_file, where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(spec_file, "", f"can't be read: {exc}") from None
    project = _parse(raw, str(spec_file), folder)
    return check_schema(project, folder / SCHEMA_FILE, spec_file)


def check_schema(project: Project, schema_file: Path | str, spec_file: Path | str | None = None) -> Project:
    """Checks `project` against a TFDV schema; returns it with `label.dtype` filled from the schema.

    Every column (features and label) must be a schema feature and every schema feature a column; dtypes
    must agree (float=FLOAT, int=INT, string=BYTES); `required` must agree with the schema's `shape` (a
    required column has `shape { dim { size: 1 } }`, an optional one none); a feature's domain must suit its
    type and kind (`_check_domain`: a categorical_int's `size` is its int_domain's max + 1); the label must
    be kept out of the SERVING environment and, as a class label, have a domain of its classes. Raises
    ProjectError naming the field, and the file whose edit would fix it (both files when either would).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tfxp.schema.rules import load_schema

    schema_file = Path(schema_file)
    spec = str(spec_file) if spec_file is not None else None
    if not schema_file.is_file():
        raise ProjectError(schema_file, "", "no such file (the project's TFDV schema; `tfxp init` writes one)")
    try:
        schema = load_schema(schema_file)
    except ValueError as exc:
        raise ProjectError(schema_file, "", str(exc)) from None
    by_name = {f.name: f for f in schema.feature}
    columns = [(f"features[{i}] ({c.name})", c, c.dtype, c.required) for i, c in enumerate(project.features)]

    for path, column, dtype, required in columns:
        name = column.name
        feature = by_name.get(name)
        if feature is None:
            raise ProjectError(spec, f"{path}.name", f"{name!r} is not a feature of {schema_file}")
        schema_type = schema_pb2.FeatureType.Name(feature.type)
        if SCHEMA_TYPES[dtype] != schema_type:
            raise ProjectError(
                spec, f"{path}.dtype", f"{dtype}, but {schema_file} types it {schema_type} ({_dtype_for(schema_type)})"
            )
        if required != _schema_required(feature):
            raise ProjectError(
                spec,
                f"{path}.required",
                f"{str(required).lower()}, but {schema_file} "
                + (
                    "gives it no shape (values may be missing)"
                    if required
                    else "gives it a shape (a value in every row)"
                ),
            )
        _check_domain(column, feature, path, schema_file, spec)

    label = project.label
    feature = by_name.get(label.column)
    if feature is None:
        raise ProjectError(spec, "label.column", f"{label.column!r} is not a feature of {schema_file}")
    schema_type = schema_pb2.FeatureType.Name(feature.type)
    dtype = _dtype_for(schema_type)
    if dtype is None:
        raise ProjectError(schema_file, f"feature {label.column!r}", f"type {schema_type} is not float, int or string")
    if label.dtype is not None and label.dtype != dtype:
        raise ProjectError(spec, "label.dtype", f"{label.dtype}, but {schema_file} types it {schema_type} ({dtype})")
    if label.task == "regression" and dtype == "string" and label.hook is None:
        raise ProjectError(
            spec, "label.task", f"regression needs a numeric label; {schema_file} types {label.column} BYTES (string)"
        )
    if label.task != "regression" and label.hook is None:
        _check_label_domain(schema, feature, dtype, label.classes, schema_file)
    if "SERVING" not in feature.not_in_environment:
        raise ProjectError(
            schema_file,
            f"feature {label.column!r}",
            "the label must be kept out of the SERVING "
            'environment (add `not_in_environment: "SERVING"`; requests carry no label)',
        )

    listed = {c.name for c in project.features} | {label.column}
    unlisted = [f.name for f in schema.feature if f.name not in listed]
    if unlisted:
        raise ProjectError(
            spec,
            "features",
            f"{', '.join(unlisted)}: in {schema_file} but not listed (add each "
            "as a column; `kind: ignored` keeps it validated but out of the model)",
        )
    return replace(project, label=replace(label, dtype=dtype))


# Which schema domain (the Feature's `domain_info` oneof) each TFDV type can carry; `domain` names a
# top-level string_domain. Other domains (bool, struct, image, url, time, ...) are semantic annotations
# TFDV's validation does not bound values with, and are left alone.
_DOMAIN_TYPES = {"int_domain": "INT", "float_domain": "FLOAT", "string_domain": "BYTES", "domain": "BYTES"}


def _check_domain(column: Column, feature, path: str, schema_file: Path, spec: str | None) -> None:
    """The schema's domain of a feature column must suit its type and agree with its kind.

    - an int_domain / float_domain / string_domain (or named `domain`) only on an INT / FLOAT / BYTES
      feature (TFDV would otherwise validate against a domain that can't apply);
    - categorical_int: the preprocessing one-hots 0..size-1, so the schema must admit exactly those
      values: `int_domain { min: >= 0  max: size - 1 }`. A schema widened alone lets new values through
      validation into a model that can't represent them; a size widened alone lets the schema refuse
      values the model has room for. Either way both files are named with their values;
    - numeric / bucketized: not an int_domain marked `is_categorical: true` (the schema says the numbers
      are codes, the spec treats them as magnitudes).

    Raises ProjectError (file: project.yaml for a kind/size disagreement, schema.pbtxt for a misplaced domain).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    which = feature.WhichOneof("domain_info")
    schema_type = schema_pb2.FeatureType.Name(feature.type)
    if which in _DOMAIN_TYPES and _DOMAIN_TYPES[which] != schema_type:
        raise ProjectError(
            schema_file,
            f"feature {column.name!r}",
            f"{_article(which)} {which} on {_article(schema_type)} {schema_type} feature: use the domain of its type "
            f"({', '.join(k for k, v in _DOMAIN_TYPES.items() if v == schema_type) or 'none'})",
        )
    if column.kind == "categorical_int":
        values = f"size: {column.size} (values 0..{column.size - 1})"
        domain = feature.int_domain if which == "int_domain" else None
        if domain is None or not domain.HasField("min") or not domain.HasField("max"):
            raise ProjectError(
                spec,
                f"{path}.size",
                f"{values}, but {schema_file} does not bound {column.name} (no int_domain min and max), so other "
                f"values would pass validation: add `int_domain {{ min: 0 max: {column.size - 1} }}` to the feature",
            )
        if domain.min < 0:
            raise ProjectError(
                spec,
                f"{path}.kind",
                f"categorical_int takes values 0..size-1, but {schema_file} admits {column.name} from "
                f"{domain.min}: use kind vocabulary (or numeric) for negative values",
            )
        if domain.max + 1 != column.size:
            raise ProjectError(
                spec,
                f"{path}.size",
                f"{values}, but {schema_file} int_domain admits {domain.min}..{domain.max}: the two must agree "
                f"(size = max + 1): write size: {domain.max + 1} in {Path(spec).name if spec else PROJECT_FILE}, "
                f"or max: {column.size - 1} in {schema_file.name}",
            )
    elif column.kind in ("numeric", "bucketized") and which == "int_domain" and feature.int_domain.is_categorical:
        raise ProjectError(
            spec,
            f"{path}.kind",
            f"{column.kind}, but {schema_file} marks {column.name} categorical (int_domain is_categorical: true): "
            "make the column categorical_int or vocabulary, or drop is_categorical",
        )


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _check_label_domain(schema, feature, dtype: str, classes: tuple[str, ...], schema_file) -> None:
    """A class label's schema domain must admit its classes only: ExampleValidator then refuses a row with
    another value, which the transform would otherwise read as the negative class (binary) or no class.

    Raises ProjectError naming the schema feature and what to write (`tfxp init` writes these domains).
    """
    where = f"feature {feature.name!r}"
    if dtype == "string":
        if feature.HasField("string_domain"):
            values = set(feature.string_domain.value)
        else:
            named = {d.name: d for d in schema.string_domain}
            values = (
                set(named[feature.domain].value) if feature.HasField("domain") and feature.domain in named else None
            )
        if values is None or not values <= set(classes):
            raise ProjectError(
                schema_file,
                where,
                f"a class label needs `string_domain {{ value: ... }}` listing only its classes "
                f"({', '.join(classes)}), so data with another value is refused instead of learned as a class",
            )
        return
    if dtype == "int":
        domain = feature.int_domain if feature.HasField("int_domain") else None
        allowed = {int(c) for c in classes}
        if (
            domain is None
            or not domain.HasField("min")
            or not domain.HasField("max")
            or not set(range(domain.min, domain.max + 1)) <= allowed
        ):
            raise ProjectError(
                schema_file,
                where,
                f"a class label needs `int_domain {{ min: ... max: ... }}` admitting only its "
                f"classes ({', '.join(classes)}), so data with another value is refused instead of learned as a class",
            )
        return
    raise ProjectError(
        schema_file,
        where,
        "a float column can't be limited to its classes by the schema: use an int or string "
        "label column, a `hook`, or task regression",
    )


def _dtype_for(schema_type: str) -> str | None:
    return {v: k for k, v in SCHEMA_TYPES.items()}.get(schema_type)


def _schema_required(feature) -> bool:
    """A feature is required when the schema gives it a fixed shape of one value (TFDV's
    `infer_feature_shape`): tf.Transform then parses it as a dense FixedLenFeature."""
    return feature.HasField("shape") and [d.size for d in feature.shape.dim] == [1]


# ------------------------------------------------------------------------------------------------ writing


def _yaml_scalar(value: Any) -> str:
    """One YAML scalar, quoted when YAML would read it as something else (yes, 1, null, 'a: b')."""
    import yaml

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _yaml_flow_list(values) -> str:
    """A flow sequence `[a, 'b, c']`: quoting decided by PyYAML in flow context (',' and ']' matter there)."""
    import yaml

    return yaml.safe_dump(list(values), default_flow_style=True, allow_unicode=True, width=1 << 30).strip()


_LINE_WIDTH = 110


def _noted(line: str, note: str | None) -> list[str]:
    """`line` with `note` as an end-of-line comment, or as comment lines above it when that would be long."""
    if not note:
        return [line]
    note = " ".join(note.split())
    if len(line) + len(note) + 4 <= _LINE_WIDTH:
        return [f"{line}  # {note}"]
    indent = " " * (len(line) - len(line.lstrip(" ")))
    return [*textwrap.wrap(note, _LINE_WIDTH, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# "), line]


def _relative(path: str, folder: Path) -> str:
    """`path` relative to `folder` when it sits in the folder or beside it (the project moves with its
    data), else as given."""
    if _is_uri(path):
        return path
    relative = os.path.relpath(path, folder)
    return relative if not relative.startswith(os.path.join("..", "..")) else path


def dumps(
    project: Project,
    header: str | None = None,
    notes: Mapping[str, str] | None = None,
    folder: Path | str | None = None,
) -> str:
    """The YAML text of `project`. `header`: comment lines at the top. `notes`: end-of-line comments keyed
    "name", "data", "label", "label.classes", "features.<column>", "slices", "thresholds.<metric>".
    `folder`: where the file will live (paths are written relative to it when close)."""
    notes = dict(notes or {})
    folder = Path(folder).resolve() if folder is not None else project.dir
    lines = [f"# {line}".rstrip() for line in (header or "").splitlines()]
    lines += _noted(f"name: {_yaml_scalar(project.name)}", notes.get("name"))
    if project.data is not None:
        data = _relative(project.data, folder) if folder is not None else project.data
        lines += _noted(f"data: {_yaml_scalar(data)}", notes.get("data"))
    label = project.label
    lines += _noted("label:", notes.get("label"))
    lines.append(f"  column: {_yaml_scalar(label.column)}")
    if label.dtype is not None:
        lines.append(f"  dtype: {label.dtype}")
    lines.append(f"  task: {label.task}")
    if label.task == "binary":
        lines.append(f"  positive: {_yaml_scalar(label.positive)}")
    if label.task != "regression":
        lines += _noted(f"  classes: {_yaml_flow_list(label.classes)}", notes.get("label.classes"))
    if label.hook is not None:
        hook = label.hook
        target, function = check_hook(hook)
        if target.endswith(".py") and folder is not None:
            hook = f"{_relative(target, folder)}:{function}"
        lines.append(f"  hook: {_yaml_scalar(hook)}")
    lines.append("features:")
    for c in project.features:
        lines += _noted(f"  - name: {_yaml_scalar(c.name)}", notes.get(f"features.{c.name}"))
        lines.append(f"    dtype: {c.dtype}")
        lines.append(f"    kind: {c.kind}")
        if c.kind == "bucketized":
            lines.append(f"    buckets: {c.buckets}")
        if c.kind == "categorical_int":
            lines.append(f"    size: {c.size}")
        lines.append(f"    required: {_yaml_scalar(c.required)}")
        if c.missing_values:
            lines.append(f"    missing_values: {_yaml_flow_list(c.missing_values)}")
    lines += _noted(f"slices: {_yaml_flow_list(project.slices)}", notes.get("slices"))
    lines.append("thresholds:")
    for g in project.thresholds:
        lines += _noted(f"  - metric: {g.metric}", notes.get(f"thresholds.{g.metric}"))
        lines.append(f"    higher_is_better: {_yaml_scalar(g.higher_is_better)}")
        lines.append(f"    bound: {_yaml_scalar(g.bound)}")
        lines.append(f"    max_change: {_yaml_scalar(g.max_change)}")
    return "\n".join(lines) + "\n"


def dump(project: Project, path: Path | str, header: str | None = None, notes: Mapping[str, str] | None = None) -> None:
    """Writes `project` as YAML to `path` (a project.yaml), paths relative to its folder when close.

    See `dumps` for `header` and `notes`. The text is re-read before writing, so a value the YAML would
    not give back unchanged raises ProjectError instead of writing a spec that means something else.
    """
    import yaml

    path = Path(path)
    text = dumps(project, header, notes, folder=path.parent)
    back = _parse(yaml.safe_load(text), str(path), path.parent.resolve())
    if back != replace(project, dir=path.parent.resolve()):
        raise ProjectError(path, "", "the YAML written would not read back as the same project")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
