"""The reference on-device runtime (LiteRT or tflite-runtime) and `tfxp mobile-predict` / `tfxp convert`."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfxp.mobile import runtime
from tfxp.mobile.runtime import MobileModel, ModelSpecError
from tfxp.pipeline.cli import main
from tfxp.serving.client import RowError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_runtime_predictions_equal_the_converters_check(converted, eval_rows):
    from tfxp.mobile import convert as C

    result, saved_model = converted
    reference = C.reference_probabilities(saved_model, eval_rows, result.params)
    labels = C.labels(saved_model, eval_rows)
    for variant in ("float", "quant"):
        model = MobileModel(result.output_dir, variant)
        assert model.version == 3 and model.variant == variant
        got = np.asarray(model.predict(eval_rows), np.float32)
        direct = runtime.TFLiteModel(Path(result.output_dir) / runtime.VARIANT_FILES[variant]).run(
            runtime.columns(eval_rows, model.inputs)
        )
        np.testing.assert_array_equal(got, direct)
        report = result.variants[variant].parity
        assert C._auc(labels, got) == report.auc
        assert float(np.max(np.abs(got.astype(np.float64) - reference))) == report.max_abs_diff
    assert MobileModel(result.output_dir).variant == "quant"  # the spec's default
    as_bytes = MobileModel(result.output_dir, "float", signature="serving_bytes")
    assert as_bytes.predict(eval_rows) == MobileModel(result.output_dir, "float").predict(eval_rows)


def test_repeated_calls_reuse_allocations_without_changing_results(converted, eval_rows):
    """Same-shaped calls skip the runner's resize/allocate; results must equal a fresh interpreter's."""
    result, _ = converted
    path = Path(result.output_dir) / runtime.VARIANT_FILES["float"]
    spec = MobileModel(result.output_dir, "float").inputs
    reused = runtime.TFLiteModel(path)
    for batch in ([eval_rows[0]], [eval_rows[1]], [eval_rows[2]], eval_rows[3:8], eval_rows[8:13], [eval_rows[13]]):
        cols = runtime.columns(batch, spec)
        np.testing.assert_array_equal(reused.run(cols), runtime.TFLiteModel(path).run(cols))
    assert reused._allocated_for is not None


def test_runtime_does_not_import_tensorflow(converted, eval_rows, tmp_path):
    result, _ = converted
    rows = _write_csv(tmp_path / "rows.csv", eval_rows[:20])
    code = (
        "import csv, json, sys\n"
        "from tfxp.mobile.runtime import MobileModel\n"
        f"rows = list(csv.DictReader(open({str(rows)!r})))\n"
        f"p = MobileModel({result.output_dir!r}).predict(rows)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'))\n"
        "print(json.dumps({'n': len(p), 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"n": 20, "heavy": []}


def test_rows_read_like_the_serving_client(converted, eval_rows):
    """JSON values, None, NaN, missing keys and CSV strings all mean the same thing."""
    result, _ = converted
    model = MobileModel(result.output_dir, "float")
    row = eval_rows[0]
    as_json = {k: (None if v == "" else v) for k, v in row.items()}
    for key in ("fare", "trip_miles", "pickup_latitude"):
        if as_json[key] is not None:
            as_json[key] = float(as_json[key])
    as_json["trip_seconds"] = None
    as_csv = dict(row, trip_seconds="")
    without_key = {k: v for k, v in row.items() if k != "trip_seconds"}
    nan_float = dict(row, trip_seconds="", dropoff_latitude=float("nan"))
    blank_float = dict(row, trip_seconds="", dropoff_latitude="")
    p = model.predict([as_json, as_csv, without_key, nan_float, blank_float])
    # Same inputs, same answer (up to float rounding: rows of a batch may take different SIMD kernels).
    assert p[1] == pytest.approx(p[0], abs=1e-7) and p[2] == pytest.approx(p[0], abs=1e-7)
    assert p[4] == pytest.approx(p[3], abs=1e-7) and abs(p[3] - p[0]) > 1e-6
    assert model.predict([]) == []
    with pytest.raises(RowError, match="row 1: trip_start_hour"):
        model.predict([row, dict(row, trip_start_hour="3.5")])
    with pytest.raises(RowError, match="int64 range"):
        model.predict([dict(row, trip_seconds=str(2**70))])


def test_runtime_checks_the_spec_against_the_model(converted, tmp_path):
    result, _ = converted
    copy = tmp_path / "copy"
    shutil.copytree(result.output_dir, copy)
    spec = json.loads((copy / "model_spec.json").read_text())
    fare = next(i for i in spec["inputs"] if i["name"] == "fare")
    fare["dtype"] = "int64"  # fare is float32 in the model
    (copy / "model_spec.json").write_text(json.dumps(spec))
    with pytest.raises(ModelSpecError, match="do not match"):
        MobileModel(copy)
    with pytest.raises(ModelSpecError, match="not found"):
        MobileModel(tmp_path)
    with pytest.raises(ModelSpecError, match="variant"):
        MobileModel(result.output_dir, "int8")


def test_interpreter_prefers_litert_then_tflite_runtime_then_tensorflow(monkeypatch):
    """Both runtimes are in the lock (the `mobile` extra): LiteRT first; a name or $TFXP_TFLITE_RUNTIME
    picks one; an uninstalled runtime is skipped, or refused when named."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from tensorflow.lite.python.interpreter import Interpreter as TFInterpreter
    from tflite_runtime.interpreter import Interpreter as TFLiteRuntime

    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    assert runtime.interpreter_class() is LiteRT
    assert runtime.runtime_of(LiteRT) == {"package": "ai-edge-litert", "version": "2.3.0"}
    assert runtime.interpreter_class("tflite-runtime") is TFLiteRuntime
    assert runtime.runtime_of(TFLiteRuntime) == {"package": "tflite-runtime", "version": "2.14.0"}
    monkeypatch.setenv(runtime.RUNTIME_ENV, "tensorflow")
    assert runtime.interpreter_class() is TFInterpreter
    monkeypatch.setenv(runtime.RUNTIME_ENV, "tflite")
    with pytest.raises(ValueError, match="unknown TFLite runtime 'tflite'"):
        runtime.interpreter_class()
    monkeypatch.delenv(runtime.RUNTIME_ENV)
    # Not installed (sys.modules None makes the import fail): the next one.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert runtime.interpreter_class() is TFLiteRuntime
    with pytest.raises(ImportError, match="pip install ai-edge-litert"):
        runtime.interpreter_class("ai-edge-litert")
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    # A wheel without the `mobile` extra: TensorFlow's own interpreter, which runs the model the same.
    assert runtime.interpreter_class() is TFInterpreter
    monkeypatch.setitem(sys.modules, "tensorflow.lite.python.interpreter", None)
    with pytest.raises(ImportError, match="ai-edge-litert or tflite-runtime"):
        runtime.interpreter_class()


