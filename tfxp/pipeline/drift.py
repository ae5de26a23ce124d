"""Data drift between runs: this run's training data against the data the served model was
trained on (issue 21). A unit change (miles written as km: tensorflow/data-validation#101) or a shifted
category passes the schema, and was refused only by accuracy noise, if at all.

What is compared: this run's train split with the served version's training statistics, the ones it
carries for monitoring (`<version>/assets.extra/tfxp_monitoring/train_stats.pb`, tfxp.monitoring.reference).
The served version is the newest version folder under the serving base path (publish.latest_version: what
TF Serving's default policy serves). Each of the served model's inputs is compared as `tfxp monitor`
compares served traffic with training (tfxp.monitoring.statistics, TFDV's definitions): L-infinity over the
value frequencies of a categorical feature, Jensen-Shannon divergence over the served version's training
quantile buckets of a numeric one. This run's values are counted into those categories and buckets from
its train examples (statistics.Tally; at most about SAMPLE_ROWS rows read), not taken from its own
10-bucket quantile histogram: spreading one quantile histogram over another's buckets misplaces point
masses (taxi coordinates are community-area centroids, fares come in steps), and two clean halves of the
taxi data then differed by JSD 0.06-0.13, over the 0.05 threshold; counted, they differ by 0.009 at most
(docs/pipeline.md, "Drift between runs"). Thresholds: the project's `monitoring:` drift thresholds
(categorical_drift, numeric_drift, per-feature overrides), as of this run. A finding is over when its
value exceeds its threshold; an over finding not accepted (`tfxp run --accept-drift FEATURE`) stops the
run before Transform (DataDriftError, a DataAnomaliesError: exit 3 and the summary's anomalies).

Not compared, and said so in the result (never an error): no served version, a served version without a
monitoring reference (pushed by an older release), too few rows on either side (the project's
`monitoring.min_rows`: sampling noise alone would fire), a feature the served model did not take or this
run's data has no value of.

The cache key (`DataDriftGate`'s `reference` parameter, set at run time by `ReferenceDriver` before TFX
looks for a cached result) is the digest of the statistics compared with: the served version's training
statistics, or, with nothing served, this run's own. A run on the very data the served model was trained
on (the Pusher copies StatisticsGen's file byte for byte) has the key of the run that trained it and stays
fully cached; another served version re-runs the gate. A served version without a reference keys by its
number. On Vertex AI (no custom drivers) the key is empty: the gate follows its statistics only.
"""

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import base_driver
from tfx.types import standard_artifacts

from tfxp.monitoring import reference as reference_lib
from tfxp.monitoring.report import JENSEN_SHANNON_DIVERGENCE, L_INFINITY
from tfxp.monitoring.statistics import CATEGORICAL, Tally, compare
from tfxp.pipeline.config import is_uri
from tfxp.pipeline.publish import latest_version
from tfxp.project.spec import Monitoring
from tfxp.schema.anomalies import Anomaly, DataAnomaliesError

# The custom property of the gate's output artifact holding `DriftResult.to_json()` (MLMD; the run summary).
DRIFT_PROPERTY = "drift"
ACCEPT_OPTION = "--accept-drift"
TRAIN_STATISTICS = os.path.join("Split-train", "FeatureStats.pb")
# The most train rows read (about): a larger split is read every k-th row (sampling noise then ~1e-4).
SAMPLE_ROWS = 100_000
# TFDV's anomaly type of each comparator statistic (tensorflow_metadata anomalies.proto).
_ANOMALY_TYPES = {
    L_INFINITY: "COMPARATOR_L_INFTY_HIGH",
    JENSEN_SHANNON_DIVERGENCE: "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
}


@dataclass(frozen=True)
class DriftFinding:
    """One feature compared: `statistic` l_infinity or jensen_shannon_divergence, over when value > threshold."""

    feature: str
    statistic: str
    value: float
    threshold: float
    over: bool
    accepted: bool = False


