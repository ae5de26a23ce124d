"""Reading ExampleValidator's and StatisticsGen's outputs: one row per (split, feature, anomaly); and, for a
value outside the schema's domain, how to accept it (`with_fixes`): the schema.pbtxt line to change and,
for a categorical_int or a class label, the project.yaml line that must change with it.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# ExampleValidator writes one binary `Anomalies` proto per split under this name.
_ANOMALIES_FILE = "SchemaDiff.pb"
# StatisticsGen writes one binary DatasetFeatureStatisticsList per split under this name.
_STATISTICS_FILE = "FeatureStats.pb"


@dataclass(frozen=True)
class Anomaly:
    """One finding. `type`: TFDV's AnomalyInfo.Type name (e.g. INT_TYPE_BIG_INT), "" for this project's own."""

    split: str
    feature: str
    anomaly: str
    description: str
    type: str = ""

    def as_dict(self) -> dict:
        return {
            "split": self.split,
            "feature": self.feature,
            "anomaly": self.anomaly,
            "description": self.description,
            "type": self.type,
        }


def read_anomalies(anomalies_uri: str) -> list[Anomaly]:
    """All anomalies found in an ExampleAnomalies artifact directory, sorted."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    type_name = anomalies_pb2.AnomalyInfo.Type.Name
    found = []
    for path in sorted(glob.glob(os.path.join(anomalies_uri, "Split-*", _ANOMALIES_FILE))):
        split = os.path.basename(os.path.dirname(path))[len("Split-") :]
        proto = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
        for feature, info in proto.anomaly_info.items():
            for reason in info.reason or [info]:
                found.append(
                    Anomaly(
                        split=split,
                        feature=feature,
                        anomaly=reason.short_description or info.short_description,
                        description=reason.description or info.description,
                        type=type_name(reason.type) if info.reason else "",
                    )
                )
        if proto.HasField("dataset_anomaly_info"):
            info = proto.dataset_anomaly_info
            for reason in info.reason:
                found.append(
                    Anomaly(split, "(dataset)", reason.short_description, reason.description, type_name(reason.type))
                )
    return sorted(found, key=lambda a: (a.feature, a.split, a.anomaly))


def split_row_counts(statistics_uri: str) -> dict[str, int]:
    """Examples per split, from StatisticsGen's output (`Split-<name>/FeatureStats.pb`)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = {}
    for path in sorted(glob.glob(os.path.join(statistics_uri, "Split-*", _STATISTICS_FILE))):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(path, "rb") as f:
            stats.ParseFromString(f.read())
        rows[os.path.basename(os.path.dirname(path))[len("Split-") :]] = sum(d.num_examples for d in stats.datasets)
    return rows


def empty_splits(rows_per_split: dict[str, int]) -> list[Anomaly]:
    """One "no rows" anomaly per empty split.

    TFDV raises nothing for an empty dataset (not even with
    `dataset_constraints { min_examples_count: 1 }`: there are no statistics to
    compare), and Transform and the Trainer would then run on nothing.
    """
    return [
        Anomaly(split, "(dataset)", "no rows", f"the {split} split has no rows; the input has too few rows to split")
        for split, count in sorted(rows_per_split.items())
        if count == 0
    ]


class DataAnomaliesError(RuntimeError):
    """Raised by the pipeline's data gate: the data does not match the curated schema."""

    def __init__(self, anomalies: list[Anomaly]):
        self.anomalies = anomalies
        features = sorted({a.feature for a in anomalies})
        super().__init__(f"data anomalies in {len(features)} feature(s): {', '.join(features)}")


# ------------------------------------------------------------------------------- how to accept a new value

# TFDV's anomaly types for a value outside the schema's domain (tensorflow_metadata anomalies.proto).
_INT_RANGE = {"INT_TYPE_BIG_INT": "max", "INT_TYPE_SMALL_INT": "min"}
_FLOAT_RANGE = {"FLOAT_TYPE_BIG_FLOAT": "max", "FLOAT_TYPE_SMALL_FLOAT": "min"}
_NEW_STRINGS = "ENUM_TYPE_UNEXPECTED_STRING_VALUES"
# TFDV's descriptions: "Unexpectedly large value: 24.", "Unexpectedly high value: 2>1(upto six significant
# digits)", "Examples contain values missing from the schema: Red (~25%), green (~25%). "
_INT_VALUE = re.compile(r"value: (-?\d+)")
_FLOAT_VALUE = re.compile(r"values?: ([^<>\s]+)[<>]")
_STRING_VALUE = re.compile(r"(?:^|, )(.*?) \(~?[\d.<>]+%\)")


