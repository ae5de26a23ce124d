"""The DAG's TFMA configuration: every gated metric has a floor and a change threshold against the baseline;
the Evaluator's extractors drop what neither slicing nor the metrics read."""

from __future__ import annotations

import numpy as np
import pytest
from taxi_data import TAXI

import tfxp.models  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxp.pipeline import batched_metrics, evaluation
from tfxp.pipeline.batched_metrics import tfma_class_name
from tfxp.pipeline.config import EvalThresholds, PipelineConfig
from tfxp.pipeline.evaluation import eval_config, slicing_columns, used_extracts
from tfxp.pipeline.pipeline import create_pipeline
from tfxp.project import Gate


def _thresholds(config) -> dict:
    # A binary model's metrics are TFMA's classes on slice groups ("GroupedAUC"): named here by TFMA's class.
    return {
        tfma_class_name(m.class_name): [t.threshold for t in m.per_slice_thresholds]
        for m in config.metrics_specs[0].metrics
        if m.per_slice_thresholds
    }


def test_every_gate_has_a_value_and_a_change_threshold_on_the_overall_slice():
    import tensorflow_model_analysis as tfma

    config = eval_config(EvalThresholds(), TAXI)
    gated = _thresholds(config)
    assert set(gated) == {"AUC", "BinaryAccuracy"}  # accuracy gates against the baseline too
    for name, thresholds in gated.items():
        (threshold,) = thresholds
        assert threshold.value_threshold.lower_bound.value > 0, name
        assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER, name
        assert threshold.change_threshold.absolute.value < 0, name
    for metric in config.metrics_specs[0].metrics:
        for per_slice in metric.per_slice_thresholds:
            assert [s.feature_keys for s in per_slice.slicing_specs] == [[]], "gates apply to the overall slice only"
    # Every binary metric on slice groups, none of TFMA's per-example ones beside them (batched_metrics.grouping).
    assert {m.module for m in config.metrics_specs[0].metrics} == {batched_metrics.__name__}


def test_gates_come_from_the_thresholds_config():
    config = eval_config(EvalThresholds(gates=(Gate("Precision", bound=0.5, max_change=0.02),)), TAXI)
    gated = _thresholds(config)
    assert list(gated) == ["Precision"]
    (threshold,) = gated["Precision"]
    assert threshold.value_threshold.lower_bound.value == 0.5
    assert abs(threshold.change_threshold.absolute.value + 0.02) < 1e-9
    names = [tfma_class_name(m.class_name) for m in config.metrics_specs[0].metrics]
    assert names.count("Precision") == 1 and names.count("AUC") == 1  # reported, not gated


def test_multiclass_and_regression_get_their_metrics_and_gates():
    import tensorflow_model_analysis as tfma

    from tfxp.models import features as F

    taxi = TAXI
    three = F.Problem(taxi.features, F.Label("species", F.DType.STRING, F.Task.MULTICLASS, ("a", "b", "c")))
    config = eval_config(EvalThresholds(gates=(Gate("SparseCategoricalAccuracy", bound=0.4, max_change=0.02),)), three)
    assert list(_thresholds(config)) == ["SparseCategoricalAccuracy"]
    per_class = config.metrics_specs[1]
    assert [m.class_name for m in per_class.metrics] == ["Precision", "Recall"]
    assert list(per_class.binarize.class_ids.values) == [0, 1, 2]
    assert config.slicing_specs[1:] == []  # no slices given

    value = F.Problem(taxi.features, F.Label("tips", F.DType.FLOAT, F.Task.REGRESSION), ("payment_type",))
    config = eval_config(
        EvalThresholds(gates=(Gate("RootMeanSquaredError", bound=3.0, max_change=0.05, higher_is_better=False),)), value
    )
    (threshold,) = _thresholds(config)["RootMeanSquaredError"]
    assert threshold.value_threshold.upper_bound.value == 3.0
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert abs(threshold.change_threshold.absolute.value - 0.05) < 1e-9
    names = {m.class_name for m in config.metrics_specs[0].metrics}
    assert {"MeanSquaredError", "MeanAbsoluteError", "ExampleCount"} <= names and "AUC" not in names
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["payment_type"]]


def test_slicing_columns_are_the_configs_slices():
    assert slicing_columns(eval_config(EvalThresholds(), TAXI)) == {"trip_start_hour", "payment_type"}


