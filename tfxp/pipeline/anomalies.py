"""Reading ExampleValidator's and StatisticsGen's outputs: one row per (split, feature, anomaly)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

# ExampleValidator writes one binary `Anomalies` proto per split under this name.
_ANOMALIES_FILE = "SchemaDiff.pb"
# StatisticsGen writes one binary DatasetFeatureStatisticsList per split under this name.
_STATISTICS_FILE = "FeatureStats.pb"


@dataclass(frozen=True)
class Anomaly:
    split: str
    feature: str
    anomaly: str
    description: str

    def as_dict(self) -> dict:
        return {"split": self.split, "feature": self.feature, "anomaly": self.anomaly, "description": self.description}


def read_anomalies(anomalies_uri: str) -> list[Anomaly]:
    """All anomalies found in an ExampleAnomalies artifact directory, sorted."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = []
    for path in sorted(glob.glob(os.path.join(anomalies_uri, "Split-*", _ANOMALIES_FILE))):
        split = os.path.basename(os.path.dirname(path))[len("Split-") :]
        proto = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
        for feature, info in proto.anomaly_info.items():
            for reason in info.reason or [info]:
                found.append(
                    Anomaly(
                        split=split,
                        feature=feature,
                        anomaly=reason.short_description or info.short_description,
                        description=reason.description or info.description,
                    )
                )
        if proto.HasField("dataset_anomaly_info"):
            info = proto.dataset_anomaly_info
            for reason in info.reason:
                found.append(Anomaly(split, "(dataset)", reason.short_description, reason.description))
    return sorted(found, key=lambda a: (a.feature, a.split, a.anomaly))


def split_row_counts(statistics_uri: str) -> dict[str, int]:
    """Examples per split, from StatisticsGen's output (`Split-<name>/FeatureStats.pb`)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = {}
    for path in sorted(glob.glob(os.path.join(statistics_uri, "Split-*", _STATISTICS_FILE))):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(path, "rb") as f:
            stats.ParseFromString(f.read())
        rows[os.path.basename(os.path.dirname(path))[len("Split-") :]] = sum(d.num_examples for d in stats.datasets)
    return rows


def empty_splits(rows_per_split: dict[str, int]) -> list[Anomaly]:
    """One "no rows" anomaly per empty split.

    TFDV raises nothing for an empty dataset (not even with
    `dataset_constraints { min_examples_count: 1 }`: there are no statistics to
    compare), and Transform and the Trainer would then run on nothing.
    """
    return [
        Anomaly(split, "(dataset)", "no rows", f"the {split} split has no rows; the input has too few rows to split")
        for split, count in sorted(rows_per_split.items())
        if count == 0
    ]


class DataAnomaliesError(RuntimeError):
    """Raised by the pipeline's data gate: the data does not match the curated schema."""

    def __init__(self, anomalies: list[Anomaly]):
        self.anomalies = anomalies
        features = sorted({a.feature for a in anomalies})
        super().__init__(f"data anomalies in {len(features)} feature(s): {', '.join(features)}")
