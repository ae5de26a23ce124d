"""Anomalies (tfxp/schema/anomalies.py): TFDV's findings read back, and for a value outside the schema's
domain, how to accept it — the schema.pbtxt line and, for a categorical_int or a class label, the
project.yaml line that must change with it (issue 17, kind 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfxp import project as P
from tfxp.schema import anomalies as A

SPEC = """\
# A project written by hand; the comments shift the lines a fix must name.
name: shapes
label:
  column: kind
  task: multiclass
  classes: [disc, ring, star]
features:
  - name: width
    dtype: float
    kind: numeric
  - name: level  # four levels so far
    dtype: int
    kind: categorical_int
    size: 4
  - name: colour
    dtype: string
    kind: vocabulary
  - name: count
    dtype: int
    kind: numeric
thresholds:
  - {metric: SparseCategoricalAccuracy, bound: 0.34, max_change: 0.05}
"""
SCHEMA = """\
# Curated by hand.
feature {
  name: "width"
  type: FLOAT
  float_domain { min: 0.0 max: 10.0 disallow_nan: true disallow_inf: true }
  shape { dim { size: 1 } }
}
feature {
  name: "level"
  type: INT
  int_domain {
    min: 0
    max: 3  # levels 0..3
  }
  shape { dim { size: 1 } }
}
feature {
  name: "colour"
  type: BYTES
  domain: "colours"
  shape { dim { size: 1 } }
}
feature {
  name: "count"
  type: INT
  int_domain { min: 1 max: 100 }
  shape { dim { size: 1 } }
}
feature {
  name: "kind"
  type: BYTES
  string_domain {
    name: "kind"
    value: "disc"
    value: "ring"
    value: "star"
  }
  shape { dim { size: 1 } }
  not_in_environment: "SERVING"
}
string_domain {
  name: "colours"
  value: "red"
  value: "blue"
}
default_environment: "TRAINING"
default_environment: "SERVING"
"""
GOOD = [(1.0 + i % 9, i % 4, ["red", "blue"][i % 2], 1 + i % 50, ["disc", "ring", "star"][i % 3]) for i in range(60)]


def _line(text: str, fragment: str) -> int:
    """The 1-based line of the only line holding `fragment`."""
    (number,) = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    return number


def _exact_line(text: str, line: str) -> int:
    """The 1-based number of the only line that is exactly `line`."""
    (number,) = [i + 1 for i, each in enumerate(text.splitlines()) if each == line]
    return number


def _project(folder: Path, rows) -> Path:
    folder.mkdir(parents=True)
    (folder / "project.yaml").write_text(SPEC)
    (folder / "schema.pbtxt").write_text(SCHEMA)
    lines = ["width,level,colour,count,kind"] + [",".join(str(v) for v in row) for row in rows]
    (folder / "shapes.csv").write_text("\n".join(lines) + "\n")
    return folder


def _validate(folder: Path, out: Path) -> list[dict]:
    """TFDV's statistics and validation of the CSV against the schema, written as ExampleValidator does."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from tfxp.schema.rules import load_schema

    stats = tfdv.generate_statistics_from_dataframe(pd.read_csv(folder / "shapes.csv"))
    found = tfdv.validate_statistics(stats, load_schema(folder / "schema.pbtxt"))
    (out / "Split-train").mkdir(parents=True, exist_ok=True)
    (out / "Split-train" / "SchemaDiff.pb").write_bytes(found.SerializeToString())
    return [a.as_dict() for a in A.read_anomalies(str(out))]


def test_each_out_of_domain_value_says_which_lines_accept_it(tmp_path):
    new = [(12.5, 4, "green", 0, "disc"), (1.0, 2, "Red", 101, "ring")]
    folder = _project(tmp_path / "shapes", GOOD + new)
    found = _validate(folder, tmp_path / "anomalies")
    fixes = {(a["feature"], a["type"]): a["fix"] for a in A.with_fixes(found, folder / "schema.pbtxt")}
    # A categorical_int: the schema's max and project.yaml's size, both lines named, with the new values.
    assert fixes["level", "INT_TYPE_BIG_INT"] == (
        f"to accept 4, if valid: schema.pbtxt line {_line(SCHEMA, 'max: 3')}: max: 3 -> max: 4, and in "
        f"project.yaml line {_line(SPEC, 'size: 4')}: size: 4 -> size: 5 (a categorical_int's size is max + 1; "
        "tfxp run refuses one changed without the other)"
    )
    # A numeric int: the schema alone.
    assert fixes["count", "INT_TYPE_BIG_INT"] == (
        f"to accept 101, if valid: schema.pbtxt line {_line(SCHEMA, 'min: 1 max: 100')}: max: 100 -> max: 101"
    )
    assert fixes["count", "INT_TYPE_SMALL_INT"] == (
        f"to accept 0, if valid: schema.pbtxt line {_line(SCHEMA, 'min: 1 max: 100')}: min: 1 -> min: 0"
    )
    # A named string domain: the line of the top-level string_domain it names, the new values quoted.
    colour = fixes["colour", "ENUM_TYPE_UNEXPECTED_STRING_VALUES"]
    assert colour.startswith("to accept, if valid: add ")
    assert colour.endswith(f"to the string_domain at schema.pbtxt line {_exact_line(SCHEMA, 'string_domain {')}")
    assert 'value: "green"' in colour and 'value: "Red"' in colour
    assert fixes["width", "FLOAT_TYPE_BIG_FLOAT"] == (
        f"to accept, if valid: schema.pbtxt line {_line(SCHEMA, 'max: 10.0')}: max: 10.0 -> max: 12.5 or beyond "
        "(float_domain of width)"
    )