def test_used_extracts_keep_labels_predictions_and_slicing_columns_only():
    batch = 3
    extracts = {
        "features": {"payment_type": np.array([b"Cash"] * batch), "fare": np.ones(batch), "tips": np.zeros(batch)},
        "transformed_features": {"fare_xf": np.ones(batch), "label": np.array([0, 1, 0])},
        "input": np.array([b"serialized tf.Example"] * batch),
        "labels": np.array([0, 1, 0]),
        "predictions": np.array([0.1, 0.9, 0.4]),
        "example_weights": np.ones(batch),
        "arrow_record_batch": "a pyarrow.RecordBatch",
    }
    kept = used_extracts(extracts, frozenset({"payment_type", "trip_start_hour"}))
    assert set(kept) == {
        "features",
        "transformed_features",
        "labels",
        "predictions",
        "example_weights",
        "arrow_record_batch",
    }
    assert list(kept["features"]) == ["payment_type"] and kept["transformed_features"] == {}
    for key in ("labels", "predictions", "example_weights", "arrow_record_batch"):
        assert kept[key] is extracts[key]
    assert "fare" in extracts["features"] and "input" in extracts  # the input is not modified


def test_the_evaluator_loads_custom_extractors_from_this_module(tmp_path):
    # TFX's own UDF loading, as its Evaluator executor does it (the e2e tests run the extractors for real).
    from tfx.components.util import udf_utils

    (evaluator,) = [c for c in create_pipeline(PipelineConfig(output=tmp_path)).components if c.id == "Evaluator"]
    assert udf_utils.try_get_fn(evaluator.exec_properties, "custom_extractors") is evaluation.custom_extractors
    # No custom_eval_shared_model: TFMA's default model loading stays.
    assert udf_utils.try_get_fn(evaluator.exec_properties, "custom_eval_shared_model") is None
    # By name: TFX's UDF loading above reloads the module, making new class objects.
    executor = evaluator.executor_spec.executor_class
    assert (executor.__module__, executor.__qualname__) == (evaluation.__name__, "EvaluatorExecutor")


def test_the_evaluator_executor_summarizes_numpy_reprs_while_it_runs_only(monkeypatch):
    # TFMA's positional signature calls make TF format the whole batch into a discarded TypeError.
    from tfx.components.evaluator import executor as tfx_executor

    seen = []
    monkeypatch.setattr(tfx_executor.Executor, "Do", lambda self, *args: seen.append(np.get_printoptions()))
    before = np.get_printoptions()
    evaluation.EvaluatorExecutor().Do({}, {}, {})
    assert seen[0]["threshold"] == evaluation.REPR_THRESHOLD < before["threshold"]
    assert np.get_printoptions() == before
    batch = np.array([b"x" * 300] * 1000, dtype=object)
    with np.printoptions(threshold=evaluation.REPR_THRESHOLD):
        assert len(repr(batch)) < 100 * 300  # summarized: the first and last three examples


def test_histogram_calibration_equals_tfmas_calibration(tmp_path):
    # A real TFMA run without a model (predictions read from a feature): TFMA's Calibration and ours on
    # the same 200 examples, overall and on a slice with no positive label (both NaN there).
    import math

    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    rng = np.random.default_rng(0)
    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(200):
            group = b"none" if i % 4 == 0 else b"some"
            label = 0 if group == b"none" else int(rng.random() < 0.3)
            feature = {
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[rng.random()])),
                "group": tf.train.Feature(bytes_list=tf.train.BytesList(value=[group])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["group"])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="AUC"),
                    tfma.MetricConfig(class_name="Calibration"),
                    tfma.MetricConfig(
                        class_name="HistogramCalibration",
                        module=evaluation.__name__,
                        config='{"name": "histogram_calibration"}',
                    ),
                ]
            )
        ],
    )
    result = tfma.run_model_analysis(eval_config=config, data_location=path, output_path=str(tmp_path / "out"))
    values = {tuple(key): metrics[""][""] for key, metrics in result.slicing_metrics}
    assert set(values) == {(), (("group", "none"),), (("group", "some"),)}
    for key, metrics in values.items():
        # load_eval_result gives NaN as the string "NaN".
        ours, tfmas = (float(metrics[name]["doubleValue"]) for name in ("histogram_calibration", "calibration"))
        if key == (("group", "none"),):
            assert math.isnan(ours) and math.isnan(tfmas)
        else:
            assert ours == pytest.approx(tfmas, rel=1e-9)


def test_binary_metrics_run_three_combiners_calibration_reads_the_aucs_histogram():
    # Each combiner runs over every example of every slice: Calibration must not add a fourth one.
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as evaluator
    from tensorflow_model_analysis.metrics import metric_specs

    config = tfma.utils.update_eval_config_with_defaults(
        eval_config(EvalThresholds(), TAXI), has_baseline=False, rubber_stamp=True
    )
    computations = metric_specs.to_computations(list(config.metrics_specs), eval_config=config)
    combiners = evaluator._filter_and_separate_computations(computations).non_derived_computations
    assert sorted(c.keys[0].name.split(":")[0] for c in combiners) == [
        "_binary_confusion_matrices",  # at 0.5: accuracy, precision, recall, the counts
        "_calibration_histogram",  # AUC and calibration
        "example_count",
    ]
