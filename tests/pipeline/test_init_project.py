"""`tfxp init`'s decisions (tfxp/pipeline/init_project.py) on small generated CSVs and scikit-learn's bundled
data: column kinds, required/optional, task detection, classes, gates from the naive predictor, slices,
refusals, and the schema it writes (checked by real TFDV against the same data)."""

from __future__ import annotations

import csv
import gzip
import math
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tfxp import project as P
from tfxp.pipeline.csv_files import DataFileError
from tfxp.pipeline.init_project import (
    InitError,
    decide_project,
    init_project,
    profile_data,
)

KINDS_ROWS = 1200


def _write_csv(path: Path, header: list[str], rows: list[list], **writer_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=writer_args.pop("encoding", "utf-8")) as f:
        writer = csv.writer(f, **writer_args)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# Column -> (kind, size, required) that the project spec's rules give for the generated cells below.
EXPECTED_KINDS = {
    "f_float": ("numeric", 0, True),
    "f_opt": ("numeric", 0, False),
    "i_small": ("categorical_int", 6, True),  # 0..5
    "i_32": ("categorical_int", 32, True),  # 32 distinct values 0..31: still small ints
    "i_33": ("numeric", 0, True),  # 33 distinct values: too many for categorical_int, > 20: numeric
    "i_max70": ("vocabulary", 0, True),  # 3 values, but 70 >= 64
    "i_neg": ("vocabulary", 0, True),  # 3 values, one negative
    "i_1000": ("numeric", 0, True),  # more than 20 distinct values: a measurement
    "i_1001": ("numeric", 0, True),
    "s_vocab": ("vocabulary", 0, True),
    "s_opt": ("vocabulary", 0, False),
    "s_half": ("vocabulary", 0, True),  # 600 distinct in 1200 rows: not more than half
    "s_601": ("ignored", 0, True),  # 601 distinct: more than half the rows
    "s_id": ("ignored", 0, True),
    "empty": ("ignored", 0, False),  # blank in every row
}


def _kinds_rows() -> tuple[list[str], list[list]]:
    rng = random.Random(11)
    header = [*EXPECTED_KINDS, "label"]
    rows = []
    for i in range(KINDS_ROWS):
        rows.append(
            [
                f"{rng.gauss(10, 3):.3f}",
                "" if i % 7 == 0 else f"{rng.uniform(0, 1):.4f}",
                i % 6,
                i % 32,
                i % 33,
                (0, 3, 70)[i % 3],
                (-1, 0, 1)[i % 3],
                i % 1000,
                i % 1001,
                ("red", "green", "blue")[i % 3],
                "" if i % 5 == 0 else ("a", "b")[i % 2],
                f"v{i % 600}",
                f"w{i % 601}",
                f"id{i:05d}",
                "",
                "yes" if i % 10 < 3 else "no",
            ]
        )
    return header, rows


@pytest.fixture(scope="module")
def kinds_project(tmp_path_factory):
    """One init on the generated columns above (one TFDV run for every kind rule)."""
    tmp = tmp_path_factory.mktemp("kinds")
    header, rows = _kinds_rows()
    data = _write_csv(tmp / "data" / "kinds.csv", header, rows)
    started = time.monotonic()
    result = init_project(data, "label", dir=tmp / "kinds")
    return result, data, time.monotonic() - started


def test_column_kinds_and_required(kinds_project):
    result, _, _ = kinds_project
    decided = {c.name: (c.kind, c.size, c.required) for c in result.project.features}
    assert decided == EXPECTED_KINDS
    assert [c.name for c in result.project.features] == list(EXPECTED_KINDS)  # CSV order
    dtypes = {c.name: c.dtype for c in result.project.features}
    assert dtypes["f_float"] == "float" and dtypes["i_neg"] == "int" and dtypes["s_id"] == "string"
    assert dtypes["empty"] == "string"  # TFDV types an all-blank column BYTES


def test_decision_lines_say_why(kinds_project):
    result, _, _ = kinds_project
    lines = result.decisions
    assert "s_vocab: string, 3 distinct values -> vocabulary" in lines
    assert (
        "s_id: string, 1200 distinct values -> ignored (more distinct values than half the 1200 rows: "
        "an id or free text)"
    ) in lines
    assert (
        "i_small: int, 6 distinct values in 0..5 -> categorical_int (small non-negative ints: one-hot over "
        "0..5)" in lines
    )
    assert "i_1001: int, 1001 distinct values in 0..1000 -> numeric (too many values for a vocabulary)" in lines
    header, rows = _kinds_rows()
    f_opt = {r[1] for r in rows if r[1]}
    assert f"f_opt: float, {len(f_opt)} distinct values, 172 blank cells -> numeric, optional" in lines
    assert "f_float: float, more than 1000 distinct values -> numeric" in lines  # counting stops at 1001
    assert "empty: blank in every row -> ignored (nothing to learn from)" in lines
    assert any(
        line.startswith("label (label): string, 2 values -> binary: positive class yes (yes against no")
        for line in lines
    )
    report = result.report_lines()
    assert report[-1] == f"  tfxp run --project {result.dir}"
    # How missing and unseen values will be read is said once, with the optional columns named.
    said = [line for line in report if line.startswith(("missing values:", "unseen values:"))]
    assert any("f_opt" in line and "training mean plus a missing indicator" in line for line in said), said
    assert any(line.startswith("missing values: a row missing a required input is refused") for line in said)
    assert any(line.startswith("unseen values:") for line in said), said


def test_binary_label_gates_and_slices(kinds_project):
    result, _, _ = kinds_project
    project = result.project
    assert project.label == P.Label("label", "binary", classes=("no", "yes"), positive="yes", dtype="string")
    # The majority class "no" is 70% of rows: always guessing it scores 0.70, so the floor is above it.
    assert project.thresholds == (P.Gate("AUC", 0.55, 0.01), P.Gate("BinaryAccuracy", 0.71, 0.02))
    # Categorical columns with the fewest values (s_opt: 2; then the first of the 3-valued ones), in CSV order.
    assert project.slices == ("i_max70", "s_opt")


