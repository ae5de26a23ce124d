"""The project spec (tfxp/project.py): loading, checks against the schema, errors naming file and field,
dict and YAML round trips, the taxi project that ships in the package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from taxi_data import TAXI

from tfxp import project as P

TAXI_DIR = Path(P.__file__).resolve().parents[1] / "projects" / "taxi"

# The taxi model's features as tfxp/models/features.py and the curated schema had them before projects:
# (dtype, kind, size or buckets, required).
TAXI_COLUMNS = {
    "pickup_community_area": ("int", "vocabulary", 0, False),
    "fare": ("float", "numeric", 0, True),
    "trip_start_month": ("int", "categorical_int", 13, True),
    "trip_start_hour": ("int", "categorical_int", 24, True),
    "trip_start_day": ("int", "categorical_int", 8, True),
    "trip_start_timestamp": ("int", "ignored", 0, True),
    "pickup_latitude": ("float", "bucketized", 10, False),
    "pickup_longitude": ("float", "bucketized", 10, False),
    "dropoff_latitude": ("float", "bucketized", 10, False),
    "dropoff_longitude": ("float", "bucketized", 10, False),
    "trip_miles": ("float", "numeric", 0, True),
    "pickup_census_tract": ("int", "vocabulary", 0, False),
    "dropoff_census_tract": ("int", "vocabulary", 0, False),
    "payment_type": ("string", "vocabulary", 0, True),
    "company": ("string", "vocabulary", 0, False),
    "trip_seconds": ("int", "numeric", 0, False),
    "dropoff_community_area": ("int", "vocabulary", 0, False),
}

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


def _project(tmp_path: Path, spec: str = SPEC, schema: str = SCHEMA) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    (folder / "project.yaml").write_text(spec)
    (folder / "schema.pbtxt").write_text(schema)
    return folder


def _refused(folder: Path, field: str, *words: str, file: str = "project.yaml") -> P.ProjectError:
    with pytest.raises(P.ProjectError) as info:
        P.load(folder)
    error = info.value
    assert error.file == str(folder.resolve() / file), str(error)
    assert error.field == field, str(error)
    for word in words:
        assert word in str(error), str(error)
    assert str(error).startswith(f"{error.file}: {field}") if field else True
    return error


def test_taxi_project_loads_with_its_schema_and_matches_the_taxi_model():
    project = P.load(TAXI_DIR)
    assert project.name == "taxi"
    assert project.data == str(TAXI_DIR / "data" / "taxi.csv")
    assert project.label == P.Label(
        column="tips",
        task="binary",
        classes=("0", "1"),
        positive="1",
        hook="tfxp.projects.taxi.label:big_tipper",
        dtype="float",
    )
    columns = {c.name: (c.dtype, c.kind, c.size or c.buckets, c.required) for c in project.features}
    assert columns == TAXI_COLUMNS
    # Features in the CSV's column order, the label column last (as in taxi.csv).
    header = (TAXI_DIR / "data" / "taxi.csv").open().readline().strip().split(",")
    assert [c.name for c in project.features] == [h for h in header if h != "tips"]
    assert project.slices == ("trip_start_hour", "payment_type")
    assert project.thresholds == (P.Gate("AUC", 0.75, 0.01), P.Gate("BinaryAccuracy", 0.70, 0.02))
    assert [c.name for c in project.inputs] == [n for n, v in TAXI_COLUMNS.items() if v[1] != "ignored"]
    assert project.schema_path == TAXI_DIR / "schema.pbtxt"


def test_loads_a_folder_or_its_project_yaml(tmp_path):
    folder = _project(tmp_path)
    project = P.load(folder)
    assert P.load(folder / "project.yaml") == project
    assert project.data == str(folder.resolve() / "data" / "demo.csv")
    assert project.label.dtype == "string"  # filled from the schema
    assert project.label.num_classes == 3
    assert project.column("n") == P.Column("n", "int", "categorical_int", required=True, size=5)
    with pytest.raises(KeyError):
        project.column("y")  # the label is not a feature column


def test_dict_round_trip_is_json_safe(tmp_path):
    project = P.load(_project(tmp_path))
    d = json.loads(json.dumps(project.to_dict()))
    assert P.from_dict(d) == project
    assert d["label"] == {"column": "y", "task": "multiclass", "dtype": "string", "classes": ["a", "b", "c"]}
    taxi = P.load(TAXI_DIR)
    assert P.from_dict(json.loads(json.dumps(taxi.to_dict()))) == taxi


def test_dump_reads_back_the_same_project_with_awkward_values(tmp_path):
    """Names YAML would read as booleans, numbers or other syntax are quoted; notes are comments."""
    names = ["yes", "1", "a: b", "x, y", "#tag", "naïve", "null"]
    spec = {
        "name": "awkward",
        "label": {"column": "on", "task": "multiclass", "classes": ["no", "1.0", "[x]", "a,b"]},
        # Names TensorFlow refuses as model inputs can still be validated (ignored) columns.
        "features": [
            {
                "name": n,
                "dtype": "string",
                "kind": "vocabulary" if P.TF_NAME.fullmatch(n) else "ignored",
                "required": True,
            }
            for n in names
        ],
        "slices": ["yes", "null"],
        "thresholds": [{"metric": "SparseCategoricalAccuracy", "bound": 0.25, "max_change": 0.02}],
    }
    project = P.from_dict(spec, dir=tmp_path)
    out = tmp_path / "copy" / "project.yaml"
    P.dump(
        project,
        out,
        header="Written by a test\nsecond line",
        notes={"features.yes": "a note", "label": "x " * 80, "thresholds.SparseCategoricalAccuracy": "gate"},
    )
    text = out.read_text()
    assert text.startswith("# Written by a test\n# second line\n")
    assert "  - name: 'yes'  # a note\n" in text
    import yaml

    back = P.from_dict(yaml.safe_load(text), dir=out.parent)
    assert back == project


def test_dump_writes_paths_relative_to_the_project(tmp_path):
    folder = _project(tmp_path)
    (folder / "label.py").write_text("def make(inputs):\n    return inputs['y']\n")
    spec = SPEC.replace("  classes: [a, b, c]\n", "  classes: [a, b, c]\n  hook: label.py:make\n")
    (folder / "project.yaml").write_text(spec)
    project = P.load(folder)
    assert project.label.hook == f"{folder.resolve() / 'label.py'}:make"
    P.dump(project, folder / "project.yaml")
    text = (folder / "project.yaml").read_text()
    assert "data: data/demo.csv\n" in text and "hook: label.py:make\n" in text
    assert P.load(folder) == project


def test_binary_label_defaults(tmp_path):
    def label(**fields):
        spec = {
            "name": "b",
            "label": {"column": "y", "task": "binary", **fields},
            "features": [{"name": "x", "dtype": "float", "kind": "numeric"}],
            "thresholds": [{"metric": "AUC", "bound": 0.5, "max_change": 0.01}],
        }
        return P.from_dict(spec, dir=tmp_path).label

    assert label(positive="M", classes=["B", "M"]).classes == ("B", "M")
    assert label(classes=["B", "M"]).positive == "M"
    assert label(positive=1).positive == "1"  # an unquoted int is the text it was written as
    assert label(positive="M").classes == ("not M", "M")
    # A hook computes 0/1 itself: classes default to the taxi model's "0", "1".
    assert label(hook="tfxp.projects.taxi.label:big_tipper").classes == ("0", "1")


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (("name: demo", "name: Demo"), "name", ["lowercase"]),
        (("name: demo", "name: demo\ncolour: red"), "colour", ["unknown field", "allowed"]),
        (("  task: multiclass", "  task: ranking"), "label.task", ["binary | multiclass | regression"]),
        (("  column: y", "  column: no"), "label.column", ["boolean false", "quote it"]),
        (("  classes: [a, b, c]", "  classes: [a]"), "label.classes", ["at least 2"]),
        (("  classes: [a, b, c]", "  classes: [a, b, a]"), "label.classes", ["more than once: a"]),
        (("  classes: [a, b, c]", "  classes: [a, 1.5]"), "label.classes[1]", ["quote it"]),
        (("  classes: [a, b, c]", "  classes: [a, b, c]\n  positive: a"), "label.positive", ["only a binary"]),
        (("  classes: [a, b, c]", "  classes: [a, b, c]\n  hook: label.py"), "label.hook", ["file.py:function"]),
        (("  classes: [a, b, c]", "  classes: [a, b, c]\n  hook: label.py:make"), "label.hook", ["no such file"]),
        (("  classes: [a, b, c]", "  classes: [a, b, c]\n  hook: my-module:make"), "label.hook", ["dotted module"]),
        (("  classes: [a, b, c]", "  classes: [a, b, c]\n  hook: mod:class"), "label.hook", ["not a Python function"]),
        (("    kind: numeric", "    kind: embedding"), "features[0] (x).kind", ["numeric | bucketized"]),
        (("    kind: vocabulary", "    kind: bucketized"), "features[1] (city).kind", ["float", "string"]),
        (("    dtype: float", "    dtype: double"), "features[0] (x).dtype", ["float | int | string"]),
        (("    size: 5", "    size: 0"), "features[2] (n).size", [">= 1"]),
        (("    size: 5", ""), "features[2] (n).size", ["0..size-1"]),
        (("    required: true", "    required: yes please"), "features[0] (x).required", ["true or false"]),
        (("    kind: numeric", "    kind: numeric\n    buckets: 4"), "features[0] (x).buckets", ["only a bucketized"]),
        (("  - name: n", "  - name: x"), "features", ["more than once: x"]),
        (("  - name: n", "  - name: y"), "features[2]", ["label column"]),
        (("slices: [city]", "slices: [x]"), "slices[0]", ["float numeric", "categorical"]),
        (("slices: [city]", "slices: [town]"), "slices[0]", ["not a feature column"]),
        (
            ("  - metric: SparseCategoricalAccuracy", "  - metric: AUC"),
            "thresholds[0].metric",
            ["not a gated metric of a multiclass task", "SparseCategoricalAccuracy"],
        ),
        (
            ("    higher_is_better: true", "    higher_is_better: false"),
            "thresholds[0] (SparseCategoricalAccuracy).higher_is_better",
            ["higher is better"],
        ),
        (("    bound: 0.4", "    bound: 40"), "thresholds[0] (SparseCategoricalAccuracy).bound", ["between 0 and 1"]),
        (("    bound: 0.4", "    bound: .nan"), "thresholds[0] (SparseCategoricalAccuracy).bound", ["finite number"]),
        (
            ("    max_change: 0.02", "    max_change: -0.02"),
            "thresholds[0] (SparseCategoricalAccuracy).max_change",
            [">= 0"],
        ),
        (
            (
                "    max_change: 0.02",
                "    max_change: 0.02\n  - metric: SparseCategoricalAccuracy\n    bound: 0.5\n    max_change: 0.01",
            ),
            "thresholds",
            ["more than once"],
        ),
        ((SPEC[SPEC.index("thresholds:") :], "thresholds: []\n"), "thresholds", ["at least one gate"]),
        (("  classes: [a, b, c]", "  classes: [a, b, c"), "line 7", ["not valid YAML"]),
        (
            ("    kind: vocabulary", "    kind: vocabulary\n    missing_values: '?'"),
            "features[1] (city).missing_values",
            ["expected a list"],
        ),
        (
            ("    kind: vocabulary", "    kind: vocabulary\n    missing_values: [NA, null]"),
            "features[1] (city).missing_values[1]",
            ["expected a string", "quote it"],
        ),
        (
            ("    kind: vocabulary", "    kind: vocabulary\n    missing_values: ['?', '?']"),
            "features[1] (city).missing_values",
            ["more than once: ?"],
        ),
        (
            ("    kind: vocabulary", "    kind: vocabulary\n    missing_values: ['']"),
            "features[1] (city).missing_values[0]",
            ["empty"],
        ),
    ],
)
def test_spec_errors_name_the_file_and_field(tmp_path, edit, field, words):
    old, new = edit
    assert old in SPEC
    folder = _project(tmp_path, SPEC.replace(old, new, 1))
    _refused(folder, field, *words)


def test_task_specific_label_errors(tmp_path):
    binary = SPEC.replace("  task: multiclass\n  classes: [a, b, c]\n", "  task: binary\n  classes: [a, b]\n")
    binary = binary.replace("SparseCategoricalAccuracy", "BinaryAccuracy")
    two = SCHEMA.replace('value: "a" value: "b" value: "c"', 'value: "a" value: "b"')
    assert P.load(_project(tmp_path, binary, two)).label.positive == "b"
    # A domain admitting a value outside the classes ("c" would be learned as the negative class):
    _refused(_project(tmp_path, binary), "feature 'y'", "listing only its classes", file="schema.pbtxt")
    _refused(
        _project(
            tmp_path, binary, SCHEMA.replace('\n          string_domain { value: "a" value: "b" value: "c" }', "")
        ),
        "feature 'y'",
        "listing only its classes",
        file="schema.pbtxt",
    )
    _refused(_project(tmp_path, binary.replace("[a, b]", "[a, b, c]")), "label.classes", "2 classes")
    _refused(_project(tmp_path, binary.replace("[a, b]", "[a, b]\n  positive: a")), "label.classes", "must come second")
    _refused(_project(tmp_path, binary.replace("  classes: [a, b]\n", "")), "label.positive", "positive class")
    regression = SPEC.replace("  task: multiclass\n", "  task: regression\n")
    _refused(_project(tmp_path, regression), "label.classes", "no classes")
    regression = regression.replace("  classes: [a, b, c]\n", "").replace(
        "SparseCategoricalAccuracy\n    higher_is_better: true", "RootMeanSquaredError\n    higher_is_better: false"
    )
    # The label column y is BYTES in the schema: nothing numeric to regress on.
    _refused(_project(tmp_path, regression), "label.task", "numeric label")
    numeric_schema = SCHEMA.replace(
        'name: "y" type: BYTES', 'name: "y" type: FLOAT float_domain { disallow_nan: true disallow_inf: true }'
    ).replace('\n          string_domain { value: "a" value: "b" value: "c" }', "")
    project = P.load(_project(tmp_path, regression, numeric_schema))
    assert project.label.dtype == "float" and project.label.num_classes == 1
    assert project.thresholds[0] == P.Gate("RootMeanSquaredError", 0.4, 0.02, higher_is_better=False)


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
    folder = _project(tmp_path, schema=SCHEMA.replace(old, new, 1))
    _refused(folder, field, *words, file=file)


def test_label_dtype_must_agree_with_the_schema(tmp_path):
    folder = _project(tmp_path, SPEC.replace("  column: y\n", "  column: y\n  dtype: int\n"))
    _refused(folder, "label.dtype", "int, but", "BYTES")


def test_missing_files(tmp_path):
    folder = _project(tmp_path)
    (folder / "schema.pbtxt").unlink()
    with pytest.raises(P.ProjectError, match="schema.pbtxt: no such file"):
        P.load(folder)
    with pytest.raises(P.ProjectError, match="project.yaml: no such file"):
        P.load(tmp_path / "nowhere")


def test_hook_syntax():
    assert P.check_hook("tfxp.projects.taxi.label:big_tipper") == ("tfxp.projects.taxi.label", "big_tipper")
    assert P.check_hook("hooks/label.py:make") == ("hooks/label.py", "make")
    assert P.check_hook("/abs/dir/label.py:make") == ("/abs/dir/label.py", "make")
    for bad in ("label.py", ":make", "label.py:", "a-b:make", "mod:1x"):
        with pytest.raises(ValueError):
            P.check_hook(bad)


def test_the_module_does_not_import_tensorflow():
    """The CLI, clients and converter read projects without loading TensorFlow (seconds per command)."""
    code = textwrap.dedent(f"""
        import sys
        from tfxp import project
        project.load({str(TAXI_DIR)!r})
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tfx', 'apache_beam'))
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_copied_taxi_project_loads_from_anywhere(tmp_path):
    """Relative data and module hooks don't depend on the working directory."""
    copy = tmp_path / "taxi"
    shutil.copytree(TAXI_DIR, copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    project = P.load(copy)
    assert project.data == str(copy / "data" / "taxi.csv")
    assert project.label.hook == "tfxp.projects.taxi.label:big_tipper"


def test_the_format_in_the_module_docstring_is_a_valid_spec():
    import yaml

    block = P.__doc__[P.__doc__.index("    name: penguins") :]
    spec = yaml.safe_load(textwrap.dedent(block))
    project = P.from_dict(spec, dir="/projects/penguins")
    assert project.data == "/projects/penguins/data/penguins.csv"
    assert project.column("bill_length_mm").buckets == 10


def test_problem_dict_is_what_the_model_code_reads():
    """Project -> tfxp.models.features.Problem (custom_config["problem"], the SavedModel's copy)."""
    from tfxp.models import features as F

    project = P.load(TAXI_DIR)
    problem = F.Problem.from_dict(json.loads(json.dumps(project.to_problem_dict())))
    assert problem == project.problem() == TAXI
    assert [f.name for f in problem.features] == [c.name for c in project.inputs]
    assert problem.by_name("trip_start_hour") == F.Feature("trip_start_hour", F.Kind.CATEGORICAL_INT, F.DType.INT, 24)
    assert problem.by_name("pickup_latitude") == F.Feature(
        "pickup_latitude", F.Kind.BUCKETIZED, F.DType.FLOAT, 10, required=False
    )
    assert "trip_start_timestamp" not in {f.name for f in problem.features}  # ignored: not an input
    assert problem.label == F.Label(
        "tips", F.DType.FLOAT, F.Task.BINARY, ("0", "1"), "tfxp.projects.taxi.label:big_tipper"
    )
    assert problem.slices == ("trip_start_hour", "payment_type") and problem.output == "probability"
    with pytest.raises(ValueError, match="dtype is unknown"):
        P.from_dict(
            P.load(TAXI_DIR).to_dict() | {"label": {"column": "tips", "task": "binary", "positive": "1"}}
        ).to_problem_dict()


# ------------------------------------------------- project.yaml against schema.pbtxt, both ways (issue 17, kind 9)

N_DOMAIN = 'name: "n" type: INT int_domain { min: 0 max: 4 }'


def test_categorical_int_size_and_the_schema_domain_must_agree_both_ways(tmp_path):
    # New data brought n = 5: widening the schema's domain alone would let 5 through validation into a
    # model whose size-5 one-hot has no room for it.
    schema_only = SCHEMA.replace(N_DOMAIN, 'name: "n" type: INT int_domain { min: 0 max: 5 }')
    error = _refused(_project(tmp_path, schema=schema_only), "features[2] (n).size", "size: 5 (values 0..4)")
    for words in ("int_domain admits 0..5", "size: 6 in project.yaml", "max: 4 in schema.pbtxt"):
        assert words in str(error), str(error)
    # Widening project.yaml's size alone: the schema would still refuse the value the model has room for.
    size_only = SPEC.replace("size: 5", "size: 6")
    error = _refused(_project(tmp_path, size_only), "features[2] (n).size", "size: 6 (values 0..5)")
    for words in ("int_domain admits 0..4", "size: 5 in project.yaml", "max: 5 in schema.pbtxt"):
        assert words in str(error), str(error)
    # Both widened: agreed.
    assert P.load(_project(tmp_path, size_only, schema_only)).column("n").size == 6


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
    _refused(_project(tmp_path, spec, schema), field, *words, file="project.yaml" if file == "yaml" else "schema.pbtxt")


def test_every_schema_feature_is_a_column_and_every_column_a_schema_feature(tmp_path):
    extra = SCHEMA.replace("default_environment", 'feature { name: "z" type: INT }\ndefault_environment', 1)
    _refused(_project(tmp_path, schema=extra), "features", "z: in", "but not listed")
    missing = SCHEMA.replace('feature { name: "city" type: BYTES presence { min_count: 0 } }\n', "")
    _refused(_project(tmp_path, schema=missing), "features[1] (city).name", "'city' is not a feature of")


def test_the_taxi_project_agrees_with_its_schema_under_the_domain_rules():
    # Hand-written, with a curated schema: month 1..12 (size 13), hour 0..23, day 1..7 (size 8).
    project = P.load(TAXI_DIR)
    assert {c.name: c.size for c in project.features if c.kind == "categorical_int"} == {
        "trip_start_month": 13,
        "trip_start_hour": 24,
        "trip_start_day": 8,
    }


def test_missing_values_round_trip_and_reach_the_example_gen_config(tmp_path):
    """A column's placeholders ("?", "-", "NA") survive YAML (dump quotes what YAML would misread) and
    to_dict/from_dict, and `Project.missing_values` is what CsvExampleGen's custom_config carries."""
    spec = SPEC.replace("    kind: vocabulary", "    kind: vocabulary\n    missing_values: ['?', '-', NA]", 1)
    project = P.load(_project(tmp_path, spec))
    assert project.column("city").missing_values == ("?", "-", "NA")
    assert project.column("x").missing_values == ()
    assert project.missing_values == {"city": ["?", "-", "NA"]}
    assert P.from_dict(json.loads(json.dumps(project.to_dict())), project.dir) == project
    P.dump(project, tmp_path / "copy" / "project.yaml")
    text = (tmp_path / "copy" / "project.yaml").read_text()
    assert "    missing_values: ['?', '-', NA]\n" in text
    # The model code's view doesn't change: missing cells are missing, whatever they were written as.
    assert "missing_values" not in json.dumps(project.to_problem_dict())