@pytest.mark.parametrize("variant", ["float", "quant"])
def test_litert_and_tflite_runtime_agree(converted, eval_rows, odd_rows, variant):
    """LiteRT 2.3 and tflite-runtime 2.14 give the same answers (and the same no-answer rows) on eval
    rows and rows with every kind of missing and edge value (the parity gate's contract rows: blank,
    infinite, 1e30, int64 extremes, unseen and odd strings), through both signatures. (Before
    features.Z_LIMIT, LiteRT's XNNPACK answered NaN for fare = 1e30 where tflite-runtime said 0.0.)"""
    from tfxp.mobile.parity import contract_rows

    result, _ = converted
    rows = eval_rows[:200] + odd_rows + contract_rows(eval_rows, result.params)
    for signature in runtime.SIGNATURES:
        litert = MobileModel(result.output_dir, variant, signature=signature, runtime="ai-edge-litert")
        legacy = MobileModel(result.output_dir, variant, signature=signature, runtime="tflite-runtime")
        assert litert.model.runtime["package"] == "ai-edge-litert"
        assert legacy.model.runtime["package"] == "tflite-runtime"
        a, b = np.array(litert.predict(rows)), np.array(legacy.predict(rows))
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert np.isnan(a).any() and not np.isnan(a).all()
        # Float: float32 rounding. Quantized: dynamic-range kernels quantize activations per call, and
        # LiteRT's XNNPACK does it differently from tflite-runtime's kernels (measured 1.6e-4 on taxi).
        tolerance = 1e-6 if variant == "float" else 1e-3
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=tolerance)
        # One row at a time, as an app runs it.
        for row, expected in zip(rows[:20], a[:20], strict=True):
            one = litert.predict([row])[0]
            assert (math.isnan(one) and math.isnan(expected)) or abs(one - expected) <= tolerance


