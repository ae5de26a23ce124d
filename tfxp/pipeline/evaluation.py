"""What the Evaluator computes: TFMA's EvalConfig per task, and the pieces that keep TFMA's per-example work down.

TFMA computes every metric for every slice in Python, example by example, so
its cost grows with eval rows × slices × per-example combiners. These changes
cut that work with the same numbers out (docs/scaling-out.md, "Evaluating big data"):
`custom_extractors` drops what neither slicing nor the metrics read before
TFMA unbatches; a binary model's metrics run on slice groups (batched_metrics);
`HistogramCalibration` reads calibration off the histogram AUC already builds;
`EvaluatorExecutor` keeps TF's discarded error messages cheap. The Evaluator
loads this module by name (`module_path`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tfx.components.evaluator import executor as evaluator_executor

from tfxp.models import features as F
from tfxp.pipeline import batched_metrics
from tfxp.pipeline.config import EvalThresholds
from tfxp.pipeline.histogram_calibration import HistogramCalibration
from tfxp.project import Gate


def _gated(gate: Gate, task: F.Task) -> tfma.MetricConfig:
    """A gated metric: bound and change against the baseline, on the overall slice only.

    Small slices (one 'Dispute' trip) are reported, not gated. TFMA ignores the
    change threshold on the first run, when no baseline is resolved.
    """
    if gate.higher_is_better:
        value = tfma.GenericValueThreshold(lower_bound={"value": gate.bound})
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -gate.max_change}
        )
    else:
        value = tfma.GenericValueThreshold(upper_bound={"value": gate.bound})
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.LOWER_IS_BETTER, absolute={"value": gate.max_change}
        )
    threshold = tfma.MetricThreshold(value_threshold=value, change_threshold=change)
    class_name, module = _metric_class(gate.metric, task)
    return tfma.MetricConfig(
        class_name=class_name,
        module=module,
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)],
    )


# Reported per task (gated ones once). Binary: the confusion counts at TFMA's default 0.5
# threshold tell the summary why a metric is undefined on a slice (e.g. AUC with one class only).
REPORTED_METRICS = {
    F.Task.BINARY: (
        "ExampleCount",
        "AUC",
        "BinaryAccuracy",
        "Precision",
        "Recall",
        "Calibration",
        "TruePositives",
        "FalsePositives",
        "TrueNegatives",
        "FalseNegatives",
    ),
    F.Task.MULTICLASS: ("ExampleCount", "SparseCategoricalAccuracy", "MultiClassConfusionMatrixPlot"),
    F.Task.REGRESSION: ("ExampleCount", "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError"),
}
# Regression residuals: TFMA has no residual plot, writes no per-row predictions, and its CalibrationPlot needs the
# prediction range before the data is read (left/right; 0..1 by default). ResidualPlot buckets rows by prediction
# on a signed logarithmic scale, RESIDUAL_BINS_PER_DECADE buckets per factor of 10 (a bucket is ~26% wide at any
# magnitude), so it needs no range; each bucket sums weighted examples, labels and predictions as TFMA's
# calibration histogram does, and is written as TFMA's CalibrationHistogramBuckets plot: mean label - mean
# prediction per bucket is the mean residual there. |prediction| < RESIDUAL_SMALLEST falls in the bucket of 0.
RESIDUAL_PLOT_NAME = "residual_plot"
RESIDUAL_BINS_PER_DECADE = 10
RESIDUAL_SMALLEST = 1e-6


def residual_bucket(prediction: float) -> int | None:
    """The signed bucket of a prediction: 0 around zero, k > 0 for [s·10^((k-1)/B), s·10^(k/B)), -k for the
    mirror interval below zero (s = RESIDUAL_SMALLEST, B = RESIDUAL_BINS_PER_DECADE); None for NaN or inf."""
    if not np.isfinite(prediction):
        return None
    size = abs(prediction)
    if size < RESIDUAL_SMALLEST:
        return 0
    k = int(np.floor(np.log10(size / RESIDUAL_SMALLEST) * RESIDUAL_BINS_PER_DECADE)) + 1
    return k if prediction > 0 else -k


def residual_bucket_edges(k: int) -> tuple[float, float]:
    """(lower inclusive, upper exclusive) bounds of bucket k (residual_bucket)."""
    if k == 0:
        return -RESIDUAL_SMALLEST, RESIDUAL_SMALLEST
    low = RESIDUAL_SMALLEST * 10 ** ((abs(k) - 1) / RESIDUAL_BINS_PER_DECADE)
    high = RESIDUAL_SMALLEST * 10 ** (abs(k) / RESIDUAL_BINS_PER_DECADE)
    return (low, high) if k > 0 else (-high, -low)


class _ResidualCombiner(beam.CombineFn):
    """Bucket -> [weighted examples, weighted labels, weighted predictions], bucketed by prediction."""

    def __init__(self, key, eval_config, example_weighted: bool):
        self._key = key
        self._eval_config = eval_config
        self._example_weighted = example_weighted

    def create_accumulator(self) -> dict[int, list[float]]:
        return {}

    def add_input(self, accumulator: dict[int, list[float]], element) -> dict[int, list[float]]:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            example_weighted=self._example_weighted,
        ):
            predicted = float(np.asarray(prediction).reshape(-1)[0])
            k = residual_bucket(predicted)
            if k is None:
                continue
            sums = accumulator.setdefault(k, [0.0, 0.0, 0.0])
            w = float(weight)
            sums[0] += w
            sums[1] += float(np.asarray(label).reshape(-1)[0]) * w
            sums[2] += predicted * w
        return accumulator

    def merge_accumulators(self, accumulators) -> dict[int, list[float]]:
        merged: dict[int, list[float]] = {}
        for accumulator in accumulators:
            for k, sums in accumulator.items():
                into = merged.setdefault(k, [0.0, 0.0, 0.0])
                for i in range(3):
                    into[i] += sums[i]
        return merged

    def extract_output(self, accumulator: dict[int, list[float]]) -> dict:
        from tensorflow_model_analysis.proto import metrics_for_slice_pb2

        plot = metrics_for_slice_pb2.CalibrationHistogramBuckets()
        for k in sorted(accumulator):
            examples, labels, predictions = accumulator[k]
            low, high = residual_bucket_edges(k)
            plot.buckets.add(
                lower_threshold_inclusive=low,
                upper_threshold_exclusive=high,
                num_weighted_examples={"value": examples},
                total_weighted_label={"value": labels},
                total_weighted_refined_prediction={"value": predictions},
            )
        return {self._key: plot}


def _residual_plot(
    name: str = RESIDUAL_PLOT_NAME,
    eval_config: tfma.EvalConfig | None = None,
    model_name: str = "",
    output_name: str = "",
    sub_key: metric_types.SubKey | None = None,
    aggregation_type: metric_types.AggregationType | None = None,
    class_weights: dict[int, float] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.PlotKey(
        name=name, model_name=model_name, output_name=output_name, sub_key=sub_key, example_weighted=example_weighted
    )
    return [
        metric_types.MetricComputation(
            keys=[key], preprocessors=None, combiner=_ResidualCombiner(key, eval_config, example_weighted)
        )
    ]


class ResidualPlot(metric_types.Metric):
    """A regression model's rows bucketed by prediction (residual_bucket), written as TFMA's
    CalibrationHistogramBuckets: per bucket, weighted examples, labels and predictions. One per-example combiner
    (regression only)."""

    def __init__(self, name: str = RESIDUAL_PLOT_NAME):
        super().__init__(metric_util.merge_per_key_computations(_residual_plot), name=name)


# The plots the run report draws (tfxp.pipeline.run_report), per task: (class name, config JSON, module).
# Binary: ROC points from TFMA's ConfusionMatrixPlot and the calibration plot from its CalibrationPlot; both are
# derived from the 10,000-bucket calibration histogram AUC already builds (use_histogram; TFMA computes equal
# computations once), so they add no per-example combiner: PLOT_THRESHOLDS and CALIBRATION_BUCKETS only size what
# is written (one entry each per slice). Multiclass: the MultiClassConfusionMatrixPlot of REPORTED_METRICS.
# Regression: ResidualPlot.
PLOT_THRESHOLDS = 100
CALIBRATION_BUCKETS = 20
PLOTS = {
    F.Task.BINARY: (
        ("ConfusionMatrixPlot", f'"num_thresholds": {PLOT_THRESHOLDS}', ""),
        ("CalibrationPlot", f'"num_buckets": {CALIBRATION_BUCKETS}', ""),
    ),
    F.Task.MULTICLASS: (),
    F.Task.REGRESSION: ((ResidualPlot.__name__, "", __name__),),
}

# Multiclass: precision and recall of each class, top-1: a row is predicted as the class of its highest
# probability (TFMA's top_k=1 sets the other classes' scores to -inf, then binarizes by class_id at a
# -inf threshold), as the MultiClassConfusionMatrixPlot counts it; reported with a class_id sub key.
# (Binarized alone, TFMA would count a class as predicted when its probability is >= 0.5.)
_PER_CLASS_METRICS = ("Precision", "Recall")
PER_CLASS_TOP_K = 1


def _metric_class(class_name: str, task: F.Task, module: str = "") -> tuple[str, str]:
    """(class name, module) of a metric in the config: Calibration as HistogramCalibration (same value, no
    combiner of its own); a binary model's metrics on slice groups (batched_metrics: TFMA's classes, same keys)."""
    if class_name == "Calibration":
        class_name, module = HistogramCalibration.__name__, HistogramCalibration.__module__
    grouped = batched_metrics.grouped_class_name(class_name)
    if task is F.Task.BINARY and grouped:
        return grouped, batched_metrics.__name__
    return class_name, module


def eval_config(thresholds: EvalThresholds, problem: F.Problem) -> tfma.EvalConfig:
    """TFMA metrics for the problem's task, its slices and the blessing thresholds."""
    task = problem.label.task
    gated = [_gated(gate, task) for gate in thresholds.gates]
    gated_names = {gate.metric for gate in thresholds.gates}
    reported = [
        tfma.MetricConfig(class_name=name, module=module)
        for name, module in (_metric_class(name, task) for name in REPORTED_METRICS[task] if name not in gated_names)
    ]
    for name, config, module in PLOTS[task]:
        name, module = _metric_class(name, task, module)
        reported.append(tfma.MetricConfig(class_name=name, config=config, module=module))
    metrics_specs = [tfma.MetricsSpec(metrics=gated + reported)]
    if task is F.Task.MULTICLASS:
        metrics_specs.append(
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name=name, config=f'"top_k": {PER_CLASS_TOP_K}')
                    for name in _PER_CLASS_METRICS
                ],
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(problem.label.num_classes))}),
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=F.LABEL_KEY,
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in problem.slices],
        metrics_specs=metrics_specs,
    )


