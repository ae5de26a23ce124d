"""TFMA's binary metrics computed on slice groups instead of one example at a time.

TFMA unbatches the model's output and runs every metric combiner in Python once per example per slice
(`_ComputationsCombineFn.add_input`): on the 150k taxi eval split, half of the Evaluator's CPU. Here the
Evaluator's extracts stay grouped: `SliceGroups` replaces TFMA's UnbatchExtractor + SliceKeyExtractor
and emits, per batch and per slice key, one extract whose labels, predictions and example weights are
the rows of that slice stacked (rows' values and slice keys are TFMA's own, computed by its unbatching
and its slice-key extractor). The metric classes below are TFMA's, by the same names and keys, whose
combiners read a group's arrays at once (numpy) into TFMA's own accumulators; TFMA's derived metrics,
plots, validations (gates against the baseline) and writers are unchanged.

Equality: every count and weight sum is exact; sums of predictions equal TFMA's up to float summation
order (~1e-15 relative; TFMA's own merge order is Beam's). tests/pipeline/test_batched_metrics.py runs
TFMA both ways on the same rows and compares every metric and plot.

All or nothing: a group is k rows, which only these combiners understand (TFMA's ExampleCount would
count it as one). `custom_extractors` groups only when every combiner of the config is one of these,
and refuses a config that mixes them with TFMA's per-example ones (`grouping`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.contrib.aggregates import binary_confusion_matrices as bcm
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration_histogram,
    example_count,
    metric_specs,
    metric_types,
    metric_util,
)
from tensorflow_model_analysis.slicer import slicer_lib as slicer

from tfxp.pipeline import histogram_calibration

# TFMA runs its metrics evaluator after the stage of this name (evaluator.verify_evaluator): the slice groups
# stage extracts the slice keys too.
SLICE_GROUPS_STAGE = slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME
# The keys a group carries: what the combiners below read (StandardMetricInputs).
_GROUPED_KEYS = (constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.EXAMPLE_WEIGHTS_KEY)


def _arrays(
    element: metric_types.StandardMetricInputs,
    key: metric_types.MetricKey,
    eval_config: tfma.EvalConfig | None,
    example_weighted: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A group's (labels [k] in their dtype, predictions [k] and example weights [k] as float64), for the key's
    model and output.

    The label, prediction and weight are looked up as TFMA's to_label_prediction_example_weight does (model
    name, output name, prediction key; weight 1.0 unless example-weighted). A binary model gives one score
    per row: anything else raises ValueError (TFMA would pair them otherwise; these combiners do not).
    """
    ((label, prediction, weight),) = metric_util.to_label_prediction_example_weight(
        element,
        eval_config=eval_config,
        model_name=key.model_name,
        output_name=key.output_name,
        flatten=False,
        squeeze=False,
        fractional_labels=False,
        example_weighted=example_weighted,
    )
    rows = prediction.shape[0] if prediction.ndim else 1
    if prediction.size != rows or label.size != rows:
        raise ValueError(
            f"batched binary metrics need one label and one score per row: {rows} rows, labels of shape "
            f"{label.shape}, predictions of shape {prediction.shape} ({key})"
        )
    weight = np.asarray(weight, dtype=np.float64).reshape(-1)
    if weight.size == 1:
        weight = np.full(rows, weight[0])
    elif weight.size != rows:
        raise ValueError(f"example weights of shape {weight.shape} for {rows} rows ({key})")
    return label.reshape(-1), prediction.astype(np.float64).reshape(-1), weight