def test_tfxp_mobile_predict(converted, eval_rows, odd_rows, tmp_path):
    result, _ = converted
    rows = eval_rows[:5] + odd_rows
    path = _write_csv(tmp_path / "rows.csv", rows)
    runner = CliRunner()
    out = runner.invoke(main, ["mobile-predict", "--model", result.output_dir, "--rows", str(path), "--json"])
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    assert answer["model"] == "taxi" and answer["version"] == 3 and answer["variant"] == "quant"
    assert answer["predictions"] == MobileModel(result.output_dir).predict(rows)
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = runner.invoke(
        main, ["mobile-predict", "--model", result.output_dir, "--rows", str(jsonl), "--variant", "float"]
    )
    assert out.exit_code == 0, out.output
    assert "probability" in out.output and len(out.output.strip().splitlines()) == len(rows) + 2
    bad = _write_csv(tmp_path / "bad.csv", [dict(eval_rows[0], trip_start_day="Monday")])
    out = runner.invoke(main, ["mobile-predict", "--model", result.output_dir, "--rows", str(bad)])
    assert out.exit_code == 2 and "trip_start_day" in out.output
    out = runner.invoke(main, ["mobile-predict", "--model", str(tmp_path), "--rows", str(path)])
    assert out.exit_code == 1 and "model_spec.json" in out.output