def slicing_columns(config: tfma.EvalConfig) -> frozenset[str]:
    """The feature names the config's slicing specs (plain and cross) slice by."""
    specs = list(config.slicing_specs)
    for cross in config.cross_slicing_specs:
        specs += [cross.baseline_spec, *cross.slicing_specs]
    return frozenset(name for spec in specs for name in (*spec.feature_keys, *spec.feature_values))


def used_extracts(extracts: Mapping[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """A batched TFMA extract without what nothing after inference reads.

    TFMA unbatches every array of a batch into per-example dicts and carries them through slicing
    (each example once per slice key) into every metric combiner: 38 arrays per taxi batch (all 18
    raw columns, 16 transformed features, the serialized tf.Examples, labels, predictions), of which
    the metrics read labels, predictions (and example weights) and slicing reads its `columns`.

    Args:
        extracts: one batched extract: {"features": {column: [batch] array}, "transformed_features":
            {name: [batch] array}, "input": [batch] serialized tf.Examples, "labels", "predictions",
            "example_weights", "arrow_record_batch", ...}, after TFMA's labels, example weights and
            predictions extractors.
        columns: the slicing columns (slicing_columns()).

    Returns:
        The same extract without "input", and with "features" and "transformed_features" holding only
        `columns` (absent columns stay absent); every other key is passed through unchanged.
    """
    kept = {}
    for key, value in extracts.items():
        if key == tfma_constants.INPUT_KEY:
            continue
        if key in (tfma_constants.FEATURES_KEY, tfma_constants.TRANSFORMED_FEATURES_KEY) and isinstance(value, Mapping):
            value = {name: array for name, array in value.items() if name in columns}
        kept[key] = value
    return kept


DROP_UNUSED_EXTRACTS_STAGE = "DropUnusedExtracts"


def custom_extractors(eval_shared_model, eval_config: tfma.EvalConfig, tensor_adapter_config) -> list:
    """TFX Evaluator's `custom_extractors` UDF (Evaluator(module_path=this module)).

    TFMA's default extractors, plus one stage before unbatching that keeps only what slicing and the
    metrics read (used_extracts): on the 150k taxi eval split (49,983 rows) TFMA alone took ~10% less CPU.
    When the config's metrics read slice groups (batched_metrics.grouping: binary), its SliceGroups
    stage replaces TFMA's UnbatchExtractor and SliceKeyExtractor (same rows, same slice keys).

    Raises:
        ValueError: grouping is wanted but TFMA's extractors after unbatching are not the two it replaces.
    """
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
    )
    stages = [extractor.stage_name for extractor in extractors]
    drop = tfma.extractors.Extractor(
        stage_name=DROP_UNUSED_EXTRACTS_STAGE,
        ptransform=beam.Map(used_extracts, columns=slicing_columns(eval_config)),
    )
    at = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    if not batched_metrics.grouping(eval_config):
        return [*extractors[:at], drop, *extractors[at:]]
    replaced = [unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME, slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME]
    if stages[at:] != replaced:
        raise ValueError(f"slice groups replace TFMA's {replaced}, not its extractors after unbatching {stages[at:]}")
    return [*extractors[:at], drop, batched_metrics.slice_groups_extractor(eval_config)]


# numpy summarizes an array's repr above this many elements (its default: 1,000).
REPR_THRESHOLD = 64


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor, numpy's array reprs summarized while it runs (`REPR_THRESHOLD`).

    TFMA calls each signature with the batch of serialized examples positionally (model_util.py,
    `_batch_reducible_process`); a SavedModel's signatures take keywords only, so TF first fails to bind the
    call, formats the batch into that TypeError's message (numpy's repr of up to 1,000 serialized examples),
    then binds by position and runs. Summarized, the message is cheap: on the 150k taxi eval split the
    Evaluator took 15.0 -> 13.1 s (two runs each). Only the texts of errors change. The option is process
    global (numpy 1.x): Beam's in-process workers see it, worker processes (--beam-workers > 1) do not.
    """

    def Do(self, input_dict: dict, output_dict: dict, exec_properties: dict) -> None:
        with np.printoptions(threshold=REPR_THRESHOLD):
            super().Do(input_dict, output_dict, exec_properties)
