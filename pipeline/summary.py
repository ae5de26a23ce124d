"""The run summary: rows per split, anomalies, metrics per slice, blessing, push."""
from __future__ import annotations

import glob
import json
import os
from dataclasses import asdict, dataclass, field

from pipeline.anomalies import read_anomalies
from pipeline.mlmd import MetadataReader, int_property, str_property


@dataclass
class ThresholdFailure:
    slice: str
    metric: str
    value: float | None
    threshold: str

    def __str__(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        return f"{self.metric} = {value} on slice {self.slice} fails {self.threshold}"


@dataclass
class Summary:
    pipeline: str
    rows: dict[str, int] = field(default_factory=dict)
    anomalies: list[dict] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # slice -> metric -> value
    blessed: bool | None = None
    failures: list[ThresholdFailure] = field(default_factory=list)
    baseline_model: str | None = None
    pushed: bool = False
    pushed_path: str | None = None
    pushed_version: str | None = None
    mobile_pushed: bool = False
    mobile_path: str | None = None
    mobile_variants: list[str] = field(default_factory=list)
    mobile_rejected: dict[str, list[str]] = field(default_factory=dict)  # variant -> reasons
    components: list[dict] = field(default_factory=list)  # id, status, seconds
    # True when every component reused an earlier result (nothing new was pushed).
    fully_cached: bool = False
    wall_seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _rows(statistics_uri: str) -> dict[str, int]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = {}
    for path in sorted(glob.glob(os.path.join(statistics_uri, "Split-*", "FeatureStats.pb"))):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(path, "rb") as f:
            stats.ParseFromString(f.read())
        split = os.path.basename(os.path.dirname(path))[len("Split-"):]
        rows[split] = sum(d.num_examples for d in stats.datasets)
    return rows


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


def _metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    import tensorflow_model_analysis as tfma

    out: dict[str, dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        values = {}
        for kv in slice_metrics.metric_keys_and_values:
            # With a baseline, TFMA also reports the baseline's metrics and diffs.
            if kv.key.is_diff or kv.key.model_name == "baseline":
                continue
            if kv.value.HasField("double_value"):
                values[kv.key.name] = kv.value.double_value.value
        out[_slice_name(slice_metrics.slice_key)] = values
    return out


def _failures(evaluation_uri: str) -> list[ThresholdFailure]:
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


def collect(reader: MetadataReader, pipeline_name: str) -> Summary:
    """Summarises the newest run from MLMD: only executions of that run count."""
    summary = Summary(pipeline=pipeline_name)
    this_run = reader.latest_run_execution_ids()

    def latest(node_id: str):
        return reader.latest(pipeline_name, node_id, within=this_run)

    stats = latest("StatisticsGen")
    if stats and stats.output("statistics") is not None:
        summary.rows = _rows(stats.output("statistics").uri)

    validator = latest("ExampleValidator")
    if validator and validator.output("anomalies") is not None:
        summary.anomalies = [a.as_dict() for a in read_anomalies(validator.output("anomalies").uri)]

    evaluator = latest("Evaluator")
    if evaluator and evaluator.state in ("COMPLETE", "CACHED"):
        evaluation = evaluator.output("evaluation")
        if evaluation is not None:
            summary.metrics = _metrics(evaluation.uri)
            summary.failures = _failures(evaluation.uri)
        blessing = evaluator.output("blessing")
        summary.blessed = int_property(blessing, "blessed") == 1
        # Resolver nodes record no outputs; the resolved baseline is the Evaluator's input.
        baseline = evaluator.input("baseline_model")
        if baseline is not None:
            summary.baseline_model = baseline.uri

    pusher = latest("Pusher")
    if pusher and pusher.state in ("COMPLETE", "CACHED"):
        pushed = pusher.output("pushed_model")
        summary.pushed = int_property(pushed, "pushed") == 1
        summary.pushed_path = str_property(pushed, "pushed_destination")
        summary.pushed_version = str_property(pushed, "pushed_version")
    mobile = latest("MobilePusher")
    if mobile and mobile.state in ("COMPLETE", "CACHED"):
        pushed = mobile.output("mobile_pushed_model")
        summary.mobile_pushed = int_property(pushed, "pushed") == 1
        summary.mobile_path = str_property(pushed, "pushed_destination")
        summary.mobile_variants = json.loads(str_property(pushed, "variants") or "[]")
        summary.mobile_rejected = json.loads(str_property(pushed, "rejected") or "{}")
    return summary
