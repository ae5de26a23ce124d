"""What a pushed version carries for monitoring, and reading it back.

`<version>/assets.extra/tfxp_monitoring/` (TF Serving ignores assets.extra/ apart from its warmup file, so
every copy of the model can be monitored without the pipeline's output folder):
- `train_stats.pb`: StatisticsGen's statistics of the train split (TFDV DatasetFeatureStatisticsList, binary);
- `schema.pbtxt`: the project's schema with TFDV's `skew_comparator` / `drift_comparator` thresholds set per
  model input (`infinity_norm` for categorical features, `jensen_shannon_divergence` for numeric ones);
- `prediction_stats.pb`: TFDV statistics of the model's answers on eval rows (feature PREDICTION);
- `monitoring.json`: {"format", "min_rows", "prediction": {"skew", "drift"}, "eval_rows"}.
Reading needs no TensorFlow (tensorflow_metadata protos only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from tfxp.monitoring.report import PREDICTION
from tfxp.monitoring.statistics import (
    CATEGORICAL,
    NUMERIC,
    FeatureReference,
    categorical_reference,
    numeric_reference,
)
from tfxp.project.spec import Monitoring

MONITORING_DIR = os.path.join("assets.extra", "tfxp_monitoring")
TRAIN_STATISTICS_FILE = "train_stats.pb"
PREDICTION_STATISTICS_FILE = "prediction_stats.pb"
SCHEMA_FILE = "schema.pbtxt"
CONFIG_FILE = "monitoring.json"
FORMAT = 1
# Written by the Trainer beside every SavedModel (tfxp.models.signatures.PROBLEM_FILE).
PROBLEM_FILE = os.path.join("assets.extra", "tfxp_problem.json")
# Predict output per task, as tfxp.models.features.OUTPUTS (read here without the model code).
OUTPUTS = {"binary": "probability", "multiclass": "probabilities", "regression": "prediction"}
# Feature kinds the model treats as categories (tfxp.project.spec.KINDS).
_CATEGORICAL_KINDS = ("categorical_int", "vocabulary")


@dataclass(frozen=True)
class VersionReference:
    """A served version as the monitor sees it. `problem`: the JSON of PROBLEM_FILE (None when the version
    has none); `features`: references of the model's inputs (empty without training statistics);
    `kinds`: each input's kind (CATEGORICAL or NUMERIC), known from the problem even without statistics;
    `missing`: why there is no reference (skew can't be computed), else None."""

    path: str
    problem: dict | None
    kinds: dict[str, str]
    features: dict[str, FeatureReference] = field(default_factory=dict)
    prediction: FeatureReference | None = None
    min_rows: int = Monitoring.min_rows
    missing: str | None = None
    thresholds: Monitoring = field(default_factory=Monitoring)

    @property
    def output(self) -> str | None:
        return OUTPUTS.get(self.problem["label"]["task"]) if self.problem else None


def feature_kind(problem_feature: dict) -> str:
    """CATEGORICAL for the model's categorical kinds, else NUMERIC (numeric, bucketized)."""
    return CATEGORICAL if problem_feature["kind"] in _CATEGORICAL_KINDS else NUMERIC


def load(version_dir: str) -> VersionReference:
    """The monitoring reference of a version directory. Never raises for a missing or unreadable file:
    the result's `missing` names it (skew is then skipped; drift is still checked)."""
    if not os.path.isdir(version_dir):
        return VersionReference(version_dir, None, {}, missing=f"no version folder {version_dir}")
    problem = _read_json(os.path.join(version_dir, PROBLEM_FILE))
    kinds = {f["name"]: feature_kind(f) for f in problem["features"]} if problem else {}
    folder = os.path.join(version_dir, MONITORING_DIR)
    config = _read_json(os.path.join(folder, CONFIG_FILE))
    if problem is None or config is None:
        missing = "no problem file (not pushed by tfxp)" if problem is None else f"no {MONITORING_DIR}/{CONFIG_FILE}"
        return VersionReference(version_dir, problem, kinds, missing=f"{missing}: pushed by an older release?")
    try:
        thresholds = _schema_thresholds(os.path.join(folder, SCHEMA_FILE), config)
        features = _references(os.path.join(folder, TRAIN_STATISTICS_FILE), kinds, thresholds)
        prediction = _prediction_reference(os.path.join(folder, PREDICTION_STATISTICS_FILE), problem, thresholds)
    except (OSError, ValueError) as exc:
        return VersionReference(version_dir, problem, kinds, missing=f"unreadable monitoring reference: {exc}")
    return VersionReference(version_dir, problem, kinds, features, prediction, thresholds.min_rows, None, thresholds)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _statistics(path: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    with open(path, "rb") as f:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
    if not stats.datasets:
        raise ValueError(f"{path}: no dataset in the statistics")
    return {f.path.step[0] if f.path.step else f.name: f for f in stats.datasets[0].features}


def _schema_thresholds(path: str, config: dict) -> Monitoring:
    """Monitoring from the comparators of the carried schema (TFDV's place for them) and monitoring.json."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    with open(path) as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    features = []
    for feature in schema.feature:
        skew = _threshold(feature.skew_comparator)
        drift = _threshold(feature.drift_comparator)
        if skew is not None or drift is not None:
            features.append((feature.name, skew, drift))
    prediction = config.get("prediction") or {}
    return Monitoring(
        min_rows=int(config.get("min_rows", Monitoring.min_rows)),
        prediction_skew=float(prediction.get("skew", Monitoring.prediction_skew)),
        prediction_drift=float(prediction.get("drift", Monitoring.prediction_drift)),
        features=tuple(features),
    )


def _threshold(comparator) -> float | None:
    for name in ("infinity_norm", "jensen_shannon_divergence"):
        if comparator.HasField(name):
            return getattr(comparator, name).threshold
    return None


def _reference(name: str, kind: str, stats, skew: float | None, drift: float | None) -> FeatureReference | None:
    """One feature's reference from its TFDV FeatureNameStatistics. A categorical feature whose statistics
    are numeric (an INT column: StatisticsGen gives INT features quantiles, not value counts) is compared
    as numeric. None for a numeric feature training never had a value of (no quantiles to bucket by):
    it gets drift only, its buckets placed from its first window."""
    if kind == CATEGORICAL and stats.HasField("string_stats"):
        buckets = [(b.label, b.sample_count) for b in stats.string_stats.rank_histogram.buckets]
        return FeatureReference(name, CATEGORICAL, skew, drift, fractions=categorical_reference(buckets))
    for histogram in stats.num_stats.histograms:
        if histogram.type == histogram.QUANTILES and sum(b.sample_count for b in histogram.buckets) > 0:
            edges, fractions = numeric_reference((b.low_value, b.high_value, b.sample_count) for b in histogram.buckets)
            return FeatureReference(name, NUMERIC, skew, drift, edges, fractions)
    return None


def _references(path: str, kinds: dict[str, str], thresholds: Monitoring) -> dict[str, FeatureReference]:
    stats = _statistics(path)
    references = {}
    for name, kind in kinds.items():
        if name in stats:
            skew, drift = thresholds.of(name, kind)
            reference = _reference(name, kind, stats[name], skew, drift)
            # An INT categorical compared on quantiles uses the numeric comparator's thresholds.
            if reference is not None and reference.kind != kind:
                skew, drift = thresholds.of(name, reference.kind)
                reference = _reference(name, reference.kind, stats[name], skew, drift)
            if reference is not None:
                references[name] = reference
    return references


def _prediction_reference(path: str, problem: dict, thresholds: Monitoring) -> FeatureReference | None:
    if not os.path.exists(path):
        return None
    stats = _statistics(path).get(PREDICTION)
    if stats is None:
        return None
    kind = CATEGORICAL if problem["label"]["task"] == "multiclass" else NUMERIC
    return _reference(PREDICTION, kind, stats, thresholds.prediction_skew, thresholds.prediction_drift)


# -- writing (the Pusher) -------------------------------------------------------------------------------------


def write(
    destination: str,
    train_statistics: bytes,
    schema_text: str,
    problem: dict,
    thresholds: Monitoring,
    predictions: list,
) -> None:
    """Writes the monitoring reference into a version directory being staged (`destination`).

    `train_statistics`: the serialized DatasetFeatureStatisticsList of the train split (StatisticsGen's
    FeatureStats.pb); `schema_text`: the project's schema.pbtxt; `predictions`: the model's answers on eval
    rows, one per row (a float probability or value; a class name for multiclass), statistics computed here
    with TFDV (in memory). With no answers (every eval row refused) no prediction statistics are written:
    the prediction is then not compared, and monitoring.json's `eval_rows` is 0; the push goes on.
    """
    import pandas as pd
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    folder = os.path.join(destination, MONITORING_DIR)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, TRAIN_STATISTICS_FILE), "wb") as f:
        f.write(train_statistics)
    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    kinds = {f["name"]: feature_kind(f) for f in problem["features"]}
    for feature in schema.feature:
        if feature.name in kinds:
            _set_comparators(feature, kinds[feature.name], thresholds)
    with open(os.path.join(folder, SCHEMA_FILE), "w") as f:
        f.write(text_format.MessageToString(schema))
    if predictions:
        stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame({PREDICTION: predictions}), n_jobs=1)
        with open(os.path.join(folder, PREDICTION_STATISTICS_FILE), "wb") as f:
            f.write(stats.SerializeToString())
    config = {
        "format": FORMAT,
        "min_rows": thresholds.min_rows,
        "prediction": {"skew": thresholds.prediction_skew, "drift": thresholds.prediction_drift},
        "eval_rows": len(predictions),
    }
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2)


def update_thresholds(version_dir: str, thresholds: Monitoring) -> bool:
    """Rewrites the thresholds a published version carries (its schema's comparators and monitoring.json),
    each file replaced atomically, when the project's `monitoring:` changed but the model did not (the
    Pusher publishes no new version then). TF Serving never reads these files, so the served version is
    untouched. Returns False when the version carries no reference (nothing to update)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    folder = os.path.join(version_dir, MONITORING_DIR)
    problem = _read_json(os.path.join(version_dir, PROBLEM_FILE))
    config = _read_json(os.path.join(folder, CONFIG_FILE))
    if problem is None or config is None:
        return False
    with open(os.path.join(folder, SCHEMA_FILE)) as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    kinds = {f["name"]: feature_kind(f) for f in problem["features"]}
    for feature in schema.feature:
        if feature.name in kinds:
            feature.ClearField("skew_comparator")
            feature.ClearField("drift_comparator")
            _set_comparators(feature, kinds[feature.name], thresholds)
    config.update(
        min_rows=thresholds.min_rows,
        prediction={"skew": thresholds.prediction_skew, "drift": thresholds.prediction_drift},
    )
    _replace(os.path.join(folder, SCHEMA_FILE), text_format.MessageToString(schema))
    _replace(os.path.join(folder, CONFIG_FILE), json.dumps(config, indent=2))
    return True


def _replace(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def _set_comparators(feature, kind: str, thresholds: Monitoring) -> None:
    """TFDV's comparators on a schema feature. A categorical INT feature has numeric statistics (see
    `_reference`), so it gets the numeric comparator; which one applies is decided when reading."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    if kind == CATEGORICAL and feature.type == schema_pb2.BYTES:
        statistic = "infinity_norm"
    else:
        kind, statistic = NUMERIC, "jensen_shannon_divergence"
    skew, drift = thresholds.of(feature.name, kind)
    getattr(feature.skew_comparator, statistic).threshold = skew
    getattr(feature.drift_comparator, statistic).threshold = drift
