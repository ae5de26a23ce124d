"""Checking that CSV input files can be read as one dataset, before any component runs.

TFX's CsvExampleGen reads the header of every file by splitting its first line
on commas (`tfx.utils.io_utils.load_csv_column_names`), decodes lines as UTF-8
deep inside Beam, and fails with messages that name neither file nor line. This
module (no TensorFlow) reads the files the way CsvExampleGen's CSV parser does
(Python's `csv` module, RFC 4180 quoting, multi-line quoted cells, blank lines
skipped) and raises `DataFileError(path, line, problem)` for anything it could
not read correctly, so `tfxp run` refuses at once with exit 3.

Accepted dialects: comma-separated, UTF-8 with or without a byte-order mark
(Excel's "CSV UTF-8"), any cell quoted or not (R's `write.csv`, pandas
`QUOTE_ALL`), `\\n` or `\\r\\n` line ends.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CSV_PATTERN = "*.csv"
_BOM = "\ufeff"
_GZIP_MAGIC = b"\x1f\x8b"


# Cells whose Arrow parse (pyarrow.compute.cast) equals Python's int() / float(): RE2 patterns of a whole cell,
# shared by CsvExampleGen's executor and `tfxp init`'s scan.
INT_CELL = r"^-?[0-9]+$"
NUMBER_CELL = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"


class NoCsvFilesError(ValueError):
    """`--data` names a folder without any `*.csv` file (a usage error, not a data defect)."""


class DataFileError(ValueError):
    """A CSV file that can't be read as part of the dataset. `line` is 1-based, None when not known."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass
class CsvDataset:
    """What the check found: the shared header, and per file its data rows, sha256 and size (the file's
    bytes, hashed while they were read: no second pass)."""

    header: list[str]
    rows: dict[str, int] = field(default_factory=dict)  # file -> data rows (blank lines not counted)
    sha256: dict[str, str] = field(default_factory=dict)  # file -> hex digest of its bytes
    sizes: dict[str, int] = field(default_factory=dict)  # file -> bytes

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def list_csv_files(data: Path) -> list[Path]:
    """`data` itself if it is a file, else the `*.csv` files directly in that folder, sorted.

    Raises NoCsvFilesError for a folder without CSV files, FileNotFoundError if `data` doesn't exist.
    """
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such file or folder")
    # Every match, folders and broken links included: CsvExampleGen's glob reads them all.
    files = sorted(data.glob(CSV_PATTERN))
    if not files:
        raise NoCsvFilesError(f"{data} holds no {CSV_PATTERN} file")
    return files


def parse_header(first_line: str) -> list[str]:
    """Column names from a CSV header line, as the data rows are parsed (quotes removed, BOM dropped).

    Used by both this check and the pipeline's CsvExampleGen executor, so the two
    can't disagree about the columns.
    """
    first_line = first_line.removeprefix(_BOM).rstrip("\r\n")
    return next(csv.reader([first_line], strict=True), [])


class _Lines:
    """A file's lines as text for `csv.reader`, keeping each line's count of '"' characters.

    A non-UTF-8 line is a DataFileError naming the line (not a garbled decoder error).
    """

    def __init__(self, path: Path, raw_lines):
        self._path, self._raw = path, raw_lines
        self.quotes = 0  # '"' characters on the lines yielded so far
        self.hash = hashlib.sha256()  # of every byte read (the file's content once read to its end)
        self.size = 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self._raw, start=1):
            self.hash.update(raw)
            self.size += len(raw)
            if number == 1 and raw.startswith(_GZIP_MAGIC):
                raise DataFileError(self._path, "gzip-compressed, not a text CSV file; decompress it first", 1)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFileError(
                    self._path,
                    f"not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r} at column {exc.start + 1}); "
                    "save the file as UTF-8",
                    number,
                ) from None
            self.quotes += raw.count(b'"')
            yield text.removeprefix(_BOM) if number == 1 else text