def _entries(
    labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray, fractional: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TFMA's (label, prediction, weight) entries as float64: with fractional labels each row is split into
    (0, p, w·(1−l)) and (1, p, w·l), entries of weight 0 dropped (metric_util._yield_fractional_labels, where
    1 − l is computed in the label's dtype: float32 labels round there as in TFMA); labels outside [0, 1]
    raise ValueError as there."""
    values = labels.astype(np.float64)
    if not fractional:
        return values, predictions, weights
    outside = ~((values >= 0.0) & (values <= 1.0))
    if outside.any():
        raise ValueError(f"label must be within [0, 1]: labels={values[outside][:5]}")
    entry_labels = np.concatenate([np.zeros_like(values), np.ones_like(values)])
    entry_weights = np.concatenate([weights * (1 - labels).astype(np.float64), weights * values])
    kept = entry_weights != 0.0
    return entry_labels[kept], np.concatenate([predictions, predictions])[kept], entry_weights[kept]


class _GroupCalibrationHistogramCombiner(calibration_histogram._CalibrationHistogramCombiner):
    """TFMA's calibration histogram (AUC, its plots, HistogramCalibration), one add per group."""

    def add_input(self, accumulator: dict, element: metric_types.StandardMetricInputs) -> dict:
        labels, predictions, weights = _arrays(element, self._key, self._eval_config, self._example_weighted)
        labels, predictions, weights = _entries(labels, predictions, weights, self._fractional_labels)
        if not labels.size:
            return accumulator
        by = predictions if self._prediction_based_bucketing else labels
        if np.isnan(by).any():
            # TFMA's int(bucket_index) fails on NaN alike.
            raise ValueError(f"cannot bucket a NaN {'prediction' if self._prediction_based_bucketing else 'label'}")
        # TFMA's _bucket_index, elementwise: (value - left) / range * num_buckets + 1, truncated into
        # [0, num_buckets + 1].
        index = (by - self._left) / self._range * self._num_buckets + 1
        index = np.where(index < 0, 0, np.where(index >= self._num_buckets + 1, self._num_buckets + 1, index))
        buckets, at = np.unique(index.astype(np.int64), return_inverse=True)
        sums = [np.bincount(at, weights=w, minlength=buckets.size) for w in (labels * weights, predictions * weights)]
        examples = np.bincount(at, weights=weights, minlength=buckets.size)
        for i, bucket_id in enumerate(buckets.tolist()):
            add = calibration_histogram.Bucket(bucket_id, float(sums[0][i]), float(sums[1][i]), float(examples[i]))
            if bucket_id in accumulator:
                accumulator[bucket_id].merge(add)
            else:
                accumulator[bucket_id] = add
        return accumulator


class _GroupBinaryConfusionMatrixCombiner(binary_confusion_matrices._BinaryConfusionMatrixCombiner):
    """TFMA's confusion matrices at a few thresholds (accuracy, precision, recall, counts), one add per group."""

    def add_input(self, accumulator: dict, element: metric_types.StandardMetricInputs) -> dict:
        labels, predictions, weights = _arrays(element, self._key, self._eval_config, self._example_weighted)
        labels, predictions, weights = _entries(labels, predictions, weights, self._enable_fractional_labels)
        matrices = self._binary_confusion_matrices
        for threshold in matrices._thresholds:
            # As bcm.BinaryConfusionMatrices.add_input: positive is label == 1 with fractional labels.
            positive = labels == 1.0 if self._enable_fractional_labels else labels > threshold
            predicted = predictions > threshold
            matrix = bcm.Matrix(
                tp=float(weights[positive & predicted].sum()),
                tn=float(weights[~positive & ~predicted].sum()),
                fp=float(weights[~positive & predicted].sum()),
                fn=float(weights[positive & ~predicted].sum()),
            )
            entry = bcm._ThresholdEntry(matrix, [], [], [], [])
            accumulator[threshold] = matrices._merge_entry(accumulator, threshold, entry)
        return accumulator


class _GroupExampleCountCombiner(example_count._ExampleCountCombiner):
    """TFMA's ExampleCount: the group's rows (or their summed weights when example-weighted)."""

    _eval_config: tfma.EvalConfig | None  # set by _grouped (TFMA's combiner has none)

    def add_input(self, accumulator: float, element: metric_types.StandardMetricInputs) -> float:
        key = self._keys[0]
        _, _, weights = _arrays(element, key, self._eval_config, self._example_weighted)
        return accumulator + float(weights.sum())


# TFMA's per-example combiner -> its group version (a subclass reading the same settings).
_GROUP_VERSIONS: dict[type, type] = {
    calibration_histogram._CalibrationHistogramCombiner: _GroupCalibrationHistogramCombiner,
    binary_confusion_matrices._BinaryConfusionMatrixCombiner: _GroupBinaryConfusionMatrixCombiner,
    example_count._ExampleCountCombiner: _GroupExampleCountCombiner,
}


def _grouped(computation: metric_types.MetricComputation, eval_config: tfma.EvalConfig | None):
    """The computation with TFMA's per-example combiner swapped for its group version (same keys and state).

    Raises:
        ValueError: a combiner with no group version, or one configured beyond what a group version does
            (aggregation, class weights, sub keys, example ids).
    """
    combiner = computation.combiner
    group_type = _GROUP_VERSIONS.get(type(combiner))
    if group_type is None:
        raise ValueError(f"no group version of TFMA's {type(combiner).__name__} ({computation.keys[0]})")
    settings = vars(combiner)
    key = settings.get("_key") or settings["_keys"][0]
    if key.sub_key or any(settings.get(name) for name in ("_aggregation_type", "_class_weights", "_example_id_key")):
        raise ValueError(f"no group version of {key}: aggregation, class weights, sub key or example ids")
    grouped = group_type.__new__(group_type)
    grouped.__dict__.update(settings, _eval_config=eval_config)
    # ExampleCount's own preprocessor keeps only the weights; a group's rows are counted off its predictions.
    preprocessors = None if group_type is _GroupExampleCountCombiner else computation.preprocessors
    return metric_types.MetricComputation(keys=computation.keys, preprocessors=preprocessors, combiner=grouped)


_PREFIX = "Grouped"


def _group_metric(tfma_metric: type[metric_types.Metric]) -> type[metric_types.Metric]:
    """A subclass of TFMA's metric class (same metric names, keys), its per-example combiners swapped for group ones."""

    def computations(self, eval_config=None, *args: Any, **kwargs: Any) -> metric_types.MetricComputations:
        return [
            _grouped(c, eval_config) if isinstance(c, metric_types.MetricComputation) else c
            for c in tfma_metric.computations(self, eval_config, *args, **kwargs)
        ]

    name = _PREFIX + tfma_metric.__name__
    return type(name, (tfma_metric,), {"computations": computations, "__module__": __name__, "__qualname__": name})


# The binary metrics eval_config names (tfxp.pipeline.evaluation): TFMA's class as "Grouped" + its name (TFMA
# resolves its own registered class names before a config's module), same metric keys ("auc", ...).
_GROUPED = {
    tfma_class.__name__: _group_metric(tfma_class)
    for tfma_class in (
        tfma.metrics.AUC,
        tfma.metrics.BinaryAccuracy,
        tfma.metrics.Precision,
        tfma.metrics.Recall,
        tfma.metrics.TruePositives,
        tfma.metrics.FalsePositives,
        tfma.metrics.TrueNegatives,
        tfma.metrics.FalseNegatives,
        tfma.metrics.ExampleCount,
        tfma.metrics.ConfusionMatrixPlot,
        tfma.metrics.CalibrationPlot,
        histogram_calibration.HistogramCalibration,
    )
}
globals().update({cls.__name__: cls for cls in _GROUPED.values()})


def grouped_class_name(class_name: str) -> str | None:
    """The class name of `class_name`'s metric on slice groups ("AUC" -> "GroupedAUC"); None if it has none."""
    return _GROUPED[class_name].__name__ if class_name in _GROUPED else None


def tfma_class_name(class_name: str) -> str:
    """The TFMA (or tfxp) metric class a grouped one computes ("GroupedAUC" -> "AUC"); others unchanged."""
    return class_name.removeprefix(_PREFIX) if class_name.removeprefix(_PREFIX) in _GROUPED else class_name


def _combiners(eval_config: tfma.EvalConfig) -> list[Any]:
    computations = metric_specs.to_computations(list(eval_config.metrics_specs), eval_config=eval_config)
    return [c.combiner for c in computations if isinstance(c, metric_types.MetricComputation)]


_GROUP_COMBINERS = tuple(_GROUP_VERSIONS.values())


def grouping(eval_config: tfma.EvalConfig) -> bool:
    """Whether the config's metrics read slice groups (all of its combiners are the group ones above).

    Raises:
        ValueError: some combiners are group ones and some TFMA's per-example ones (neither input serves both).
    """
    combiners = _combiners(eval_config)
    kinds = {isinstance(c, _GROUP_COMBINERS) for c in combiners}
    if kinds == {True, False}:
        names = sorted({type(c).__name__ for c in combiners if not isinstance(c, _GROUP_COMBINERS)})
        raise ValueError(f"metrics on slice groups cannot run beside TFMA's per-example combiners {names}")
    return kinds == {True}


def slice_specs(eval_config: tfma.EvalConfig) -> list[slicer.SingleSliceSpec]:
    """The slices TFMA's SliceKeyExtractor computes for the config (slice_key_extractor.SliceKeyExtractor)."""
    specs = [slicer.SingleSliceSpec(spec=s) for s in eval_config.slicing_specs]
    for cross in eval_config.cross_slicing_specs:
        for spec in (cross.baseline_spec, *cross.slicing_specs):
            single = slicer.SingleSliceSpec(spec=spec)
            if single not in specs:
                specs.append(single)
    return specs or [slicer.SingleSliceSpec()]


def _stack(values: list[Any]) -> Any:
    """Per-row values stacked along a new first axis, dicts (per model, per output) key by key."""
    if all(v is None for v in values):
        return None
    if isinstance(values[0], dict):
        return {name: _stack([v[name] for v in values]) for name in values[0]}
    return np.stack([np.asarray(v) for v in values])


class _SliceGroupsFn(beam.DoFn):
    """A batched extract -> one extract per slice key of its rows, holding those rows' stacked inputs."""

    def __init__(self, eval_config: tfma.EvalConfig):
        self._eval_config = eval_config
        self._specs = slice_specs(eval_config)

    def setup(self) -> None:
        self._slice_keys = slice_key_extractor.ExtractSliceKeysFn(self._eval_config, materialize=False)

    def process(self, batched: dict) -> Iterator[dict]:
        rows = unbatch_extractor._extract_unbatched_inputs(batched)
        groups: dict[Any, list[int]] = collections.defaultdict(list)
        for i, row in enumerate(rows):
            (keyed,) = self._slice_keys.process(row, self._specs)
            for slice_key in keyed[constants.SLICE_KEY_TYPES_KEY]:
                groups[slice_key].append(i)
        for slice_key, members in groups.items():
            group = {key: _stack([rows[i].get(key) for i in members]) for key in _GROUPED_KEYS}
            group[constants.SLICE_KEY_TYPES_KEY] = slicer.slice_keys_to_numpy_array([slice_key])
            yield group


def slice_groups_extractor(eval_config: tfma.EvalConfig) -> tfma.extractors.Extractor:
    """The extractor replacing TFMA's UnbatchExtractor and SliceKeyExtractor when `grouping(eval_config)`."""
    return tfma.extractors.Extractor(stage_name=SLICE_GROUPS_STAGE, ptransform=beam.ParDo(_SliceGroupsFn(eval_config)))