def test_a_new_class_names_label_classes_too(tmp_path):
    folder = _project(tmp_path / "shapes", [*GOOD, (1.0, 1, "red", 3, "cube")])
    (fix,) = {a["fix"] for a in A.with_fixes(_validate(folder, tmp_path / "a"), folder / "schema.pbtxt")}
    assert fix == (
        f'to accept, if valid: add value: "cube" to the string_domain at schema.pbtxt line '
        f"{_exact_line(SCHEMA, '  string_domain {')}, and the class(es) to label.classes at project.yaml line "
        f"{_line(SPEC, 'classes:')} (a new model)"
    )


def test_a_negative_categorical_int_value_says_the_kind_must_change(tmp_path):
    folder = _project(tmp_path / "shapes", [*GOOD, (1.0, -1, "red", 3, "disc")])
    (fix,) = {a["fix"] for a in A.with_fixes(_validate(folder, tmp_path / "a"), folder / "schema.pbtxt")}
    assert fix.startswith("-1 can't be a categorical_int value (0..size-1)") and "kind: vocabulary" in fix


def test_following_the_fix_accepts_the_value_and_the_project_still_loads(tmp_path):
    folder = _project(tmp_path / "shapes", [*GOOD, (1.0, 4, "red", 3, "disc")])
    (fix,) = {a["fix"] for a in A.with_fixes(_validate(folder, tmp_path / "a"), folder / "schema.pbtxt")}
    assert "max: 3 -> max: 4" in fix and "size: 4 -> size: 5" in fix
    # Half the fix is refused by `tfxp run`'s project check ...
    schema = folder / "schema.pbtxt"
    schema.write_text(SCHEMA.replace("max: 3  #", "max: 4  #"))
    with pytest.raises(P.ProjectError, match="size: 4"):
        P.load(folder)
    # ... the whole fix loads, and the same data validates clean.
    (folder / "project.yaml").write_text(SPEC.replace("size: 4", "size: 5"))
    assert P.load(folder).column("level").size == 5
    assert _validate(folder, tmp_path / "b") == []


def test_other_anomalies_get_no_fix(tmp_path):
    missing = {"split": "train", "feature": "width", "anomaly": "Column dropped", "description": "…", "type": ""}
    assert A.how_to_accept(missing, tmp_path / "schema.pbtxt") is None
    assert A.with_fixes([missing], tmp_path / "schema.pbtxt") == [{**missing, "fix": None}]


def test_text_proto_lines():
    root = A.parse_text_proto(SCHEMA)
    level = [f for f in root.all("feature") if f.text("name") == "level"][0]
    assert level.first("int_domain").first("max").line == _line(SCHEMA, "max: 3") and level.line == 8
    assert [d.text("name") for d in root.all("string_domain")] == ["colours"]
    with pytest.raises(ValueError, match="unbalanced"):
        A.parse_text_proto('feature { name: "x"')


@pytest.mark.slow
def test_tfxp_run_exit_3_says_how_to_accept_a_new_value(tmp_path):
    folder = _project(tmp_path / "shapes", [*GOOD * 3, (1.0, 4, "red", 3, "disc")])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "tfxp.pipeline.cli", "run", "--project", str(folder), "--data",
         str(folder / "shapes.csv"), "--output", str(tmp_path / "out"), "--train-steps", "5"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    expected = (
        f"level: to accept 4, if valid: schema.pbtxt line {_line(SCHEMA, 'max: 3')}: max: 3 -> max: 4, and in "
        f"project.yaml line {_line(SPEC, 'size: 4')}: size: 4 -> size: 5"
    )
    assert expected in proc.stdout, proc.stdout
    assert proc.stdout.count("level: to accept") == 1  # once, though both splits report it