@dataclass
class DriftResult:
    """What the gate found. `served_version`: the version compared with (None: none served). `skipped`: why
    nothing was compared, else None. `not_compared`: feature -> why (a served input this run lacks, ...)."""

    served_version: int | None = None
    skipped: str | None = None
    findings: list[DriftFinding] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)
    rows: int | None = None
    reference_rows: int | None = None

    @property
    def refused(self) -> list[DriftFinding]:
        return [f for f in self.findings if f.over and not f.accepted]

    @property
    def status(self) -> str:
        """skipped | refused | accepted (over findings, all accepted) | passed."""
        if self.skipped is not None:
            return "skipped"
        if self.refused:
            return "refused"
        return "accepted" if any(f.over for f in self.findings) else "passed"

    def to_json(self) -> str:
        return json.dumps({"status": self.status, **asdict(self)}, sort_keys=True)


class DataDriftError(DataAnomaliesError):
    """The run's training data drifted from the served model's beyond a threshold, unaccepted."""

    def __init__(self, result: "DriftResult"):
        self.result = result
        refused = result.refused
        super().__init__([_anomaly(f, result.served_version) for f in refused])
        names = [f.feature for f in refused]
        self.args = (
            f"data drift in {len(names)} feature(s) against served version {result.served_version}'s training "
            f"data: {'; '.join(_worded(f) for f in refused)}. If the change is real: "
            f"{accept_hint(names)}",
        )


def accept_hint(features: Iterable[str]) -> str:
    """The refusal's last words, e.g. `to accept: --accept-drift fare --accept-drift company`."""
    return "to accept: " + " ".join(f"{ACCEPT_OPTION} {name}" for name in features)


def _worded(finding: DriftFinding) -> str:
    return f"{finding.feature} {finding.statistic} {finding.value:.3f} > {finding.threshold:g}"


def _anomaly(finding: DriftFinding, version: int | None) -> Anomaly:
    return Anomaly(
        split="train",
        feature=finding.feature,
        anomaly=f"drift: {finding.statistic}",
        description=(
            f"{finding.statistic} {finding.value:.4f} > {finding.threshold:g} against the training data of served "
            f"version {version}; {accept_hint([finding.feature])}"
        ),
        type=_ANOMALY_TYPES[finding.statistic],
    )


# -- reading statistics ---------------------------------------------------------------------------------------


def read_statistics(path: str):
    """The first dataset of a TFDV DatasetFeatureStatisticsList file (ValueError when it has none)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    with open(path, "rb") as f:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
    if not stats.datasets:
        raise ValueError(f"{path}: no dataset in the statistics")
    return stats.datasets[0]


def by_name(dataset) -> dict:
    """Feature name -> FeatureNameStatistics of a DatasetFeatureStatistics."""
    return {f.path.step[0] if f.path.step else f.name: f for f in dataset.features}


def present_values(dataset) -> dict[str, int]:
    """Feature name -> values present (num_non_missing) in a DatasetFeatureStatistics."""
    counts = {}
    for name, stats in by_name(dataset).items():
        kind = stats.WhichOneof("stats")
        if kind in ("num_stats", "string_stats", "bytes_stats"):
            counts[name] = int(getattr(stats, kind).common_stats.num_non_missing)
    return counts


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def served_statistics_path(version_dir: str) -> str:
    return os.path.join(version_dir, reference_lib.MONITORING_DIR, reference_lib.TRAIN_STATISTICS_FILE)


def reference_key(serving_dir: str, statistics_uri: str) -> str:
    """The gate's cache key (see the module doc): the digest of the statistics compared with."""
    version = latest_version(serving_dir)
    try:
        if version is None:
            return _digest(os.path.join(statistics_uri, TRAIN_STATISTICS))
        return _digest(served_statistics_path(os.path.join(serving_dir, str(version))))
    except OSError:
        return f"no reference: version {version}"


