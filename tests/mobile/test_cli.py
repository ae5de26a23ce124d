"""`tfxp mobile-predict` and `tfxp convert` on real converted models (tfxp/cli/mobile.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from tfxp.pipeline.cli import main


def _write_csv(path: Path, rows: list[dict], blank_line_after: int | None = None) -> Path:
    """`rows` as a CSV file; a blank line after the row at `blank_line_after`, when given."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for index, row in enumerate(rows):
            writer.writerow(row)
            if index == blank_line_after:
                f.write("\n")
    return path


def _json_error(result) -> dict:
    """`--json`'s error object: the only stdout line; the same text on stderr; the exit code it names."""
    error = json.loads(result.stdout)
    assert error["exit_code"] == result.exit_code != 0, (result.stdout, result.stderr)
    assert " ".join(error["error"].split()) in " ".join(result.stderr.split())
    return error


def test_mobile_predict_names_the_bad_row_by_file_and_line(converted, eval_rows, tmp_path):
    result, _ = converted
    rows = [eval_rows[0], eval_rows[1], dict(eval_rows[2], trip_start_hour="abc")]
    path = _write_csv(tmp_path / "rows.csv", rows, blank_line_after=0)
    args = ["mobile-predict", "--model", result.output_dir, "--rows", str(path)]
    answer = CliRunner().invoke(main, args)
    assert answer.exit_code == 2, answer.output
    assert f"{path}:5: trip_start_hour: cannot read 'abc' as int64" in " ".join(answer.stderr.split())
    assert "row 2" not in answer.stderr and answer.stdout == ""
    error = _json_error(CliRunner().invoke(main, [*args, "--json"]))
    assert (error["exit_code"], error["file"], error["line"], error["column"]) == (2, str(path), 5, "trip_start_hour")


def test_mobile_predict_json_errors_are_json_on_stdout(converted, eval_rows, tmp_path):
    result, _ = converted
    rows = _write_csv(tmp_path / "rows.csv", eval_rows[:2])
    error = _json_error(
        CliRunner().invoke(main, ["mobile-predict", "--model", str(tmp_path), "--rows", str(rows), "--json"])
    )
    assert error["exit_code"] == 1 and f"{tmp_path / 'model_spec.json'}: not found" in error["error"]
    foo = tmp_path / "foo.csv"
    foo.write_text("foo,bar\n1,2\n")
    args = ["mobile-predict", "--model", result.output_dir, "--json", "--rows"]
    error = _json_error(CliRunner().invoke(main, [*args, str(foo)]))
    assert error["exit_code"] == 2 and "has no column for the model inputs" in error["error"]
    error = _json_error(CliRunner().invoke(main, [*args, str(tmp_path / "absent.csv")]))
    assert error["exit_code"] == 2 and "absent.csv" in error["error"]
    broken = tmp_path / "broken"
    broken.mkdir()
    spec = json.loads((Path(result.output_dir) / "model_spec.json").read_text())
    (broken / "model_spec.json").write_text(json.dumps(spec))
    for variant in spec["variants"].values():
        (broken / variant["file"]).write_bytes(b"not a flatbuffer")
    error = _json_error(
        CliRunner().invoke(main, ["mobile-predict", "--model", str(broken), "--json", "--rows", str(rows)])
    )
    assert error["exit_code"] == 1 and error["error"].startswith(f"{broken}: ") and "\n" not in error["error"]
