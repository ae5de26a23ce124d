"""`tfxp init`: a project folder (project.yaml + schema.pbtxt) decided from a CSV and a label column.

    result = init_project("data/penguins.csv", "species")
    for line in result.report_lines():
        print(line)          # "island: string, 3 distinct values -> vocabulary", ..., "wrote penguins/..."

How the data is read, and why:
1. The header alone first: a model input's name TensorFlow refuses is refused at once (`check_column_names`;
   `--ignore` makes a column ignored). Then `tfxp.pipeline.csv_files.check_dataset` reads every file, as
   `tfxp run` does, so a file that is not one dataset (bad UTF-8, ragged rows, different headers) is refused
   by file:line before anything else.
2. One pass with Python's `csv` module (the parser CsvExampleGen uses) over every cell (`_ColumnScan`):
   distinct values (TFDV counts distinct strings but not distinct ints, and the kinds, task and classes
   depend on them; counting stops at MAX_TRACKED, a bigger count changes no decision), placeholder cells
   ("?", "NA", ...), whole numbers, uniqueness and row-order monotonicity (ids, counters), dates.
3. TFDV statistics over the tf.Examples that the pipeline's own CsvExampleGen transform
   (`tfxp.pipeline.example_gen.CsvToSerializedExamples`) makes of the files, with the placeholder cells
   found in 2 read as missing (the `missing_values` written to project.yaml): the column types, presence and
   the inferred schema are then exactly what StatisticsGen and ExampleValidator will see in `tfxp run`
   (TFDV's `generate_statistics_from_csv` splits multi-line cells and reads the header differently).

The rules (tables COLUMN_RULES and TASK_RULES below; the project spec's, see tfxp/project/ for the format
they fill in; README "Bring your own data"):
- Task (`auto`): a label with 2 values -> binary (positive: the one of 1/true/yes against 0/false/no,
  else the minority value); a string label, or an int label with <= 20 values -> multiclass (int classes
  must be consecutive: the schema's int_domain is min..max); a float label, or an int label with > 20
  values -> regression.
- Columns: blank in every row -> ignored; a string column of dates/date-times -> ignored; a whole-number
  column with more than 20 values that is a Unix timestamp, unique per row or nearly, or a counter ->
  ignored; float -> numeric; int with <= 32 distinct non-negative values and max < 64 ->
  categorical_int (size max+1); other int -> numeric above 20 distinct values, else vocabulary; string
  with more distinct values than half the rows (ids, free text) -> ignored, else vocabulary. Numbers with
  a few placeholder cells (fewer than the numbers) -> typed from the numbers, placeholders read as missing.
  Required = a value in every row.
- Gates strictly better than the naive predictor measured on the data (TFMA passes metric >= lower_bound,
  <= upper_bound): binary BinaryAccuracy >= the next hundredth above the majority share, max change 0.02,
  and AUC >= 0.55, max change 0.01; multiclass SparseCategoricalAccuracy likewise; regression
  RootMeanSquaredError <= the 3-significant-digit value just below the label's population standard
  deviation, max change 2% of it.
- Warnings: infinite cells, classes with fewer than RARE_CLASS_ROWS rows, a model name already pushed.
  Notes: numeric columns beyond float32's exact integers.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tfxp import project as project_lib
from tfxp.pipeline.csv_files import INT_CELL, NUMBER_CELL, check_dataset, list_csv_files, parse_header
from tfxp.schema.infer import build_schema

TASK_CHOICES = ("auto", *project_lib.TASKS)

# Counting distinct values stops here: every threshold below is at most 1000.
MAX_TRACKED = 1001
# Task detection and column kinds (the project spec's rules).
MAX_MULTICLASS_INT_VALUES = 20
MAX_CATEGORICAL_INT_VALUES = 32
CATEGORICAL_INT_LIMIT = 64  # max value + 1
MIN_NUMERIC_INT_VALUES = 21  # an int column with more distinct values is a measurement (numeric), else vocabulary
ID_LIKE_FRACTION = 0.5  # a string column with more distinct values than this share of rows is ignored
# A whole-number column with more than MIN_NUMERIC_INT_VALUES values is an id when at least this share of its
# cells are distinct values (unique per row, or nearly) ...
ID_UNIQUE_FRACTION = 0.95
# ... or when its values only go up (or only down) in row order, with distinct values in at least this share
# of its cells (a row number; ids sorted, each on a few rows as in a panel); fewer (a sorted year) is not an id.
COUNTER_DISTINCT_FRACTION = 0.1
# Unix timestamps: whole numbers all within 1990-01-01..2040-01-01, in seconds or milliseconds.
UNIX_SECONDS_RANGE = (631_152_000, 2_208_988_800)
# float32 holds every integer up to 2**24 exactly; a numeric column beyond it loses digits before the z-score.
FLOAT32_EXACT_INT = 2**24
# Cells that mean "no value" in CSVs written by people, R, pandas, Excel and UCI ("?"); read as missing in a
# column whose every other cell is a number, when they are fewer than the numbers.
PLACEHOLDERS = frozenset(
    [
        "?",
        "NA",
        "N/A",
        "n/a",
        "na",
        "N.A.",
        "#N/A",
        "-",
        "--",
        "null",
        "NULL",
        "Null",
        "None",
        "none",
        "nan",
        "NaN",
        "NAN",
        "missing",
        "Missing",
        ".",
    ]
)
# Dates and date-times: ISO 8601 (2013-01-01, 2013-01-01 10:00[:00[.000]], T, Z or an offset), 2013/01/31,
# and 01/31/2013 or 31/01/2013 (with an optional time).
_TIME = r"[ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?( ?[AaPp][Mm])?(Z|[+-][0-9]{2}:?[0-9]{2})?"
_DATE_TIME = re.compile(
    r"([0-9]{4}[-/](0[1-9]|1[0-2])[-/](0[1-9]|[12][0-9]|3[01])"
    r"|[0-9]{1,2}/[0-9]{1,2}/[0-9]{4})"
    rf"({_TIME})?"
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The same, anchored, for Arrow's RE2 (a whole cell).
_DATE_TIME_RE2 = f"^(?:{_DATE_TIME.pattern})$"
# The scan reads this many rows at a time.
_SCAN_BLOCK_ROWS = 65_536
# A multiclass model outputs one probability per class; more than this is not a classification label.
MAX_CLASSES = 100
MAX_SLICES = 2
# A class with fewer rows is likely missing from the eval split ((2/3)**10 = 1.7%).
RARE_CLASS_ROWS = 10
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
    # The first few non-finite cells' texts.
    non_finite_examples: list[str] = field(default_factory=list)
    # Placeholder text -> cells read as missing (a numeric column with a few "?" cells); not in `counts`.
    missing_values: dict[str, int] = field(default_factory=dict)
    # Cells that parse as numbers; all of them whole numbers ("1001", "1001.0").
    numbers: int = 0
    whole: bool = False
    # Distinct numbers when they are unique per row or nearly (else None: too many repeats to be an id).
    exact_distinct: int | None = None
    # "increasing" | "decreasing": the numbers only go one way in row order (within each file); then
    # `monotone_distinct` is their distinct count (an upper bound over several files).
    monotone: str | None = None
    monotone_distinct: int = 0
    # A string column whose every cell is a date or date-time: one of them.
    date_example: str | None = None

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
    label, slices and gates); `warnings`: data that `tfxp run` will refuse or that needs a look; `remarks`:
    facts worth knowing (huge magnitudes).
    """

    project: project_lib.Project
    dir: Path
    project_file: Path
    schema_file: Path
    rows: int
    decisions: list[str]
    warnings: list[str]
    remarks: list[str] = field(default_factory=list)

    def report_lines(self) -> list[str]:
        """The lines `tfxp init` prints: decisions, remarks, the missing-value rule, warnings, the files written
        and the next command."""
        return [
            *self.decisions,
            *(f"note: {r}" for r in self.remarks),
            *self.missing_value_lines(),
            *(f"warning: {w}" for w in self.warnings),
            f"wrote {self.project_file} and {self.schema_file} ({self.rows} rows); review them, then run:",
            f"  tfxp run --project {shlex.quote(str(self.dir))}",
        ]

    def missing_value_lines(self) -> list[str]:
        """How the model and every serving path will read missing and unseen values (README, "Values the
        model never learned")."""
        inputs = self.project.inputs
        optional = [c.name for c in inputs if not c.required]
        numbers = [c.name for c in inputs if not c.required and c.kind == "numeric"]
        lines = []
        if any(c.required for c in inputs):
            lines.append("missing values: a row missing a required input is refused, naming it (TFLite: no answer)")
        if optional:
            lines.append(
                f"missing values: {', '.join(optional)} may be missing: "
                + (
                    "numbers are read as the training mean plus a missing indicator the model learns, "
                    if numbers
                    else ""
                )
                + "categories as their own learned id; never as 0 or an empty string"
            )
        if any(c.kind in ("vocabulary", "categorical_int") for c in inputs):
            lines.append(
                "unseen values: a category not in the training data (or an int outside a categorical_int's "
                "0..size-1) is one 'unknown' id, trained on 1% of training values; never a known one"
            )
        return lines