class ReferenceDriver(base_driver.BaseDriver):
    """Sets DataDriftGate's `reference` parameter (its cache key) from what is served when the gate is about
    to run, before TFX looks for a cached result (tfx.orchestration.portable.launcher runs custom drivers
    first). Local runs only: LocalDagRunner runs it, Vertex AI Pipelines has no custom drivers."""

    def __init__(self, mlmd_connection):
        self._mlmd_connection = mlmd_connection

    def run(self, execution_info):
        from tfx.orchestration import data_types_utils
        from tfx.proto.orchestration import driver_output_pb2

        [statistics] = execution_info.input_dict["statistics"]
        props = execution_info.exec_properties
        key = reference_key(props["serving_dir"], statistics.uri)
        output = driver_output_pb2.DriverOutput()
        data_types_utils.set_metadata_value(output.exec_properties["reference"], key)
        return output


# -- comparing ------------------------------------------------------------------------------------------------


def train_rows(examples_uri: str, rows: int, limit: int = SAMPLE_ROWS) -> Iterator[dict[str, list]]:
    """The train split's tf.Examples (ExampleGen's output, GZIP TFRecords) as {feature: values}; with more
    than `limit` rows (`rows`: the split's count), every k-th one, so that at most about `limit` are parsed."""
    import tensorflow as tf

    from tfxp.rows import decode_example

    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, "Split-train", "*")))
    step = max(1, -(-rows // limit))
    for index, record in enumerate(tf.data.TFRecordDataset(files, compression_type="GZIP")):
        if index % step == 0:
            yield decode_example(record.numpy())


def _value(kind: str, values: list) -> object:
    """The value a Tally counts: the first one (None when empty), text for a category, a number else."""
    if not values:
        return None
    value = values[0]
    if kind == CATEGORICAL:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None if isinstance(value, bytes) else value


def count(served: reference_lib.VersionReference, rows: Iterable[Mapping[str, list]]) -> dict[str, Tally]:
    """This run's values of each input with a served reference, counted into its categories or buckets as
    `tfxp monitor` counts served traffic (statistics.Tally): exact, no histogram of a histogram."""
    tallies = {name: Tally(ref.kind, ref.buckets) for name, ref in served.features.items()}
    for row in rows:
        for name, tally in tallies.items():
            tally.add(_value(tally.kind, row.get(name) or []))
    return tallies


def compare_runs(
    served: reference_lib.VersionReference,
    tallies: Mapping[str, Tally],
    thresholds: Monitoring,
    inputs: Sequence[str] = (),
    accepted: Iterable[str] = (),
    served_values: Mapping[str, int] | None = None,
) -> tuple[list[DriftFinding], dict[str, str]]:
    """(findings, not compared: feature -> why) of this run's values (`tallies`, from `count`) against a served
    version's reference. `inputs`: this run's model inputs (one the served model did not take is named);
    `accepted`: features whose drift is accepted; `served_values`: feature -> values present in the served
    version's training data (`present_values`): a feature with fewer than `thresholds.min_rows` values on
    either side is not compared (a column blank but for a few rows would differ by noise alone)."""
    accepted = set(accepted)
    findings, skipped = [], {}
    for name in sorted(served.kinds):
        ref, tally = served.features.get(name), tallies.get(name)
        if ref is None:
            skipped[name] = "no value of it in the served model's training data"
            continue
        if tally is None or not tally.counts:
            skipped[name] = "no value of it in this run's data"
            continue
        before = (served_values or {}).get(name, thresholds.min_rows)
        if min(before, tally.present) < thresholds.min_rows:
            skipped[name] = (
                f"too few values to compare: {tally.present} here, {before} in the served model's training data "
                f"(monitoring.min_rows: {thresholds.min_rows})"
            )
            continue
        _, threshold = thresholds.of(name, ref.kind)
        value = compare(ref.kind, ref.fractions, tally.fractions())
        findings.append(DriftFinding(name, ref.statistic, value, threshold, value > threshold, name in accepted))
    for name in sorted(set(inputs) - set(served.kinds)):
        skipped[name] = "the served model has no such input"
    return findings, skipped


def check_drift(
    serving_dir: str,
    statistics_uri: str,
    examples_uri: str,
    thresholds: Monitoring,
    inputs: Sequence[str] = (),
    accepted: Iterable[str] = (),
) -> DriftResult:
    """This run's train split (ExampleGen's and StatisticsGen's output folders) against the data the served
    version was trained on. Nothing to compare with gives a result with `skipped` set, never an error.

    Raises:
        OSError, ValueError: this run's own statistics can't be read.
    """
    if is_uri(serving_dir):  # tfxp.monitoring.reference reads local folders
        return DriftResult(skipped=f"the served versions are in {serving_dir}: compared on local runs only")
    version = latest_version(serving_dir)
    if version is None:
        return DriftResult(skipped=f"no served version in {serving_dir}: nothing to compare with")
    version_dir = os.path.join(serving_dir, str(version))
    served = reference_lib.load(version_dir)
    if served.missing is not None:
        return DriftResult(version, skipped=f"version {version} carries no training statistics: {served.missing}")
    try:
        served_dataset = read_statistics(served_statistics_path(version_dir))
        reference_rows = served_dataset.num_examples
    except (OSError, ValueError) as exc:
        return DriftResult(version, skipped=f"version {version}'s training statistics can't be read: {exc}")
    dataset = read_statistics(os.path.join(statistics_uri, TRAIN_STATISTICS))
    result = DriftResult(version, rows=dataset.num_examples, reference_rows=reference_rows)
    fewest = min(dataset.num_examples, reference_rows)
    if fewest < thresholds.min_rows:
        result.skipped = (
            f"too few training rows to tell drift from sampling noise: {dataset.num_examples} here, "
            f"{reference_rows} for version {version} (monitoring.min_rows: {thresholds.min_rows})"
        )
        return result
    tallies = count(served, train_rows(examples_uri, dataset.num_examples))
    result.findings, result.not_compared = compare_runs(
        served, tallies, thresholds, inputs, accepted, present_values(served_dataset)
    )
    return result


@component
def _DataDriftGate(
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    drift: OutputArtifact[standard_artifacts.String],
    serving_dir: Parameter[str],
    thresholds: Parameter[str] = "{}",
    inputs: Parameter[str] = "[]",
    accepted: Parameter[str] = "[]",
    reference: Parameter[str] = "",
) -> None:
    """Stops the run before Transform when its training data drifted from the served model's (see the module
    doc). `thresholds`: the project's Monitoring as JSON; `inputs`, `accepted`: JSON lists of feature names;
    `reference`: the cache key, set by ReferenceDriver. The result is the output's DRIFT_PROPERTY."""
    result = check_drift(
        serving_dir,
        statistics.uri,
        examples.uri,
        Monitoring.from_json(thresholds),
        json.loads(inputs),
        json.loads(accepted),
    )
    if result.refused:
        raise DataDriftError(result)
    drift.set_string_custom_property(DRIFT_PROPERTY, result.to_json())
    drift.value = result.status if result.skipped is None else f"skipped: {result.skipped}"


class DataDriftGate(_DataDriftGate):
    """The gate, its cache key set by ReferenceDriver at run time."""

    DRIVER_CLASS = ReferenceDriver


def data_drift_gate(
    examples, statistics, serving_dir: str, thresholds: Monitoring, inputs: Sequence[str], accepted: Sequence[str]
):
    """DataDriftGate of a pipeline (node id DataDriftGate); `accepted` in any order."""
    return DataDriftGate(
        examples=examples,
        statistics=statistics,
        serving_dir=serving_dir,
        thresholds=thresholds.to_json(),
        inputs=json.dumps(sorted(inputs)),
        accepted=json.dumps(sorted(set(accepted))),
    ).with_id("DataDriftGate")