def test_written_files_load_and_read_as_a_person_would(kinds_project):
    result, data, _ = kinds_project
    assert P.load(result.dir) == result.project
    text = result.project_file.read_text()
    assert text.startswith(f"# Written by `tfxp init --data {data} --label label --dir ")
    assert "data: ../data/kinds.csv\n" in text  # relative to the project folder
    assert "  - name: s_vocab  # string, 3 distinct values -> vocabulary\n" in text
    # A note too long for the end of the line goes above it.
    assert (
        "  # string, 1200 distinct values -> ignored (more distinct values than half the 1200 rows: an id or "
        "free text)\n  - name: s_id\n"
    ) in text


def test_schema_accepts_its_data_and_keeps_the_label_out_of_serving(kinds_project, tmp_path):
    """Real TFDV: the written schema validates the statistics of the same data (what ExampleValidator does
    in `tfxp run`), with and without the label column."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tfxp.pipeline import init_project as init
    from tfxp.schema.rules import load_schema, schema_problem

    result, data, _ = kinds_project
    assert schema_problem(result.schema_file) is None  # FLOAT features disallow NaN and infinity
    schema = load_schema(result.schema_file)
    features = {f.name: f for f in schema.feature}
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    assert list(features["label"].not_in_environment) == ["SERVING"]
    assert list(features["label"].string_domain.value) == ["no", "yes"]
    assert (features["i_small"].int_domain.min, features["i_small"].int_domain.max) == (0, 5)
    assert features["f_float"].type == schema_pb2.FLOAT and features["f_float"].HasField("shape")
    assert not features["f_opt"].HasField("shape")

    stats = init._tfdv_statistics([data], data, ["--direct_running_mode=in_memory"])
    training = tfdv.validate_statistics(stats, schema, environment="TRAINING")
    assert not training.anomaly_info, training
    header, rows = _kinds_rows()
    serving_data = _write_csv(tmp_path / "serving.csv", header[:-1], [r[:-1] for r in rows])
    serving = tfdv.validate_statistics(
        init._tfdv_statistics([serving_data], serving_data, ["--direct_running_mode=in_memory"]),
        schema,
        environment="SERVING",
    )
    assert not serving.anomaly_info, serving
    # A new class of the label is an anomaly, not a silently wrong class index.
    new_class = _write_csv(tmp_path / "new.csv", header, [r[:-1] + ["maybe"] for r in rows[:50]] + rows[50:])
    anomalies = tfdv.validate_statistics(
        init._tfdv_statistics([new_class], new_class, ["--direct_running_mode=in_memory"]),
        schema,
        environment="TRAINING",
    )
    assert "label" in anomalies.anomaly_info


def test_required_agrees_with_blank_cells(kinds_project):
    """`required` comes from TFDV (one value in every row); the row count of blanks from the CSV pass."""
    result, data, seconds = kinds_project
    header, rows = _kinds_rows()
    blanks = {name: sum(1 for r in rows if r[i] == "") for i, name in enumerate(header)}
    for column in result.project.features:
        assert column.required == (blanks[column.name] == 0), column
    assert seconds < 60, f"init took {seconds:.1f} s on {KINDS_ROWS} rows"


# ------------------------------------------------------------------------------------ task detection


def _labels_rows(n: int = 200) -> tuple[list[str], list[list]]:
    rng = random.Random(5)
    header = [
        "x",
        "b01",
        "b_true",
        "b_str",
        "b_float",
        "b_equal",
        "m_str",
        "m_int",
        "int20",
        "int21",
        "r_float",
        "const",
    ]
    rows = []
    for i in range(n):
        rows.append(
            [
                f"{rng.uniform(0, 1):.3f}",
                1 if i % 10 < 3 else 0,  # 30% ones
                "True" if i % 10 < 6 else "False",  # "True" is the majority, still the positive class
                "spam" if i % 4 == 0 else "ham",
                "1.0" if i % 2 else "0.0",
                "a" if i % 2 else "b",
                ("Gentoo", "Adelie", "Chinstrap", "Adelie")[i % 4],
                (10, 2, 7, 2)[i % 4],
                i % 20,
                i % 21,
                f"{rng.gauss(100, 15):.2f}",
                "same",
            ]
        )
    return header, rows


@pytest.fixture(scope="module")
def labels_profile(tmp_path_factory):
    header, rows = _labels_rows()
    data = _write_csv(tmp_path_factory.mktemp("labels") / "labels.csv", header, rows)
    return profile_data(data), rows, header


@pytest.mark.parametrize(
    "label, task, positive, expected_task, classes, expected_positive",
    [
        ("b01", "auto", None, "binary", ("0", "1"), "1"),  # 1 against 0
        ("b_true", "auto", None, "binary", ("False", "True"), "True"),  # true against false, though the majority
        ("b_str", "auto", None, "binary", ("ham", "spam"), "spam"),  # the minority class
        ("b_float", "auto", None, "binary", ("0.0", "1.0"), "1.0"),  # as written in the CSV
        ("b_equal", "auto", None, "binary", ("a", "b"), "b"),  # equal classes: the later value
        ("b_str", "auto", "ham", "binary", ("spam", "ham"), "ham"),
        ("b_float", "binary", "1", "binary", ("0.0", "1.0"), "1.0"),  # --positive 1 finds "1.0"
        ("m_str", "auto", None, "multiclass", ("Adelie", "Chinstrap", "Gentoo"), None),
        ("int20", "auto", None, "multiclass", tuple(str(i) for i in range(20)), None),
        ("int21", "auto", None, "regression", (), None),  # more than 20 ints
        ("r_float", "auto", None, "regression", (), None),
        ("b01", "multiclass", None, "multiclass", ("0", "1"), None),
        ("m_int", "regression", None, "regression", (), None),
    ],
)
def test_task_detection(labels_profile, label, task, positive, expected_task, classes, expected_positive):
    profile, _, _ = labels_profile
    decided = decide_project(profile, label, task, positive)
    assert decided.label.task == expected_task
    assert decided.label.classes == classes
    assert decided.label.positive == expected_positive
    assert label not in [c.name for c in decided.features]
    metrics = [g.metric for g in decided.thresholds]
    assert (
        metrics
        == {
            "binary": ["AUC", "BinaryAccuracy"],
            "multiclass": ["SparseCategoricalAccuracy"],
            "regression": ["RootMeanSquaredError"],
        }[expected_task]
    )


def test_accuracy_floors_are_strictly_above_the_majority_share(labels_profile):
    """TFMA passes a metric >= its lower_bound, so a floor equal to the majority share would bless a model
    that always answers the majority class: the floor is the next hundredth above it."""
    profile, _, _ = labels_profile
    binary = decide_project(profile, "b_str")  # ham: 150 of 200 rows = 0.75 exactly
    assert binary.thresholds == [P.Gate("AUC", 0.55, 0.01), P.Gate("BinaryAccuracy", 0.76, 0.02)]
    multiclass = decide_project(profile, "m_str")  # Adelie: 100 of 200
    assert multiclass.thresholds == [P.Gate("SparseCategoricalAccuracy", 0.51, 0.02)]
    int20 = decide_project(profile, "int20")  # 10 of 200 rows each
    assert int20.thresholds == [P.Gate("SparseCategoricalAccuracy", 0.06, 0.02)]


@pytest.mark.parametrize(
    "share, floor",
    [(0.489, 0.49), (0.4899999, 0.49), (0.49, 0.5), (0.29, 0.3), (0.7, 0.71), (0.6274165, 0.63), (0.001, 0.01)],
)
def test_accuracy_floor_is_the_next_hundredth_above(share, floor):
    from tfxp.pipeline.init_project import _hundredth_above

    assert _hundredth_above(share) == floor
    assert _hundredth_above(share) > share


@pytest.mark.parametrize(
    "std, ceiling",
    [(7.806, 7.8), (7.8, 7.79), (7.81, 7.8), (77.04, 77.0), (77.0, 76.9), (1.0, 0.999), (0.012345, 0.0123)],
)
def test_rmse_ceiling_is_the_next_three_digit_value_below(std, ceiling):
    from tfxp.pipeline.init_project import _round_below

    assert _round_below(std, 3) == ceiling
    assert _round_below(std, 3) < std


def test_a_constant_predictor_fails_every_init_gate(labels_profile):
    """TFMA's own check (metrics_validator: metric >= lower_bound and metric <= upper_bound) on the naive
    predictors' exact scores on the data: always the majority class, always the mean."""
    from tensorflow_model_analysis.proto import config_pb2

    profile, rows, header = labels_profile
    for label in ("b01", "b_str", "m_str", "int20"):
        counts = profile.columns[label].counts
        naive = max(counts.values()) / sum(counts.values())
        gate = decide_project(profile, label).thresholds[-1]
        bound = config_pb2.GenericValueThreshold(lower_bound={"value": gate.bound})
        assert not (naive >= bound.lower_bound.value), (label, naive, gate)
    values = np.array([float(r[header.index("r_float")]) for r in rows])
    naive_rmse = float(np.sqrt(np.mean((values - values.mean()) ** 2)))
    (gate,) = decide_project(profile, "r_float").thresholds
    assert not (naive_rmse <= gate.bound), (naive_rmse, gate)


