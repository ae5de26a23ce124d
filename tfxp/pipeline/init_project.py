"""`tfxp init`: a project folder (project.yaml + schema.pbtxt) decided from a CSV and a label column.

    result = init_project("data/penguins.csv", "species")
    for line in result.report_lines():
        print(line)          # "island: string, 3 distinct values -> vocabulary", ..., "wrote penguins/..."

How the data is read, and why:
1. `tfxp.pipeline.csv_files.check_dataset` reads every file first, as `tfxp run` does, so a file that is not
   one dataset (bad UTF-8, ragged rows, different headers) is refused by file:line before anything else.
2. TFDV statistics over the tf.Examples that the pipeline's own CsvExampleGen transform
   (`tfxp.pipeline.example_gen.CsvToSerializedExamples`) makes of the files: the column types, presence and the
   inferred schema are then exactly what StatisticsGen and ExampleValidator will see in `tfxp run`
   (TFDV's `generate_statistics_from_csv` splits multi-line cells and reads the header differently).
3. One pass with Python's `csv` module (the parser CsvExampleGen uses) counting each column's distinct
   values: TFDV counts distinct strings but not distinct ints, and the kinds, task and classes depend on
   them. Counting stops at MAX_TRACKED distinct values per column (a bigger count changes no decision).

The rules (the project spec's, see tfxp/project.py for the format they fill in):
- Task (`auto`): a label with 2 values -> binary (positive: the one of 1/true/yes against 0/false/no,
  else the minority value); a string label, or an int label with <= 20 values -> multiclass; a float
  label, or an int label with > 20 values -> regression.
- Columns: blank in every row -> ignored; float -> numeric; int with <= 32 distinct non-negative values
  and max < 64 -> categorical_int (size max+1); other int -> numeric above 20 distinct values, else
  vocabulary; string with more distinct values than half the rows (ids, free text) -> ignored, else
  vocabulary. Required = no blank cell.
- Gates from the naive predictor measured on the data: binary BinaryAccuracy >= majority share (rounded
  down to 0.01), max change 0.02, and AUC >= 0.55, max change 0.01; multiclass SparseCategoricalAccuracy
  >= majority share, max change 0.02; regression RootMeanSquaredError <= the label's population standard
  deviation, max change 2% of it.
- Slices: up to 2 categorical columns (vocabulary / categorical_int) with 2..MAX_SLICE_VALUES values,
  fewest values first.
"""

from __future__ import annotations

import csv
import datetime
import math
import re
import shlex
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tfxp import project as project_lib
from tfxp.pipeline.csv_files import check_dataset, list_csv_files

TASK_CHOICES = ("auto", *project_lib.TASKS)

# Counting distinct values stops here: every threshold below is at most 1000.
MAX_TRACKED = 1001
# Task detection and column kinds (the project spec's rules).
MAX_MULTICLASS_INT_VALUES = 20
MAX_CATEGORICAL_INT_VALUES = 32
CATEGORICAL_INT_LIMIT = 64  # max value + 1
MIN_NUMERIC_INT_VALUES = 21  # an int column with more distinct values is a measurement (numeric), else vocabulary
ID_LIKE_FRACTION = 0.5  # a string column with more distinct values than this share of rows is ignored
# A multiclass model outputs one probability per class; more than this is not a classification label.
MAX_CLASSES = 100
MAX_SLICES = 2
MAX_SLICE_VALUES = 25
# Gates.
ACCURACY_MAX_CHANGE = 0.02
AUC_BOUND = 0.55
AUC_MAX_CHANGE = 0.01
RMSE_MAX_CHANGE_FRACTION = 0.02
# Binary labels whose positive class is the obvious one, lower-cased.
_POSITIVE_WORDS = {"1": "0", "true": "false", "yes": "no"}


class InitError(ValueError):
    """`tfxp init` can't make a project from these arguments and data (a usage error; the message says why)."""


