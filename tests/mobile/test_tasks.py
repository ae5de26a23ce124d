"""The mobile conversion follows the model's task: a multiclass and a regression model of generated data.

Each `generated` model (tests/mobile/conftest.py) went through the real tf.Transform with the
project's preprocessing_fn, tfxp.models.model training and signatures.save, then `convert` on
200 rows neither saw. Everything the converter knows of the task it read from the SavedModel.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tfxp.mobile import convert as C, runtime
from tfxp.models import features as F

K = 3  # the generated multiclass label's classes (conftest.GRADES)


def _outputs(model: runtime.TFLiteModel, cols: dict, task: str) -> np.ndarray:
    """A variant's outputs as the task shapes them ([N, K] or [N]), whatever shape the runtime hands back."""
    flat = np.asarray(model.run(cols))
    n = len(next(iter(cols.values())))
    return flat.reshape([n, K] if task == "multiclass" else [n])


def _variants(generated):
    """(variant, signature, TFLiteModel) of every written variant and signature."""
    result = generated.result
    for variant in result.variants.values():
        for signature in ("serving_default", "serving_bytes"):
            yield (
                variant.name,
                signature,
                runtime.TFLiteModel(
                    Path(result.output_dir) / variant.file, signature=signature, output=generated.problem.output
                ),
            )


def test_the_problem_comes_from_the_saved_model(generated):
    result = generated.result
    assert result.problem == generated.problem  # read back from assets.extra/tfxp_problem.json
    assert [p.name for p in result.params] == ["x1", "x2", "x3", "color"]  # row_id is ignored, the label no input
    assert [p.optional for p in result.params] == [False, False, True, False]
    assert result.to_dict()["task"] == generated.task


def test_both_variants_pass_the_gate_of_their_task(generated):
    result = generated.result
    assert result.ok, result.rejected
    float_report, quant_report = result.variants["float"].parity, result.variants["quant"].parity
    metric = {"multiclass": "accuracy", "regression": "rmse"}[generated.task]
    for report in (float_report, quant_report):
        assert report.task == generated.task and report.metric == metric
        assert report.rows == report.labeled_rows == 200  # every eval row has a label and an answer
        assert report.auc is None and report.reference_auc is None  # AUC is binary only
    assert float_report.max_scaled_diff <= C.MAX_ABS_DIFF
    assert float_report.metric_delta <= 1e-6  # elementwise parity leaves the metric as it is
    bound = C.MAX_ACCURACY_DELTA + C.ACCURACY_NOISE_ROWS / 200 if metric == "accuracy" else C.MAX_RMSE_DELTA
    assert quant_report.metric_delta <= bound
    assert float_report.reference_metrics == quant_report.reference_metrics


def test_the_models_learned_their_task(generated):
    """The gate compares against a real model, not noise: the SavedModel's metric on the 200 eval rows."""
    reference = generated.result.variants["float"].parity.reference_metrics
    if generated.task == "multiclass":
        assert reference["accuracy"] > 0.75  # 3 balanced-ish classes: guessing is ~0.4
    else:
        targets = np.array([float(r["target"]) for r in generated.eval_rows])
        assert reference["rmse"] < 0.5 * targets.std() and reference["mae"] < reference["rmse"]


def test_outputs_are_shaped_by_the_task(generated):
    """Multiclass: `probabilities` float32 [-1, K], rows summing to 1; regression: `prediction` [-1] in label units."""
    cols = runtime.columns(generated.eval_rows, C.input_spec(generated.result.params))
    reference = C.reference_outputs(generated.saved_model, generated.eval_rows, generated.result.params)
    for variant, signature, model in _variants(generated):
        want = {"multiclass": ("probabilities", [-1, K]), "regression": ("prediction", [-1])}[generated.task]
        assert model.output_details() == {want[0]: {"dtype": "float32", "shape": want[1]}}, (variant, signature)
        got = _outputs(model, cols, generated.task)
        atol = 1e-5 if variant == "float" else 0.1 * (1 if generated.task == "multiclass" else reference.std())
        np.testing.assert_allclose(
            got, reference, rtol=1e-5 if variant == "float" else 0, atol=atol, err_msg=f"{variant} {signature}"
        )
        if generated.task == "multiclass":
            np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        else:
            assert 30 < got.mean() < 70  # centred at 50, as the label: Rescaling inside the model


def test_labels_come_from_the_models_transform(generated):
    """The gate's labels are the Trainer's transformed label, computed by the SavedModel's
    transform_features signature: class indices in `classes` order, or the target itself."""
    rows = generated.eval_rows[:20]
    y = C.labels(generated.saved_model, rows)
    if generated.task == "multiclass":
        assert y.dtype == np.int64
        assert y.tolist() == [list(generated.problem.label.classes).index(r["grade"]) for r in rows]
        # A value outside the classes has no class (-1), and counts in no metric.
        odd = C.labels(generated.saved_model, [dict(rows[0], grade="unheard-of")])
        assert odd.tolist() == [C.NO_CLASS]
    else:
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, np.array([float(r["target"]) for r in rows], np.float32))
    # A row the transform refuses (a required column blank) has no label; the others keep theirs.
    refused = C.labels(generated.saved_model, [dict(rows[0], row_id=""), rows[1]])
    assert math.isnan(refused[0]) if generated.task == "regression" else refused[0] == C.NO_CLASS
    assert refused[1] == y[1]


