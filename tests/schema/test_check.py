"""project.yaml against schema.pbtxt, both ways (tfxp/schema/check.py, run by tfxp.project.load): every
disagreement names the field, and the file whose edit would fix it."""

from __future__ import annotations

import pytest
from project_data import SCHEMA, SPEC, TAXI_DIR, refused, write_project

from tfxp import project as P


@pytest.mark.parametrize(
    "edit, field, words, file",
    [
        (
            ('name: "n" type: INT', 'name: "m" type: INT'),
            "features[2] (n).name",
            ["'n' is not a feature of"],
            "project.yaml",
        ),
        (
            ('name: "x" type: FLOAT float_domain { disallow_nan: true disallow_inf: true }', 'name: "x" type: INT'),
            "features[0] (x).dtype",
            ["float, but", "INT (int)"],
            "project.yaml",
        ),
        (
            (
                'name: "city" type: BYTES presence { min_count: 0 }',
                'name: "city" type: BYTES presence { min_count: 0 } shape { dim { size: 1 } }',
            ),
            "features[1] (city).required",
            ["false, but", "gives it a shape"],
            "project.yaml",
        ),
        (
            (
                'presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }\nfeature { name: "city"',
                'presence { min_fraction: 1.0 min_count: 1 } }\nfeature { name: "city"',
            ),
            "features[0] (x).required",
            ["true, but", "no shape"],
            "project.yaml",
        ),
        (
            ('name: "y" type: BYTES', 'name: "label" type: BYTES'),
            "label.column",
            ["'y' is not a feature"],
            "project.yaml",
        ),
        (('not_in_environment: "SERVING"', ""), "feature 'y'", ["SERVING environment"], "schema.pbtxt"),
        (
            ('default_environment: "TRAINING"', 'feature { name: "extra" type: INT }\ndefault_environment: "TRAINING"'),
            "features",
            ["extra: in", "kind: ignored"],
            "project.yaml",
        ),
        (("feature {", "feature {{"), "", ["not a text-format Schema"], "schema.pbtxt"),
    ],
)
def test_schema_disagreements_name_the_field(tmp_path, edit, field, words, file):
    old, new = edit
    assert old in SCHEMA
    folder = write_project(tmp_path, schema=SCHEMA.replace(old, new, 1))
    refused(folder, field, *words, file=file)


def test_label_dtype_must_agree_with_the_schema(tmp_path):
    folder = write_project(tmp_path, SPEC.replace("  column: y\n", "  column: y\n  dtype: int\n"))
    refused(folder, "label.dtype", "int, but", "BYTES")


# ------------------------------------------------- project.yaml against schema.pbtxt, both ways (issue 17, kind 9)

N_DOMAIN = 'name: "n" type: INT int_domain { min: 0 max: 4 }'


def test_categorical_int_size_and_the_schema_domain_must_agree_both_ways(tmp_path):
    # New data brought n = 5: widening the schema's domain alone would let 5 through validation into a
    # model whose size-5 one-hot has no room for it.
    schema_only = SCHEMA.replace(N_DOMAIN, 'name: "n" type: INT int_domain { min: 0 max: 5 }')
    error = refused(write_project(tmp_path, schema=schema_only), "features[2] (n).size", "size: 5 (values 0..4)")
    for words in ("int_domain admits 0..5", "size: 6 in project.yaml", "max: 4 in schema.pbtxt"):
        assert words in str(error), str(error)
    # Widening project.yaml's size alone: the schema would still refuse the value the model has room for.
    size_only = SPEC.replace("size: 5", "size: 6")
    error = refused(write_project(tmp_path, size_only), "features[2] (n).size", "size: 6 (values 0..5)")
    for words in ("int_domain admits 0..4", "size: 5 in project.yaml", "max: 5 in schema.pbtxt"):
        assert words in str(error), str(error)
    # Both widened: agreed.
    assert P.load(write_project(tmp_path, size_only, schema_only)).column("n").size == 6


@pytest.mark.parametrize(
    "schema_edit, spec_edit, field, words, file",
    [
        # A categorical_int the schema does not bound: any value would pass validation.
        ((N_DOMAIN, 'name: "n" type: INT'), None, "features[2] (n).size", ["int_domain { min: 0 max: 4 }"], "yaml"),
        (
            (N_DOMAIN, 'name: "n" type: INT int_domain { max: 4 }'),
            None,
            "features[2] (n).size",
            ["no int_domain"],
            "yaml",
        ),
        # Negative values can't be one-hot positions 0..size-1.
        (
            (N_DOMAIN, 'name: "n" type: INT int_domain { min: -1 max: 4 }'),
            None,
            "features[2] (n).kind",
            ["admits n from -1", "kind vocabulary"],
            "yaml",
        ),
        # A domain of another type than the feature's.
        (
            ('name: "city" type: BYTES', 'name: "city" type: BYTES int_domain { min: 0 max: 3 }'),
            None,
            "feature 'city'",
            ["an int_domain on a BYTES feature", "string_domain"],
            "pbtxt",
        ),
        (
            (N_DOMAIN, 'name: "n" type: INT float_domain { min: 0 max: 4 }'),
            None,
            "feature 'n'",
            ["a float_domain on an INT feature"],
            "pbtxt",
        ),
        # The schema says the ints are codes, the spec makes them a magnitude.
        (
            (N_DOMAIN, 'name: "n" type: INT int_domain { min: 0 max: 4 is_categorical: true }'),
            ("    kind: categorical_int\n    size: 5", "    kind: numeric"),
            "features[2] (n).kind",
            ["numeric, but", "is_categorical"],
            "yaml",
        ),
    ],
)
def test_a_domain_that_disagrees_with_the_spec_is_refused(tmp_path, schema_edit, spec_edit, field, words, file):
    schema = SCHEMA.replace(*schema_edit)
    assert schema != SCHEMA
    spec = SPEC.replace(*spec_edit) if spec_edit else SPEC
    assert spec != SPEC or spec_edit is None
    refused(
        write_project(tmp_path, spec, schema), field, *words, file="project.yaml" if file == "yaml" else "schema.pbtxt"
    )


def test_every_schema_feature_is_a_column_and_every_column_a_schema_feature(tmp_path):
    extra = SCHEMA.replace("default_environment", 'feature { name: "z" type: INT }\ndefault_environment', 1)
    refused(write_project(tmp_path, schema=extra), "features", "z: in", "but not listed")
    missing = SCHEMA.replace('feature { name: "city" type: BYTES presence { min_count: 0 } }\n', "")
    refused(write_project(tmp_path, schema=missing), "features[1] (city).name", "'city' is not a feature of")


def test_the_taxi_project_agrees_with_its_schema_under_the_domain_rules():
    # Hand-written, with a curated schema: month 1..12 (size 13), hour 0..23, day 1..7 (size 8).
    project = P.load(TAXI_DIR)
    assert {c.name: c.size for c in project.features if c.kind == "categorical_int"} == {
        "trip_start_month": 13,
        "trip_start_hour": 24,
        "trip_start_day": 8,
    }
