"""Reading a project spec: `load` (project.yaml checked against schema.pbtxt), `from_dict` (a spec as a
dict, e.g. TFX's custom_config["project"]) and `parse` under both. Every problem is a ProjectError naming
the file and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfxp.project.spec import (
    DEFAULT_BUCKETS,
    DTYPES,
    FRACTION_METRICS,
    GATE_METRICS,
    HOOK_BINARY_CLASSES,
    KIND_DTYPES,
    KINDS,
    PROJECT_FILE,
    SCHEMA_FILE,
    SEARCH_SPACE_RULES,
    SLICE_KINDS,
    TASKS,
    TF_NAME,
    Column,
    Gate,
    Label,
    Monitoring,
    Project,
    ProjectError,
    check_hook,
    is_uri,
)

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")


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
    if metric in FRACTION_METRICS and not 0.0 <= bound <= 1.0:
        raise r.error(f"{path}.bound", f"{metric} is between 0 and 1, got {bound}")
    if metric not in FRACTION_METRICS and bound < 0:
        raise r.error(f"{path}.bound", f"{metric} is >= 0, got {bound}")
    max_change = r.number(d["max_change"], f"{path}.max_change")
    if max_change < 0:
        raise r.error(f"{path}.max_change", f"the worst allowed change is >= 0, got {max_change}")
    return Gate(metric=metric, bound=bound, max_change=max_change, higher_is_better=higher)


_TOP_FIELDS = (
    "name", "data", "label", "features", "slices", "thresholds", "monitoring", "intended_use", "limitations", "tuning",
)  # fmt: skip


def parse(raw: Any, file: str | None, base: Path | None, check_files: bool = True) -> Project:
    """A Project from a parsed project.yaml (`raw`: what yaml.safe_load gave), validated (not against a schema).

    `file`: named in errors (None: no file). `base`: the folder relative `data` and file hooks are resolved
    against. `check_files`: require a file hook to exist. Raises ProjectError naming `file` and the field.
    """
    r = _Reader(file)
    d = r.mapping(raw, "", _TOP_FIELDS, ("name", "label", "features", "thresholds"))
    name = r.string(d["name"], "name")
    if not _NAME.match(name):
        raise r.error(
            "name", f"{name!r}: use lowercase letters, digits, '_' and '-' (it names the pipeline and the served model)"
        )
    data = None
    if d.get("data") is not None:
        data = r.string(d["data"], "data")
        if not is_uri(data) and not Path(data).is_absolute():
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
    monitoring = _parse_monitoring(r, d["monitoring"], features) if d.get("monitoring") is not None else Monitoring()
    return Project(
        name=name,
        label=label,
        features=features,
        thresholds=thresholds,
        slices=slices,
        data=data,
        dir=base,
        monitoring=monitoring,
        intended_use=r.string(d["intended_use"], "intended_use") if d.get("intended_use") is not None else None,
        limitations=r.string(d["limitations"], "limitations") if d.get("limitations") is not None else None,
        search_space=_parse_tuning(r, d["tuning"]) if d.get("tuning") is not None else (),
    )


def _parse_monitoring(r: _Reader, raw: Any, features: tuple[Column, ...]) -> Monitoring:
    """`monitoring:` {min_rows, skew: {categorical, numeric}, drift: {categorical, numeric},
    prediction: {skew, drift}, features: {column: {skew, drift}}}; every field optional."""
    d = r.mapping(raw, "monitoring", ("min_rows", "skew", "drift", "prediction", "features"), ())
    values: dict[str, Any] = {}
    if d.get("min_rows") is not None:
        values["min_rows"] = r.positive_int(d["min_rows"], "monitoring.min_rows")
    for kind in ("skew", "drift"):
        part = r.mapping(d.get(kind) or {}, f"monitoring.{kind}", ("categorical", "numeric"), ())
        for column_kind, value in part.items():
            values[f"{column_kind}_{kind}"] = _statistic_bound(r, value, f"monitoring.{kind}.{column_kind}")
    prediction = r.mapping(d.get("prediction") or {}, "monitoring.prediction", ("skew", "drift"), ())
    for kind, value in prediction.items():
        values[f"prediction_{kind}"] = _statistic_bound(r, value, f"monitoring.prediction.{kind}")
    inputs = [c.name for c in features if c.is_input]
    overrides = []
    for name, part in r.mapping(d.get("features") or {}, "monitoring.features", tuple(inputs), ()).items():
        part = r.mapping(part, f"monitoring.features.{name}", ("skew", "drift"), ())
        skew, drift = (
            _statistic_bound(r, part[k], f"monitoring.features.{name}.{k}") if part.get(k) is not None else None
            for k in ("skew", "drift")
        )
        overrides.append((name, skew, drift))
    return Monitoring(**values, features=tuple(overrides))


def _parse_tuning(r: _Reader, raw: Any) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """`tuning:` {search_space: {name: [values]}}: names of SEARCH_SPACE_RULES, each a non-empty list of
    distinct values within its rule."""
    d = r.mapping(raw, "tuning", ("search_space",), ("search_space",))
    space = r.mapping(d["search_space"], "tuning.search_space", tuple(SEARCH_SPACE_RULES), ())
    if not space:
        names = ", ".join(SEARCH_SPACE_RULES)
        raise r.error("tuning.search_space", f"empty: give choices for one or more of {names}, or leave tuning out")
    return tuple((name, _search_choices(r, name, values)) for name, values in space.items())


def _search_choices(r: _Reader, name: str, raw: Any) -> tuple[float, ...]:
    path = f"tuning.search_space.{name}"
    integer, low, high, low_included = SEARCH_SPACE_RULES[name]
    values = r.sequence(raw, path)
    if not values:
        raise r.error(path, "an empty list: give at least one value to search")
    choices = []
    for i, value in enumerate(values):
        if not integer and isinstance(value, str):
            value = _yaml_11_float(value)  # PyYAML reads 1e-3 (no dot) as a string
        number = r.positive_int(value, f"{path}[{i}]") if integer else r.number(value, f"{path}[{i}]")
        if not (low <= number if low_included else low < number) or number > high:
            bounds = f"{'[' if low_included else '('}{low:g}, {high:g}]"
            raise r.error(f"{path}[{i}]", f"{number:g} is outside {bounds}")
        choices.append(number)
    if len(set(choices)) != len(choices):
        raise r.error(path, "a value is listed more than once")
    return tuple(choices)


def _yaml_11_float(text: str) -> Any:
    """`text` as a float when it is one (YAML 1.1, PyYAML's, wants a dot in 1.0e-3), else unchanged."""
    try:
        return float(text)
    except ValueError:
        return text


def _statistic_bound(r: _Reader, value: Any, path: str) -> float:
    """A threshold of L-infinity or Jensen-Shannon divergence: both lie in [0, 1]."""
    number = r.number(value, path)
    if not 0 <= number <= 1:
        raise r.error(path, f"{number} is outside [0, 1], where L-infinity and Jensen-Shannon divergence lie")
    return number


def from_dict(d: Mapping[str, Any], dir: Path | str | None = None, check_files: bool = False) -> Project:
    """A Project from `Project.to_dict()` output (or a parsed project.yaml), validated (not against a schema).

    `dir`: the folder relative `data` and file hooks are resolved against. `check_files`: also require a
    file hook to exist (off by default: the model code gets the dict where `load` already checked it).
    Raises ProjectError.
    """
    return parse(d, None, Path(dir).resolve() if dir is not None else None, check_files)


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

    # Here, not at the top: tfxp.schema.check imports tfxp.project.spec, so importing it first must work.
    from tfxp.schema.check import check_schema

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
    project = parse(raw, str(spec_file), folder)
    return check_schema(project, folder / SCHEMA_FILE, spec_file)