def test_missing_value_contract_holds_for_every_value_of_every_variant(generated):
    """On rows with missing and invalid values, NaN in every output value exactly where predict_raw
    refuses the row, and predict_raw's answer elsewhere."""
    import tensorflow as tf

    result = generated.result
    params = result.params
    rows = C.contract_rows(generated.eval_rows, params)
    cols = runtime.columns(rows, C.input_spec(params))
    no_answer = C.unanswerable(cols, params)
    for name in ("x1", "x2", "color"):  # each required input blank is a row without an answer
        assert any(no_answer[i] and r[name] == "" for i, r in enumerate(rows)), name
    assert any(not no_answer[i] and r["x3"] == "" for i, r in enumerate(rows))  # optional: answered
    assert any(no_answer[i] and r["x3"] == "inf" for i, r in enumerate(rows))  # finite: no answer
    fn = tf.saved_model.load(generated.saved_model).signatures["predict_raw"]
    for i in range(len(rows)):  # predict_raw itself refuses exactly those rows
        one = {name: tf.constant(values[i : i + 1]) for name, values in cols.items()}
        if no_answer[i]:
            with pytest.raises(tf.errors.InvalidArgumentError):
                fn(**one)
        else:
            assert np.isfinite(fn(**one)[generated.problem.output].numpy()).all(), rows[i]
    reference = C.reference_outputs(generated.saved_model, rows, params)
    for variant, signature, model in _variants(generated):
        got = _outputs(model, cols, generated.task)
        per_row = got.reshape(len(rows), -1)
        assert np.array_equal(np.isnan(per_row).all(axis=1), no_answer), (variant, signature)
        assert not np.isnan(per_row[~no_answer]).any(), (variant, signature)
        if variant == "float":
            np.testing.assert_allclose(got[~no_answer], reference[~no_answer], rtol=1e-5, atol=1e-5)
    for report in (result.variants["float"].parity, result.variants["quant"].parity):
        assert report.contract_rows == len(rows) and report.unanswered == int(no_answer.sum())


def test_model_spec_describes_the_task(generated):
    result = generated.result
    spec = json.loads(Path(result.spec_path).read_text())
    assert spec == result.spec and spec["task"] == generated.task
    assert spec["label"] == {"column": generated.problem.label.column, "hook": None}
    output = spec["output"]
    if generated.task == "multiclass":
        assert output["name"] == "probabilities" and output["shape"] == [-1, K]
        assert output["classes"] == ["low", "mid", "high"]
        assert "each class of the label column 'grade'" in output["meaning"]
        assert "(low, mid, high)" in output["meaning"]
        metrics = {"accuracy"}
    else:
        assert output["name"] == "prediction" and output["shape"] == [-1] and "classes" not in output
        assert output["meaning"].startswith("the predicted value of the label column 'target', in its units")
        metrics = {"rmse", "mae"}
    assert output["dtype"] == "float32" and "NaN (in every value of the row)" in output["meaning"]
    assert set(spec["reference"]) == {"signature", "rows", *metrics}
    assert spec["reference"]["rows"] == 200
    for variant in spec["variants"].values():
        assert set(variant["metrics"]) == {"rows", "labeled_rows", *metrics}
        assert variant["parity"]["passed"] and variant["parity"]["task"] == generated.task
    required = {i["name"]: i for i in spec["inputs"]}
    assert f"makes the {output['name']} NaN" in required["x1"]["meaning"]
    assert not required["x3"]["required"] and required["color"]["preprocessing"]["kind"] == "vocabulary"
    # The runtime's own checks of a spec against the interpreter accept it.
    runtime.MobileModel(result.output_dir, "float")


def test_a_variant_failing_its_tasks_gate_is_not_written(generated, tmp_path):
    """Impossible tolerances: the task's metric (accuracy / RMSE) fails every variant; elementwise parity
    fails the float one."""
    result = C.convert(
        generated.saved_model,
        tmp_path,
        eval_rows=generated.eval_rows[:100],
        model_version=2,
        max_abs_diff=-1.0,
        max_accuracy_delta=-1.0,
        max_rmse_delta=-1.0,
    )
    assert result.written == [] and sorted(p.name for p in tmp_path.iterdir()) == ["model_spec.json"]
    metric_text = {"multiclass": "accuracy", "regression": "RMSE"}[generated.task]
    output = generated.problem.output
    assert any(r.startswith(f"max |{output} - SavedModel's|") for r in result.rejected["float"])
    for name in ("float", "quant"):
        assert any(r.startswith(metric_text) for r in result.rejected[name]), result.rejected[name]


def test_eval_rows_without_the_label_column_are_refused(generated, tmp_path):
    column = generated.problem.label.column
    rows = [{k: v for k, v in r.items() if k != column} for r in generated.eval_rows[:10]]
    with pytest.raises(ValueError, match=f"no '{column}' column"):
        C.convert(generated.saved_model, tmp_path / "out", eval_rows=rows)
    assert not (tmp_path / "out").exists()


def test_preprocessing_rebuilt_from_the_transform_is_exact(generated):
    """The builtin-op preprocessing equals tf.Transform's output bit for bit, on training, eval and odd rows."""
    import tensorflow as tf

    result = generated.result
    module = C.build_module(
        tf.keras.models.load_model(generated.saved_model, compile=False), result.params, result.problem
    )
    probe = C.TransformProbe(generated.tft_output, result.problem)
    odd = [
        dict(generated.eval_rows[0], color="purple"),
        dict(generated.eval_rows[1], x3=""),
        dict(generated.eval_rows[2], x2="1e30", x1="-1e30"),
    ]
    cols = runtime.columns(generated.train_rows + generated.eval_rows + odd, C.input_spec(result.params))
    want = probe.columns(cols)
    got = {name: value.numpy().reshape(-1) for name, value in module.preprocess(cols).items()}
    assert set(got) == set(want) == {F.transformed_name(n) for n in ("x1", "x2", "x3", "color")}
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    color = next(p for p in result.params if p.name == "color")
    assert sorted(color.vocabulary) == ["blue", "green", "red", "yellow"] and want["color_xf"][-3] == color.oov_id
