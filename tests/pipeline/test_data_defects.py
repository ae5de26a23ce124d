"""Real `tfxp run`s on data with defects users report: each is refused by name, and nothing is pushed.

One output folder is shared, in order: an Excel (BOM) and an R (all quoted) export of
the same rows run end to end and push, while a second run on the same output is
refused at once; then NaN/inf cells, a one-row file (an empty split), a header-only
file and unreadable files are refused (exit 3) without replacing the pushed model.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_harness import start_tfxp_run, tfxp_run, write_csv
from taxi_data import read_csv_rows

pytestmark = pytest.mark.slow

NAME = "taxi"
ROWS = 3000
TRAIN_STEPS = 120
DOWNSTREAM = {"Transform", "Trainer", "Evaluator", "InfraValidator", "Pusher", "MobilePusher"}


def _run(data: Path, output: Path) -> tuple[int, dict, str]:
    return tfxp_run(data, output, name=NAME, train_steps=TRAIN_STEPS)


def _versions(output: Path) -> list[str]:
    base = output / "serving" / NAME
    return sorted(os.listdir(base)) if base.exists() else []


def _write_dialect(path: Path, rows: list[dict], encoding: str, quoting: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=quoting)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("defects")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_csv_rows(limit=ROWS)


@pytest.fixture(scope="module")
def dialect_run(workdir, rows):
    """A folder with Excel's "CSV UTF-8" (BOM) and R's write.csv (all quoted) halves; a second run races it."""
    data = workdir / "data" / "dialects"
    _write_dialect(data / "excel.csv", rows[: ROWS // 2], "utf-8-sig", csv.QUOTE_MINIMAL)
    _write_dialect(data / "r.csv", rows[ROWS // 2 :], "utf-8", csv.QUOTE_ALL)
    out = workdir / "out"
    first = start_tfxp_run(data, out, name=NAME, train_steps=TRAIN_STEPS)
    try:
        # Wait until the first run is inside the pipeline, then start the second.
        for line in first.stderr:
            if "CsvExampleGen" in line:
                break
        started = time.monotonic()
        second = start_tfxp_run(data, out, name=NAME, train_steps=TRAIN_STEPS)
        second_stdout, _ = second.communicate(timeout=120)
        second_seconds = time.monotonic() - started
        stdout, _ = first.communicate(timeout=900)
    finally:
        first.kill()
    return (first.returncode, json.loads(stdout), first.pid), (second.returncode, second_stdout, second_seconds)


def _defect_run(workdir: Path, name: str, rows: list[dict]) -> tuple[int, dict, str, list[str]]:
    data = write_csv(workdir / "data" / name / "taxi.csv", rows)
    before = _versions(workdir / "out")
    return (*_run(data, workdir / "out"), before)


def _assert_refused_before_transform(code: int, summary: dict, before: list[str], workdir: Path) -> None:
    assert code == 3, summary.get("error")
    assert summary["result"] == "anomalies"
    assert not DOWNSTREAM & {c["id"] for c in summary["components"]}, summary["components"]
    assert summary["pushed"] is False
    assert _versions(workdir / "out") == before, "a refused run must not push"


def test_excel_and_r_exports_run_end_to_end(dialect_run, workdir):
    (code, summary, _), _ = dialect_run
    assert code == 0, summary.get("error")
    assert summary["anomalies"] == []
    assert sum(summary["rows"].values()) == ROWS
    assert summary["metrics"]["Overall"]["auc"] > 0.8
    assert _versions(workdir / "out") == [summary["pushed_version"]]


def test_a_second_run_on_the_same_output_is_refused_at_once(dialect_run, workdir):
    (_, summary, first_pid), (code, stdout, seconds) = dialect_run
    assert code == 2
    refusal = json.loads(stdout)
    assert refusal["result"] == "usage" and "in use by another tfxp run" in refusal["error"]
    assert f"pid {first_pid}" in refusal["error"]
    assert seconds < 30, "refused at once, not after the first run"
    assert refusal["components"] == []
    # Each run that ran has its own log file.
    logs = os.listdir(workdir / "out" / "logs")
    assert os.path.basename(summary["log_file"]) in logs and str(first_pid) in summary["log_file"]


def test_nan_and_infinite_floats_stop_the_run_and_keep_the_pushed_model(dialect_run, workdir, rows):
    # Tips written as whole numbers (as R writes 2.0): TFX would guess INT for that FLOAT column.
    bad = [dict(r, tips=f"{float(r['tips']):.0f}") for r in rows]
    for i in range(0, len(bad), 50):  # 2% of the rows
        bad[i]["fare"] = "NaN"
    for i in range(7, len(bad), 300):
        bad[i]["trip_miles"] = "inf"
    code, summary, _, before = _defect_run(workdir, "nan", bad)
    assert before, "a good model was pushed before"
    _assert_refused_before_transform(code, summary, before, workdir)
    found = {(a["feature"], a["description"]) for a in summary["anomalies"]}
    assert any(f == "fare" and "NaN" in d for f, d in found), found
    assert any(f == "trip_miles" and "Inf" in d for f, d in found), found
    assert {f for f, _ in found} == {"fare", "trip_miles"}, found  # tips stays FLOAT
    assert "fare" in summary["error"] and "trip_miles" in summary["error"]
    assert str(workdir / "data" / "nan" / "taxi.csv") in summary["error"]  # the file, too


def test_an_empty_split_stops_the_run(dialect_run, workdir, rows):
    code, summary, _, before = _defect_run(workdir, "one-row", rows[:1])
    _assert_refused_before_transform(code, summary, before, workdir)
    assert sorted(summary["rows"].values()) == [0, 1]
    empty = [split for split, n in summary["rows"].items() if n == 0]
    assert [a["split"] for a in summary["anomalies"] if a["anomaly"] == "no rows"] == empty


def test_a_header_only_file_is_refused_before_any_component(dialect_run, workdir, rows):
    data = workdir / "data" / "header-only" / "taxi.csv"
    data.parent.mkdir(parents=True)
    data.write_text(",".join(rows[0]) + "\n")
    code, summary, _ = _run(data, workdir / "out")
    assert code == 3 and summary["components"] == []
    assert "no rows" in summary["error"] and str(data) in summary["error"]


@pytest.mark.parametrize("defect", ["ragged", "latin-1", "other-header"])
def test_files_that_cannot_be_one_dataset_name_file_and_line(dialect_run, workdir, rows, defect):
    folder = workdir / "data" / f"unreadable-{defect}"
    write_csv(folder / "a.csv", rows[:100])
    second = folder / "b.csv"
    write_csv(second, rows[100:200])
    lines = second.read_bytes().splitlines(keepends=True)
    if defect == "ragged":
        lines[41] = lines[41].rstrip(b"\r\n") + b",extra\n"
        where = f"{second}:42:"
    elif defect == "latin-1":
        i = next(i for i, line in enumerate(lines) if i > 5 and b"Cash" in line)
        lines[i] = lines[i].replace(b"Cash", "Caf\xe9".encode("latin-1"))
        where = f"{second}:{i + 1}:"
    else:
        lines[0] = lines[0].replace(b"fare", b"fare_usd")
        where = f"{second}:1:"
    second.write_bytes(b"".join(lines))
    started = time.monotonic()
    code, summary, _ = _run(folder, workdir / "out")
    assert code == 3, summary.get("error")
    assert where in summary["error"], summary["error"]
    assert summary["components"] == [] and time.monotonic() - started < 60
    assert summary["anomalies"][0]["feature"] == "(file)"


def test_a_folder_without_csv_is_a_usage_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("a,b\n1,2\n")
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfxp.pipeline.cli",
            "run",
            "--data",
            str(tmp_path / "data"),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "*.csv" in proc.stderr
    assert time.monotonic() - started < 10
