"""What one pipeline run did, read from ML Metadata and the artifacts it points to (TFDV statistics, TFMA results,
TensorBoard event files): the RunReport that render.py turns into a page.

A run is a `pipeline_run` context of LocalDagRunner (one per `tfxp run`); a node's execution in the run is its
newest execution within that context (a cached one included: TFX records the reused artifacts as its outputs).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tfxp.pipeline.lineage import INPUT_FILES, pushed_version_of
from tfxp.pipeline.mlmd import MetadataQueries, MetadataReader, int_property, str_property
from tfxp.pipeline.summary import Summary, collect, evaluation_metrics, metric_key_name

# The DAG's nodes in execution order (tfxp.pipeline.pipeline.create_pipeline); a run lists those that ran.
NODES = (
    "CsvExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "DataGate",
    "DataDriftGate",
    "Transform",
    "Trainer",
    "baseline_resolver",
    "Evaluator",
    "Pusher",
    "MobilePusher",
)
TOP_VALUES = 10  # categorical values charted per feature (the rest are summed into "(other)")
HISTOGRAM_BUCKETS = 10  # TFDV's standard histogram has 10 equal-width buckets
NUMERIC, CATEGORICAL = "numeric", "categorical"
OTHER = "(other)"


class ReportError(ValueError):
    """No report can be made: no metadata, no run, or an unknown version. The message names what exists."""


@dataclass
class FeatureStats:
    """One feature of one split: `labels` are histogram buckets ("[low, high)", increasing) or top values (most
    frequent first, then OTHER); `shares` and `baseline` their shares of the split's rows (baseline: of the
    baseline's training rows, on the same labels; None without a baseline); `missing`: share of rows without a
    value."""

    name: str
    kind: str
    missing: float
    labels: list[str]
    shares: list[float]
    baseline: list[float] | None = None
    baseline_missing: float | None = None


@dataclass
class SplitStats:
    split: str
    rows: int
    features: list[FeatureStats]


@dataclass
class Step:
    """One node of the run: its execution (None when it did not run) and state (COMPLETE, CACHED, FAILED, ...)."""

    node: str
    state: str
    execution_id: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # output key -> artifact URI


@dataclass
class Gate:
    """A blessing threshold on the overall slice and its decision in this run."""

    metric: str
    threshold: str
    value: float | None
    baseline: float | None
    passed: bool


@dataclass
class RunReport:
    pipeline: str
    run: str  # the pipeline_run context's name (LocalDagRunner: the run's start time)
    task: str | None  # binary | multiclass | regression (from the Trainer's custom_config); None before it ran
    steps: list[Step]
    outcome: str  # one sentence: pushed, or where and why the run stopped
    summary: dict  # tfxp.pipeline.summary.Summary of this run, as a dict
    input_files: list[dict]  # ExampleGen's input_files: path, sha256, bytes, rows (+ span)
    statistics: list[SplitStats] = field(default_factory=list)
    baseline_stats_source: str | None = None  # where the baseline's training statistics came from
    baseline_version: str | None = None
    baseline_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # slice -> metric -> baseline's
    gates: list[Gate] = field(default_factory=list)
    roc: list[tuple[float, float]] | None = None  # (false positive rate, true positive rate), overall slice
    calibration: list[dict] | None = None  # buckets: {"low", "high", "prediction", "label", "examples"} (means)
    residuals: list[dict] | None = None  # regression, the same per prediction bucket (evaluation.ResidualPlot)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # TensorBoard tag -> (step, value)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    def as_dict(self) -> dict:
        return asdict(self)


# -- the store ------------------------------------------------------------------------------------------------


class RunReader(MetadataReader):
    """A MetadataReader whose "latest run" is the run chosen, so summary.collect reads that run."""

    def __init__(self, sqlite_path: Path, run_ids: set[int]):
        super().__init__(sqlite_path)
        self._run_ids = run_ids

    def latest_run_execution_ids(self) -> set[int]:
        return self._run_ids


def metadata_path(output: Path, name: str) -> Path:
    return Path(output) / "metadata" / name / "metadata.db"


def pipeline_names(output: Path) -> list[str]:
    """The pipelines with metadata under OUTPUT (OUTPUT/metadata/<name>/metadata.db)."""
    root = Path(output) / "metadata"
    return sorted(p.parent.name for p in root.glob("*/metadata.db")) if root.is_dir() else []


def _pushes(store: MetadataQueries) -> list[tuple[str, list]]:
    """(version, the Pusher executions that output it, oldest first) of every PushedModel the serving Pusher
    pushed (not MobilePusher's, which carries the same version), oldest artifact first."""
    pushes = []
    for artifact in store.store.get_artifacts_by_type("PushedModel"):
        version = str_property(artifact, "pushed_version")
        if not version or int_property(artifact, "pushed") != 1:
            continue
        producers = [e for e in store.executions_with(artifact.id, output=True) if store.node_of(e.id) == "Pusher"]
        if producers:
            pushes.append((version, producers))
    return pushes


def pushed_versions(store: MetadataQueries) -> list[str]:
    """Every version the Pusher pushed, oldest first."""
    versions = {version for version, _ in _pushes(store)}
    return sorted(versions, key=lambda v: (len(v), v))


def find_run(store: MetadataQueries, version: str | None):
    """The run that pushed `version` (the first Pusher execution that output it complete, not a cached reuse), or
    the newest run when `version` is None.

    Raises ReportError naming the versions pushed (or that there is no run)."""
    runs = store.runs()
    if not runs:
        raise ReportError("the metadata holds no pipeline run")
    if version is None:
        return runs[-1]
    for pushed, producers in _pushes(store):
        if pushed != version:
            continue
        first = next((e for e in producers if store.state(e) == "COMPLETE"), producers[0])
        run = store.run_of(first.id)
        if run is not None:
            return run
    known = ", ".join(pushed_versions(store)) or "none"
    raise ReportError(f"no run pushed version {version}; versions pushed: {known}")


# -- the run --------------------------------------------------------------------------------------------------


def collect_run(output: Path, name: str, version: str | None = None) -> RunReport:
    """The RunReport of the run that pushed `version` (None: the newest run) of pipeline `name` under OUTPUT.

    Raises ReportError when OUTPUT has no metadata for `name` (naming the pipelines it has), the metadata has no
    run, or no run pushed `version` (naming the versions pushed).
    """
    path = metadata_path(output, name)
    if not path.is_file():
        known = ", ".join(pipeline_names(output)) or "none"
        raise ReportError(f"no metadata for pipeline {name!r} at {path} (pipelines under {output}: {known})")
    store = MetadataQueries(path)
    run = find_run(store, version)
    ids = store.run_ids(run)
    reader = RunReader(path, ids)
    nodes = {node: reader.latest(name, node, within=ids) for node in NODES}
    trainer = nodes["Trainer"]
    problem = _problem(store, trainer)
    task = problem["label"]["task"] if problem else None
    classes = tuple(problem["label"].get("classes") or ()) if problem and task == "multiclass" else ()
    summary = collect(reader, name, classes)
    steps = [step_of(node, nodes[node]) for node in NODES]
    report = RunReport(
        pipeline=name,
        run=run.name,
        task=task,
        steps=steps,
        outcome=outcome_of(summary, steps),
        summary=summary.as_dict(),
        input_files=input_files_of(nodes["CsvExampleGen"]),
    )
    evaluator = nodes["Evaluator"]
    baseline = evaluator.input("baseline_model") if evaluator is not None else None
    _add_statistics(report, store, reader, nodes["StatisticsGen"], baseline, output)
    if evaluator is not None and evaluator.state in ("COMPLETE", "CACHED") and evaluator.output("evaluation"):
        _add_evaluation(report, store, evaluator, summary, with_baseline=baseline is not None)
    if trainer is not None and trainer.output("model_run") is not None:
        try:
            report.curves = training_curves(trainer.output("model_run").uri)
        except (OSError, ValueError) as exc:
            report.notes.append(f"training curves not read: {exc}")
    return report


def _add_statistics(
    report: RunReport, store: MetadataQueries, reader: MetadataReader, stats, baseline, output: Path
) -> None:
    """The run's statistics per split, against the baseline's training data when there is a baseline."""
    baseline_stats = None
    if baseline is not None:
        report.baseline_version = pushed_version_of(store, baseline.id)
        baseline_stats, report.baseline_stats_source = _baseline_statistics(
            store, reader, report.pipeline, baseline, output
        )
        if baseline_stats is None:
            report.notes.append("the baseline's training statistics were not found: statistics are shown without it")
    if stats is not None and stats.output("statistics") is not None:
        report.statistics = read_statistics(stats.output("statistics").uri, baseline_stats)


def _add_evaluation(
    report: RunReport, store: MetadataQueries, evaluator, summary: Summary, with_baseline: bool
) -> None:
    """The baseline's metrics, the gates and the task's plots from the Evaluator's output."""
    uri = evaluator.output("evaluation").uri
    report.baseline_metrics = evaluation_metrics(uri, baseline=True) if with_baseline else {}
    report.gates = gates(_eval_config(evaluator, store), summary, report.baseline_metrics)
    if report.task == "binary":
        report.roc, report.calibration = binary_plots(uri)
    elif report.task == "regression":
        report.residuals = residual_plot(uri)


def _json_property(store: MetadataQueries, execution_id: int, name: str) -> dict | None:
    """An execution's JSON custom property (TFX records exec properties this way), None when absent or unreadable."""
    execution = store.store.get_executions_by_id([execution_id])[0]
    if name not in execution.custom_properties:
        return None
    try:
        value = json.loads(execution.custom_properties[name].string_value or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _problem(store: MetadataQueries, trainer) -> dict | None:
    """The Trainer's problem (tfxp.models.features.Problem.to_dict, in its custom_config); None before it ran."""
    config = _json_property(store, trainer.execution_id, "custom_config") if trainer is not None else None
    return config.get("problem") if config else None


def _eval_config(evaluator, store: MetadataQueries) -> dict:
    """The Evaluator's EvalConfig as JSON ({} when not recorded)."""
    return _json_property(store, evaluator.execution_id, "eval_config") or {}


def step_of(node: str, run) -> Step:
    if run is None:
        return Step(node, "NOT RUN")
    outputs = {key: artifacts[-1].uri for key, artifacts in run.outputs.items() if artifacts}
    return Step(node, run.state, run.execution_id, outputs)


def outcome_of(summary: Summary, steps: list[Step]) -> str:
    """Why the run ended where it did, in one sentence."""
    failed = next((s for s in steps if s.state == "FAILED"), None)
    if summary.pushed:
        earlier = " (pushed by an earlier run: same model)" if summary.pushed_earlier else ""
        return f"pushed version {summary.pushed_version} to {summary.pushed_path}{earlier}"
    if summary.anomalies and (failed is None or failed.node == "DataGate"):
        count = len(summary.anomalies)
        found = "; ".join(dict.fromkeys(f"{a['feature']}: {a['anomaly']}" for a in summary.anomalies))
        return (
            f"stopped at the data gate: {count} anomal{'y' if count == 1 else 'ies'} against the schema ({found}); "
            "nothing trained or pushed"
        )
    if failed is not None and failed.node == "DataDriftGate":
        return (
            "stopped at the drift gate: this run's training data drifted from the served model's (the run's log "
            "names each feature and statistic; `tfxp run --accept-drift FEATURE` accepts a real change); "
            "nothing trained or pushed"
        )
    if summary.blessed is False:
        why = "; ".join(str(f) for f in summary.failures) or "no threshold failure recorded"
        return f"not blessed by the Evaluator: {why}; nothing pushed"
    if failed is not None:
        return f"stopped: {failed.node} failed (see the run's log under OUTPUT/logs); nothing pushed"
    unfinished = next((s for s in steps if s.state in ("RUNNING", "NEW")), None)
    if unfinished is not None:
        return f"did not finish: {unfinished.node} is {unfinished.state.lower()} (the run was interrupted)"
    return "nothing was pushed"


def input_files_of(example_gen) -> list[dict]:
    if example_gen is None or example_gen.output("examples") is None:
        return []
    text = str_property(example_gen.output("examples"), INPUT_FILES)
    try:
        files = json.loads(text) if text else []
    except ValueError:
        return []
    return files if isinstance(files, list) else []


def _baseline_statistics(store: MetadataQueries, reader: MetadataReader, name: str, baseline, output: Path):
    """(statistics file per split, where they came from) of the data the baseline model was trained on: the
    StatisticsGen output of the Examples its Trainer read, else its pushed version's train_stats.pb."""
    for trainer in store.executions_with(baseline.id, output=True):
        events = store.store.get_events_by_execution_ids([trainer.id])
        examples = [
            e.artifact_id
            for e in events
            if e.type == store.pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == "examples"
        ]
        for examples_id in examples:
            for execution in store.executions_with(examples_id, output=False):
                if store.node_of(execution.id) != "StatisticsGen":
                    continue
                run = reader.latest(name, "StatisticsGen", within={execution.id})
                statistics = run.output("statistics") if run is not None else None
                if statistics is not None and os.path.isdir(statistics.uri):
                    files = _split_files(statistics.uri)
                    if files:
                        return files, f"StatisticsGen execution {execution.id} ({statistics.uri})"
    version = pushed_version_of(store, baseline.id)
    if version is not None:
        path = Path(output) / "serving" / name / version / "assets.extra" / "tfxp_monitoring" / "train_stats.pb"
        if path.is_file():
            return {"train": str(path)}, f"version {version}'s {path.name}"
    return None, None


def _split_files(statistics_uri: str) -> dict[str, str]:
    base = Path(statistics_uri)
    return {p.parent.name.removeprefix("Split-"): str(p) for p in sorted(base.glob("Split-*/FeatureStats.pb"))}


# -- statistics -----------------------------------------------------------------------------------------------


def _load_stats(path: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    with open(path, "rb") as f:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
    return stats.datasets[0] if stats.datasets else None


def _feature_name(feature) -> str:
    return feature.path.step[0] if feature.path.step else feature.name


def _common(feature):
    which = feature.WhichOneof("stats")
    return getattr(feature, which).common_stats if which in ("num_stats", "string_stats", "bytes_stats") else None


def _missing(feature, rows: int) -> float:
    """Share of rows without a value: TFDV's num_missing (feature absent) plus, for a feature of at most one value
    per row, the rows present with no value (an empty CSV cell is an empty list in the tf.Example)."""
    common = _common(feature)
    if common is None or rows <= 0:
        return 0.0
    if common.max_num_values <= 1:
        return min(1.0, max(0.0, 1.0 - common.tot_num_values / rows))
    return min(1.0, common.num_missing / rows)


def _histogram(feature):
    for histogram in feature.num_stats.histograms:
        if histogram.type == histogram.STANDARD:
            return [(b.low_value, b.high_value, b.sample_count) for b in histogram.buckets]
    return []


def _spread(buckets, edges: list[float]) -> list[float]:
    """Counts of `buckets` (low, high, count) on `edges`, a bucket's count spread evenly over its width (a
    zero-width bucket counts where its value falls)."""
    out = [0.0] * (len(edges) - 1)
    for low, high, count in buckets:
        if high <= low:
            for i in range(len(out)):
                if edges[i] <= low <= edges[i + 1]:
                    out[i] += count
                    break
            continue
        for i in range(len(out)):
            overlap = min(high, edges[i + 1]) - max(low, edges[i])
            if overlap > 0:
                out[i] += count * overlap / (high - low)
    return out


def _edges(low: float, high: float) -> list[float]:
    if high <= low:
        return [low, high]
    return [low + (high - low) * i / HISTOGRAM_BUCKETS for i in range(HISTOGRAM_BUCKETS + 1)]


def _bucket_labels(edges: list[float]) -> list[str]:
    """ "[low, high)" per bucket (the last one closed), in as few significant digits (4 to 12) as keep the edges
    apart: census tracts like 17031081500 need 10."""
    for digits in range(4, 13):
        shown = [f"{e:.{digits}g}" for e in edges]
        if len(set(shown)) == len(set(edges)):
            break
    last = len(edges) - 2
    return [f"[{shown[i]}, {shown[i + 1]}{']' if i == last else ')'}" for i in range(len(edges) - 1)]


def _numeric(feature, rows: int, base, base_rows: int) -> FeatureStats:
    buckets = _histogram(feature)
    base_buckets = _histogram(base) if base is not None and base.HasField("num_stats") else []
    values = buckets + base_buckets
    low = min((b[0] for b in values), default=0.0)
    high = max((b[1] for b in values), default=0.0)
    edges = _edges(low, high)
    labels = _bucket_labels(edges)
    shares = [min(1.0, c / rows) for c in _spread(buckets, edges)] if rows else [0.0] * len(labels)
    stats = FeatureStats(_feature_name(feature), NUMERIC, _missing(feature, rows), labels, shares)
    if base is not None and base_rows:
        stats.baseline = [min(1.0, c / base_rows) for c in _spread(base_buckets, edges)]
        stats.baseline_missing = _missing(base, base_rows)
    return stats


def _ranks(feature) -> list[tuple[str, float]]:
    which = feature.WhichOneof("stats")
    if which != "string_stats":
        return []
    buckets = feature.string_stats.rank_histogram.buckets or feature.string_stats.top_values
    return [
        (getattr(b, "label", None) or getattr(b, "value", ""), getattr(b, "sample_count", 0) or b.frequency)
        for b in buckets
    ]


def _categorical(feature, rows: int, base, base_rows: int) -> FeatureStats:
    ranks = _ranks(feature)
    top = ranks[:TOP_VALUES]
    labels = [value for value, _ in top]
    counts = [count for _, count in top]
    rest = sum(count for _, count in ranks[TOP_VALUES:])
    base_counts = dict(_ranks(base)) if base is not None else {}
    if rest:
        labels.append(OTHER)
        counts.append(rest)
    shares = [min(1.0, c / rows) for c in counts] if rows else [0.0] * len(labels)
    stats = FeatureStats(_feature_name(feature), CATEGORICAL, _missing(feature, rows), labels, shares)
    if base is not None and base_rows:
        known = [base_counts.get(value, 0.0) for value in labels if value != OTHER]
        if rest:
            known.append(max(0.0, sum(base_counts.values()) - sum(known)))
        stats.baseline = [min(1.0, c / base_rows) for c in known]
        stats.baseline_missing = _missing(base, base_rows)
    return stats


def read_statistics(statistics_uri: str, baseline: dict[str, str] | None = None) -> list[SplitStats]:
    """Each split of a StatisticsGen output (`Split-<name>/FeatureStats.pb`, TFDV's DatasetFeatureStatisticsList)
    as SplitStats, features in name order; with `baseline` (split -> statistics file of the baseline's training
    data), each feature also gets the baseline's shares from its "train" split on the same buckets or values.
    """
    base = None
    if baseline:
        path = baseline.get("train") or next(iter(baseline.values()))
        base = _load_stats(path)
    base_features = {_feature_name(f): f for f in base.features} if base is not None else {}
    base_rows = base.num_examples if base is not None else 0
    out = []
    for split, path in _split_files(statistics_uri).items():
        dataset = _load_stats(path)
        if dataset is None:
            continue
        rows = dataset.num_examples
        features = []
        for feature in sorted(dataset.features, key=_feature_name):
            other = base_features.get(_feature_name(feature))
            if feature.HasField("num_stats"):
                features.append(_numeric(feature, rows, other, base_rows))
            elif feature.HasField("string_stats"):
                features.append(_categorical(feature, rows, other, base_rows))
        out.append(SplitStats(split, rows, features))
    return out


# -- TFMA results ---------------------------------------------------------------------------------------------


def _threshold_text(threshold: dict) -> str:
    parts = []
    value = threshold.get("value_threshold", {})
    if "lower_bound" in value:
        parts.append(f">= {value['lower_bound']:g}")
    if "upper_bound" in value:
        parts.append(f"<= {value['upper_bound']:g}")
    change = threshold.get("change_threshold", {})
    if "absolute" in change:
        sign = ">=" if change.get("direction") == "HIGHER_IS_BETTER" else "<="
        parts.append(f"change vs baseline {sign} {change['absolute']:+g}")
    return "; ".join(parts)


def gates(eval_config: dict, summary: Summary, baseline: dict[str, dict[str, float]]) -> list[Gate]:
    """The eval config's thresholds (overall slice) with this run's value, the baseline's, and the decision: a
    gate passed when TFMA's validation result lists no failure of its metric."""
    failed = {f.metric.removesuffix(" (change vs baseline)") for f in summary.failures}
    out = []
    for spec in eval_config.get("metrics_specs", []):
        for metric in spec.get("metrics", []):
            for per_slice in metric.get("per_slice_thresholds", []):
                name = metric_key_name(metric["class_name"])
                out.append(
                    Gate(
                        metric=name,
                        threshold=_threshold_text(per_slice.get("threshold", {})),
                        value=summary.metrics.get("Overall", {}).get(name),
                        baseline=baseline.get("Overall", {}).get(name),
                        passed=name not in failed and summary.blessed is not None,
                    )
                )
    return out


def binary_plots(evaluation_uri: str) -> tuple[list[tuple[float, float]] | None, list[dict] | None]:
    """(ROC points, calibration buckets) of the candidate on the overall slice, from TFMA's ConfusionMatrixPlot
    and CalibrationPlot (tfxp.pipeline.evaluation.PLOTS); (None, None) for an evaluation without them (runs
    before they were configured)."""
    import tensorflow_model_analysis as tfma

    from tfxp.pipeline.summary import _slice_name

    roc = calibration = None
    for plots in tfma.load_plots(evaluation_uri):
        if _slice_name(plots.slice_key) != "Overall":
            continue
        for kv in plots.plot_keys_and_values:
            if kv.key.model_name == "baseline":
                continue
            if kv.value.HasField("confusion_matrix_at_thresholds"):
                points = {(m.false_positive_rate, m.recall) for m in kv.value.confusion_matrix_at_thresholds.matrices}
                roc = sorted(points)
            if kv.value.HasField("calibration_histogram_buckets"):
                calibration = _bucket_means(kv.value.calibration_histogram_buckets)
    return roc, calibration


def _bucket_means(histogram) -> list[dict]:
    """The non-empty buckets of a CalibrationHistogramBuckets proto with their mean prediction and label."""
    out = []
    for b in histogram.buckets:
        n = b.num_weighted_examples.value
        if n > 0:
            out.append(
                {
                    "low": b.lower_threshold_inclusive,
                    "high": b.upper_threshold_exclusive,
                    "prediction": b.total_weighted_refined_prediction.value / n,
                    "label": b.total_weighted_label.value / n,
                    "examples": n,
                }
            )
    return out


def residual_plot(evaluation_uri: str) -> list[dict] | None:
    """The candidate's rows bucketed by prediction on the overall slice (ResidualPlot), as _bucket_means; None
    for an evaluation without it."""
    import tensorflow_model_analysis as tfma

    from tfxp.pipeline.evaluation import RESIDUAL_PLOT_NAME
    from tfxp.pipeline.summary import _slice_name

    for plots in tfma.load_plots(evaluation_uri):
        if _slice_name(plots.slice_key) != "Overall":
            continue
        for kv in plots.plot_keys_and_values:
            if kv.key.model_name != "baseline" and kv.key.name == RESIDUAL_PLOT_NAME:
                return _bucket_means(kv.value.calibration_histogram_buckets)
    return None


# -- TensorBoard ----------------------------------------------------------------------------------------------


def training_curves(model_run_uri: str) -> dict[str, list[tuple[int, float]]]:
    """Tag -> (step, value) of the scalars the Trainer wrote to its model_run folder (TensorBoard event files;
    tfxp.models.model.train writes train/loss every 50 steps and eval/<metric> once, at the last step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    if not os.path.isdir(model_run_uri):
        raise ValueError(f"no folder {model_run_uri}")
    accumulator = EventAccumulator(model_run_uri, size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    curves: dict[str, list[tuple[int, float]]] = {}
    for tag in tags.get("tensors", []):
        curves[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]
    for tag in tags.get("scalars", []):
        curves[tag] = [(e.step, float(e.value)) for e in accumulator.Scalars(tag)]
    return {tag: sorted(points) for tag, points in sorted(curves.items())}
