"""The project spec (tfxp/project/: spec.py, load.py): loading, errors naming file and field, dict round
trips, the taxi project that ships in the package. Writing: test_dump.py; the checks against the schema:
tests/schema/test_check.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from project_data import SCHEMA, SPEC, TAXI_DIR, refused, write_project
from taxi_data import TAXI

from tfxp import project as P

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
    folder = write_project(tmp_path)
    project = P.load(folder)
    assert P.load(folder / "project.yaml") == project
    assert project.data == str(folder.resolve() / "data" / "demo.csv")
    assert project.label.dtype == "string"  # filled from the schema
    assert project.label.num_classes == 3
    assert project.column("n") == P.Column("n", "int", "categorical_int", required=True, size=5)
    with pytest.raises(KeyError):
        project.column("y")  # the label is not a feature column


def test_dict_round_trip_is_json_safe(tmp_path):
    project = P.load(write_project(tmp_path))
    d = json.loads(json.dumps(project.to_dict()))
    assert P.from_dict(d) == project
    assert d["label"] == {"column": "y", "task": "multiclass", "dtype": "string", "classes": ["a", "b", "c"]}
    taxi = P.load(TAXI_DIR)
    assert P.from_dict(json.loads(json.dumps(taxi.to_dict()))) == taxi


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
    folder = write_project(tmp_path, SPEC.replace(old, new, 1))
    refused(folder, field, *words)


def test_task_specific_label_errors(tmp_path):
    binary = SPEC.replace("  task: multiclass\n  classes: [a, b, c]\n", "  task: binary\n  classes: [a, b]\n")
    binary = binary.replace("SparseCategoricalAccuracy", "BinaryAccuracy")
    two = SCHEMA.replace('value: "a" value: "b" value: "c"', 'value: "a" value: "b"')
    assert P.load(write_project(tmp_path, binary, two)).label.positive == "b"
    # A domain admitting a value outside the classes ("c" would be learned as the negative class):
    refused(write_project(tmp_path, binary), "feature 'y'", "listing only its classes", file="schema.pbtxt")
    refused(
        write_project(
            tmp_path, binary, SCHEMA.replace('\n          string_domain { value: "a" value: "b" value: "c" }', "")
        ),
        "feature 'y'",
        "listing only its classes",
        file="schema.pbtxt",
    )
    refused(write_project(tmp_path, binary.replace("[a, b]", "[a, b, c]")), "label.classes", "2 classes")
    refused(
        write_project(tmp_path, binary.replace("[a, b]", "[a, b]\n  positive: a")), "label.classes", "must come second"
    )
    refused(write_project(tmp_path, binary.replace("  classes: [a, b]\n", "")), "label.positive", "positive class")
    regression = SPEC.replace("  task: multiclass\n", "  task: regression\n")
    refused(write_project(tmp_path, regression), "label.classes", "no classes")
    regression = regression.replace("  classes: [a, b, c]\n", "").replace(
        "SparseCategoricalAccuracy\n    higher_is_better: true", "RootMeanSquaredError\n    higher_is_better: false"
    )
    # The label column y is BYTES in the schema: nothing numeric to regress on.
    refused(write_project(tmp_path, regression), "label.task", "numeric label")
    numeric_schema = SCHEMA.replace(
        'name: "y" type: BYTES', 'name: "y" type: FLOAT float_domain { disallow_nan: true disallow_inf: true }'
    ).replace('\n          string_domain { value: "a" value: "b" value: "c" }', "")
    project = P.load(write_project(tmp_path, regression, numeric_schema))
    assert project.label.dtype == "float" and project.label.num_classes == 1
    assert project.thresholds[0] == P.Gate("RootMeanSquaredError", 0.4, 0.02, higher_is_better=False)


def test_missing_files(tmp_path):
    folder = write_project(tmp_path)
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
    assert project.monitoring.of("island", "categorical") == (0.25, 0.15)


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


def test_missing_values_round_trip_and_reach_the_example_gen_config(tmp_path):
    """A column's placeholders ("?", "-", "NA") survive YAML (dump quotes what YAML would misread) and
    to_dict/from_dict, and `Project.missing_values` is what CsvExampleGen's custom_config carries."""
    spec = SPEC.replace("    kind: vocabulary", "    kind: vocabulary\n    missing_values: ['?', '-', NA]", 1)
    project = P.load(write_project(tmp_path, spec))
    assert project.column("city").missing_values == ("?", "-", "NA")
    assert project.column("x").missing_values == ()
    assert project.missing_values == {"city": ["?", "-", "NA"]}
    assert P.from_dict(json.loads(json.dumps(project.to_dict())), project.dir) == project
    P.dump(project, tmp_path / "copy" / "project.yaml")
    text = (tmp_path / "copy" / "project.yaml").read_text()
    assert "    missing_values: ['?', '-', NA]\n" in text
    # The model code's view doesn't change: missing cells are missing, whatever they were written as.
    assert "missing_values" not in json.dumps(project.to_problem_dict())


