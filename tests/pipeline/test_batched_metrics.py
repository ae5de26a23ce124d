"""Binary metrics on slice groups equal TFMA's own per-example metrics: real TFMA runs on the same rows, both ways.

Model-free TFMA (predictions read from a feature, as TFMA's prediction_key allows) so the rows' predictions are
the same in both runs; a model's predictions can differ in the last float32 bit between runs (batching).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tfxp.models  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxp.pipeline import batched_metrics, evaluation

ROWS = 1500
# What a binary eval config reports (tfxp.pipeline.evaluation), gated AUC included.
METRICS = (
    "AUC",
    "BinaryAccuracy",
    "Precision",
    "Recall",
    "TruePositives",
    "FalsePositives",
    "TrueNegatives",
    "FalseNegatives",
    "ExampleCount",
    "HistogramCalibration",
)
PLOTS = (("ConfusionMatrixPlot", '"num_thresholds": 100'), ("CalibrationPlot", '"num_buckets": 20'))


def _write_examples(path: str, fractional: bool) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(7)
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(ROWS):
            label = float(rng.random()) if fractional else float(rng.random() < 0.3)
            # Some predictions exactly on TFMA's bucket edges and the 0.5 threshold, some outside [0, 1].
            score = [0.5, 0.0, 1.0, 0.25, -0.1, 1.2][i % 6] if i % 50 == 0 else float(rng.random())
            feature = {
                "label": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
                "p": tf.train.Feature(float_list=tf.train.FloatList(value=[score])),
                "q": tf.train.Feature(float_list=tf.train.FloatList(value=[rng.random()])),
                "w": tf.train.Feature(float_list=tf.train.FloatList(value=[[0.0, 0.5, 2.0][i % 3]])),
                "payment": tf.train.Feature(bytes_list=tf.train.BytesList(value=[[b"cash", b"card", b"x"][i % 3]])),
                "hour": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.integers(0, 24))])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _config(grouped: bool, baseline: bool, weighted: bool):
    import tensorflow_model_analysis as tfma

    def metric(name: str, config: str = "", **fields) -> tfma.MetricConfig:
        if grouped:
            return tfma.MetricConfig(
                class_name=batched_metrics.grouped_class_name(name),
                module=batched_metrics.__name__,
                config=config,
                **fields,
            )
        module = evaluation.__name__ if name == "HistogramCalibration" else ""
        return tfma.MetricConfig(class_name=name, module=module, config=config, **fields)

    gate = tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.4})),
    )
    metrics = [metric(name) for name in METRICS[1:]] + [metric(name, config) for name, config in PLOTS]
    metrics.insert(0, metric("AUC", per_slice_thresholds=[gate]))
    weight_key = "w" if weighted else ""
    models = [tfma.ModelSpec(name="candidate" if baseline else "", label_key="label", prediction_key="p",
                             example_weight_key=weight_key)]  # fmt: skip
    if baseline:
        models.append(tfma.ModelSpec(name="baseline", label_key="label", prediction_key="q", is_baseline=True,
                                     example_weight_key=weight_key))  # fmt: skip
    return tfma.EvalConfig(
        model_specs=models,
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=["payment"]),
            tfma.SlicingSpec(feature_keys=["hour"]),
        ],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=metrics,
                example_weights=tfma.ExampleWeightOptions(weighted=weighted, unweighted=True),
            )
        ],
    )


def _evaluate(config, data: str, output: str):
    """TFMA's metrics, plots and validation written by a real run with this module's extractors, as dicts."""
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    extractors = evaluation.custom_extractors(None, config, None)
    tfma.run_model_analysis(eval_config=config, data_location=data, output_path=output, extractors=extractors)
    stages = [e.stage_name for e in extractors]
    metrics = {str(m.slice_key): json_format.MessageToDict(m) for m in tfma.load_metrics(output)}
    plots = {str(p.slice_key): json_format.MessageToDict(p) for p in tfma.load_plots(output)}
    return stages, metrics, plots, tfma.load_validation_result(output).validation_ok


def _differences(a, b, path: str = "") -> list[str]:
    """Where two loaded results differ: structure exactly, numbers to 1e-12 relative (float summation order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for key in a for d in _differences(a[key], b[key], f"{path}/{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12):
        return []
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


@pytest.mark.parametrize(
    "baseline, weighted, fractional",
    [(False, False, False), (True, False, False), (False, True, True)],
    ids=["one-model", "candidate-and-baseline", "example-weighted-fractional-labels"],
)
def test_metrics_on_slice_groups_equal_tfmas_per_example_metrics(tmp_path, baseline, weighted, fractional):
    data = str(tmp_path / "examples.tfrecord")
    _write_examples(data, fractional)
    tfma_stages, *tfmas = _evaluate(_config(False, baseline, weighted), data, str(tmp_path / "tfma"))
    group_stages, *ours = _evaluate(_config(True, baseline, weighted), data, str(tmp_path / "grouped"))

    assert "ExtractUnbatchedInputs" in tfma_stages and "ExtractUnbatchedInputs" not in group_stages
    metrics, plots, validation_ok = ours
    assert len(metrics) == 1 + 3 + 24 and len(plots) == len(metrics)  # overall, payment, hour
    counts = [
        m["value"]["doubleValue"]
        for m in metrics[""]["metricKeysAndValues"]
        if m["key"]["name"] == "example_count" and not m["key"].get("exampleWeighted") and not m["key"].get("isDiff")
    ]
    assert counts == [ROWS] * (2 if baseline else 1)  # a group counts its rows (TFMA's ExampleCount: 1 per extract)
    assert validation_ok == tfmas[2]
    assert _differences(tfmas[0], metrics) == []
    assert _differences(tfmas[1], plots) == []


def _combiner(name: str):
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.metrics import metric_types

    cls = getattr(batched_metrics, batched_metrics.grouped_class_name(name))
    computations = cls().computations(eval_config=tfma.EvalConfig(), model_names=[""], output_names=[""])
    (combiner,) = [c.combiner for c in computations if isinstance(c, metric_types.MetricComputation)]
    return combiner


def _group(labels, predictions):
    from tensorflow_model_analysis.metrics import metric_types

    return metric_types.StandardMetricInputs({"labels": np.asarray(labels), "predictions": np.asarray(predictions)})


@pytest.mark.parametrize("name", ["AUC", "BinaryAccuracy", "ExampleCount"])
def test_a_group_without_one_score_per_row_is_refused(name):
    # Two scores per row (a softmax over 2 classes): TFMA would pair each label with both; a group can't.
    combiner = _combiner(name)
    with pytest.raises(ValueError, match="one label and one score per row"):
        combiner.add_input(combiner.create_accumulator(), _group([[1.0], [0.0]], [[0.2, 0.8], [0.6, 0.4]]))


def test_nan_predictions_and_labels_outside_0_1_are_refused_as_tfma_refuses_them():
    combiner = _combiner("AUC")
    with pytest.raises(ValueError, match="NaN prediction"):
        combiner.add_input(combiner.create_accumulator(), _group([1.0, 0.0], [0.3, float("nan")]))
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        combiner.add_input(combiner.create_accumulator(), _group([1.0, 2.0], [0.3, 0.4]))


def test_a_group_counts_its_rows():
    combiner = _combiner("ExampleCount")
    accumulator = combiner.add_input(combiner.create_accumulator(), _group([1, 0, 1], [0.9, 0.1, 0.4]))
    assert combiner.add_input(accumulator, _group([0], [0.2])) == 4


def test_binary_configs_read_slice_groups_the_others_tfmas_rows():
    from taxi_data import TAXI

    from tfxp.models import features as F
    from tfxp.pipeline.config import EvalThresholds

    assert batched_metrics.grouping(evaluation.eval_config(EvalThresholds(), TAXI))  # gated
    # Without a model (None) TFMA refuses change thresholds: the extractors of a config without gates.
    binary = evaluation.eval_config(EvalThresholds(gates=()), TAXI)
    assert batched_metrics.grouping(binary)
    stages = [e.stage_name for e in evaluation.custom_extractors(None, binary, None)]
    assert stages[-2:] == [evaluation.DROP_UNUSED_EXTRACTS_STAGE, batched_metrics.SLICE_GROUPS_STAGE]
    assert "ExtractUnbatchedInputs" not in stages

    three = F.Problem(TAXI.features, F.Label("species", F.DType.STRING, F.Task.MULTICLASS, ("a", "b", "c")))
    value = F.Problem(TAXI.features, F.Label("tips", F.DType.FLOAT, F.Task.REGRESSION))
    for problem in (three, value):
        config = evaluation.eval_config(EvalThresholds(gates=()), problem)
        assert not batched_metrics.grouping(config)
        stages = [e.stage_name for e in evaluation.custom_extractors(None, config, None)]
        assert stages[-2:] == ["ExtractUnbatchedInputs", "ExtractSliceKeys"]


def test_group_metrics_beside_tfmas_per_example_ones_are_refused():
    import tensorflow_model_analysis as tfma

    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label")],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="GroupedAUC", module=batched_metrics.__name__),
                    tfma.MetricConfig(class_name="Calibration"),  # TFMA's own combiner, per example
                ]
            )
        ],
    )
    with pytest.raises(ValueError, match="cannot run beside TFMA's per-example combiners"):
        batched_metrics.grouping(config)
    with pytest.raises(ValueError, match="cannot run beside"):
        evaluation.custom_extractors(None, config, None)