@dataclass
class _Field:
    """One field of a text-format proto, with the 1-based line it starts on."""

    name: str
    line: int
    value: str | None = None  # scalars: the token as written (strings keep their quotes)
    fields: list[_Field] | None = None  # messages

    def all(self, name: str) -> list[_Field]:
        return [f for f in self.fields or [] if f.name == name]

    def first(self, name: str) -> _Field | None:
        found = self.all(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        field = self.first(name)
        return field.value.strip("\"'") if field is not None and field.value is not None else None


_TOKEN = re.compile(r"""\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}<>:\[\],;]|[^\s{}<>:\[\],;"'#]+""")


def _tokens(text: str) -> list[tuple[str, int]]:
    out, line = [], 1
    for match in _TOKEN.finditer(text):
        token = match.group()
        if not token.isspace() and not token.startswith("#"):
            out.append((token, line))
        line += token.count("\n")
    return out


def parse_text_proto(text: str) -> _Field:
    """A text-format proto (schema.pbtxt) as a tree of fields with their line numbers.

    Only the structure is read (no descriptor): enough to find the line of a domain's `max:` in a
    hand-edited file, with its comments and layout, which protobuf's own parser does not report.
    Raises ValueError on text that is not text-format.
    """
    tokens = _tokens(text)
    position = 0

    def message(closing: str | None) -> list[_Field]:
        nonlocal position
        fields = []
        while position < len(tokens):
            token, line = tokens[position]
            if token == closing:
                position += 1
                return fields
            if token in ",;":
                position += 1
                continue
            position += 1
            if position < len(tokens) and tokens[position][0] == ":":
                position += 1
            if position >= len(tokens):
                raise ValueError(f"line {line}: {token} has no value")
            value = tokens[position][0]
            if value in "{<":
                position += 1
                fields.append(_Field(token, line, fields=message("}" if value == "{" else ">")))
            elif value == "[":
                position += 1
                while position < len(tokens) and tokens[position][0] != "]":
                    if tokens[position][0] != ",":
                        fields.append(_Field(token, line, value=tokens[position][0]))
                    position += 1
                position += 1
            else:
                position += 1
                fields.append(_Field(token, line, value=value))
        if closing is not None:
            raise ValueError(f"unbalanced braces: no closing {closing!r}")
        return fields

    return _Field("", 1, fields=message(None))


def _schema_feature(root: _Field, name: str) -> _Field | None:
    for feature in root.all("feature"):
        if feature.text("name") == name:
            return feature
    return None


def _spec_lines(spec_file: Path, feature: str) -> dict[str, int]:
    """Line numbers in project.yaml: "size" (of feature column `feature`), "classes" (of the label)."""
    import yaml

    try:
        root = yaml.compose(spec_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}

    def get(node, key):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if getattr(k, "value", None) == key:
                    return k, v
        return None, None

    lines: dict[str, int] = {}
    _, label = get(root, "label")
    key, _ = get(label, "classes")
    if key is not None:
        lines["classes"] = key.start_mark.line + 1
    _, features = get(root, "features")
    for item in getattr(features, "value", None) or []:
        _, name = get(item, "name")
        if getattr(name, "value", None) == feature:
            key, _ = get(item, "size")
            if key is not None:
                lines["size"] = key.start_mark.line + 1
    return lines


@dataclass(frozen=True)
class _Spec:
    """What project.yaml says of one feature: its kind and size, or that it is the label."""

    file: Path
    kind: str | None = None  # None: not a feature column (the label, or no project.yaml)
    size: int = 0
    is_label: bool = False


def _spec_of(spec_file: Path, feature: str) -> _Spec:
    """Reads project.yaml leniently (it was checked when the run started)."""
    import yaml

    try:
        raw = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return _Spec(spec_file)
    if not isinstance(raw, Mapping):
        return _Spec(spec_file)
    if isinstance(raw.get("label"), Mapping) and raw["label"].get("column") == feature:
        return _Spec(spec_file, is_label=True)
    for column in raw.get("features") or []:
        if isinstance(column, Mapping) and column.get("name") == feature:
            return _Spec(spec_file, column.get("kind"), int(column.get("size") or 0))
    return _Spec(spec_file)


def how_to_accept(anomaly: Mapping, schema_file: Path | str, spec_file: Path | str | None = None) -> str | None:
    """How to accept the value(s) an out-of-domain anomaly reports, if they are valid data; None for others.

    `anomaly`: an `Anomaly.as_dict()` (TFDV's `type` and `description` are read). Answers name the line of
    `schema_file` to change and, when `spec_file` (project.yaml) must change with it, its line too: a
    categorical_int's `size` is its int_domain's max + 1 (`tfxp run` refuses them apart,
    tfxp.schema.check.check_schema), and a class label's values are its `label.classes`.
    """
    kind = anomaly.get("type", "")
    if kind not in _INT_RANGE and kind not in _FLOAT_RANGE and kind != _NEW_STRINGS:
        return None
    schema_file = Path(schema_file)
    try:
        root = parse_text_proto(schema_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    feature = _schema_feature(root, anomaly["feature"])
    if feature is None:
        return None
    spec = _spec_of(Path(spec_file), anomaly["feature"]) if spec_file is not None else _Spec(Path("project.yaml"))
    lines = _spec_lines(spec.file, anomaly["feature"]) if spec_file is not None else {}
    schema_name, spec_name = schema_file.name, spec.file.name
    description = anomaly.get("description", "")

    if kind == _NEW_STRINGS:
        values = _STRING_VALUE.findall(description.split("from the schema: ", 1)[-1])
        domain = feature.first("string_domain")
        if domain is None and feature.text("domain") is not None:
            domain = next((d for d in root.all("string_domain") if d.text("name") == feature.text("domain")), None)
        if domain is None:
            return None
        shown = " ".join(f'value: "{v}"' for v in values) or "value: ... (the values above)"
        fix = f"to accept, if valid: add {shown} to the string_domain at {schema_name} line {domain.line}"
        if spec.is_label:
            fix += f", and the class(es) to label.classes at {spec_name} line {lines.get('classes', '?')} (a new model)"
        return fix

    bound = (_INT_RANGE | _FLOAT_RANGE)[kind]
    domain = feature.first("int_domain" if kind in _INT_RANGE else "float_domain")
    if domain is None:
        return None
    old = domain.first(bound)
    at = f"{schema_name} line {(old or domain).line}"
    if kind in _FLOAT_RANGE:
        match = _FLOAT_VALUE.search(description)
        seen = match.group(1) if match else "the value above"
        change = f"{bound}: {old.value} -> {bound}: {seen} or beyond" if old else f"add {bound}: {seen} or beyond"
        return f"to accept, if valid: {at}: {change} (float_domain of {anomaly['feature']})"
    match = _INT_VALUE.search(description)
    if match is None:
        return None
    value = int(match.group(1))
    change = f"{bound}: {old.value} -> {bound}: {value}" if old else f"add {bound}: {value}"
    fix = f"to accept {value}, if valid: {at}: {change}"
    if spec.kind == "categorical_int":
        if value < 0:
            return (
                f"{value} can't be a categorical_int value (0..size-1): to accept negative values, make "
                f"{anomaly['feature']} kind: vocabulary (or numeric) in {spec_name} and set min: {value} at {at}"
            )
        if bound == "max":
            fix += (
                f", and in {spec_name} line {lines.get('size', '?')}: size: {spec.size} -> size: {value + 1} "
                "(a categorical_int's size is max + 1; tfxp run refuses one changed without the other)"
            )
    elif spec.is_label:
        fix += f", and add {value} to label.classes at {spec_name} line {lines.get('classes', '?')} (a new model)"
    return fix


def with_fixes(anomalies: list[dict], schema_file: Path | str) -> list[dict]:
    """`anomalies` (Anomaly.as_dict()s) with a "fix" each: how_to_accept's answer, or None.

    The project.yaml read is the one beside `schema_file` (a project folder holds both), if there is one.
    """
    spec = Path(schema_file).parent / "project.yaml"
    spec_file = spec if spec.is_file() else None
    return [{**a, "fix": how_to_accept(a, schema_file, spec_file)} for a in anomalies]