def test_tfxp_convert(trained_model, transform_dir, eval_rows, tmp_path):
    # A pushed layout: serving/<name>/<version>/ gives the version and name.
    pushed = tmp_path / "serving" / "taxi" / "17"
    shutil.copytree(trained_model[0], pushed)
    rows = _write_csv(tmp_path / "eval.csv", eval_rows[:300])
    out = tmp_path / "mobile" / "taxi" / "17"
    # No --transform-output: the SavedModel carries its Transform output.
    result = CliRunner().invoke(
        main, ["convert", "--saved-model", str(pushed), "--output", str(out), "--rows", str(rows), "--json"]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["model_version"] == 17 and answer["variants"]["float"]["written"]
    assert answer["variants"]["quant"]["parity"]["rows"] == 300
    spec = json.loads((out / "model_spec.json").read_text())
    assert spec["model_name"] == "taxi" and spec["model_version"] == 17
    assert len(MobileModel(out).predict(eval_rows[:3])) == 3
    # A rows file lacking the label or an input would gate parity on blanks: refused, named (exit 2).
    no_label = _write_csv(
        tmp_path / "no_label.csv", [{k: v for k, v in r.items() if k != "tips"} for r in eval_rows[:5]]
    )
    refused = CliRunner().invoke(
        main, ["convert", "--saved-model", str(pushed), "--output", str(tmp_path / "refused"), "--rows", str(no_label)]
    )
    assert refused.exit_code == 2 and "tips" in refused.output, refused.output
    assert not (tmp_path / "refused").exists()
    # A SavedModel without the copy needs --transform-output, and says so.
    shutil.rmtree(pushed / "assets.extra" / "transform_output")
    usage = CliRunner().invoke(main, ["convert", "--saved-model", str(pushed), "--output", str(out)])
    assert usage.exit_code == 2 and "--transform-output" in usage.output, usage.output
    # As users run it: the converter's C++ log lines go to <output>.log, not the console.
    explicit = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfxp.pipeline.cli",
            "convert",
            "--saved-model",
            str(pushed),
            "--transform-output",
            transform_dir,
            "--output",
            str(tmp_path / "explicit"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert explicit.returncode == 0, explicit.stderr[-3000:]
    assert explicit.stderr == ""
    assert "tf_tfl_flatbuffer_helpers" in (tmp_path / "explicit.log").read_text()


def test_help_of_mobile_commands_does_not_import_tensorflow():
    code = (
        "import sys; from tfxp.pipeline.cli import main\n"
        "for args in (['convert', '--help'], ['mobile-predict', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'tensorflow_transform', 'tflite_runtime'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT, env={**os.environ}
    ).stdout
    lines = out.strip().splitlines()
    assert "Exit codes" in out and json.loads(lines[-1]) == []


def test_nan_is_null_in_json_output(converted, eval_rows, tmp_path):
    """A row missing a required value has no answer in every variant, the default (quant) included."""
    result, _ = converted
    path = _write_csv(tmp_path / "rows.csv", [dict(eval_rows[0], fare=""), eval_rows[1]])
    for variant in ([], ["--variant", "float"], ["--variant", "quant"]):
        out = CliRunner().invoke(
            main, ["mobile-predict", "--model", result.output_dir, "--rows", str(path), "--json", *variant]
        )
        assert out.exit_code == 0, out.output
        first, second = json.loads(out.output)["predictions"]
        assert first is None and 0 <= second <= 1, variant
    assert not math.isnan(MobileModel(result.output_dir, "quant").predict([eval_rows[0]])[0])


def _mobile_predict(model_dir, path, *extra):
    return CliRunner().invoke(
        main, ["mobile-predict", "--model", str(model_dir), "--rows", str(path), "--json", *extra]
    )


def test_mobile_predict_refuses_a_rows_file_without_model_inputs(converted, eval_rows, tmp_path):
    """Issue 10 item 15: a header of `foo,bar` printed probabilities (every input read as missing) and exit 0."""
    result, _ = converted
    foo = tmp_path / "foo.csv"
    foo.write_text("foo,bar\n1,2\n")
    out = _mobile_predict(result.output_dir, foo)
    assert out.exit_code == 2, out.output
    assert "has no column for the model inputs" in out.output and "required: " in out.output
    assert "trip_miles" in out.output and "fare" in out.output
    # Optional columns left out: refused, naming them, unless asked for.
    spec = {i["name"]: i for i in result.spec["inputs"]}
    optional = [name for name, i in spec.items() if not i["required"]]
    required_only = [{k: v for k, v in row.items() if k not in optional} for row in eval_rows[:3]]
    path = _write_csv(tmp_path / "required_only.csv", required_only)
    out = _mobile_predict(result.output_dir, path)
    assert out.exit_code == 2 and "required:" not in out.output and "--allow-missing-optional" in out.output
    assert all(name in out.output for name in optional)
    out = _mobile_predict(result.output_dir, path, "--allow-missing-optional")
    assert out.exit_code == 0, out.output
    blanks = [dict(row, **{name: "" for name in optional}) for row in eval_rows[:3]]
    assert json.loads(out.output)["predictions"] == MobileModel(result.output_dir).predict(blanks)
    # The flag never lets a required column go.
    no_fare = _write_csv(tmp_path / "no_fare.csv", [{k: v for k, v in r.items() if k != "fare"} for r in eval_rows[:2]])
    out = _mobile_predict(result.output_dir, no_fare, "--allow-missing-optional")
    assert out.exit_code == 2 and "required: fare" in out.output
    # JSONL: a key no row has is a missing column; a key some rows lack is a missing value there.
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(
        json.dumps({k: v for k, v in eval_rows[0].items() if k != "company"}) + "\n" + json.dumps(eval_rows[1]) + "\n"
    )
    out = _mobile_predict(result.output_dir, jsonl)
    assert out.exit_code == 0, out.output
    jsonl.write_text(json.dumps({k: v for k, v in eval_rows[0].items() if k != "company"}) + "\n")
    out = _mobile_predict(result.output_dir, jsonl)
    assert out.exit_code == 2 and "company" in out.output


def test_mobile_predict_refuses_a_csv_line_with_too_few_cells(converted, eval_rows, tmp_path):
    result, _ = converted
    path = _write_csv(tmp_path / "rows.csv", eval_rows[:2])
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1], lines[2].rsplit(",", 3)[0]]) + "\n")
    out = _mobile_predict(result.output_dir, path)
    assert out.exit_code == 2 and "rows.csv:3:" in out.output and "the header has" in out.output


def test_runtime_answers_as_the_task_shapes_it(generated):
    """A multiclass model answers K probabilities per row, a regression model one prediction: predict_raw's
    answers, and NaN in every value of a row without an answer (a required input blank)."""
    from tfxp.mobile import convert as C

    result = generated.result
    rows = generated.eval_rows[:20]
    reference = C.reference_outputs(generated.saved_model, rows, result.params)
    model = MobileModel(result.output_dir, "float")
    got = model.predict(rows)
    if generated.task == "multiclass":
        assert all(isinstance(row, list) and len(row) == 3 for row in got)
    else:
        assert all(isinstance(value, float) for value in got)
    np.testing.assert_allclose(np.asarray(got), reference, rtol=1e-5, atol=1e-5)
    unanswered = np.asarray(model.predict([dict(rows[0], x1=""), rows[1]]))
    assert np.isnan(unanswered[0]).all() and np.isfinite(unanswered[1]).all()