def test_monitoring_thresholds_load_round_trip_and_are_checked(tmp_path):
    """project.yaml `monitoring:` (every field optional) reaches the Pusher as Monitoring; bad values name the field."""
    section = (
        "monitoring:\n  min_rows: 300\n  skew: {categorical: 0.2}\n  drift: {numeric: 0.07}\n"
        "  prediction: {skew: 0.1}\n  features:\n    city: {skew: 0.3}\n"
    )
    project = P.load(write_project(tmp_path, SPEC + section))
    m = project.monitoring
    assert (m.min_rows, m.categorical_skew, m.numeric_drift, m.prediction_skew) == (300, 0.2, 0.07, 0.1)
    assert m.of("city", "categorical") == (0.3, m.categorical_drift)
    assert m.of("x", "numeric") == (m.numeric_skew, 0.07)
    assert P.from_dict(json.loads(json.dumps(project.to_dict())), project.dir) == project
    P.dump(project, tmp_path / "copy" / "project.yaml")
    shutil.copy(project.dir / "schema.pbtxt", tmp_path / "copy")
    assert P.load(tmp_path / "copy").monitoring == m
    assert P.Monitoring.from_json(m.to_json()) == m
    assert P.load(write_project(tmp_path, SPEC)).monitoring == P.Monitoring()
    for bad, field, words in (
        ("monitoring:\n  skew: {categorical: 1.5}\n", "monitoring.skew.categorical", "outside [0, 1]"),
        ("monitoring:\n  features:\n    nope: {skew: 0.1}\n", "monitoring.features.nope", "allowed: x, city, n"),
        ("monitoring:\n  min_rows: 0\n", "monitoring.min_rows", "integer >= 1"),
        ("monitoring:\n  window: 1h\n", "monitoring.window", "unknown field"),
    ):
        refused(write_project(tmp_path, SPEC + bad), field, words)


TUNING = "tuning:\n  search_space:\n"


def test_a_search_space_loads_round_trips_and_dumps(tmp_path):
    from tfxp.project.dump import dumps

    spec = SPEC + TUNING + "    units: [16, 256]\n    learning_rate: [1e-3, 0.03]\n    dropout: [0]\n"
    project = P.load(write_project(tmp_path, spec))
    assert project.search_space == (("units", (16, 256)), ("learning_rate", (0.001, 0.03)), ("dropout", (0.0,)))
    assert P.from_dict(json.loads(json.dumps(project.to_dict()))) == project
    again = tmp_path / "again"
    again.mkdir()
    (again / "project.yaml").write_text(dumps(project))
    (again / "schema.pbtxt").write_text(SCHEMA)
    assert P.load(again).search_space == project.search_space


@pytest.mark.parametrize(
    "tuning, field, words",
    [
        ("tuning:\n  search_space: {}\n", "tuning.search_space", ["empty", "units", "learning_rate"]),
        ("tuning: {}\n", "tuning.search_space", ["missing"]),
        (TUNING + "    width: [8]\n", "tuning.search_space.width", ["unknown field", "units"]),
        (TUNING + "    units: []\n", "tuning.search_space.units", ["empty list"]),
        (TUNING + "    units: 64\n", "tuning.search_space.units", ["expected a list"]),
        (TUNING + "    units: [64, 0]\n", "tuning.search_space.units[1]", ["integer >= 1"]),
        (TUNING + "    layers: [2.5]\n", "tuning.search_space.layers[0]", ["integer >= 1"]),
        (TUNING + "    learning_rate: [0]\n", "tuning.search_space.learning_rate[0]", ["outside (0, 1]"]),
        (TUNING + "    learning_rate: [fast]\n", "tuning.search_space.learning_rate[0]", ["finite number"]),
        (TUNING + "    dropout: [0.1, 1.0]\n", "tuning.search_space.dropout[1]", ["outside [0, 0.95]"]),
        (TUNING + "    embedding_dim: [8, 8]\n", "tuning.search_space.embedding_dim", ["more than once"]),
    ],
)
def test_an_empty_or_invalid_search_space_is_refused_naming_the_field(tmp_path, tuning, field, words):
    refused(write_project(tmp_path, SPEC + tuning), field, *words)
