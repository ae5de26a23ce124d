"""Schema rules: every FLOAT feature refuses NaN and infinities (TFDV's disallow_nan / disallow_inf)."""

from __future__ import annotations

from google.protobuf import text_format
from taxi_data import SCHEMA, load_schema
from tensorflow_metadata.proto.v0 import schema_pb2

from tfxp.schema.rules import disallow_non_finite, non_finite_allowed, schema_problem

LOOSE = """
feature { name: "fare" type: FLOAT float_domain { min: 0 max: 10 } }
feature { name: "miles" type: FLOAT }
feature { name: "lat" type: FLOAT domain: "geo" }
feature { name: "hour" type: INT int_domain { min: 0 max: 23 } }
float_domain { name: "geo" min: 41 max: 43 disallow_nan: true }
"""


def test_the_curated_schema_refuses_non_finite_floats():
    schema = load_schema()
    floats = [f.name for f in schema.feature if f.type == schema_pb2.FLOAT]
    assert "fare" in floats and "tips" in floats
    assert non_finite_allowed(schema) == []
    assert schema_problem(SCHEMA) is None


def test_floats_that_allow_nan_or_inf_are_named_and_fixed(tmp_path):
    schema = text_format.Parse(LOOSE, schema_pb2.Schema())
    assert non_finite_allowed(schema) == ["fare", "lat", "miles"]  # lat's named domain lacks disallow_inf
    path = tmp_path / "schema.pbtxt"
    path.write_text(LOOSE)
    problem = schema_problem(path)
    assert "fare, lat, miles" in problem and "disallow_nan" in problem and str(path) in problem

    disallow_non_finite(schema)
    assert non_finite_allowed(schema) == []
    fare = next(f for f in schema.feature if f.name == "fare")
    assert (fare.float_domain.min, fare.float_domain.max) == (0, 10)  # bounds kept


def test_an_unparsable_schema_is_named(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text("feature { name: ")
    assert str(path) in schema_problem(path)
    assert "No such file" in schema_problem(tmp_path / "missing.pbtxt")