# ------------------------------------------------------------------------------------------ reading the data


def _tfdv_statistics(
    files: list[Path], data: Path, beam_args: Iterable[str], missing_values: dict[str, list[str]] | None = None
):
    """TFDV statistics (DatasetFeatureStatisticsList) of the tf.Examples CsvExampleGen makes of `files`.

    `missing_values`: column -> cell texts CsvExampleGen reads as missing (project.yaml's `missing_values`).
    """
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx.types import standard_component_specs
    from tfx_bsl.coders import example_coder

    from tfxp.pipeline.example_gen import CsvToSerializedExamples, example_gen_config

    class _DecodeExamples(beam.DoFn):
        """Serialized tf.Example batches -> Arrow RecordBatches, as StatisticsGen reads examples."""

        def setup(self):
            self._decoder = example_coder.ExamplesToRecordBatchDecoder()

        def process(self, batch):
            yield self._decoder.DecodeBatch(batch)

    # ExampleGen reads a folder and a pattern: the folder itself, or a file's folder and its name.
    base, pattern = (str(data), "*.csv") if data.is_dir() else (str(files[0].parent), files[0].name)
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: base,
        standard_component_specs.CUSTOM_CONFIG_KEY: example_gen_config([], missing_values=missing_values),
    }
    with tempfile.TemporaryDirectory(prefix="tfxp-init-") as tmp:
        output = str(Path(tmp) / "stats.tfrecord")
        with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
            _ = (
                p
                | "CsvToExamples" >> CsvToSerializedExamples(exec_properties, pattern)
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


def _number(cell: str) -> int | float | None:
    """A cell's number as tfx_bsl's type inference reads it (int() within int64, else float()); None for text
    (and for an integer beyond int64, which tfx_bsl types STRING)."""
    try:
        value = int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return None
    return value if _INT64_MIN <= value <= _INT64_MAX else None


class _ColumnScan:
    """One column's cells seen in one pass, a block of rows at a time (Arrow compute on the block's cells), before
    TFDV and whatever its type: the scan decides which placeholder cells TFDV should see as missing.

    Numbers: how many cells are numbers, whether all are whole, their distinct count while it can still make
    an id (a set, dropped once the repeats rule that out), and whether they only go up or down in row order
    within each file (then `changes` + 1 is the distinct count). Text: placeholder cells (PLACEHOLDERS) and
    other text; whether every text cell is a date/time. `raw`: distinct texts -> cells, complete unless
    `capped` (then counting stopped: no decision uses a capped column's counts).
    """

    def __init__(self, max_repeats: int):
        self.blank = 0
        self.first_blank: str | None = None
        self.raw: Counter = Counter()
        self.capped = False
        self.numbers = 0
        self.whole = True
        self.placeholders: Counter = Counter()
        self.text = 0
        self.dates = True
        self.date_example: str | None = None
        self.non_finite: list[str] = []
        self.non_finite_cells = 0
        self.seen: set | None = set()
        self.repeats = 0
        self.max_repeats = max_repeats
        self.increasing = self.decreasing = True
        self.changes = 0
        self.last: float | None = None
        self.started = False

    def new_file(self) -> None:
        self.last = None

    def add_block(self, cells: Sequence[str], lines: Sequence[int], path: Path) -> None:
        """`cells`: the column's cells of consecutive rows ("" = blank); `lines`: each row's line in `path`."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = pa.array(cells, pa.string())
        self._count_texts(column)
        present = pc.not_equal(column, "")
        blank = len(column) - pc.sum(present).as_py()
        if blank:
            self.blank += blank
            if self.first_blank is None:
                self.first_blank = f"{path}:{lines[list(cells).index('')]}"
        is_placeholder = pc.is_in(column, value_set=pa.array(sorted(PLACEHOLDERS), pa.string()))
        if pc.any(is_placeholder).as_py():
            counts = pc.value_counts(pc.filter(column, is_placeholder))
            for text, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
                self.placeholders[text] += n
        rest = pc.filter(column, pc.and_(present, pc.invert(is_placeholder)))
        if len(rest):
            values, text = _numbers_of(rest)
            self._add_text(text)
            self._add_numbers(values, rest)

    def _count_texts(self, column) -> None:
        import pyarrow.compute as pc

        if self.capped:
            return
        counts = pc.value_counts(column)
        for text, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
            if text == "":
                continue
            if text not in self.raw and len(self.raw) >= MAX_TRACKED:
                self.capped = True
                return
            self.raw[text] += n

    def _add_text(self, text) -> None:
        import pyarrow.compute as pc

        if not len(text):
            return
        self.text += len(text)
        self.seen = None
        if self.dates:
            if not pc.all(pc.match_substring_regex(text, _DATE_TIME_RE2)).as_py():
                self.dates = False
            elif self.date_example is None:
                self.date_example = text[0].as_py()

    def _add_numbers(self, values, cells) -> None:
        import numpy as np

        if not len(values):
            return
        self.numbers += len(values)
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            if not finite.all():
                self.non_finite_cells += int((~finite).sum())
                self.seen = None
                for text in _non_finite_texts(cells):
                    if text not in self.non_finite and len(self.non_finite) < 3:
                        self.non_finite.append(text)
                values = values[finite]
                if not len(values):
                    return
            if self.whole and not np.all(values == np.floor(values)):
                self.whole = False
                self.seen = None  # a measurement: never an id
        if self.seen is not None:
            before = len(self.seen)
            self.seen.update(values.tolist())
            self.repeats += len(values) - (len(self.seen) - before)
            if self.repeats > self.max_repeats:
                self.seen = None
        steps = np.diff(values if self.last is None else np.concatenate([[self.last], values]))
        self.increasing = self.increasing and bool(np.all(steps >= 0))
        self.decreasing = self.decreasing and bool(np.all(steps <= 0))
        # A new file's first value counts as a change: the distinct count is then an upper bound.
        self.changes += int(np.count_nonzero(steps)) + (1 if self.last is None and self.started else 0)
        self.last = values[-1]
        self.started = True

    def missing_markers(self) -> dict[str, int]:
        """Placeholder cells to read as missing: only when every other non-blank cell is a number and the
        placeholders are fewer than the numbers (a minority)."""
        if self.placeholders and self.text == 0 and self.numbers > sum(self.placeholders.values()):
            return dict(self.placeholders)
        return {}


def _numbers_of(cells):
    """(numbers in row order as a numpy array: int64 when every cell is a plain int, else float64; the
    cells that are text, an Arrow array). A number is what tfx_bsl's inference reads as one (`_number`):
    plain decimal cells are cast by Arrow, other spellings (" 12", "inf", "1_000") parsed by Python once
    per distinct value."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.all(pc.match_substring_regex(cells, INT_CELL)).as_py():
        try:
            return pc.cast(cells, pa.int64()).to_numpy(), cells.slice(0, 0)
        except pa.ArrowInvalid:  # beyond int64: tfx_bsl reads it as text
            pass
    plain = pc.match_substring_regex(cells, NUMBER_CELL).to_numpy(zero_copy_only=False)
    values = np.full(len(cells), np.nan)
    is_number = plain.copy()
    if plain.any():
        values[plain] = pc.cast(pc.filter(cells, pa.array(plain)), pa.float64()).to_numpy()
    if not plain.all():
        others = np.flatnonzero(~plain)
        encoded = pc.dictionary_encode(cells.take(pa.array(others)))
        parsed = [_number(text) for text in encoded.dictionary.to_pylist()]
        for position, index in zip(others, encoded.indices.to_pylist(), strict=True):
            if parsed[index] is not None:
                values[position], is_number[position] = parsed[index], True
    return values[is_number], pc.filter(cells, pa.array(~is_number))


def _non_finite_texts(cells) -> list[str]:
    """Up to 3 distinct cells that are infinite or NaN numbers ("inf", "-Infinity")."""
    texts = []
    for text in cells.unique().to_pylist():
        value = _number(text)
        if isinstance(value, float) and not math.isfinite(value):
            texts.append(text)
            if len(texts) == 3:
                break
    return texts


def _scan(files: list[Path], header: list[str], rows: int) -> dict[str, _ColumnScan]:
    """One pass with Python's csv module (the parser of tfxp run's preflight) over every row (see _ColumnScan)."""
    # An id is unique per row or nearly: more repeats than this rule it out.
    max_repeats = int((1 - ID_UNIQUE_FRACTION) * rows)
    scans = {name: _ColumnScan(max_repeats) for name in header}
    ordered = [scans[name] for name in header]

    def flush(block: list[list[str]], lines: list[int], path: Path) -> None:
        for scan, cells in zip(ordered, zip(*block, strict=True), strict=True):
            scan.add_block(cells, lines, path)

    for path in files:
        for scan in ordered:
            scan.new_file()
        block, lines = [], []
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            next(reader, None)  # the header
            for record in reader:
                if not record:  # a blank line: CsvExampleGen skips it too
                    continue
                block.append(record)
                lines.append(reader.line_num)
                if len(block) == _SCAN_BLOCK_ROWS:
                    flush(block, lines, path)
                    block, lines = [], []
        if block:
            flush(block, lines, path)
    return scans


def _counts_by_value(raw: Counter, dtype: str, markers: dict[str, int]) -> dict[str, int]:
    """Distinct values (canonical text -> rows): CsvExampleGen writes 1 for "01" and "1", so ints and floats
    are counted by value, named by the value's most common text; cells read as missing left out."""
    by_value: dict[object, Counter] = {}
    for text, n in raw.items():
        if text in markers:
            continue
        try:
            value = _parse(text, dtype)
        except ValueError:  # a cell TFDV's type inference accepted that Python doesn't parse: keep the text
            value = text
        if isinstance(value, float) and math.isnan(value):
            value = "nan"  # NaN != NaN: one key for every NaN spelling
        by_value.setdefault(value, Counter())[text] += n
    return {texts.most_common(1)[0][0]: sum(texts.values()) for texts in by_value.values()}


def _profile(name: str, scan: _ColumnScan, dtype: str, rows: int, required: bool, feature_stats) -> ColumnProfile:
    markers = scan.missing_markers()
    profile = ColumnProfile(
        name,
        dtype,
        rows,
        required,
        blank=scan.blank,
        counts=_counts_by_value(scan.raw, dtype, markers),
        capped=scan.capped,
        first_blank=scan.first_blank,
        non_finite=scan.non_finite_cells if dtype == "float" else 0,
        non_finite_examples=list(scan.non_finite) if dtype == "float" else [],
        missing_values=markers,
        numbers=scan.numbers,
        whole=scan.whole and scan.numbers > 0,
        exact_distinct=len(scan.seen) if scan.seen is not None and scan.numbers else None,
        monotone=(
            ("increasing" if scan.increasing else "decreasing" if scan.decreasing else None)
            if scan.numbers > 1 and scan.text == 0
            else None
        ),
        monotone_distinct=scan.changes + 1,
        date_example=scan.date_example if scan.dates and scan.text > 0 and scan.numbers == 0 else None,
    )
    if feature_stats is not None and feature_stats.HasField("num_stats"):
        num = feature_stats.num_stats
        profile.min, profile.max, profile.mean, profile.std = num.min, num.max, num.mean, num.std_dev
    if feature_stats is not None and feature_stats.HasField("string_stats") and dtype == "string":
        profile.unique = feature_stats.string_stats.unique
    return profile


@dataclass
class DataProfile:
    """The data `tfxp init` decides from: files, shared header, rows, a profile per column, TFDV statistics.

    `statistics`: TFDV's DatasetFeatureStatisticsList of the tf.Examples CsvExampleGen makes of the files
    (the schema is inferred from it), with each column's `missing_values` cells read as missing.
    """

    data: Path
    files: list[Path]
    header: list[str]
    rows: int
    columns: dict[str, ColumnProfile]
    statistics: object

    @property
    def missing_values(self) -> dict[str, list[str]]:
        """Column -> placeholder texts read as missing (CsvExampleGen's custom_config, project.yaml)."""
        return {n: sorted(p.missing_values) for n, p in self.columns.items() if p.missing_values}


def check_column_names(header: list[str], label: str, ignore: Iterable[str] = ()) -> None:
    """Refuses model inputs TensorFlow can't name (project.TF_NAME: e.g. "mean radius"), before any statistics.

    Raises InitError naming every such column and the two ways out (--ignore, or rename the CSV column).
    """
    ignored = set(ignore)
    unknown = sorted(ignored - set(header))
    if unknown:
        raise InitError(f"--ignore {', '.join(unknown)}: not a column (columns: {', '.join(header)})")
    if label in ignored:
        raise InitError(f"--ignore {label}: it is the label")
    bad = [n for n in header if n != label and n not in ignored and not project_lib.TF_NAME.fullmatch(n)]
    if bad:
        raise InitError(
            f"column name(s) {', '.join(map(repr, bad))}: a model input's name must be letters, digits and "
            "_ . - / (not starting with _ - /; TensorFlow names the model's inputs after them); rename the "
            "column in the CSV, or leave it out of the model with "
            + " ".join(f"--ignore {shlex.quote(n)}" for n in bad)
        )


def read_header(data: Path | str) -> tuple[Path, list[Path], list[str]]:
    """(resolved data, its CSV files, the first file's header): what init checks before reading every row.

    Raises NoCsvFilesError / FileNotFoundError (no data there).
    """
    data = Path(data).resolve()
    files = list_csv_files(data)
    with open(files[0], encoding="utf-8-sig", newline="") as f:
        header = parse_header(f.readline())
    return data, files, header


def profile_data(data: Path | str, beam_args: Iterable[str] | None = None) -> DataProfile:
    """Reads a CSV file or folder of CSV files: preflight, one pass over the cells, TFDV statistics.

    Numeric columns with a few placeholder cells ("?", "NA", ...: _ColumnScan.missing_markers) are read
    with those cells missing, as `tfxp run`'s CsvExampleGen will read them (project.yaml `missing_values`).
    Raises DataFileError (a file that can't be read as the dataset, by file:line), NoCsvFilesError /
    FileNotFoundError (no data there), InitError (a header without rows).
    """
    from tfxp.pipeline.config import DEFAULT_BEAM_ARGS

    data = Path(data).resolve()
    files = list_csv_files(data)
    dataset = check_dataset(files)
    if dataset.total_rows == 0:
        raise InitError(f"{data}: no rows (a header only)")
    scans = _scan(files, dataset.header, dataset.total_rows)
    missing = {name: sorted(scan.missing_markers()) for name, scan in scans.items() if scan.missing_markers()}
    stats = _tfdv_statistics(files, data, beam_args if beam_args is not None else DEFAULT_BEAM_ARGS, missing)
    by_name = _feature_statistics(stats)
    columns = {}
    for name in dataset.header:
        feature_stats = by_name.get(name)
        common = _common_stats(feature_stats) if feature_stats is not None else None
        dtype = _dtype_of(feature_stats) if feature_stats is not None else "string"
        # One value in every row: TFDV's condition for a fixed shape, so `required` agrees with the schema.
        required = bool(
            common and common.num_missing == 0 and common.min_num_values >= 1 and common.max_num_values == 1
        )
        columns[name] = _profile(name, scans[name], dtype, dataset.total_rows, required, feature_stats)
    return DataProfile(
        data=data, files=files, header=dataset.header, rows=dataset.total_rows, columns=columns, statistics=stats
    )


# ------------------------------------------------------------------------------------------------ decisions


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%"


def _hundredth_above(x: float) -> float:
    """The smallest multiple of 0.01 strictly above `x` (0.489 -> 0.49, 0.7 -> 0.71): a floor the naive
    predictor, which scores `x`, can't reach (TFMA passes a metric >= its lower_bound)."""
    # The epsilon keeps 0.29 (28.999999999999996 after * 100) at 0.29, so its floor is 0.30.
    return round((math.floor(x * 100 + 1e-9) + 1) / 100, 2)


def _round_below(x: float, digits: int) -> float:
    """The largest number of `digits` significant digits strictly below `x` > 0 (7.806 -> 7.8, 7.8 -> 7.79):
    a ceiling the naive predictor, which scores `x`, can't reach (TFMA passes a metric <= its upper_bound)."""
    exponent = math.floor(math.log10(x))
    step = 10.0 ** (exponent - digits + 1)
    if x <= 10.0**exponent * (1 + 1e-12):  # a power of ten: the value below it has a smaller exponent (0.999)
        step /= 10
    below = (math.ceil(x / step - 1e-9) - 1) * step
    return float(f"{below:.{digits}g}")


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


def _markers_text(markers: dict[str, int]) -> str:
    """{"?": 6} -> "6 cells '?'"; several -> "7 cells ('?' 6, 'NA' 1)"."""
    total = sum(markers.values())
    if len(markers) == 1:
        return f"{_plural(total, 'cell')} {next(iter(markers))!r}"
    return f"{_plural(total, 'cell')} (" + ", ".join(f"{m!r} {n}" for m, n in sorted(markers.items())) + ")"


def _unix_time_unit(low: float, high: float) -> str | None:
    """ "seconds" / "milliseconds" when every value lies in UNIX_SECONDS_RANGE in that unit, else None."""
    start, end = UNIX_SECONDS_RANGE
    for unit, scale in (("seconds", 1), ("milliseconds", 1000)):
        if start * scale <= low and high < end * scale:
            return unit
    return None


def _utc_date(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).date().isoformat()


def _seen(p: ColumnProfile) -> str:
    """ "string, 90 distinct values": what init saw of any column."""
    return f"{p.dtype}, {p.distinct_text()}"


def _seen_int(p: ColumnProfile) -> str:
    return f"{_seen(p)} in {int(p.min or 0)}..{int(p.max or 0)}"


def _whole_kind(p: ColumnProfile) -> str:
    return "int" if p.dtype == "int" else "float, whole numbers"


def _whole_numbers(p: ColumnProfile) -> bool:
    """An int column, or a float one whose cells are all whole ("1001.0"): could be an id or a time. A float
    with a fractional part is a measurement, never an id."""
    return p.dtype != "string" and p.whole and p.min is not None and p.max is not None


def _is_unix_time(p: ColumnProfile) -> bool:
    return (
        _whole_numbers(p)
        and _unix_time_unit(p.min, p.max) is not None
        and (p.capped or p.distinct >= MIN_NUMERIC_INT_VALUES)
    )


def _seen_unix_time(p: ColumnProfile) -> str:
    unit = _unix_time_unit(p.min, p.max)
    scale = 1 if unit == "seconds" else 1000
    return (
        f"{_whole_kind(p)}, every value a Unix time in {unit} ({_utc_date(p.min / scale)}..{_utc_date(p.max / scale)})"
    )


def _is_unique_per_row(p: ColumnProfile) -> bool:
    distinct = p.exact_distinct
    return (
        _whole_numbers(p)
        and distinct is not None
        and distinct >= MIN_NUMERIC_INT_VALUES
        and distinct >= ID_UNIQUE_FRACTION * p.numbers
    )


def _seen_unique(p: ColumnProfile) -> str:
    distinct, cells = p.exact_distinct, p.numbers
    how = "unique per row" if distinct == cells else "nearly unique per row"
    return f"{_whole_kind(p)}, {distinct:,} distinct values in {cells:,} rows ({how})"


def _is_counter(p: ColumnProfile) -> bool:
    return (
        _whole_numbers(p)
        and p.monotone is not None
        and p.monotone_distinct >= MIN_NUMERIC_INT_VALUES
        and p.monotone_distinct >= COUNTER_DISTINCT_FRACTION * p.numbers
    )


def _seen_counter(p: ColumnProfile) -> str:
    return (
        f"{_whole_kind(p)}, {p.monotone_distinct:,} distinct values in {p.numbers:,} rows, {p.monotone} in row order "
        "(a counter or sorted ids)"
    )


def _is_small_ints(p: ColumnProfile) -> bool:
    low, high = p.min or 0, p.max or 0
    return (
        p.dtype == "int"
        and not p.capped
        and p.distinct <= MAX_CATEGORICAL_INT_VALUES
        and low >= 0
        and high < CATEGORICAL_INT_LIMIT
    )


@dataclass(frozen=True)
class Rule:
    """One of init's decisions. When `applies` to a column's profile (the first rule that does wins), the
    decision is `decision` (a column kind in COLUMN_RULES, a task in TASK_RULES) because of `reason`: a
    str.format template over the profile `p` and `high` (a categorical_int's max), printed by init after the
    decision and written as the column's comment in project.yaml (empty: nothing to add). `evidence`: what
    init saw, printed before the arrow."""

    name: str
    applies: Callable[[ColumnProfile], bool]
    decision: str
    reason: str
    evidence: Callable[[ColumnProfile], str] = _seen


_ID_REASON = "an id: an id outside the training range would drive the answer"
_CALENDAR = "calendar features are not derived"

# How a feature column is used (README "Bring your own data"), in order: the first rule that applies wins.
COLUMN_RULES: tuple[Rule, ...] = (
    Rule("blank", lambda p: p.blank == p.rows, "ignored", "nothing to learn from", lambda p: "blank in every row"),
    Rule(
        "dates",
        lambda p: p.dtype == "string" and p.date_example is not None,
        "ignored",
        f"date/time: {_CALENDAR}; add e.g. month/day-of-week columns to the CSV",
        lambda p: f"string, dates/times like {p.date_example!r}",
    ),
    Rule(
        "timestamp",
        _is_unix_time,
        "ignored",
        f"a timestamp: {_CALENDAR}, and a later time is outside the training range; "
        "add e.g. month/day-of-week columns to the CSV",
        _seen_unix_time,
    ),
    Rule("unique id", _is_unique_per_row, "ignored", _ID_REASON, _seen_unique),
    Rule("counter", _is_counter, "ignored", _ID_REASON, _seen_counter),
    Rule("float", lambda p: p.dtype == "float", "numeric", ""),
    Rule(
        "small ints",
        _is_small_ints,
        "categorical_int",
        "small non-negative ints: one-hot over 0..{high}",
        _seen_int,
    ),
    Rule(
        "many ints",
        lambda p: p.dtype == "int" and (p.capped or p.distinct >= MIN_NUMERIC_INT_VALUES),
        "numeric",
        "too many values for a vocabulary",
        _seen_int,
    ),
    Rule("few ints", lambda p: p.dtype == "int", "vocabulary", "", _seen_int),
    Rule(
        "id-like strings",
        lambda p: p.distinct > ID_LIKE_FRACTION * p.rows,
        "ignored",
        "more distinct values than half the {p.rows} rows: an id or free text",
    ),
    Rule("strings", lambda p: True, "vocabulary", ""),
)


def column_rule(profile: ColumnProfile) -> Rule:
    """The first of COLUMN_RULES that applies to a feature column's profile (the last always does)."""
    return next(rule for rule in COLUMN_RULES if rule.applies(profile))


def decide_column(profile: ColumnProfile) -> tuple[project_lib.Column, str]:
    """The spec entry for a feature column and the line saying why ("company: string, 90 distinct values
    -> vocabulary"): COLUMN_RULES, plus the placeholder cells read as missing and the blank cells."""
    p = profile
    rule = column_rule(p)
    kind, evidence = rule.decision, rule.evidence(p)
    high = int(p.max or 0) if kind == "categorical_int" else None  # another column's max may be inf
    why = rule.reason.format(p=p, high=high)
    size = high + 1 if kind == "categorical_int" else 0
    if p.missing_values:
        evidence += (
            f"; {p.numbers:,} of {p.rows:,} cells are numbers; {_markers_text(p.missing_values)} read as missing"
        )
    if p.blank and p.blank < p.rows:
        evidence += f", {_plural(p.blank, 'blank cell')}"
    decision = kind if p.required or p.blank == p.rows else f"{kind}, optional"
    line = f"{p.name}: {evidence} -> {decision}" + (f" ({why})" if why else "")
    return project_lib.Column(
        name=p.name,
        dtype=p.dtype,
        kind=kind,
        required=p.required,
        buckets=project_lib.DEFAULT_BUCKETS if kind == "bucketized" else 0,
        size=size,
        missing_values=tuple(sorted(p.missing_values)),
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


# How `--task auto` reads the label (README "Bring your own data"), in order: the first rule that applies wins.
TASK_RULES: tuple[Rule, ...] = (
    Rule("two values", lambda p: not p.capped and p.distinct == 2, "binary", "two values: a positive class"),
    Rule(
        "classes",
        lambda p: p.dtype == "string" or (p.dtype == "int" and p.distinct <= MAX_MULTICLASS_INT_VALUES),
        "multiclass",
        f"strings, or at most {MAX_MULTICLASS_INT_VALUES} ints: classes",
    ),
    Rule("numbers", lambda p: True, "regression", f"floats, or more than {MAX_MULTICLASS_INT_VALUES} ints: a measure"),
)


def _check_label_cells(p: ColumnProfile) -> None:
    """Raises InitError: blank label cells, placeholder cells, one value in every row."""
    if p.blank:
        raise InitError(
            f"label {p.name} is blank in {_plural(p.blank, 'row')} (first: {p.first_blank}); "
            "every training row needs a label: fill or drop those rows"
        )
    if p.missing_values:
        raise InitError(
            f"label {p.name}: {p.numbers} cells are numbers and {_markers_text(p.missing_values)} mean no value; "
            "every training row needs a label: fill or drop those rows"
        )
    if not p.capped and p.distinct == 1:
        only = next(iter(p.counts))
        raise InitError(f"label {p.name} has one value ({only!r}) in every row: nothing to learn")


def _label_task(p: ColumnProfile, task: str, positive: str | None, values: str) -> tuple[str, str]:
    """(task, " -> task" as printed): `task`, or TASK_RULES' for "auto". Raises InitError: --positive
    with a task other than binary."""
    if task == "auto":
        task = next(rule for rule in TASK_RULES if rule.applies(p)).decision
        if positive is not None and task != "binary":
            raise InitError(
                f"--positive {positive!r}: label {p.name} has {values}, and --positive applies to a "
                "label with two values (a binary task)"
            )
        detected = f" -> {task}"
    else:
        detected = f" -> {task} (--task)"
    if positive is not None and task != "binary":
        raise InitError(f"--positive is for --task binary, not {task}")
    return task, detected


def decide_label(
    profile: ColumnProfile, task: str = "auto", positive: str | None = None
) -> tuple[project_lib.Label, list[project_lib.Gate], list[str]]:
    """The label entry, its gates and the lines saying why.

    `task`: "auto" (TASK_RULES) | "binary" | "multiclass" | "regression". `positive`: a binary label's
    positive value (--positive). Raises InitError: blank label cells, one value, --positive
    not a value or with another task, binary with more than 2 values, multiclass on a float label or with
    more than MAX_CLASSES values, regression on a string label.
    """
    p = profile
    if task not in TASK_CHOICES:
        raise InitError(f"--task {task!r}: one of {', '.join(TASK_CHOICES)}")
    _check_label_cells(p)
    values = "more than 1000 values" if p.capped else _plural(p.distinct, "value")
    task, detected = _label_task(p, task, positive, values)
    seen = f"{p.name} (label): {p.dtype}, {values}{detected}"
    if task == "regression":
        return _regression_label(p, seen, values)
    if task == "multiclass" and p.dtype == "float":
        raise InitError(
            f"--task multiclass: label {p.name} is a float column; classes need int or string values "
            "(or --task regression)"
        )
    if p.capped or p.distinct > MAX_CLASSES:
        raise InitError(
            f"label {p.name} has {values}: a {task} label has at most {MAX_CLASSES} classes"
            + ("; for a numeric label use --task regression" if p.dtype != "string" else "")
        )
    if task == "binary":
        return _binary_label(p, seen, values, positive)
    return _multiclass_label(p, seen)


def _regression_label(
    p: ColumnProfile, seen: str, values: str
) -> tuple[project_lib.Label, list[project_lib.Gate], list[str]]:
    """decide_label for a regression: RootMeanSquaredError below the label's standard deviation."""
    name = p.name
    if p.dtype == "string":
        raise InitError(f"--task regression: label {name} is a string column ({values}); regression needs numbers")
    mean, std = p.mean, p.std
    if mean is None or std is None or not math.isfinite(mean) or not math.isfinite(std):
        raise InitError(
            f"label {name}: no standard deviation (non-finite values?); a regression label needs finite numbers"
        )
    label = project_lib.Label(column=name, task="regression", dtype=p.dtype)
    if std <= 0:
        raise InitError(f"label {name}: one value in every row: nothing to learn")
    gate = project_lib.Gate(
        "RootMeanSquaredError",
        bound=_round_below(std, 3),
        max_change=_round_up(RMSE_MAX_CHANGE_FRACTION * std, 3),
        higher_is_better=False,
    )
    return (
        label,
        [gate],
        [
            f"{seen} (mean {mean:.4g}, standard deviation {std:.4g})",
            f"gate RootMeanSquaredError <= {gate.bound}: below the label's standard deviation {std:.4g}, what "
            f"always predicting the mean scores; change vs the blessed baseline at most {gate.max_change} (2%)",
        ],
    )


def _majority(p: ColumnProfile) -> tuple[float, str]:
    """(share, why) of a class label's majority class: the accuracy gate is above it."""
    counts, rows = p.counts, p.rows
    majority = max(sorted(counts), key=lambda v: counts[v])
    why = (
        f"above {counts[majority] / rows:.4g}: the majority class {majority} is {_share(counts[majority], rows)} "
        "of rows, what always guessing it scores"
    )
    return counts[majority] / rows, why


def _binary_label(
    p: ColumnProfile, seen: str, values: str, positive: str | None
) -> tuple[project_lib.Label, list[project_lib.Gate], list[str]]:
    """decide_label for a binary task: the positive class (--positive, else _positive_of), AUC and
    BinaryAccuracy gates."""
    name, counts, rows = p.name, p.counts, p.rows
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
    share, accuracy_why = _majority(p)
    accuracy = project_lib.Gate("BinaryAccuracy", bound=_hundredth_above(share), max_change=ACCURACY_MAX_CHANGE)
    auc = project_lib.Gate("AUC", bound=AUC_BOUND, max_change=AUC_MAX_CHANGE)
    return (
        label,
        [auc, accuracy],
        [
            f"{seen}: positive class {positive} ({why}; {_share(counts[positive], rows)} of rows), negative {negative}",
            f"gate AUC >= {AUC_BOUND} (0.5 is guessing); change vs the blessed baseline at most {AUC_MAX_CHANGE}",
            f"gate BinaryAccuracy >= {accuracy.bound}: {accuracy_why}; change at most {ACCURACY_MAX_CHANGE}",
        ],
    )


def _multiclass_label(p: ColumnProfile, seen: str) -> tuple[project_lib.Label, list[project_lib.Gate], list[str]]:
    """decide_label for a multiclass task: classes in sort order (ints consecutive), an accuracy gate."""
    classes = tuple(sorted(p.counts, key=lambda v: _value_sort_key(v, p.dtype)))
    _check_int_classes_contiguous(p.name, classes, p.dtype)
    label = project_lib.Label(column=p.name, task="multiclass", classes=classes, dtype=p.dtype)
    share, accuracy_why = _majority(p)
    gate = project_lib.Gate("SparseCategoricalAccuracy", bound=_hundredth_above(share), max_change=ACCURACY_MAX_CHANGE)
    return (
        label,
        [gate],
        [
            f"{seen}: classes in output order {_describe_counts(p.counts, list(classes), p.rows)}",
            f"gate SparseCategoricalAccuracy >= {gate.bound}: {accuracy_why}; change vs the blessed baseline at "
            f"most {ACCURACY_MAX_CHANGE}",
        ],
    )


def _check_int_classes_contiguous(name: str, classes: tuple[str, ...], dtype: str) -> None:
    """An int class label's schema domain is int_domain min..max, which must admit its classes only
    (tfxp.schema.check.check_schema): classes 4, 6, 8 would admit 5 and 7. Raises InitError saying what to do."""
    if dtype != "int":
        return
    values = sorted(int(c) for c in classes)
    gaps = sorted(set(range(values[0], values[-1] + 1)) - set(values))
    if gaps:
        raise InitError(
            f"label {name}: int classes {', '.join(classes)} are not consecutive, and the schema's int_domain "
            f"({values[0]}..{values[-1]}) would also admit {', '.join(map(str, gaps[:5]))}"
            f"{', ...' if len(gaps) > 5 else ''} as a class; write the classes as text in the CSV (e.g. "
            f"{name}_{values[0]}), or use --task regression"
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


# ---------------------------------------------------------------------------------------------------- init


def default_name(data: Path) -> str:
    """A project name from the data's file or folder name: lowercase, [a-z0-9_-] ("Penguins Size.csv" ->
    "penguins_size")."""
    stem = data.stem if data.suffix.lower() == ".csv" else data.name
    name = re.sub(r"[^a-z0-9_-]+", "_", stem.lower()).strip("_-")
    return name or "project"


def _command(
    data: Path | str,
    label: str,
    task: str,
    positive: str | None,
    name: str | None,
    dir: Path | str | None,
    ignore: Iterable[str] = (),
) -> str:
    args = ["tfxp", "init", "--data", str(data), "--label", label]
    for flag, value in (
        ("--task", None if task == "auto" else task),
        ("--positive", positive),
        ("--name", name),
        ("--dir", dir),
        *(("--ignore", column) for column in ignore),
    ):
        if value is not None:
            args += [flag, str(value)]
    return " ".join(shlex.quote(a) for a in args)


def name_in_use(name: str, output: Path | str) -> str | None:
    """A warning when `<output>/serving/<name>` already holds a model (`tfxp run`'s push target), else None."""
    serving = Path(output).resolve() / "serving" / name
    if not serving.is_dir() or not any(serving.iterdir()):
        return None
    return (
        f"a model named {name} is already pushed to {serving}: `tfxp run` refuses to push this project over it "
        "if its label, task, classes or inputs differ (a different model, not a new version); give this one "
        "its own name with --name"
    )


@dataclass
class Decisions:
    """Everything `tfxp init` decided from a DataProfile, and why.

    `lines`: one per decision, "name: evidence -> decision (why)" (columns in CSV order, then the label, its
    gates and the slices); `notes`: the same as comments for project.yaml (project.dumps keys); `warnings`:
    data that `tfxp run` will refuse or that needs a look; `remarks`: facts worth knowing (huge magnitudes).
    """

    label: project_lib.Label
    features: list[project_lib.Column]
    thresholds: list[project_lib.Gate]
    slices: list[str]
    lines: list[str]
    notes: dict[str, str]
    warnings: list[str]
    remarks: list[str] = field(default_factory=list)


def decide_project(
    profile: DataProfile,
    label: str,
    task: str = "auto",
    positive: str | None = None,
    ignore: Iterable[str] = (),
) -> Decisions:
    """The columns' kinds, the label's task and classes, the gates and the slices (rules: module docstring).

    `ignore`: columns made `kind: ignored` whatever the data says (--ignore). Raises InitError: `label` not a
    column (the columns are listed), the label only column, every other column ignored, and decide_label's
    refusals.
    """
    if label not in profile.header:
        raise InitError(f"--label {label!r} is not a column of {profile.data}; columns: {', '.join(profile.header)}")
    if len(profile.header) == 1:
        raise InitError(f"{profile.data} has no column besides the label {label}")
    ignored = set(ignore)
    label_spec, gates, label_lines = decide_label(profile.columns[label], task, positive)
    columns, lines, notes = [], [], {}
    for name in profile.header:
        if name == label:
            continue
        column, line = decide_column(profile.columns[name])
        if name in ignored:
            column = replace(column, kind="ignored", size=0, buckets=0)
            line = f"{line.split(' -> ', 1)[0]} -> {'ignored' if column.required else 'ignored, optional'} (--ignore)"
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
            warnings.append(
                f"{p.name}: {_plural(p.non_finite, 'infinite or NaN cell')} ({', '.join(p.non_finite_examples)}); "
                "tfxp run refuses them (the schema disallows NaN and infinity): fix or drop those rows"
            )
    warnings += _rare_class_warnings(label_spec, profile.columns[label])
    magnitude_notes = [_magnitude_note(c, profile.columns[c.name]) for c in columns if c.kind in _NUMERIC_KINDS]
    return Decisions(
        label=label_spec,
        features=columns,
        thresholds=gates,
        slices=slices,
        lines=lines,
        notes=notes,
        warnings=warnings,
        remarks=[n for n in magnitude_notes if n],
    )


_NUMERIC_KINDS = ("numeric", "bucketized")


def _rare_class_warnings(label: project_lib.Label, p: ColumnProfile) -> list[str]:
    """A class with fewer than RARE_CLASS_ROWS rows: TFX's 2:1 hash split puts each row in eval with
    probability 1/3, so the eval split misses all n rows of it with probability (2/3)**n."""
    if label.task == "regression":
        return []
    warnings = []
    for value in label.classes:
        n = p.counts.get(value, 0)
        if n < RARE_CLASS_ROWS:
            warnings.append(
                f"label {p.name}: class {value} has {_plural(n, 'row')}; the eval split (about 1/3 of rows, TFX's "
                f"2:1 hash split) holds none of them with probability {(2 / 3) ** n:.0%}, and then nothing "
                f"measures it"
                + (" (AUC needs both classes)" if label.task == "binary" else "")
                + ": add rows of it, or merge it into another class"
            )
    return warnings


def _magnitude_note(column: project_lib.Column, p: ColumnProfile) -> str | None:
    """A numeric column whose values go beyond float32's exact integers (2**24): said, not changed."""
    if p.min is None or p.max is None:
        return None
    largest = max(abs(p.min), abs(p.max))
    if largest <= FLOAT32_EXACT_INT:
        return None
    return (
        f"{column.name}: {column.kind} with |values| up to {largest:,.0f}, beyond 2**24 = {FLOAT32_EXACT_INT:,} "
        "(the integers float32 holds exactly): preprocessing must not cast it to float32 before centring it; "
        "if it is an id or a code, make it kind: ignored"
    )


def _where(data: Path | str, name: str | None, dir: Path | str | None) -> tuple[Path, str, Path]:
    """(data, name, folder) resolved. Raises InitError: remote data, a bad name, a folder that already holds
    a project."""
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
    return data, name, folder


def _schema_header(command: str, today: str, profile: DataProfile, label: project_lib.Label) -> str:
    """The comment at the top of schema.pbtxt: who wrote it, and what init tightened."""
    return (
        f"Inferred by `{command}` on {today} (TFDV, {profile.rows} rows).\n"
        "A starting schema: curate it (value ranges, closed vocabularies) before relying on it. Tightened:\n"
        "- disallow_nan / disallow_inf on every FLOAT feature (tfxp run refuses a schema without them);\n"
        f"- the label {label.column} is kept out of the SERVING environment (requests carry no label);\n"
        + (
            "- the label's values are its domain (a new class is an anomaly, not a wrong class index);\n"
            if label.task != "regression"
            else ""
        )
        + "- categorical_int columns are bounded to 0..size-1.\n"
        + (
            "Typed with project.yaml's missing_values cells read as missing (CsvExampleGen reads them so).\n"
            if profile.missing_values
            else ""
        )
        + "Features with `shape` are required in every row; the others may be blank."
    )


def _spec_header(command: str, today: str) -> str:
    """The comment at the top of project.yaml: who wrote it, and the vocabulary of its fields."""
    return (
        f"Written by `{command}` on {today}; edit freely.\n"
        "kind: numeric (z-scored) | bucketized (float, `buckets: N` quantiles) | categorical_int (0..size-1)\n"
        "      | vocabulary (top-k values) | ignored (validated by the schema, not a model input)\n"
        "missing_values: cell texts read as missing (placeholders such as '?' in a numeric column).\n"
        "required: false = may be blank (then schema.pbtxt gives it no shape). Comments: what tfxp init saw.\n"
        "thresholds: blessing gates on the overall eval slice, from the naive predictor on this data."
    )


def _write(
    project: project_lib.Project, schema, decided: Decisions, profile: DataProfile, command: str
) -> project_lib.Project:
    """Writes project.dir/schema.pbtxt and project.yaml and loads them back (they must make a valid
    project); on any error removes what it wrote (and the folder, if it made it), then re-raises."""
    from google.protobuf import text_format

    folder, today = project.dir, datetime.date.today().isoformat()
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    schema_file, project_file = folder / project_lib.SCHEMA_FILE, folder / project_lib.PROJECT_FILE
    schema_header = _schema_header(command, today, profile, decided.label)
    try:
        schema_file.write_text(
            "".join(f"# {line}\n" for line in schema_header.splitlines()) + text_format.MessageToString(schema),
            encoding="utf-8",
        )
        project_lib.dump(project, project_file, header=_spec_header(command, today), notes=decided.notes)
        return project_lib.load(folder)  # the files just written must make a valid project
    except BaseException:
        for written in (schema_file, project_file):
            written.unlink(missing_ok=True)
        if created:  # leave nothing behind: a folder we made holds nothing else
            folder.rmdir()
        raise


def init_project(
    data: Path | str,
    label: str,
    task: str = "auto",
    positive: str | None = None,
    name: str | None = None,
    dir: Path | str | None = None,
    beam_args: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
    output: Path | str = "output",
) -> InitResult:
    """Reads the CSV data, decides the project and writes DIR/project.yaml and DIR/schema.pbtxt.

    `data`: a CSV file or a folder of CSV files (local). `label`: the label column. `task`: "auto" (see the
    module docstring) or the task. `positive`: a binary label's positive value, as in the CSV. `name`: the
    project name (default from the data's name). `dir`: the folder to write (default ./<name>). `beam_args`:
    Beam options for the statistics (default: in-memory DirectRunner). `ignore`: columns made `kind: ignored`
    (--ignore; their names need not be TensorFlow names). `output`: where `tfxp run` will push (`tfxp run
    --output`), checked for a model already pushed under this name.

    Raises InitError (bad arguments, a column name TensorFlow refuses for an input, a label that can't be
    learned, DIR already holding a project),
    tfxp.pipeline.csv_files.DataFileError (a file that can't be read as the dataset, by file:line),
    NoCsvFilesError / FileNotFoundError (no data there).
    """
    ignore = list(dict.fromkeys(ignore))
    command = _command(data, label, task, positive, name, dir, ignore)
    if task not in TASK_CHOICES:
        raise InitError(f"--task {task!r}: one of {', '.join(TASK_CHOICES)}")
    data, name, folder = _where(data, name, dir)
    # Header checks first: a name TensorFlow refuses is said in a fraction of a second, not after statistics.
    _, _, header = read_header(data)
    if label not in header:
        raise InitError(f"--label {label!r} is not a column of {data}; columns: {', '.join(header)}")
    check_column_names(header, label, ignore)
    profile = profile_data(data, beam_args)
    decided = decide_project(profile, label, task, positive, ignore)
    in_use = name_in_use(name, output)
    if in_use is not None:
        decided.warnings.append(in_use)
    project = project_lib.Project(
        name=name,
        label=decided.label,
        features=tuple(decided.features),
        thresholds=tuple(decided.thresholds),
        slices=tuple(decided.slices),
        data=str(data),
        dir=folder,
    )
    loaded = _write(
        project, build_schema(profile.statistics, decided.label, decided.features), decided, profile, command
    )
    return InitResult(
        project=loaded,
        dir=folder,
        project_file=folder / project_lib.PROJECT_FILE,
        schema_file=folder / project_lib.SCHEMA_FILE,
        rows=profile.rows,
        decisions=decided.lines,
        warnings=decided.warnings,
        remarks=decided.remarks,
    )
