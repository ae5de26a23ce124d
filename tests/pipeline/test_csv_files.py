"""CSV input checks: valid dialects are read, files that can't be one dataset are refused with file and line."""

from __future__ import annotations

import csv
import gzip

import pytest
from taxi_data import read_csv_rows

from tfxp.pipeline.csv_files import (
    DataFileError,
    NoCsvFilesError,
    check_dataset,
    check_file,
    list_csv_files,
    parse_header,
)

HEADER = ["a", "b", "c"]


def _write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _refused(path, line: int | None, *words: str, expected_header=None) -> DataFileError:
    with pytest.raises(DataFileError) as info:
        check_file(path, expected_header, "first.csv")
    error = info.value
    assert error.path == str(path) and error.line == line, str(error)
    assert str(error).startswith(f"{path}:{line}:" if line else f"{path}:")
    for word in words:
        assert word in error.problem, error.problem
    return error


@pytest.mark.parametrize(
    "text",
    [
        "a,b,c\n1,2,x\n",
        "\ufeffa,b,c\r\n1,2,x\r\n",  # Excel's "CSV UTF-8": a byte-order mark, CRLF
        '"a","b","c"\n"1","2","x"\n',  # R's write.csv / pandas QUOTE_ALL
        '\ufeff"a","b","c"\n"1","2","x, with a comma"\n',
        'a,b,c\n1,2,"two\nlines"\n',  # a quoted cell across lines: CsvExampleGen joins them too
        "a,b,c\n\n1,2,x\n\n",  # blank lines are skipped, as CsvExampleGen does
    ],
)
def test_valid_dialects_give_the_plain_header(tmp_path, text):
    found = check_file(_write(tmp_path / "d.csv", text))
    assert found.header == HEADER
    assert found.total_rows == 1


def test_parse_header_matches_the_row_parser():
    assert parse_header('\ufeff"pickup community",fare,"a,b"\r\n') == ["pickup community", "fare", "a,b"]


def test_the_real_taxi_file_and_its_excel_and_r_exports(tmp_path):
    rows = read_csv_rows(limit=50)
    for name, encoding, quoting in (("excel.csv", "utf-8-sig", csv.QUOTE_MINIMAL), ("r.csv", "utf-8", csv.QUOTE_ALL)):
        with open(tmp_path / name, "w", newline="", encoding=encoding) as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=quoting)
            writer.writeheader()
            writer.writerows(rows)
    dataset = check_dataset(list_csv_files(tmp_path))
    assert dataset.header == list(rows[0]) and dataset.total_rows == 100


def test_a_ragged_row_names_its_line(tmp_path):
    _refused(_write(tmp_path / "d.csv", "a,b,c\n1,2,3\n1,2\n"), 3, "2 fields", "header has 3")
    _refused(_write(tmp_path / "e.csv", "a,b,c\n1,2,3,4\n"), 2, "4 fields")


def test_non_utf8_bytes_name_the_line(tmp_path):
    _refused(_write(tmp_path / "d.csv", "a,b,c\n1,2,x\n1,2,caf\xe9\n".encode("latin-1")), 3, "not UTF-8", "UTF-8")


def test_compressed_and_empty_files(tmp_path):
    _refused(_write(tmp_path / "z.csv", gzip.compress(b"a,b,c\n1,2,3\n")), 1, "gzip")
    _refused(_write(tmp_path / "empty.csv", b""), 1, "empty file")
    _refused(_write(tmp_path / "blank-header.csv", "\n1,2,3\n"), 1, "header")


@pytest.mark.parametrize(
    "header, words",
    [
        ("a,b,a", ["duplicate", "a"]),
        ("a,,c", ["no name"]),
        ("a;b;c", ["delimited"]),
    ],
)
def test_headers_that_cannot_name_columns(tmp_path, header, words):
    _refused(_write(tmp_path / "d.csv", f"{header}\n1\n"), 1, *words)


def test_broken_quoting_and_nul_bytes(tmp_path):
    _refused(_write(tmp_path / "q.csv", 'a,b,c\n1,2,"never closed\n3,4,5\n'), 3, "not valid CSV")
    _refused(_write(tmp_path / "n.csv", "a,b,c\n1,2,\x003\n"), 2, "not valid CSV")


def test_files_of_one_dataset_share_one_header(tmp_path):
    first = _write(tmp_path / "1.csv", "a,b,c\n1,2,3\n")
    _write(tmp_path / "2.csv", "a,b,d\n1,2,3\n")
    with pytest.raises(DataFileError) as info:
        check_dataset(list_csv_files(tmp_path))
    assert info.value.path == str(tmp_path / "2.csv") and info.value.line == 1
    assert "missing c" in info.value.problem and "extra d" in info.value.problem and str(first) in info.value.problem
    _write(tmp_path / "2.csv", "c,b,a\n3,2,1\n")  # same names, other order: rows would be misread
    with pytest.raises(DataFileError, match="another order"):
        check_dataset(list_csv_files(tmp_path))
    # A BOM or quotes don't make a header different.
    _write(tmp_path / "2.csv", '\ufeff"a","b","c"\n"1","2","3"\n')
    assert check_dataset(list_csv_files(tmp_path)).total_rows == 2


def test_header_only_files_have_no_rows(tmp_path):
    assert check_dataset([_write(tmp_path / "d.csv", "a,b,c\n")]).total_rows == 0


def test_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "other" / "notes.txt", "a,b\n")
    with pytest.raises(NoCsvFilesError, match=r"\*\.csv"):
        list_csv_files(tmp_path / "empty")
    with pytest.raises(NoCsvFilesError):
        list_csv_files(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        list_csv_files(tmp_path / "missing")


def test_a_bare_quote_in_an_unquoted_cell_names_its_line(tmp_path):
    # CsvExampleGen would join this line with the next ones until the quotes balance.
    _refused(_write(tmp_path / "d.csv", 'a,b,c\n1,2,x\n1,2,Joe 5" Cab\n3,4,y\n'), 3, "unquoted cell")
    # Quotes in pairs are read the same by both parsers.
    assert check_file(_write(tmp_path / "e.csv", 'a,b,c\n1,2,Joe "5" Cab\n')).total_rows == 1


def test_rows_without_any_value_name_their_line(tmp_path):
    _refused(_write(tmp_path / "d.csv", "a,b,c\n1,2,x\n,,\n"), 3, "without any value")


def test_classic_mac_line_endings_are_named(tmp_path):
    _refused(_write(tmp_path / "d.csv", "a,b,c\r1,2,x\r3,4,y\r"), 1, "bare CR", "LF")


def test_folders_links_and_unreadable_files_matching_the_pattern(tmp_path):
    data = tmp_path / "data"
    _write(data / "a.csv", "a,b,c\n1,2,3\n")
    (data / "b.csv").mkdir()  # CsvExampleGen's glob includes it
    files = list_csv_files(data)
    assert files == [data / "a.csv", data / "b.csv"]
    with pytest.raises(DataFileError, match="not a regular file") as info:
        check_dataset(files)
    assert info.value.path == str(data / "b.csv")
    (data / "b.csv").rmdir()
    (data / "c.csv").symlink_to(tmp_path / "missing.csv")
    with pytest.raises(DataFileError, match="can't be read") as info:
        check_dataset(list_csv_files(data))
    assert info.value.path == str(data / "c.csv")