def test_regression_gate_is_the_label_standard_deviation(labels_profile):
    profile, rows, header = labels_profile
    values = np.array([float(r[header.index("r_float")]) for r in rows])
    std = float(np.std(values))  # population: what always predicting the mean scores as RMSE
    (gate,) = decide_project(profile, "r_float").thresholds
    assert gate.metric == "RootMeanSquaredError" and gate.higher_is_better is False
    assert std * 0.99 <= gate.bound < std  # the 3-significant-digit value just below it
    assert 0.02 * std <= gate.max_change <= 0.02 * std * 1.01


@pytest.mark.parametrize(
    "label, task, positive, words",
    [
        ("m_str", "binary", None, ["--task binary", "3 values", "exactly 2"]),
        ("m_str", "auto", "Adelie", ["--positive", "two values"]),
        ("b_str", "auto", "maybe", ["--positive 'maybe' is not a value", "ham, spam"]),
        ("b_str", "multiclass", "spam", ["--positive is for --task binary"]),
        ("m_str", "regression", None, ["string column", "regression needs numbers"]),
        ("m_int", "auto", None, ["int classes 2, 7, 10 are not consecutive", "admit 3, 4, 5, 6, 8, ...", "as text"]),
        ("r_float", "multiclass", None, ["float column", "int or string"]),
        ("const", "auto", None, ["one value ('same')", "nothing to learn"]),
        ("nope", "auto", None, ["'nope' is not a column", "columns: x, b01, b_true"]),
        ("x", "ranking", None, ["--task 'ranking'"]),
    ],
)
def test_label_refusals(labels_profile, label, task, positive, words):
    profile, _, _ = labels_profile
    with pytest.raises(InitError) as info:
        decide_project(profile, label, task, positive)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_blank_label_is_refused_with_its_line(tmp_path):
    data = _write_csv(tmp_path / "d.csv", ["x", "y"], [[1.5, "a"], [2.5, "b"], [3.5, ""], [4.5, "a"]])
    with pytest.raises(InitError, match=rf"label y is blank in 1 row \(first: {data}:4\)"):
        init_project(data, "y", dir=tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_too_many_classes_is_refused(tmp_path):
    data = _write_csv(tmp_path / "d.csv", ["x", "y"], [[i, f"class{i % 150}"] for i in range(600)])
    profile = profile_data(data)
    with pytest.raises(InitError, match="has 150 values: a multiclass label has at most 100 classes"):
        decide_project(profile, "y")


# ----------------------------------------------------------------------------------- files and folders


def test_existing_project_is_not_overwritten(tmp_path):
    data = _write_csv(tmp_path / "d.csv", ["x", "y"], [[1, "a"], [2, "b"]])
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.yaml").write_text("name: mine\n")
    with pytest.raises(InitError, match="already exist.*doesn't overwrite"):
        init_project(data, "y", dir=tmp_path / "p")
    assert (tmp_path / "p" / "project.yaml").read_text() == "name: mine\n"


def test_bad_csv_is_refused_by_file_and_line(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x,y\n1,a\n2,b,extra\n")
    with pytest.raises(DataFileError) as info:
        init_project(data, "y", dir=tmp_path / "p")
    assert (info.value.path, info.value.line) == (str(data), 3)


def test_bad_name_and_remote_data_are_usage_errors(tmp_path):
    with pytest.raises(InitError, match="--name 'My Project'"):
        init_project(tmp_path / "d.csv", "y", name="My Project")
    with pytest.raises(InitError, match="reads local files"):
        init_project("gs://bucket/d.csv", "y")


def test_folder_of_excel_and_r_files_with_a_multiline_cell(tmp_path, monkeypatch):
    """A folder of CSVs as `tfxp run --data` takes it: a BOM (Excel), quoted headers (R), a quoted cell over
    two lines; name and folder default from the data's name, in the working directory."""
    rng = random.Random(3)
    header = ["city", "note", "size", "price"]
    for part in range(2):
        rows = [
            [
                ("Oslo", "Rome", "Lima")[i % 3],
                "line one\nline two" if i == 4 else "",
                f"{rng.uniform(1, 9):.2f}",
                f"{rng.uniform(100, 900):.1f}",
            ]
            for i in range(60)
        ]
        _write_csv(
            tmp_path / "Flat Prices" / f"part{part}.csv",
            header,
            rows,
            quoting=csv.QUOTE_ALL,
            encoding="utf-8-sig" if part == 0 else "utf-8",
        )
    monkeypatch.chdir(tmp_path)
    result = init_project(tmp_path / "Flat Prices", "price")
    assert result.project.name == "flat_prices"
    assert result.dir == tmp_path / "flat_prices"
    assert result.rows == 120
    assert result.project.data == str(tmp_path / "Flat Prices")
    assert "data: ../Flat Prices\n" in result.project_file.read_text()
    columns = {c.name: (c.dtype, c.kind, c.required) for c in result.project.features}
    assert columns == {
        "city": ("string", "vocabulary", True),
        "note": ("string", "vocabulary", False),
        "size": ("float", "numeric", True),
    }
    # The two-line cell is one value (a row each in both files), not two broken rows.
    assert result.decisions[1] == "note: string, 1 distinct value, 118 blank cells -> vocabulary, optional"
    assert result.project.label.task == "regression"


def test_infinite_floats_are_a_warning_and_nan_is_missing(tmp_path):
    """NaN (numpy's, R's spelling of no value) is read as missing like the other placeholders; infinity is a
    value the schema refuses: said before `tfxp run` refuses it."""
    data = _write_csv(
        tmp_path / "d.csv", ["x", "y"], [["1.5", "a"], ["NaN", "b"], ["inf", "a"], ["2", "b"], ["-inf", "a"]]
    )
    result = init_project(data, "y", dir=tmp_path / "p")
    assert result.warnings[0] == (
        "x: 2 infinite or NaN cells (inf, -inf); tfxp run refuses them (the schema "
        "disallows NaN and infinity): fix or drop those rows"
    )
    assert "warning: x: 2 infinite or NaN cells" in "\n".join(result.report_lines())
    assert result.project.column("x") == P.Column("x", "float", "numeric", required=False, missing_values=("NaN",))
    assert result.decisions[0] == (
        "x: float, 4 distinct values; 4 of 5 cells are numbers; 1 cell 'NaN' read as missing -> numeric, optional"
    )


# ------------------------------------------------------------------------- scikit-learn's bundled data


def _sklearn_data() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data"


def _sklearn_csv(name: str, feature_names: list[str], out: Path) -> Path:
    """breast_cancer.csv / wine_data.csv: a first line "n_samples,n_features,class names..." instead of a
    header, then features and an int target per row: rewritten as a plain CSV with a header."""
    with open(_sklearn_data() / name, newline="") as f:
        reader = csv.reader(f)
        n_samples, n_features = (int(v) for v in next(reader)[:2])
        rows = list(reader)
    assert len(rows) == n_samples and len(rows[0]) == n_features + 1 == len(feature_names) + 1
    return _write_csv(out, [*feature_names, "target"], rows)


def test_sklearn_breast_cancer_is_binary(tmp_path):
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    # Its own names have spaces ("mean radius"), which TensorFlow refuses as input names: snake_case.
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    data = _sklearn_csv("breast_cancer.csv", names, tmp_path / "breast_cancer.csv")
    result = init_project(data, "target", dir=tmp_path / "bc")
    project = result.project
    assert project.label == P.Label("target", "binary", classes=("0", "1"), positive="1", dtype="int")
    share = np.bincount(bunch.target).max() / len(bunch.target)  # benign: 357 of 569
    assert project.thresholds == (
        P.Gate("AUC", 0.55, 0.01),
        P.Gate("BinaryAccuracy", math.floor(share * 100 + 1) / 100, 0.02),
    )
    assert project.thresholds[1].bound == 0.63  # above 0.6274
    assert all((c.dtype, c.kind, c.required) == ("float", "numeric", True) for c in project.features)
    assert [c.name for c in project.features] == names
    assert project.slices == ()


def test_sklearn_wine_is_multiclass(tmp_path):
    from sklearn.datasets import load_wine

    bunch = load_wine()
    data = _sklearn_csv("wine_data.csv", list(bunch.feature_names), tmp_path / "wine.csv")
    result = init_project(data, "target", dir=tmp_path / "wine")
    project = result.project
    assert project.label == P.Label("target", "multiclass", classes=("0", "1", "2"), dtype="int")
    share = np.bincount(bunch.target).max() / len(bunch.target)  # class 1: 71 of 178
    assert project.thresholds == (P.Gate("SparseCategoricalAccuracy", math.floor(share * 100 + 1) / 100, 0.02),)
    assert project.thresholds[0].bound == 0.4  # above 0.3989
    # proline (whole numbers, 278..1680) and magnesium are int columns with many values: numeric.
    kinds = {c.name: (c.dtype, c.kind) for c in project.features}
    assert kinds["alcohol"] == ("float", "numeric")
    assert kinds["magnesium"] == ("int", "numeric")  # 53 values, 70..162: a measurement
    schema = P.load(result.dir)
    assert schema.label.dtype == "int"


def test_sklearn_diabetes_is_regression(tmp_path):
    """diabetes_data_raw.csv.gz: space-separated features, no header; the target in another file."""
    from sklearn.datasets import load_diabetes

    names = list(load_diabetes(scaled=False).feature_names)
    with gzip.open(_sklearn_data() / "diabetes_data_raw.csv.gz", "rt") as f:
        features = [line.split() for line in f if line.strip()]
    with gzip.open(_sklearn_data() / "diabetes_target.csv.gz", "rt") as f:
        target = [float(line) for line in f if line.strip()]
    assert len(features) == len(target) == 442
    data = _write_csv(
        tmp_path / "diabetes.csv",
        [*names, "progression"],
        [[*row, f"{y:g}"] for row, y in zip(features, target, strict=True)],
    )
    result = init_project(data, "progression", dir=tmp_path / "diabetes")
    project = result.project
    # The target is written as whole numbers ("151"): an int column with 214 values, more than 20.
    assert project.label == P.Label("progression", "regression", dtype="int")
    (gate,) = project.thresholds
    std = float(np.std(target))
    assert gate.metric == "RootMeanSquaredError" and not gate.higher_is_better
    assert gate.bound < std < gate.bound + 0.1
    assert gate.bound == 77.0 and gate.max_change == 1.55
    kinds = {c.name: (c.dtype, c.kind, c.size) for c in project.features}
    assert kinds["sex"] == ("int", "categorical_int", 3)  # 1 or 2
    assert kinds["bmi"] == ("float", "numeric", 0)
    assert project.slices == ("sex",)


# ------------------------------------------------------------------------------ column roles: ids, times


PANEL_PERSONS, PANEL_YEARS = 595, 7  # a wage panel: 595 people, 7 years each (4,165 rows)


def _wage_panel() -> tuple[list[str], list[list]]:
    """A wage panel as economists publish it: rows sorted by person then year; a row number, person ids,
    listing-style ids in random order, ids written as floats (pandas writes an int column with a blank as
    1001.0), timestamps, and measurements that must stay features."""
    rng = random.Random(17)
    rows_total = PANEL_PERSONS * PANEL_YEARS
    listing = rng.sample(range(10_000_000, 99_999_999), rows_total)
    float_ids = rng.sample(range(100_000, 999_999), rows_total)
    codes = [rng.randrange(0, 4_000_000) for _ in range(rows_total)]
    for i in range(0, rows_total, 40):  # ~2.5% repeats: nearly unique per row
        codes[i] = codes[i + 1]
    header = [
        "row",
        "person_id",
        "year",
        "listing_id",
        "record_id",
        "code",
        "interview_ts",
        "experience",
        "weeks",
        "height_cm",
        "income_cents",
        "union",
        "lwage",
    ]
    rows = []
    for person in range(PANEL_PERSONS):
        for t in range(PANEL_YEARS):
            i = person * PANEL_YEARS + t
            rows.append(
                [
                    i + 1,
                    person + 1,
                    1976 + t,
                    listing[i],
                    f"{float_ids[i]}.0",
                    codes[i],
                    1_356_998_400 + rng.randrange(0, 300 * 86_400),  # 2013-01-01 + up to 300 days
                    rng.randrange(1, 45),
                    rng.randrange(5, 53),
                    f"{rng.gauss(172, 9):.6f}",  # a measurement: every value distinct, never an id
                    rng.randrange(0, 40) * 1_000_000 + 20_000_000,  # up to ~5.9e7, beyond float32's exact ints
                    rng.randrange(0, 2),
                    f"{rng.gauss(6.7, 0.4):.4f}",
                ]
            )
    return header, rows


@pytest.fixture(scope="module")
def panel_decisions(tmp_path_factory):
    header, rows = _wage_panel()
    data = _write_csv(tmp_path_factory.mktemp("panel") / "wages.csv", header, rows)
    profile = profile_data(data)
    return decide_project(profile, "lwage"), profile


def test_ids_counters_and_timestamps_are_ignored_with_the_reason(panel_decisions):
    decided, _ = panel_decisions
    kinds = {c.name: c.kind for c in decided.features}
    assert kinds == {
        "row": "ignored",  # 1..4165: unique per row, a counter
        "person_id": "ignored",  # sorted ids, 7 rows each: a counter
        "year": "vocabulary",  # 7 values: not an id though it repeats in order
        "listing_id": "ignored",  # unique, random order
        "record_id": "ignored",  # float-looking ids "123456.0"
        "code": "ignored",  # nearly unique
        "interview_ts": "ignored",  # Unix seconds
        "experience": "numeric",
        "weeks": "numeric",
        "height_cm": "numeric",  # a float with a fractional part is a measurement, unique or not
        "income_cents": "numeric",
        "union": "categorical_int",
    }
    why = "-> ignored (an id: an id outside the training range would drive the answer)"
    lines = decided.lines
    assert f"row: int, 4,165 distinct values in 4,165 rows (unique per row) {why}" in lines
    assert (
        f"person_id: int, 595 distinct values in 4,165 rows, increasing in row order (a counter or sorted ids) {why}"
        in lines
    )
    assert f"listing_id: int, 4,165 distinct values in 4,165 rows (unique per row) {why}" in lines
    assert f"record_id: float, whole numbers, 4,165 distinct values in 4,165 rows (unique per row) {why}" in lines
    code = next(line for line in lines if line.startswith("code: "))
    assert "(nearly unique per row)" in code and code.endswith(why), code
    ts = next(line for line in lines if line.startswith("interview_ts: "))
    assert ts.startswith("interview_ts: int, every value a Unix time in seconds (2013-01-01..2013-10-2"), ts
    assert "-> ignored (a timestamp: calendar features are not derived" in ts
    assert next(line for line in lines if line.startswith("height_cm: ")) == (
        "height_cm: float, more than 1000 distinct values -> numeric"
    )


def test_an_ignored_id_can_be_set_back_to_numeric_in_project_yaml(panel_decisions, tmp_path):
    """The decision is a default: project.yaml's kind wins (`tfxp run` reads the YAML, not init's reasons)."""
    decided, profile = panel_decisions
    project = P.Project(
        name="wages",
        label=decided.label,
        features=tuple(replace(c, kind="numeric") if c.name == "person_id" else c for c in decided.features),
        thresholds=tuple(decided.thresholds),
    )
    P.dump(project, tmp_path / "project.yaml")
    import yaml

    back = P.from_dict(yaml.safe_load((tmp_path / "project.yaml").read_text()), tmp_path)
    assert back.column("person_id").kind == "numeric" and back.column("person_id").is_input


def test_huge_magnitudes_of_a_kept_numeric_column_are_noted(panel_decisions):
    decided, _ = panel_decisions
    assert decided.remarks == [
        "income_cents: numeric with |values| up to 59,000,000, beyond 2**24 = 16,777,216 (the integers float32 "
        "holds exactly): preprocessing must not cast it to float32 before centring it; if it is an id or a code, "
        "make it kind: ignored"
    ]


def _weather() -> tuple[list[str], list[list]]:
    """Daily weather for a year: dates in three spellings, a datetime, and measurements."""
    import datetime as dt

    rng = random.Random(23)
    header = ["date", "observed_at", "us_date", "station_time", "time_of_day", "max_temp", "rain_mm", "rain_tomorrow"]
    rows = []
    for day in range(365):
        d = dt.date(2013, 1, 1) + dt.timedelta(days=day)
        rows.append(
            [
                d.isoformat(),
                f"{d.isoformat()}T{rng.randrange(0, 24):02d}:00:00",
                d.strftime("%m/%d/%Y"),
                f"{d.isoformat()} 10:00:00",
                f"{rng.randrange(0, 24):02d}:00",
                f"{rng.gauss(15, 8):.1f}",
                rng.choice([0, 0, 0, 1, 2, 5, 11]),
                rng.choice(["yes", "no", "no"]),
            ]
        )
    return header, rows


def test_date_and_time_columns_are_ignored_with_the_reason(tmp_path):
    header, rows = _weather()
    data = _write_csv(tmp_path / "weather.csv", header, rows)
    decided = decide_project(profile_data(data), "rain_tomorrow")
    kinds = {c.name: c.kind for c in decided.features}
    assert kinds == {
        "date": "ignored",
        "observed_at": "ignored",
        "us_date": "ignored",
        "station_time": "ignored",
        "time_of_day": "vocabulary",  # 24 values of a clock time: a category, not a date
        "max_temp": "numeric",
        "rain_mm": "categorical_int",
    }
    why = "-> ignored (date/time: calendar features are not derived; add e.g. month/day-of-week columns to the CSV)"
    assert f"date: string, dates/times like '2013-01-01' {why}" in decided.lines
    assert f"observed_at: string, dates/times like '{rows[0][1]}' {why}" in decided.lines
    assert f"us_date: string, dates/times like '01/01/2013' {why}" in decided.lines


def test_a_text_column_with_a_date_in_it_is_not_a_date(tmp_path):
    rows = [[f"2013-01-{1 + i % 28:02d}" if i % 5 else "unknown", i % 3, "a" if i % 2 else "b"] for i in range(60)]
    data = _write_csv(tmp_path / "d.csv", ["when", "x", "y"], rows)
    decided = decide_project(profile_data(data), "y")
    assert decided.features[0].kind == "vocabulary"


def test_few_rows_of_distinct_ints_are_not_ids(tmp_path):
    """An id needs more than 20 distinct values (what makes an int numeric at all): 15 distinct ints in 15
    rows are a small table's values, and a float with fractions is never an id."""
    rows = [[100 + i * 7 % 15, f"{i / 3:.4f}", "a" if i % 2 else "b"] for i in range(15)]
    data = _write_csv(tmp_path / "d.csv", ["small", "ratio", "y"], rows)
    decided = decide_project(profile_data(data), "y")
    assert [(c.name, c.kind) for c in decided.features] == [("small", "vocabulary"), ("ratio", "numeric")]


# ------------------------------------------------------------------------ placeholder cells ("?", "NA")

AUTO_ROWS = 398
AUTO_UNKNOWN_HP = (32, 126, 330, 336, 354, 374)  # the 6 rows of UCI auto-mpg whose horsepower is "?"


def _auto_mpg() -> tuple[list[str], list[list]]:
    """A car table shaped like UCI's auto-mpg: horsepower "?" in 6 of 398 rows, a column name with a space,
    a row counter; mpg follows weight and horsepower (so a model learns it)."""
    rng = random.Random(29)
    header = ["row", "cylinders", "displacement", "horsepower", "weight", "model year", "origin", "notes", "mpg"]
    rows = []
    for i in range(AUTO_ROWS):
        weight = rng.uniform(1600, 5100)
        hp = int(weight / 25 + rng.gauss(0, 8))
        mpg = 52 - 0.0065 * weight - 0.04 * hp + rng.gauss(0, 1.5)
        rows.append(
            [
                i + 1,
                rng.choice([4, 4, 6, 8]),
                ("NA" if i % 100 == 7 else "n/a") if i % 50 == 7 else f"{weight / 12 + rng.gauss(0, 10):.1f}",
                "?" if i in AUTO_UNKNOWN_HP else hp,
                f"{weight:.0f}",
                70 + i % 13,
                1 + i % 3,
                "NA" if i % 3 else f"{i}",  # mostly "NA": a placeholder majority is not a numeric column
                f"{mpg:.1f}",
            ]
        )
    return header, rows


def test_a_few_placeholder_cells_make_a_numeric_column_with_missing_values(tmp_path):
    header, rows = _auto_mpg()
    data = _write_csv(tmp_path / "auto.csv", header, rows)
    result = init_project(data, "mpg", dir=tmp_path / "auto", ignore=["model year"])
    hp = result.project.column("horsepower")
    assert hp == P.Column("horsepower", "int", "numeric", required=False, missing_values=("?",))
    line = next(line for line in result.decisions if line.startswith("horsepower: "))
    assert line.startswith("horsepower: int, ") and (
        "; 392 of 398 cells are numbers; 6 cells '?' read as missing -> numeric, optional" in line
    ), line
    displacement = result.project.column("displacement")
    assert (displacement.dtype, displacement.kind, displacement.required) == ("float", "numeric", False)
    assert displacement.missing_values == ("NA", "n/a")
    assert "8 cells ('NA' 4, 'n/a' 4) read as missing" in next(
        line for line in result.decisions if line.startswith("displacement: ")
    )
    assert result.project.column("notes").dtype == "string"  # 265 "NA" and 133 numbers: text with numbers
    assert result.project.column("notes").missing_values == ()
    assert result.project.column("model year").kind == "ignored"
    assert "model year: int, 13 distinct values in 70..82 -> ignored (--ignore)" in result.decisions
    # The schema types the column from its numbers and lets it be missing; the YAML says which cells are.
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tfxp.schema.rules import load_schema

    schema = {f.name: f for f in load_schema(result.schema_file).feature}
    assert schema["horsepower"].type == schema_pb2.INT and not schema["horsepower"].HasField("shape")
    assert schema["displacement"].type == schema_pb2.FLOAT and not schema["displacement"].HasField("shape")
    assert "    missing_values: ['?']\n" in result.project_file.read_text()
    assert P.load(result.dir).column("horsepower").missing_values == ("?",)


def test_a_label_with_placeholder_cells_is_refused(tmp_path):
    rows = [[i % 7, "?" if i % 40 == 3 else f"{i * 1.5:.1f}"] for i in range(120)]
    data = _write_csv(tmp_path / "d.csv", ["x", "price"], rows)
    with pytest.raises(InitError, match=r"label price: 117 cells are numbers and 3 cells '\?' mean no value"):
        init_project(data, "price", dir=tmp_path / "p")


def test_column_names_tensorflow_refuses_are_refused_before_statistics(tmp_path):
    header, rows = _auto_mpg()
    data = _write_csv(tmp_path / "auto.csv", header, rows)
    started = time.monotonic()
    with pytest.raises(InitError) as info:
        init_project(data, "mpg", dir=tmp_path / "auto")
    assert time.monotonic() - started < 1.0  # the header only, no TFDV
    assert "column name(s) 'model year'" in str(info.value)
    assert "--ignore 'model year'" in str(info.value)
    with pytest.raises(InitError, match="--ignore colour: not a column"):
        init_project(data, "mpg", dir=tmp_path / "auto", ignore=["colour", "model year"])
    assert not (tmp_path / "auto").exists()


def test_a_rare_class_is_a_warning_naming_it(tmp_path):
    rows = [[i % 9, "setosa" if i < 6 else ("versicolor" if i % 2 else "virginica")] for i in range(200)]
    data = _write_csv(tmp_path / "d.csv", ["x", "species"], rows)
    result = init_project(data, "species", dir=tmp_path / "p")
    assert result.warnings == [
        "label species: class setosa has 6 rows; the eval split (about 1/3 of rows, TFX's 2:1 hash split) holds "
        "none of them with probability 9%, and then nothing measures it: add rows of it, or merge it into "
        "another class"
    ]


def test_a_model_name_already_pushed_is_a_warning(tmp_path):
    rows = [[i % 9, "a" if i % 3 else "b"] for i in range(60)]
    data = _write_csv(tmp_path / "d.csv", ["x", "y"], rows)
    (tmp_path / "out" / "serving" / "d" / "1733300000").mkdir(parents=True)
    result = init_project(data, "y", dir=tmp_path / "p", output=tmp_path / "out")
    assert result.warnings == [
        f"a model named d is already pushed to {tmp_path / 'out' / 'serving' / 'd'}: `tfxp run` refuses to push "
        "this project over it if its label, task, classes or inputs differ (a different model, not a new "
        "version); give this one its own name with --name"
    ]
    assert init_project(data, "y", dir=tmp_path / "q", name="d2", output=tmp_path / "out").warnings == []


@pytest.mark.slow
def test_init_then_run_reads_placeholders_as_missing_and_ignores_a_bad_name(tmp_path):
    """`tfxp init --ignore 'model year'` then `tfxp run --project`: the run is blessed, and the examples
    CsvExampleGen wrote hold horsepower as int64 with the 6 "?" rows missing; the ignored column with a
    name TensorFlow refuses for an input is still validated by the schema without breaking the run."""
    import json
    import os
    import subprocess
    import sys

    import tensorflow as tf

    header, rows = _auto_mpg()
    _write_csv(tmp_path / "auto.csv", header, rows)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def tfxp(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tfxp.cli", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
        )

    init = tfxp("init", "--data", "auto.csv", "--label", "mpg", "--ignore", "model year")
    assert init.returncode == 0, init.stderr[-3000:]
    assert "392 of 398 cells are numbers; 6 cells '?' read as missing -> numeric, optional" in init.stdout
    assert f"library log: {tmp_path / 'auto.log'}" in init.stdout and (tmp_path / "auto.log").is_file()
    run = tfxp("run", "--project", "auto", "--output", "out", "--train-steps", "200", "--json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["blessed"] and summary["pushed_version"], summary
    assert summary["anomalies"] == []

    examples = list((tmp_path / "out" / "pipelines" / "auto" / "CsvExampleGen" / "examples").glob("*/Split-*/*.gz"))
    horsepower = {}
    for path in examples:
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            features = tf.train.Example.FromString(record.numpy()).features.feature
            row = features["row"].int64_list.value[0]
            assert features["horsepower"].WhichOneof("kind") in ("int64_list", None)
            horsepower[row] = list(features["horsepower"].int64_list.value)
    assert len(horsepower) == AUTO_ROWS
    assert sorted(row for row, values in horsepower.items() if not values) == [i + 1 for i in AUTO_UNKNOWN_HP]
    assert all(values == [int(rows[row - 1][3])] for row, values in horsepower.items() if values)


def test_cli_refuses_a_bad_name_as_a_usage_error_and_prints_where_its_log_went(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tfxp.cli import main

    monkeypatch.chdir(tmp_path)
    _write_csv(tmp_path / "cancer.csv", ["mean radius", "mean_area", "y"], [[i, i * 2.5, i % 2] for i in range(40)])
    refused = CliRunner().invoke(main, ["init", "--data", "cancer.csv", "--label", "y"])
    assert refused.exit_code == 2
    assert "column name(s) 'mean radius'" in refused.output and "--ignore 'mean radius'" in refused.output
    done = CliRunner().invoke(
        main, ["init", "--data", "cancer.csv", "--label", "y", "--ignore", "mean radius", "--dir", "projects/c"]
    )
    assert done.exit_code == 0, done.output
    log = tmp_path / "projects" / "c.log"
    assert f"library log: {log}\n" in done.output and log.is_file()
    assert P.load(tmp_path / "projects" / "c").column("mean radius").kind == "ignored"


def test_the_scan_reads_blocks_as_one_column(tmp_path, monkeypatch):
    """Blocks of 4 rows over two files: monotonicity across block edges and files, the first blank's
    file:line, placeholders, numbers spelled as tfx_bsl reads them (" 12", "1_000", "inf"), dates."""
    from tfxp.pipeline import init_project as init

    monkeypatch.setattr(init, "_SCAN_BLOCK_ROWS", 4)
    header = ["counter", "hp", "odd", "when", "y"]
    first = [
        [i, "?" if i == 5 else i * 3, (" 12", "1_000", "inf", "7")[i % 4], f"2013-01-{i + 1:02d}", i % 2]
        for i in range(10)
    ]
    first[6][3] = ""
    a = _write_csv(tmp_path / "d" / "a.csv", header, first)
    b = _write_csv(tmp_path / "d" / "b.csv", header, [[10 + i, i, "7", "2013-02-01 10:00", 0] for i in range(5)])
    scans = init._scan([a, b], header, 15)
    counter = scans["counter"]
    assert (counter.numbers, counter.increasing, counter.decreasing, counter.changes + 1) == (15, True, False, 15)
    assert counter.seen is not None and len(counter.seen) == 15
    hp = scans["hp"]
    assert hp.missing_markers() == {"?": 1} and hp.numbers == 14
    assert hp.increasing and hp.changes + 1 == 14  # within each file (b.csv starts again at 0)
    odd = scans["odd"]
    assert (odd.numbers, odd.text, odd.non_finite_cells, odd.non_finite) == (15, 0, 2, ["inf"])
    when = scans["when"]
    assert (when.blank, when.first_blank, when.date_example) == (1, f"{a}:8", "2013-01-01")
    assert when.dates and when.numbers == 0


def _numbers_profile(dtype: str, low: float, high: float, rows: int = 1000, **fields):
    from tfxp.pipeline.init_project import ColumnProfile

    counts = {str(i): 1 for i in range(min(rows, 1001))}
    return ColumnProfile(
        "c", dtype, rows, True, counts=counts, capped=rows > 1001, min=low, max=high, numbers=rows, **fields
    )


@pytest.mark.parametrize(
    "profile, kind",
    [
        # Unix seconds and milliseconds within 1990..2040: timestamps, whatever their repeats.
        (_numbers_profile("int", 1_356_998_400, 1_388_534_399, whole=True), "ignored"),
        (_numbers_profile("int", 1_356_998_400_000, 1_388_534_399_000, whole=True), "ignored"),
        # Whole numbers just outside the range (a 1989 time, a price in cents): not timestamps.
        (_numbers_profile("int", 600_000_000, 1_388_534_399, whole=True), "numeric"),
        # Fractional Unix-range floats are measurements (whole=False).
        (_numbers_profile("float", 1_356_998_400.5, 1_388_534_399.5, whole=False), "numeric"),
        # Unique per row: an id; 94% distinct: not quite.
        (_numbers_profile("int", 1, 5000, whole=True, exact_distinct=1000), "ignored"),
        (_numbers_profile("int", 1, 5000, whole=True, exact_distinct=940), "numeric"),
        # Going one way in row order with distinct values in >= 10% of the rows: a counter; fewer: a sorted value.
        (_numbers_profile("int", 1, 500, whole=True, monotone="increasing", monotone_distinct=100), "ignored"),
        (_numbers_profile("int", 1, 500, whole=True, monotone="decreasing", monotone_distinct=99), "numeric"),
        # Unique floats with fractions: never an id.
        (_numbers_profile("float", 0.1, 99.9, whole=False, exact_distinct=None), "numeric"),
    ],
)
def test_id_and_timestamp_rules_on_both_sides(profile, kind):
    from tfxp.pipeline.init_project import decide_column

    column, line = decide_column(profile)
    assert column.kind == kind, line
