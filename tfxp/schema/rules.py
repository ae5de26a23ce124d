"""Rules every schema the pipeline uses must follow (TF-free: tensorflow_metadata protos only).

Non-finite floats: TFDV only flags NaN and infinities when the schema asks for it
(`float_domain { disallow_nan: true disallow_inf: true }`, anomalies
FLOAT_TYPE_HAS_NAN / FLOAT_TYPE_HAS_INF). Without them a "NaN" cell passes
ExampleValidator and tf.Transform turns it into NaN features, which train a worse
model without any error. So `tfxp schema infer` writes both flags on every FLOAT
feature, and `tfxp run` refuses a schema where one is missing.
"""

from __future__ import annotations

from pathlib import Path


def load_schema(path: Path | str):
    """A text-format `tensorflow_metadata` Schema. Raises ValueError naming the file if it doesn't parse."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        return text_format.Parse(Path(path).read_text(), schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise ValueError(f"{path}: not a text-format Schema: {exc}") from None


def _float_domain(schema, feature):
    """The feature's float domain: inline, or the schema-level one it names (`domain: "..."`)."""
    if feature.HasField("float_domain"):
        return feature.float_domain
    if feature.HasField("domain"):
        for domain in schema.float_domain:
            if domain.name == feature.domain:
                return domain
    return None


def non_finite_allowed(schema) -> list[str]:
    """Names of FLOAT features whose schema lets NaN or infinite values through, sorted."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    names = []
    for feature in schema.feature:
        if feature.type != schema_pb2.FLOAT:
            continue
        domain = _float_domain(schema, feature)
        if domain is None or not (domain.disallow_nan and domain.disallow_inf):
            names.append(feature.name)
    return sorted(names)


def float_features(schema) -> list[str]:
    """Names of the schema's FLOAT features, sorted."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    return sorted(f.name for f in schema.feature if f.type == schema_pb2.FLOAT)


def disallow_non_finite(schema) -> None:
    """Sets disallow_nan and disallow_inf on every FLOAT feature (adding a float_domain if it has none)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    for feature in schema.feature:
        if feature.type != schema_pb2.FLOAT:
            continue
        domain = _float_domain(schema, feature)
        if domain is None:
            domain = feature.float_domain
        domain.disallow_nan = True
        domain.disallow_inf = True


def schema_problem(path: Path | str) -> str | None:
    """Why the pipeline can't use the schema at `path`, or None. Used before a run starts."""
    try:
        schema = load_schema(path)
    except (OSError, ValueError) as exc:
        return str(exc)
    allowed = non_finite_allowed(schema)
    if allowed:
        return (
            f"{path}: FLOAT feature(s) {', '.join(allowed)} allow NaN or infinite values; add "
            "`disallow_nan: true` and `disallow_inf: true` to their float_domain "
            "(tfxp schema infer writes them)"
        )
    return None
