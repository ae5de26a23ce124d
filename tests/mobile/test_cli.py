"""`tfxp mobile-predict` and `tfxp convert` on real converted models (tfxp/cli/mobile.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
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


# -- class names: mobile-predict and predict show the predicted class and name each probability -----------


def _served(saved_model: str):
    """A real server on loopback serving the SavedModel's base path (its parent folder) under that folder's name."""
    from serving_harness import BackgroundServer

    from tfxp.serving.options import ServerOptions

    base = Path(saved_model).parent
    return BackgroundServer(
        ServerOptions(model_base_path=base, model_name=base.name, rest_port=0, grpc_port=0, poll_seconds=0)
    )


def _invoke_json(args: list[str]) -> dict:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_predict_and_mobile_predict_name_the_classes(generated, tmp_path):
    """Multiclass: per row the predicted class (the highest probability's) and each probability named by its
    class, from the served model (over REST and gRPC, both signatures) and from model_spec.json; the class
    order is the model's: the predicted classes agree with the labels of rows the model never saw.
    Regression: no classes, the output as before."""
    import numpy as np

    grades = list(generated.problem.label.classes or ())  # low, mid, high: the label's, in output order

    rows = generated.eval_rows[:40]
    path = _write_csv(tmp_path / "rows.csv", rows)
    mobile = _invoke_json(
        ["mobile-predict", "--model", generated.result.output_dir, "--rows", str(path), "--variant", "float"]
    )
    table = CliRunner().invoke(main, ["mobile-predict", "--model", generated.result.output_dir, "--rows", str(path)])
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0].split()
    server = _served(generated.saved_model)
    try:
        targets = {
            "rest": f"http://127.0.0.1:{server.server.rest_port}",
            "grpc": f"127.0.0.1:{server.server.grpc_port}",
        }
        served = {
            (protocol, signature): _invoke_json(
                [
                    "predict",
                    "--server",
                    target,
                    "--model",
                    generated.task,
                    "--rows",
                    str(path),
                    "--signature",
                    signature,
                ]
            )
            for protocol, target in targets.items()
            for signature in ("serving_default", "predict_raw")
        }
        served_table = CliRunner().invoke(
            main, ["predict", "--server", targets["grpc"], "--model", generated.task, "--rows", str(path)]
        )
    finally:
        server.stop()
    assert served_table.exit_code == 0 and served_table.stderr == "", served_table.output
    if generated.task == "regression":
        assert mobile["classes"] is None and mobile["predicted_classes"] is None
        assert header == ["row", "prediction"] and "predicted_class" not in served_table.stdout
        for answer in served.values():
            assert answer["classes"] is None and answer["predicted_classes"] is None
        return
    probabilities = np.array(mobile["predictions"])
    assert probabilities.shape == (40, 3)
    assert mobile["classes"] == grades  # model_spec.json's output.classes
    assert mobile["predicted_classes"] == [grades[k] for k in probabilities.argmax(axis=1)]
    accuracy = np.mean([p == r["grade"] for p, r in zip(mobile["predicted_classes"], rows, strict=True)])
    assert accuracy > 0.75, accuracy  # a permuted class order would get about a third right
    assert header == ["row", "predicted_class", *(f"probabilities[{g}]" for g in grades)]
    assert table.stdout.splitlines()[2].split()[1] == mobile["predicted_classes"][0]  # the variant's own
    assert served_table.stdout.splitlines()[0].split() == header
    for key, answer in served.items():
        assert answer["classes"] == grades, key  # the classification signature's classes
        np.testing.assert_allclose(answer["predictions"], probabilities, atol=1e-5, err_msg=str(key))
        assert answer["predicted_classes"] == mobile["predicted_classes"], key
        assert set(answer) == {
            "model", "version", "protocol", "signature", "outputs", "predictions", "classes", "predicted_classes"
        }  # fmt: skip


# TensorFlow's C++ log lines: glog style (`I0000 00:00:...`, `W1204 16:11:42...`), TF's own
# (`2026-12-04 16:11:42.794645: I tensorflow/...`), and what they say at start-up.
CPP_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |tensorflow/|oneDNN|cuda|TensorRT",
    re.MULTILINE | re.IGNORECASE,
)


def test_convert_keeps_tensorflows_cpp_lines_off_the_console(converted, eval_rows, tmp_path):
    """With --rows the SavedModel's problem was read, loading TensorFlow, before the log file took descriptor 2:
    CUDA probing, oneDNN and TF-TRT lines reached the console. As users run it, without TF_CPP_MIN_LOG_LEVEL."""
    _, saved_model = converted
    rows = _write_csv(tmp_path / "eval.csv", eval_rows[:200])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = tmp_path / "mobile"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfxp.cli",
            "convert",
            "--saved-model",
            saved_model,
            "--output",
            str(out),
            "--rows",
            str(rows),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not CPP_LOG_LINE.search(proc.stderr), proc.stderr
    assert proc.stderr == "", proc.stderr
    assert "parity on 200 rows" in proc.stdout and (out / "model_spec.json").exists()
    assert CPP_LOG_LINE.search(Path(f"{out}.log").read_text())  # they are in the log file instead