@dataclass
class ColumnProfile:
    """What the data says about one column.

    `dtype`: the type CsvExampleGen gives it ("float" | "int" | "string", TFDV's inference); `required`:
    TFDV saw one value in every row; `blank`: blank cells; `counts`: distinct values (canonical text ->
    rows), complete unless `capped` (more than MAX_TRACKED distinct values); ints and floats are counted by
    value, so "01" and "1" are one value; `min`/`max`: numeric columns' range (TFDV); `non_finite`: NaN or
    infinite cells of a float column; `first_blank`: "file:line" of the first blank cell; `mean`/`std`:
    numeric columns' mean and population standard deviation (TFDV's, NaN cells left out).
    """

    name: str
    dtype: str
    rows: int
    required: bool
    blank: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    capped: bool = False
    min: float | None = None
    max: float | None = None
    non_finite: int = 0
    first_blank: str | None = None
    mean: float | None = None
    std: float | None = None

    # TFDV's exact count of distinct strings (string columns), used when `counts` is capped.
    unique: int | None = None

    @property
    def distinct(self) -> int:
        """Distinct non-blank values: exact for strings (TFDV) and for columns not capped, else MAX_TRACKED."""
        if self.capped and self.unique is not None:
            return self.unique
        return len(self.counts)

    def distinct_text(self) -> str:
        if self.capped and self.unique is None:
            return f"more than {MAX_TRACKED - 1} distinct values"
        return _plural(self.distinct, "distinct value")


@dataclass
class InitResult:
    """What `init_project` decided and wrote.

    `decisions`: one line per decision, "name: evidence -> decision (why)" (columns in CSV order, then the
    label, slices and gates); `warnings`: data that `tfxp run` will refuse or that needs a look.
    """

    project: project_lib.Project
    dir: Path
    project_file: Path
    schema_file: Path
    rows: int
    decisions: list[str]
    warnings: list[str]

    def report_lines(self) -> list[str]:
        """The lines `tfxp init` prints: decisions, warnings, the files written and the next command."""
        return [
            *self.decisions,
            *(f"warning: {w}" for w in self.warnings),
            f"wrote {self.project_file} and {self.schema_file} ({self.rows} rows); review them, then run:",
            f"  tfxp run --project {shlex.quote(str(self.dir))}",
        ]


# ------------------------------------------------------------------------------------------ reading the data


