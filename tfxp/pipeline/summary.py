"""The run summary: rows per split, anomalies, metrics per slice, blessing, push."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from tfxp.pipeline.mlmd import MetadataReader, int_property, str_property
from tfxp.schema.anomalies import read_anomalies, split_row_counts


@dataclass
class ThresholdFailure:
    """A blessing threshold the model failed. `value`: None when the metric is undefined on the slice,
    then `undefined` says why (explain_undefined's reason, e.g. "one class only")."""

    slice: str
    metric: str
    value: float | None
    threshold: str
    undefined: str | None = None

    def __str__(self) -> str:
        if self.undefined is not None:
            where = "the eval split" if self.slice == "Overall" else f"slice {self.slice} of the eval split"
            advice = _UNDEFINED_ADVICE.get(self.undefined, "see the log file")
            return f"{self.metric} is undefined on {where} ({self.undefined}), so it fails {self.threshold}: {advice}"
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        return f"{self.metric} = {value} on slice {self.slice} fails {self.threshold}"


def mark_undefined(
    failures: list[ThresholdFailure], undefined: Mapping[str, Mapping[str, str]]
) -> list[ThresholdFailure]:
    """`failures` with the metrics undefined on their slice (`undefined`: slice -> metric -> why, from
    explain_undefined) given no value and the reason: TFMA still compares a number (AUC 0.0 on one class,
    its np.nansum), which is no measurement of the model."""
    for failure in failures:
        base = failure.metric.removesuffix(" (change vs baseline)")
        why = undefined.get(failure.slice, {}).get(base)
        if why is not None:
            failure.value, failure.undefined = None, why
    return failures


@dataclass
class Summary:
    pipeline: str
    rows: dict[str, int] = field(default_factory=dict)
    anomalies: list[dict] = field(default_factory=list)
    # slice -> metric -> value; None where the metric is undefined on the slice.
    metrics: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    # slice -> metric -> why it is undefined (e.g. "one class only"); see explain_undefined.
    undefined_metrics: dict[str, dict[str, str]] = field(default_factory=dict)
    # How the project differs from the model pushed under its name (run refused; pipeline.identity).
    identity_changes: list[str] = field(default_factory=list)
    blessed: bool | None = None
    failures: list[ThresholdFailure] = field(default_factory=list)
    baseline_model: str | None = None
    pushed: bool = False
    pushed_path: str | None = None
    pushed_version: str | None = None
    # True when the model had been pushed before (its version is reused, nothing copied).
    pushed_earlier: bool = False
    # The highest version in the serving base path: what TF Serving's default policy serves.
    served_version: str | None = None
    # The files ExampleGen read (its Examples artifact's `input_files`: path, sha256, bytes, rows, span).
    input_files: list[dict] = field(default_factory=list)
    # DataDriftGate's result (tfxp.pipeline.drift.DriftResult as JSON: status passed|accepted|skipped, skipped's
    # reason, served_version, findings, not_compared); None when the gate didn't finish (a refusal is an anomaly).
    drift: dict | None = None
    # The pushed version's model card page (model_card.html beside model_card.json: tfxp.pipeline.model_card).
    model_card: str | None = None
    # The InfraValidator's result (tfxp.pipeline.infra_validator: status, reason, load_seconds, p50_ms, p99_ms,
    # rss_bytes, requests, compared, max_abs_diff, signatures); None when it didn't finish.
    infra_validation: dict | None = None
    # What the Trainer trained with (tfxp.models.tuning.chosen): {"values": {...}, "source": "default" or the
    # tuning's record (tuner, trials, completed, run, time)}; None when no Trainer ran.
    hyperparameters: dict | None = None
    # This run's search (`--tune`): {"trials": [...every trial: trial_id, status, score, values, message]}.
    tuning: dict | None = None
    # The canary push (tfxp.pipeline.canary_push): mode, pinned, version, done, labels, versions, message, next;
    # None when the run replaces the served version.
    release: dict | None = None
    # Multiclass, on the overall eval slice, top-1 (a row counts as the class of its highest probability):
    # class name -> {"precision", "recall", "examples"} (TFMA's precision/class_k, recall/class_k), and
    # TFMA's MultiClassConfusionMatrixPlot as {"classes", "counts" [actual][predicted], "no_prediction"}.
    per_class: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    confusion_matrix: dict | None = None
    mobile_pushed: bool = False
    mobile_path: str | None = None
    mobile_variants: list[str] = field(default_factory=list)
    mobile_rejected: dict[str, list[str]] = field(default_factory=dict)  # variant -> reasons
    # Why nothing was pushed for mobile although the serving push was made (a ConversionError, a
    # MobilePusher failure, every variant rejected); None when it was pushed or nothing was to push.
    mobile_error: str | None = None
    components: list[dict] = field(default_factory=list)  # id, status, seconds
    # True when every component reused an earlier result (nothing new was pushed).
    fully_cached: bool = False
    wall_seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _slice_name(slice_key) -> str:
    """TFMA slice key proto -> 'Overall' or 'feature=value'."""
    parts = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{single.column}={value}")
    return ",".join(parts) or "Overall"


# -- undefined metrics ------------------------------------------------------------------------
# TFMA's confusion counts at its default 0.5 threshold; pipeline/evaluation.py puts
# them in eval_config so that undefinedness is decided from counts, not from values:
# TFMA's AUC sums with np.nansum and so reports 0.0, not NaN, on a one-class slice
# (tensorflow_model_analysis/metrics/confusion_matrix_metrics.py, AUC.result).
TRUE_POSITIVES = "true_positives"
FALSE_POSITIVES = "false_positives"
TRUE_NEGATIVES = "true_negatives"
FALSE_NEGATIVES = "false_negatives"
CONFUSION_COUNTS = (TRUE_POSITIVES, FALSE_POSITIVES, TRUE_NEGATIVES, FALSE_NEGATIVES)
EXAMPLE_COUNT = "example_count"
COUNT_METRICS = (EXAMPLE_COUNT, *CONFUSION_COUNTS)

ONE_CLASS = "one class only"
NO_POSITIVE_PREDICTIONS = "no positive predictions"
NO_POSITIVE_LABELS = "no positive labels"
NO_EXAMPLES = "no examples"
NOT_A_NUMBER = "NaN from TFMA"

# What to do when a gated metric is undefined on the eval split, per reason (see explain_undefined).
_UNDEFINED_ADVICE = {
    ONE_CLASS: "its rows hold one class of the label: add rows until the eval split holds both classes, "
    "or check that the label is the column you meant",
    NO_POSITIVE_LABELS: "its rows hold no positive label: add rows with the positive class, or check the "
    "label and its positive value",
    NO_EXAMPLES: "it has no rows: add rows",
}


@dataclass(frozen=True)
class ConfusionCounts:
    """One slice's confusion matrix at the 0.5 threshold (weighted counts, hence floats)."""

    tp: float
    fp: float
    tn: float
    fn: float

    @property
    def positives(self) -> float:
        return self.tp + self.fn

    @property
    def negatives(self) -> float:
        return self.tn + self.fp

    @property
    def predicted_positives(self) -> float:
        return self.tp + self.fp

    @classmethod
    def of(cls, values: Mapping[str, float | int | None]) -> ConfusionCounts | None:
        """The counts of one slice's metrics; None when any is missing (runs before they were added)."""
        counts = [values.get(name) for name in CONFUSION_COUNTS]
        if any(c is None or not math.isfinite(c) for c in counts):
            return None
        return cls(*counts)


# metric -> (undefined for these counts?, why). Each rule is the metric's zero
# denominator, as TFMA 0.47 computes it (confusion_matrix_metrics.py, calibration.py):
# AUC (ROC) = area under TPR = tp/(tp+fn) against FPR = fp/(fp+tn), so both classes
# are needed; precision = tp/(tp+fp); recall = tp/(tp+fn); calibration =
# sum(predictions)/sum(labels), and the label (big_tipper) is 0/1, so sum(labels) = tp+fn.
_RULES: dict[str, tuple[Callable[[ConfusionCounts], bool], str]] = {
    "auc": (lambda c: c.positives == 0 or c.negatives == 0, ONE_CLASS),
    "precision": (lambda c: c.predicted_positives == 0, NO_POSITIVE_PREDICTIONS),
    "recall": (lambda c: c.positives == 0, NO_POSITIVE_LABELS),
    "calibration": (lambda c: c.positives == 0, NO_POSITIVE_LABELS),
}


def _why_undefined(
    name: str, value: float | int | None, counts: ConfusionCounts | None, example_count: float | int | None
) -> str | None:
    """Why metric `name` is undefined on a slice, or None when it is defined."""
    if name in COUNT_METRICS:
        return None  # a count is always defined, 0 included
    if example_count == 0:
        return NO_EXAMPLES
    rule = _RULES.get(name)
    if rule is not None and counts is not None and rule[0](counts):
        return rule[1]
    if value is None or not math.isfinite(value):
        # Without counts (older runs), TFMA's NaN for these metrics means exactly the
        # rule's zero denominator; any other NaN is reported as it is.
        return rule[1] if rule is not None and counts is None else NOT_A_NUMBER
    return None


def explain_undefined(
    metrics: Mapping[str, Mapping[str, float | int | None]],
) -> tuple[dict[str, dict[str, float | int | None]], dict[str, dict[str, str]]]:
    """(metrics with undefined values set to None, slice -> metric -> why undefined).

    Counts that are whole numbers become ints (TFMA reports every value as a double).
    """
    cleaned: dict[str, dict[str, float | int | None]] = {}
    reasons: dict[str, dict[str, str]] = {}
    for slice_name, values in metrics.items():
        counts = ConfusionCounts.of(values)
        out: dict[str, float | int | None] = {}
        for name, value in values.items():
            why = _why_undefined(name, value, counts, values.get(EXAMPLE_COUNT))
            if why is not None:
                reasons.setdefault(slice_name, {})[name] = why
                out[name] = None
            elif name in COUNT_METRICS and isinstance(value, float) and value.is_integer():
                out[name] = int(value)
            else:
                out[name] = value
        cleaned[slice_name] = out
    return cleaned, reasons


def metric_name(key) -> str:
    """A TFMA MetricKey's name; a per-class metric (multiclass, binarized by class id) as
    "precision/class_2", so each class keeps its own value."""
    if key.HasField("sub_key") and key.sub_key.HasField("class_id"):
        return f"{key.name}/class_{key.sub_key.class_id.value}"
    return key.name


# TFMA metric class -> its metric key name where the class isn't a tfma.metrics one (a Keras metric class).
_KERAS_NAMES = {"SparseCategoricalAccuracy": "sparse_categorical_accuracy"}


def metric_key_name(class_name: str) -> str:
    """The key name TFMA reports a metric class under ("AUC" -> "auc", "BinaryAccuracy" -> "binary_accuracy"); a
    metric on slice groups as its TFMA class ("GroupedAUC" -> "auc", tfxp.pipeline.batched_metrics)."""
    import tensorflow_model_analysis as tfma

    from tfxp.pipeline.batched_metrics import tfma_class_name

    class_name = tfma_class_name(class_name)

    if class_name in _KERAS_NAMES:
        return _KERAS_NAMES[class_name]
    metric_class = getattr(tfma.metrics, class_name, None)
    if metric_class is None:
        import tensorflow as tf

        metric_class = getattr(tf.keras.metrics, class_name)
    return metric_class().name


def evaluation_metrics(evaluation_uri: str, baseline: bool = False) -> dict[str, dict[str, float]]:
    """slice -> metric -> value of the candidate model (or, `baseline`, of the baseline TFMA compared it to:
    {} without one) from the Evaluator's output."""
    import tensorflow_model_analysis as tfma

    out: dict[str, dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        values = {}
        for kv in slice_metrics.metric_keys_and_values:
            # With a baseline, TFMA also reports the baseline's metrics and diffs.
            if kv.key.is_diff or (kv.key.model_name == "baseline") != baseline:
                continue
            if kv.value.HasField("double_value"):
                values[metric_name(kv.key)] = kv.value.double_value.value
        if values or not baseline:
            out[_slice_name(slice_metrics.slice_key)] = values
    return out


def threshold_failures(evaluation_uri: str) -> list[ThresholdFailure]:
    """The blessing thresholds the candidate failed, per slice, from TFMA's validation result."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        slice_name = _slice_name(per_slice.slice_key)
        for failure in per_slice.failures:
            name = failure.metric_key.name + (" (change vs baseline)" if failure.metric_key.is_diff else "")
            value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
            threshold = " ".join(str(failure.metric_threshold).split())
            failures.append(ThresholdFailure(slice_name, name, value, threshold))
    return failures


def _count(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def confusion_matrix(evaluation_uri: str, classes: tuple[str, ...] | list[str]) -> dict | None:
    """The overall slice's MultiClassConfusionMatrixPlot (TFMA, threshold 0.0: each row is predicted as
    its top-1 class) as {"classes": names, "counts": K x K [actual][predicted], "no_prediction": K counts
    of rows without a top class (a NaN output)}. None when the evaluation has no such plot."""
    import tensorflow_model_analysis as tfma

    k = len(classes)
    for plots in tfma.load_plots(evaluation_uri):
        if _slice_name(plots.slice_key) != "Overall":
            continue
        for kv in plots.plot_keys_and_values:
            if kv.key.model_name == "baseline" or not kv.value.HasField("multi_class_confusion_matrix_at_thresholds"):
                continue
            matrices = kv.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            counts = [[0.0] * k for _ in range(k)]
            missing = [0.0] * k
            for entry in matrices[0].entries:
                actual, predicted = entry.actual_class_id, entry.predicted_class_id
                if not 0 <= actual < k:
                    continue  # a label outside the classes: the schema's domain refuses it before training
                if 0 <= predicted < k:
                    counts[actual][predicted] += entry.num_weighted_examples
                else:
                    missing[actual] += entry.num_weighted_examples
            return {
                "classes": list(classes),
                "counts": [[_count(c) for c in row] for row in counts],
                "no_prediction": [_count(c) for c in missing],
            }
    return None


def per_class(
    overall: Mapping[str, float | int | None], classes: tuple[str, ...] | list[str], matrix: dict | None
) -> dict[str, dict[str, float | int | None]]:
    """Class name -> top-1 precision, recall (the overall slice's `precision/class_k`, `recall/class_k`) and
    examples (the class's eval rows, from the confusion matrix; None without it)."""
    out = {}
    for k, name in enumerate(classes):
        examples = None
        if matrix is not None:
            examples = _count(sum(matrix["counts"][k]) + matrix["no_prediction"][k])
        out[name] = {
            "precision": overall.get(f"precision/class_{k}"),
            "recall": overall.get(f"recall/class_{k}"),
            "examples": examples,
        }
    return out


def _card_page(version_dir: str | None) -> str | None:
    """`<version_dir>/model_card.html` when the version has a card (local pushes; a gs:// one is not looked at)."""
    import os

    from tfxp.pipeline.model_card import CARD_HTML, read_card

    if not version_dir or "://" in version_dir or read_card(version_dir) is None:
        return None
    return os.path.join(version_dir, CARD_HTML)


def _tuning(results_uri: str) -> dict:
    """The Tuner's tuner_results.json (tfxp.models.tuning.TunerExecutor) as {"trials": [...]}."""
    import tensorflow as tf

    with tf.io.gfile.GFile(f"{results_uri.rstrip('/')}/tuner_results.json") as f:
        return {"trials": json.loads(f.read())}


def collect(reader: MetadataReader, pipeline_name: str, classes: tuple[str, ...] = ()) -> Summary:
    """Summarises the newest run from MLMD: only executions of that run count.

    `classes`: a multiclass model's class names in output order, for `per_class` and
    `confusion_matrix` (left empty otherwise)."""
    summary = Summary(pipeline=pipeline_name)
    this_run = reader.latest_run_execution_ids()

    def latest(node_id: str):
        return reader.latest(pipeline_name, node_id, within=this_run)

    example_gen = latest("CsvExampleGen")
    if example_gen and example_gen.output("examples") is not None:
        summary.input_files = json.loads(str_property(example_gen.output("examples"), "input_files") or "[]")

    stats = latest("StatisticsGen")
    if stats and stats.output("statistics") is not None:
        summary.rows = split_row_counts(stats.output("statistics").uri)

    validator = latest("ExampleValidator")
    if validator and validator.output("anomalies") is not None:
        summary.anomalies = [a.as_dict() for a in read_anomalies(validator.output("anomalies").uri)]

    drift_gate = latest("DataDriftGate")
    if drift_gate and drift_gate.state in ("COMPLETE", "CACHED") and drift_gate.output("drift") is not None:
        summary.drift = json.loads(str_property(drift_gate.output("drift"), "drift") or "null")

    trainer = latest("Trainer")
    if trainer and trainer.state in ("COMPLETE", "CACHED") and trainer.output("model") is not None:
        from tfxp.models.tuning import read_chosen

        summary.hyperparameters = read_chosen(f"{trainer.output('model').uri.rstrip('/')}/Format-Serving")
    tuner = latest("Tuner")
    if tuner and tuner.state in ("COMPLETE", "CACHED") and tuner.output("tuner_results") is not None:
        summary.tuning = _tuning(tuner.output("tuner_results").uri)

    evaluator = latest("Evaluator")
    if evaluator and evaluator.state in ("COMPLETE", "CACHED"):
        evaluation = evaluator.output("evaluation")
        if evaluation is not None:
            summary.metrics, summary.undefined_metrics = explain_undefined(evaluation_metrics(evaluation.uri))
            summary.failures = mark_undefined(threshold_failures(evaluation.uri), summary.undefined_metrics)
            if classes:
                summary.confusion_matrix = confusion_matrix(evaluation.uri, classes)
                summary.per_class = per_class(summary.metrics.get("Overall", {}), classes, summary.confusion_matrix)
        blessing = evaluator.output("blessing")
        summary.blessed = int_property(blessing, "blessed") == 1
        # Resolver nodes record no outputs; the resolved baseline is the Evaluator's input.
        baseline = evaluator.input("baseline_model")
        if baseline is not None:
            summary.baseline_model = baseline.uri

    infra = latest("InfraValidator")
    if infra and infra.state in ("COMPLETE", "CACHED") and infra.output("blessing") is not None:
        summary.infra_validation = json.loads(str_property(infra.output("blessing"), "infra_validation") or "null")

    pusher = latest("Pusher")
    if pusher and pusher.state in ("COMPLETE", "CACHED"):
        pushed = pusher.output("pushed_model")
        summary.pushed = int_property(pushed, "pushed") == 1
        summary.pushed_path = str_property(pushed, "pushed_destination")
        summary.pushed_version = str_property(pushed, "pushed_version")
        summary.pushed_earlier = int_property(pushed, "pushed_earlier") == 1
        summary.served_version = str_property(pushed, "served_version")
        summary.model_card = _card_page(summary.pushed_path)
    mobile = latest("MobilePusher")
    if mobile and mobile.state in ("COMPLETE", "CACHED"):
        pushed = mobile.output("mobile_pushed_model")
        summary.mobile_pushed = int_property(pushed, "pushed") == 1
        summary.mobile_path = str_property(pushed, "pushed_destination")
        summary.mobile_variants = json.loads(str_property(pushed, "variants") or "[]")
        summary.mobile_rejected = json.loads(str_property(pushed, "rejected") or "{}")
        summary.mobile_error = str_property(pushed, "error") or None
        if summary.pushed and not summary.mobile_pushed and summary.mobile_error is None:
            summary.mobile_error = "every TFLite variant was rejected (reasons under mobile_rejected)"
    return summary
