"""A small project (project.yaml + schema.pbtxt) the project and schema tests edit, and the taxi one that
ships in the package (tests/project/, tests/schema/test_check.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfxp import project as P

TAXI_DIR = Path(P.__file__).resolve().parents[1] / "projects" / "taxi"

SCHEMA = """
feature { name: "x" type: FLOAT float_domain { disallow_nan: true disallow_inf: true }
          presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "city" type: BYTES presence { min_count: 0 } }
feature { name: "n" type: INT int_domain { min: 0 max: 4 } presence { min_fraction: 1.0 min_count: 1 }
          shape { dim { size: 1 } } }
feature { name: "y" type: BYTES presence { min_fraction: 1.0 min_count: 1 } not_in_environment: "SERVING"
          string_domain { value: "a" value: "b" value: "c" }
          shape { dim { size: 1 } } }
default_environment: "TRAINING"
default_environment: "SERVING"
"""

SPEC = """\
name: demo
data: data/demo.csv
label:
  column: y
  task: multiclass
  classes: [a, b, c]
features:
  - name: x
    dtype: float
    kind: numeric
    required: true
  - name: city
    dtype: string
    kind: vocabulary
    required: false
  - name: n
    dtype: int
    kind: categorical_int
    size: 5
slices: [city]
thresholds:
  - metric: SparseCategoricalAccuracy
    higher_is_better: true
    bound: 0.4
    max_change: 0.02
"""


def write_project(tmp_path: Path, spec: str = SPEC, schema: str = SCHEMA) -> Path:
    """`tmp_path`/demo holding `spec` as project.yaml and `schema` as schema.pbtxt."""
    folder = tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    (folder / "project.yaml").write_text(spec)
    (folder / "schema.pbtxt").write_text(schema)
    return folder


def refused(folder: Path, field: str, *words: str, file: str = "project.yaml") -> P.ProjectError:
    """Asserts `P.load(folder)` raises a ProjectError naming `file` (in the folder), `field` and `words`."""
    with pytest.raises(P.ProjectError) as info:
        P.load(folder)
    error = info.value
    assert error.file == str(folder.resolve() / file), str(error)
    assert error.field == field, str(error)
    for word in words:
        assert word in str(error), str(error)
    assert str(error).startswith(f"{error.file}: {field}") if field else True
    return error