def _tfdv_statistics(files: list[Path], data: Path, beam_args: Iterable[str]):
    """TFDV statistics (DatasetFeatureStatisticsList) of the tf.Examples CsvExampleGen makes of `files`."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx.types import standard_component_specs
    from tfx_bsl.coders import example_coder

    from tfxp.pipeline.example_gen import CsvToSerializedExamples

    class _DecodeExamples(beam.DoFn):
        """Serialized tf.Example batches -> Arrow RecordBatches, as StatisticsGen reads examples."""

        def setup(self):
            self._decoder = example_coder.ExamplesToRecordBatchDecoder()

        def process(self, batch):
            yield self._decoder.DecodeBatch(batch)

    # ExampleGen reads a folder and a pattern: the folder itself, or a file's folder and its name.
    base, pattern = (str(data), "*.csv") if data.is_dir() else (str(files[0].parent), files[0].name)
    with tempfile.TemporaryDirectory(prefix="tfxp-init-") as tmp:
        output = str(Path(tmp) / "stats.tfrecord")
        with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
            _ = (
                p
                | "CsvToExamples" >> CsvToSerializedExamples({standard_component_specs.INPUT_BASE_KEY: base}, pattern)
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=1000)
                | "Decode" >> beam.ParDo(_DecodeExamples())
                | "Statistics" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
                | "Write" >> tfdv.WriteStatisticsToTFRecord(output)
            )
        return tfdv.load_statistics(output)


def _feature_statistics(stats) -> dict[str, object]:
    return {f.path.step[0]: f for f in stats.datasets[0].features}


def _dtype_of(feature_stats) -> str:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    types = statistics_pb2.FeatureNameStatistics
    return {types.INT: "int", types.FLOAT: "float"}.get(feature_stats.type, "string")


def _common_stats(feature_stats):
    which = feature_stats.WhichOneof("stats")
    return getattr(feature_stats, which).common_stats if which else None


def _parse(text: str, dtype: str):
    """A cell as its value: ints and floats parsed (as CsvExampleGen writes them), strings as they are."""
    if dtype == "int":
        return int(text)
    if dtype == "float":
        return float(text)
    return text


def _count_values(
    files: list[Path], header: list[str], dtypes: dict[str, str], rows: int, required: dict[str, bool]
) -> dict[str, ColumnProfile]:
    """One pass over the rows: blanks and distinct values per column (see ColumnProfile)."""
    profiles = {name: ColumnProfile(name, dtypes[name], rows, required[name]) for name in header}
    raw: dict[str, Counter] = {name: Counter() for name in header}
    floats = [i for i, name in enumerate(header) if dtypes[name] == "float"]
    for path in files:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            next(reader, None)  # the header
            for record in reader:
                if not record:  # a blank line: CsvExampleGen skips it too
                    continue
                for name, cell in zip(header, record, strict=True):
                    if cell == "":
                        profile = profiles[name]
                        profile.blank += 1
                        if profile.first_blank is None:
                            profile.first_blank = f"{path}:{reader.line_num}"
                        continue
                    counter = raw[name]
                    if cell in counter or len(counter) < MAX_TRACKED:
                        counter[cell] += 1
                    else:
                        profiles[name].capped = True
                for i in floats:
                    cell = record[i]
                    try:
                        if cell and not math.isfinite(float(cell)):
                            profiles[header[i]].non_finite += 1
                    except ValueError:  # TFDV's inference is the judge of the type; nothing to count here
                        pass
    for name, profile in profiles.items():
        # Count by value (CsvExampleGen writes 1 for "01" and "1"), named by the value's most common text.
        by_value: dict[object, Counter] = {}
        for text, n in raw[name].items():
            try:
                value = _parse(text, profile.dtype)
            except ValueError:  # a cell TFDV's type inference accepted that Python doesn't parse: keep the text
                value = text
            if isinstance(value, float) and math.isnan(value):
                value = "nan"  # NaN != NaN: one key for every NaN spelling
            by_value.setdefault(value, Counter())[text] += n
        profile.counts = {texts.most_common(1)[0][0]: sum(texts.values()) for texts in by_value.values()}
    return profiles


@dataclass
class DataProfile:
    """The data `tfxp init` decides from: files, shared header, rows, a profile per column, TFDV statistics.

    `statistics`: TFDV's DatasetFeatureStatisticsList of the tf.Examples CsvExampleGen makes of the files
    (the schema is inferred from it).
    """

    data: Path
    files: list[Path]
    header: list[str]
    rows: int
    columns: dict[str, ColumnProfile]
    statistics: object


def profile_data(data: Path | str, beam_args: Iterable[str] | None = None) -> DataProfile:
    """Reads a CSV file or folder of CSV files: preflight, TFDV statistics, distinct values per column.

    Raises DataFileError (a file that can't be read as the dataset, by file:line), NoCsvFilesError /
    FileNotFoundError (no data there), InitError (a header without rows).
    """
    from tfxp.pipeline.config import DEFAULT_BEAM_ARGS

    data = Path(data).resolve()
    files = list_csv_files(data)
    dataset = check_dataset(files)
    if dataset.total_rows == 0:
        raise InitError(f"{data}: no rows (a header only)")
    stats = _tfdv_statistics(files, data, beam_args if beam_args is not None else DEFAULT_BEAM_ARGS)
    by_name = _feature_statistics(stats)
    dtypes, required = {}, {}
    for name in dataset.header:
        feature_stats = by_name.get(name)
        common = _common_stats(feature_stats) if feature_stats is not None else None
        dtypes[name] = _dtype_of(feature_stats) if feature_stats is not None else "string"
        # One value in every row: TFDV's condition for a fixed shape, so `required` agrees with the schema.
        required[name] = bool(
            common and common.num_missing == 0 and common.min_num_values >= 1 and common.max_num_values == 1
        )
    columns = _count_values(files, dataset.header, dtypes, dataset.total_rows, required)
    for name, profile in columns.items():
        feature_stats = by_name.get(name)
        if feature_stats is not None and feature_stats.HasField("num_stats"):
            num = feature_stats.num_stats
            profile.min, profile.max, profile.mean, profile.std = num.min, num.max, num.mean, num.std_dev
        if feature_stats is not None and feature_stats.HasField("string_stats") and profile.dtype == "string":
            profile.unique = feature_stats.string_stats.unique
    return DataProfile(
        data=data, files=files, header=dataset.header, rows=dataset.total_rows, columns=columns, statistics=stats
    )


# ------------------------------------------------------------------------------------------------ decisions


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%"


def _floor_hundredth(x: float) -> float:
    # The epsilon keeps 0.29 (28.999999999999996 after * 100) at 0.29.
    return math.floor(x * 100 + 1e-9) / 100


def _round_up(x: float, digits: int) -> float:
    """`x` > 0 rounded up to `digits` significant digits (a ceiling that stays at or above `x`)."""
    if x <= 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(x)) - digits + 1)
    return float(f"{math.ceil(x / step - 1e-9) * step:.{digits}g}")


def _value_sort_key(text: str, dtype: str):
    try:
        return (0, _parse(text, dtype), text)
    except ValueError:
        return (1, 0, text)


def decide_column(profile: ColumnProfile) -> tuple[project_lib.Column, str]:
    """The spec entry for a feature column and the line saying why ("company: string, 90 distinct values
    -> vocabulary"). Rules: module docstring."""
    p = profile
    evidence = f"{p.dtype}, {p.distinct_text()}"
    kind, size, why = "", 0, ""
    if p.blank == p.rows:
        evidence, kind, why = "blank in every row", "ignored", "nothing to learn from"
    elif p.dtype == "float":
        kind = "numeric"
    elif p.dtype == "int":
        low, high = p.min or 0, p.max or 0
        evidence += f" in {int(low)}..{int(high)}"
        if not p.capped and p.distinct <= MAX_CATEGORICAL_INT_VALUES and low >= 0 and high < CATEGORICAL_INT_LIMIT:
            kind, size = "categorical_int", int(high) + 1
            why = f"small non-negative ints: one-hot over 0..{size - 1}"
        elif p.capped or p.distinct >= MIN_NUMERIC_INT_VALUES:
            kind, why = "numeric", "too many values for a vocabulary"
        else:
            kind = "vocabulary"
    else:
        if p.distinct > ID_LIKE_FRACTION * p.rows:
            kind = "ignored"
            why = f"more distinct values than half the {p.rows} rows: an id or free text"
        else:
            kind = "vocabulary"
    required = p.required
    if not p.required and p.blank < p.rows:
        evidence += f", {_plural(p.blank, 'blank cell')}"
    decision = kind if p.required or p.blank == p.rows else f"{kind}, optional"
    line = f"{p.name}: {evidence} -> {decision}" + (f" ({why})" if why else "")
    return project_lib.Column(
        name=p.name,
        dtype=p.dtype,
        kind=kind,
        required=required,
        buckets=project_lib.DEFAULT_BUCKETS if kind == "bucketized" else 0,
        size=size,
    ), line


def _positive_of(counts: dict[str, int]) -> tuple[str, str]:
    """(positive, why) of a two-valued label: 1/true/yes against 0/false/no, else the minority value."""
    (a, na), (b, nb) = sorted(counts.items())
    for value, other in ((a, b), (b, a)):
        word = _number_word(value)
        if word in _POSITIVE_WORDS and _number_word(other) == _POSITIVE_WORDS[word]:
            return value, f"{value} against {other}"
    if na == nb:
        return b, "the classes are equal: the later value in sort order"
    value = a if na < nb else b
    return value, "the minority class"


def _number_word(text: str) -> str:
    """ "1.0" -> "1", "True" -> "true": how a binary label's value reads."""
    try:
        number = float(text)
    except ValueError:
        return text.strip().lower()
    return str(int(number)) if number.is_integer() else text


def _find_value(text: str, counts: dict[str, int], dtype: str) -> str | None:
    """The label value `text` names, as written in the data ("1" finds "1.0" in a float column)."""
    if text in counts:
        return text
    try:
        wanted = _parse(text, dtype)
    except ValueError:
        return None
    for value in counts:
        try:
            if _parse(value, dtype) == wanted:
                return value
        except ValueError:
            continue
    return None


def _describe_counts(counts: dict[str, int], order: list[str], rows: int) -> str:
    return ", ".join(f"{value} ({_share(counts[value], rows)})" for value in order)


def decide_label(
    profile: ColumnProfile, task: str = "auto", positive: str | None = None
) -> tuple[project_lib.Label, list[project_lib.Gate], list[str]]:
    """The label entry, its gates and the lines saying why.

    `task`: "auto" | "binary" | "multiclass" | "regression". `positive`: a binary label's positive value
    (--positive). Raises InitError: blank label cells, one value, --positive
    not a value or with another task, binary with more than 2 values, multiclass on a float label or with
    more than MAX_CLASSES values, regression on a string label.
    """
    p = profile
    name = p.name
    if task not in TASK_CHOICES:
        raise InitError(f"--task {task!r}: one of {', '.join(TASK_CHOICES)}")
    if p.blank:
        raise InitError(
            f"label {name} is blank in {_plural(p.blank, 'row')} (first: {p.first_blank}); "
            "every training row needs a label: fill or drop those rows"
        )
    if not p.capped and p.distinct == 1:
        only = next(iter(p.counts))
        raise InitError(f"label {name} has one value ({only!r}) in every row: nothing to learn")
    values = "more than 1000 values" if p.capped else _plural(p.distinct, "value")
    if task == "auto":
        if not p.capped and p.distinct == 2:
            task = "binary"
        elif p.dtype == "string" or (p.dtype == "int" and p.distinct <= MAX_MULTICLASS_INT_VALUES):
            task = "multiclass"
        else:
            task = "regression"
        if positive is not None and task != "binary":
            raise InitError(
                f"--positive {positive!r}: label {name} has {values}, and --positive applies to a "
                "label with two values (a binary task)"
            )
        detected = f" -> {task}"
    else:
        detected = f" -> {task} (--task)"
    if positive is not None and task != "binary":
        raise InitError(f"--positive is for --task binary, not {task}")
    evidence = f"{name} (label): {p.dtype}, {values}"

    if task == "regression":
        if p.dtype == "string":
            raise InitError(f"--task regression: label {name} is a string column ({values}); regression needs numbers")
        mean, std = p.mean, p.std
        if mean is None or std is None or not math.isfinite(mean) or not math.isfinite(std):
            raise InitError(
                f"label {name}: no standard deviation (non-finite values?); a regression label needs finite numbers"
            )
        label = project_lib.Label(column=name, task="regression", dtype=p.dtype)
        bound = _round_up(std, 3)
        gate = project_lib.Gate(
            "RootMeanSquaredError",
            bound=bound,
            max_change=_round_up(RMSE_MAX_CHANGE_FRACTION * std, 3),
            higher_is_better=False,
        )
        return (
            label,
            [gate],
            [
                f"{evidence}{detected} (mean {mean:.4g}, standard deviation {std:.4g})",
                f"gate RootMeanSquaredError <= {gate.bound}: the label's standard deviation, what always predicting "
                f"the mean scores; change vs the blessed baseline at most {gate.max_change} (2%)",
            ],
        )

    counts, rows = p.counts, p.rows
    if task == "multiclass" and p.dtype == "float":
        raise InitError(
            f"--task multiclass: label {name} is a float column; classes need int or string values "
            "(or --task regression)"
        )
    if p.capped or p.distinct > MAX_CLASSES:
        raise InitError(
            f"label {name} has {values}: a {task} label has at most {MAX_CLASSES} classes"
            + ("; for a numeric label use --task regression" if p.dtype != "string" else "")
        )
    majority = max(sorted(counts), key=lambda v: counts[v])
    share = counts[majority] / rows
    accuracy_why = (
        f"the majority class {majority} is {_share(counts[majority], rows)} of rows, what always guessing it scores"
    )
    if task == "binary":
        if p.distinct != 2:
            raise InitError(
                f"--task binary: label {name} has {values} "
                f"({', '.join(sorted(counts, key=lambda v: _value_sort_key(v, p.dtype))[:10])}"
                f"{', ...' if p.distinct > 10 else ''}); binary needs exactly 2 (or --task multiclass)"
            )
        if positive is not None:
            found = _find_value(positive, counts, p.dtype)
            if found is None:
                raise InitError(
                    f"--positive {positive!r} is not a value of label {name} (values: {', '.join(sorted(counts))})"
                )
            positive, why = found, "--positive"
        else:
            positive, why = _positive_of(counts)
        negative = next(v for v in counts if v != positive)
        label = project_lib.Label(
            column=name, task="binary", classes=(negative, positive), positive=positive, dtype=p.dtype
        )
        accuracy = project_lib.Gate("BinaryAccuracy", bound=_floor_hundredth(share), max_change=ACCURACY_MAX_CHANGE)
        auc = project_lib.Gate("AUC", bound=AUC_BOUND, max_change=AUC_MAX_CHANGE)
        return (
            label,
            [auc, accuracy],
            [
                f"{evidence}{detected}: positive class {positive} ({why}; {_share(counts[positive], rows)} of rows), "
                f"negative {negative}",
                f"gate AUC >= {AUC_BOUND} (0.5 is guessing); change vs the blessed baseline at most {AUC_MAX_CHANGE}",
                f"gate BinaryAccuracy >= {accuracy.bound}: {accuracy_why}; change at most {ACCURACY_MAX_CHANGE}",
            ],
        )

    # multiclass
    classes = tuple(sorted(counts, key=lambda v: _value_sort_key(v, p.dtype)))
    label = project_lib.Label(column=name, task="multiclass", classes=classes, dtype=p.dtype)
    gate = project_lib.Gate("SparseCategoricalAccuracy", bound=_floor_hundredth(share), max_change=ACCURACY_MAX_CHANGE)
    return (
        label,
        [gate],
        [
            f"{evidence}{detected}: classes in output order {_describe_counts(counts, list(classes), rows)}",
            f"gate SparseCategoricalAccuracy >= {gate.bound}: {accuracy_why}; change vs the blessed baseline at "
            f"most {ACCURACY_MAX_CHANGE}",
        ],
    )


def decide_slices(columns: list[project_lib.Column], profiles: dict[str, ColumnProfile]) -> tuple[list[str], str]:
    """Up to MAX_SLICES categorical input columns with 2..MAX_SLICE_VALUES values, fewest values first
    (CSV order on ties), and the line saying so."""
    candidates = [
        c.name
        for c in columns
        if c.kind in ("vocabulary", "categorical_int")
        and 2 <= profiles[c.name].distinct <= MAX_SLICE_VALUES
        and not profiles[c.name].capped
    ]
    chosen = sorted(candidates, key=lambda n: profiles[n].distinct)[:MAX_SLICES]
    chosen.sort(key=candidates.index)
    if not chosen:
        return [], (
            f"slices: none (no categorical column with 2..{MAX_SLICE_VALUES} values); TFMA reports the overall slice"
        )
    return chosen, (
        "slices: "
        + ", ".join(f"{n} ({profiles[n].distinct} values)" for n in chosen)
        + " (categorical columns with the fewest values; TFMA reports each value's metrics)"
    )


# --------------------------------------------------------------------------------------------------- schema


def build_schema(stats, label: project_lib.Label, columns: list[project_lib.Column]):
    """The TFDV-inferred schema, tightened as the pipeline requires (schema_rules) and for the project:
    disallow_nan/disallow_inf on FLOAT features; the label kept out of SERVING (default environments
    TRAINING and SERVING); a classification label's values as its domain (a new class is an anomaly, not a
    wrong class index); categorical_int columns within 0..size-1 (outside, one-hot encoding gives zeros).
    """
    import tensorflow_data_validation as tfdv

    from tfxp.pipeline.schema_rules import disallow_non_finite

    schema = tfdv.infer_schema(stats, infer_feature_shape=True)
    disallow_non_finite(schema)
    features = {f.name: f for f in schema.feature}
    target = features[label.column]
    target.not_in_environment.append("SERVING")
    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    if label.task != "regression":
        if label.dtype == "string":
            if target.HasField("domain"):  # TFDV's shared string_domain of the same values: replaced inline
                kept = [d for d in schema.string_domain if d.name != target.domain]
                del schema.string_domain[:]
                schema.string_domain.extend(kept)
            target.string_domain.value[:] = list(label.classes)
        elif label.dtype == "int":
            values = [int(c) for c in label.classes]
            target.int_domain.min, target.int_domain.max = min(values), max(values)
    for column in columns:
        if column.kind == "categorical_int":
            domain = features[column.name].int_domain
            domain.min, domain.max = 0, column.size - 1
    return schema


# ---------------------------------------------------------------------------------------------------- init


def default_name(data: Path) -> str:
    """A project name from the data's file or folder name: lowercase, [a-z0-9_-] ("Penguins Size.csv" ->
    "penguins_size")."""
    stem = data.stem if data.suffix.lower() == ".csv" else data.name
    name = re.sub(r"[^a-z0-9_-]+", "_", stem.lower()).strip("_-")
    return name or "project"


def _command(
    data: Path | str, label: str, task: str, positive: str | None, name: str | None, dir: Path | str | None
) -> str:
    args = ["tfxp", "init", "--data", str(data), "--label", label]
    for flag, value in (
        ("--task", None if task == "auto" else task),
        ("--positive", positive),
        ("--name", name),
        ("--dir", dir),
    ):
        if value is not None:
            args += [flag, str(value)]
    return " ".join(shlex.quote(a) for a in args)


@dataclass
class Decisions:
    """Everything `tfxp init` decided from a DataProfile, and why.

    `lines`: one per decision, "name: evidence -> decision (why)" (columns in CSV order, then the label, its
    gates and the slices); `notes`: the same as comments for project.yaml (project.dumps keys); `warnings`:
    data that `tfxp run` will refuse or that needs a look.
    """

    label: project_lib.Label
    features: list[project_lib.Column]
    thresholds: list[project_lib.Gate]
    slices: list[str]
    lines: list[str]
    notes: dict[str, str]
    warnings: list[str]


def decide_project(profile: DataProfile, label: str, task: str = "auto", positive: str | None = None) -> Decisions:
    """The columns' kinds, the label's task and classes, the gates and the slices (rules: module docstring).

    Raises InitError: `label` not a column (the columns are listed), the label only column, every other column
    ignored, and decide_label's refusals.
    """
    if label not in profile.header:
        raise InitError(f"--label {label!r} is not a column of {profile.data}; columns: {', '.join(profile.header)}")
    if len(profile.header) == 1:
        raise InitError(f"{profile.data} has no column besides the label {label}")
    label_spec, gates, label_lines = decide_label(profile.columns[label], task, positive)
    columns, lines, notes = [], [], {}
    for name in profile.header:
        if name == label:
            continue
        column, line = decide_column(profile.columns[name])
        columns.append(column)
        lines.append(line)
        notes[f"features.{name}"] = line.split(": ", 1)[1]
    if not any(c.is_input for c in columns):
        raise InitError(
            f"every column besides the label is ignored ({', '.join(c.name for c in columns)}): no model input"
        )
    slices, slice_line = decide_slices(columns, profile.columns)
    lines += [*label_lines, slice_line]
    notes["label"] = label_lines[0].split(": ", 1)[1]
    notes["slices"] = slice_line.split(": ", 1)[1]
    for gate, line in zip(gates, label_lines[1:], strict=True):
        notes[f"thresholds.{gate.metric}"] = line.removeprefix("gate ")
    warnings = []
    for p in profile.columns.values():
        if p.non_finite:
            examples = [v for v in p.counts if not math.isfinite(float(v))][:3]
            warnings.append(
                f"{p.name}: {_plural(p.non_finite, 'NaN or infinite cell')} ({', '.join(examples)}); "
                "tfxp run refuses them (the schema disallows NaN and infinity): fix or drop those rows"
            )
    return Decisions(
        label=label_spec, features=columns, thresholds=gates, slices=slices, lines=lines, notes=notes, warnings=warnings
    )


def init_project(
    data: Path | str,
    label: str,
    task: str = "auto",
    positive: str | None = None,
    name: str | None = None,
    dir: Path | str | None = None,
    beam_args: Iterable[str] | None = None,
) -> InitResult:
    """Reads the CSV data, decides the project and writes DIR/project.yaml and DIR/schema.pbtxt.

    `data`: a CSV file or a folder of CSV files (local). `label`: the label column. `task`: "auto" (see the
    module docstring) or the task. `positive`: a binary label's positive value, as in the CSV. `name`: the
    project name (default from the data's name). `dir`: the folder to write (default ./<name>). `beam_args`:
    Beam options for the statistics (default: in-memory DirectRunner).

    Raises InitError (bad arguments, a label that can't be learned, DIR already holding a project),
    tfxp.pipeline.csv_files.DataFileError (a file that can't be read as the dataset, by file:line),
    NoCsvFilesError / FileNotFoundError (no data there).
    """
    from google.protobuf import text_format

    command = _command(data, label, task, positive, name, dir)
    if task not in TASK_CHOICES:
        raise InitError(f"--task {task!r}: one of {', '.join(TASK_CHOICES)}")
    if "://" in str(data):
        raise InitError(f"--data {data}: tfxp init reads local files; copy the data (or a sample) here")
    data = Path(data).resolve()
    name = name if name is not None else default_name(data)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise InitError(
            f"--name {name!r}: use lowercase letters, digits, '_' and '-' (it names the pipeline and the served model)"
        )
    folder = Path(dir if dir is not None else name).resolve()
    existing = [folder / f for f in (project_lib.PROJECT_FILE, project_lib.SCHEMA_FILE) if (folder / f).exists()]
    if existing:
        raise InitError(
            f"{' and '.join(map(str, existing))} already exist(s); tfxp init doesn't overwrite a "
            "project: choose another --dir, or delete them"
        )

    profile = profile_data(data, beam_args)
    decided = decide_project(profile, label, task, positive)
    project = project_lib.Project(
        name=name,
        label=decided.label,
        features=tuple(decided.features),
        thresholds=tuple(decided.thresholds),
        slices=tuple(decided.slices),
        data=str(data),
        dir=folder,
    )
    schema = build_schema(profile.statistics, decided.label, decided.features)
    today = datetime.date.today().isoformat()
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    schema_file = folder / project_lib.SCHEMA_FILE
    project_file = folder / project_lib.PROJECT_FILE
    schema_header = (
        f"Inferred by `{command}` on {today} (TFDV, {profile.rows} rows).\n"
        "A starting schema: curate it (value ranges, closed vocabularies) before relying on it. Tightened:\n"
        "- disallow_nan / disallow_inf on every FLOAT feature (tfxp run refuses a schema without them);\n"
        f"- the label {label} is kept out of the SERVING environment (requests carry no label);\n"
        + (
            "- the label's values are its domain (a new class is an anomaly, not a wrong class index);\n"
            if decided.label.task != "regression"
            else ""
        )
        + "- categorical_int columns are bounded to 0..size-1.\n"
        "Features with `shape` are required in every row; the others may be blank."
    )
    spec_header = (
        f"Written by `{command}` on {today}; edit freely.\n"
        "kind: numeric (z-scored) | bucketized (float, `buckets: N` quantiles) | categorical_int (0..size-1)\n"
        "      | vocabulary (top-k values) | ignored (validated by the schema, not a model input)\n"
        "required: false = may be blank (then schema.pbtxt gives it no shape). Comments: what tfxp init saw.\n"
        "thresholds: blessing gates on the overall eval slice, from the naive predictor on this data."
    )
    try:
        schema_file.write_text(
            "".join(f"# {line}\n" for line in schema_header.splitlines()) + text_format.MessageToString(schema),
            encoding="utf-8",
        )
        project_lib.dump(project, project_file, header=spec_header, notes=decided.notes)
        loaded = project_lib.load(folder)  # the files just written must make a valid project
    except BaseException:
        for written in (schema_file, project_file):
            written.unlink(missing_ok=True)
        if created:  # leave nothing behind: a folder we made holds nothing else
            folder.rmdir()
        raise
    return InitResult(
        project=loaded,
        dir=folder,
        project_file=project_file,
        schema_file=schema_file,
        rows=profile.rows,
        decisions=decided.lines,
        warnings=decided.warnings,
    )
