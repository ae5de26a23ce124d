"""TFMA's Calibration read off the calibration histogram TFMA's AUC already builds (no combiner of its own)."""

from __future__ import annotations

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import calibration_histogram, metric_types, metric_util


def _histogram_calibration(
    name: str = "calibration",
    eval_config: tfma.EvalConfig | None = None,
    model_name: str = "",
    output_name: str = "",
    sub_key: metric_types.SubKey | None = None,
    aggregation_type: metric_types.AggregationType | None = None,
    class_weights: dict[int, float] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """TFMA's per-key computations of HistogramCalibration: the histogram, then the derived ratio."""
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, sub_key=sub_key, example_weighted=example_weighted
    )
    # The arguments binary_confusion_matrices gives it for AUC: equal computations are computed once.
    computations = calibration_histogram.calibration_histogram(
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
    )
    histogram_key = computations[-1].keys[-1]

    def result(metrics: dict) -> dict:
        buckets = metrics[histogram_key]
        labels = sum(bucket.weighted_labels for bucket in buckets)
        predictions = sum(bucket.weighted_predictions for bucket in buckets)
        # As TFMA's Calibration: undefined (NaN) without positive labels.
        return {key: float("nan") if np.isclose(labels, 0.0) else predictions / labels}

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations


class HistogramCalibration(metric_types.Metric):
    """TFMA's Calibration, sum(weighted predictions) / sum(weighted labels), read off the calibration histogram.

    TFMA's AUC already builds that histogram (10,000 buckets of weighted labels, predictions and examples),
    while its Calibration runs a combiner of its own over every example of every slice: this one
    reuses the histogram, one per-example combiner fewer (~10% of TFMA's CPU on the taxi eval split).
    Same value up to float summation order; same name ("calibration") and NaN rule as TFMA's.
    """

    def __init__(self, name: str = "calibration"):
        super().__init__(metric_util.merge_per_key_computations(_histogram_calibration), name=name)