def _header_problem(header: list[str]) -> str | None:
    if not header or header == [""]:
        return "the first line (the header) is empty"
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        return f"one column named {header[0][:60]!r}: the file looks delimited by something other than ','"
    unnamed = [i + 1 for i, name in enumerate(header) if not name.strip()]
    if unnamed:
        return f"column(s) {unnamed} of the header have no name"
    seen: set[str] = set()
    duplicates = sorted({name for name in header if name in seen or seen.add(name)})
    if duplicates:
        return f"duplicate column name(s) in the header: {', '.join(duplicates)}"
    return None


def _header_difference(header: list[str], expected: list[str], first_file: str) -> str:
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if not missing and not extra:
        return f"same columns as {first_file} but in another order; every file of a dataset needs one header"
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"extra {', '.join(extra)}")
    return f"header differs from {first_file}'s: {'; '.join(parts)}"


def _csv_problem(exc: csv.Error) -> str:
    if "new-line character seen in unquoted field" in str(exc):
        return "a line ends with a bare CR (classic Mac line endings); save the file with LF or CRLF line endings"
    return f"not valid CSV: {exc}"


def check_file(path: Path, expected_header: list[str] | None = None, first_file: str = "") -> CsvDataset:
    """Reads one file completely. Raises DataFileError naming the file and the line of the first defect."""
    try:
        if path.is_dir():
            raise DataFileError(
                path,
                "not a regular file (a folder?); CsvExampleGen reads every *.csv match, so "
                "move it out of the data folder",
            )
        with open(path, "rb") as f:
            return _check_open_file(path, f, expected_header, first_file)
    except OSError as exc:  # a broken link, no permission, an I/O error
        raise DataFileError(path, f"can't be read: {exc.strerror or exc}") from None


def _check_open_file(path: Path, f, expected_header: list[str] | None, first_file: str) -> CsvDataset:
    if not f.read(1):
        raise DataFileError(path, "empty file (no header line)", 1)
    f.seek(0)
    lines = _Lines(path, f)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataFileError(path, f"header: {_csv_problem(exc)}", 1) from None
    problem = _header_problem(header)
    if problem:
        raise DataFileError(path, problem, 1)
    if expected_header is not None and header != expected_header:
        raise DataFileError(path, _header_difference(header, expected_header, first_file), 1)
    rows, first_line, quotes_before = 0, reader.line_num + 1, lines.quotes
    try:
        for record in reader:
            if not record:  # blank line: CsvExampleGen skips it too
                first_line, quotes_before = reader.line_num + 1, lines.quotes
                continue
            if len(record) != len(header):
                raise DataFileError(path, f"{len(record)} fields, the header has {len(header)}", reader.line_num)
            # CsvExampleGen joins physical lines while their count of '"' is odd
            # (tfx 1.16 _CsvLineBuffer): a bare quote inside an unquoted cell
            # would make it swallow the following rows.
            if (lines.quotes - quotes_before) % 2:
                raise DataFileError(
                    path,
                    "a '\"' inside an unquoted cell; quote the cell and double the quote "
                    '(as "Joe 5"" Cab") or remove it',
                    first_line,
                )
            if not any(record):
                raise DataFileError(
                    path,
                    "a row without any value (e.g. ',,,' left at the end by a spreadsheet); delete it",
                    reader.line_num,
                )
            rows += 1
            first_line, quotes_before = reader.line_num + 1, lines.quotes
    except csv.Error as exc:
        # e.g. an unterminated quote ("unexpected end of data") or a NUL byte.
        raise DataFileError(path, _csv_problem(exc), reader.line_num) from None
    # csv.reader read every line (to StopIteration): the hash is the whole file's.
    return CsvDataset(
        header=header, rows={str(path): rows}, sha256={str(path): lines.hash.hexdigest()}, sizes={str(path): lines.size}
    )


def check_dataset(files: list[Path]) -> CsvDataset:
    """Checks every file and that they share one header. Raises DataFileError at the first defect."""
    dataset: CsvDataset | None = None
    for path in files:
        found = check_file(path, dataset.header if dataset else None, str(files[0]))
        if dataset is None:
            dataset = found
        else:
            dataset.rows.update(found.rows)
            dataset.sha256.update(found.sha256)
            dataset.sizes.update(found.sizes)
    if dataset is None:
        raise NoCsvFilesError("no CSV file given")
    return dataset
