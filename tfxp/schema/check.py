"""project.yaml against schema.pbtxt, both ways: `check_schema` (run by `tfxp.project.load`).

TF-free: `tensorflow_metadata` protos only. Every disagreement is a `tfxp.project.ProjectError` naming the
field, and the file whose edit would fix it (both files when either would).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tfxp.project.spec import PROJECT_FILE, SCHEMA_TYPES, Column, Project, ProjectError
from tfxp.schema.rules import load_schema


def check_schema(project: Project, schema_file: Path | str, spec_file: Path | str | None = None) -> Project:
    """Checks `project` against a TFDV schema; returns it with `label.dtype` filled from the schema.

    Every column (features and label) must be a schema feature and every schema feature a column; dtypes
    must agree (float=FLOAT, int=INT, string=BYTES); `required` must agree with the schema's `shape` (a
    required column has `shape { dim { size: 1 } }`, an optional one none); a feature's domain must suit its
    type and kind (`_check_domain`: a categorical_int's `size` is its int_domain's max + 1); the label must
    be kept out of the SERVING environment and, as a class label, have a domain of its classes. Raises
    ProjectError naming the field, and the file whose edit would fix it (both files when either would).
    """
    schema_file = Path(schema_file)
    spec = str(spec_file) if spec_file is not None else None
    if not schema_file.is_file():
        raise ProjectError(schema_file, "", "no such file (the project's TFDV schema; `tfxp init` writes one)")
    try:
        schema = load_schema(schema_file)
    except ValueError as exc:
        raise ProjectError(schema_file, "", str(exc)) from None
    by_name = {f.name: f for f in schema.feature}
    for i, column in enumerate(project.features):
        _check_column(column, f"features[{i}] ({column.name})", by_name, schema_file, spec)
    dtype = _check_label(project.label, schema, by_name, schema_file, spec)
    _check_no_unlisted(project, schema, schema_file, spec)
    return replace(project, label=replace(project.label, dtype=dtype))


def _check_column(column, path: str, by_name: dict, schema_file: Path, spec: str | None) -> None:
    """project -> schema: the column is a schema feature of its dtype, `required` as its shape, a domain
    that suits its kind. Raises ProjectError."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    name, dtype, required = column.name, column.dtype, column.required
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
            + ("gives it no shape (values may be missing)" if required else "gives it a shape (a value in every row)"),
        )
    _check_domain(column, feature, path, schema_file, spec)


def _check_label(label, schema, by_name: dict, schema_file: Path, spec: str | None) -> str:
    """project -> schema for the label: a schema feature of a usable dtype (returned), numeric for
    regression, a domain of its classes, kept out of SERVING. Raises ProjectError."""
    from tensorflow_metadata.proto.v0 import schema_pb2

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
    return dtype


def _check_no_unlisted(project: Project, schema, schema_file: Path, spec: str | None) -> None:
    """schema -> project: every schema feature is a column or the label. Raises ProjectError."""
    listed = {c.name for c in project.features} | {project.label.column}
    unlisted = [f.name for f in schema.feature if f.name not in listed]
    if unlisted:
        raise ProjectError(
            spec,
            "features",
            f"{', '.join(unlisted)}: in {schema_file} but not listed (add each "
            "as a column; `kind: ignored` keeps it validated but out of the model)",
        )


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
