"""The monitor on hand-made logs: real PredictionLog TFRecords, real TFDV statistics of the taxi CSV as a
version's reference (written by reference.write as the Pusher writes it), no pipeline run.

Bad input is named, counted and skipped, never a traceback and never a verdict on nothing.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from monitoring_data import MODEL, log_record, write_log_file

from tfxp.monitoring import monitor as monitor_lib, reference
from tfxp.monitoring.statistics import (
    Buckets,
    jensen_shannon_divergence,
    l_infinity,
    numeric_reference,
)
from tfxp.project.spec import Monitoring


def _run(folder, base, **kwargs):
    return monitor_lib.monitor(str(folder), {MODEL: str(base)}, 3600, **kwargs)


def test_statistics_are_tfdvs_definitions():
    assert l_infinity({"a": 0.5, "b": 0.5}, {"a": 1.0}) == pytest.approx(0.5)
    assert jensen_shannon_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert jensen_shannon_divergence({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    # log2: P = (1, 0), Q = (0.5, 0.5): (KL(P||M) + KL(Q||M)) / 2 with M = (0.75, 0.25).
    expected = (np.log2(1 / 0.75) + 0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)) / 2
    assert jensen_shannon_divergence({"a": 1.0}, {"a": 0.5, "b": 0.5}) == pytest.approx(expected)


def test_l_infinity_agrees_with_tfdvs_own_comparator(rows):
    """Our L-infinity on the rank histograms equals what tfdv.validate_statistics measures."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    train, served = tfdv.generate_statistics_from_dataframe(pd.DataFrame(rows[:3000]), n_jobs=1), None
    served = tfdv.generate_statistics_from_dataframe(pd.DataFrame(rows[6000:6500]), n_jobs=1)
    schema = tfdv.infer_schema(train)
    tfdv.get_feature(schema, "payment_type").skew_comparator.infinity_norm.threshold = 0.5
    anomalies = tfdv.validate_statistics(train, schema, serving_statistics=served)
    [info] = [i for i in anomalies.drift_skew_info if i.path.step[0] == "payment_type"]
    counts = {}
    for stats, name in ((train, "train"), (served, "served")):
        [feature] = [f for f in stats.datasets[0].features if f.path.step[0] == "payment_type"]
        total = sum(b.sample_count for b in feature.string_stats.rank_histogram.buckets)
        counts[name] = {b.label: b.sample_count / total for b in feature.string_stats.rank_histogram.buckets}
    assert l_infinity(counts["train"], counts["served"]) == pytest.approx(info.skew_measurements[0].value)


def test_numeric_buckets_follow_tfdvs_quantiles_with_point_masses():
    # A day-of-week-like feature: TFDV splits a point mass between [4, 4] and (3, 4]; both land in (3, 4].
    buckets, fractions = numeric_reference([(1, 1, 10), (1, 2, 10), (2, 3, 10), (3, 4, 5), (4, 4, 5), (4, 5, 10)])
    assert buckets == Buckets((1.0, 2.0, 3.0, 4.0, 5.0))
    assert [buckets.index(v) for v in (0.5, 1, 2, 2.5, 4, 5, 9)] == [0, 1, 1, 2, 3, 4, 5]
    assert fractions == {1: 0.4, 2: 0.2, 3: 0.2, 4: 0.2}
    assert buckets.labels()[0] == "below training min" and buckets.labels()[-1] == "above training max"


def test_the_reference_a_version_carries(base_path):
    ref = reference.load(str(base_path / "1"))
    assert ref.missing is None
    kinds = {name: (r.kind, r.statistic, r.skew_threshold) for name, r in ref.features.items()}
    assert kinds["payment_type"] == ("categorical", "l_infinity", Monitoring().categorical_skew)
    assert kinds["fare"] == ("numeric", "jensen_shannon_divergence", Monitoring().numeric_skew)
    # An INT categorical has quantiles, not value counts, in StatisticsGen's statistics: compared as numeric.
    assert kinds["trip_start_hour"][0] == "numeric"
    assert ref.prediction is not None and ref.prediction.kind == "numeric"


def test_clean_rows_pass_and_shifted_ones_are_named(base_path, rows, tmp_path):
    clean = [log_record(r) for r in rows[5000:5600]]
    shifted = [log_record({**r, "payment_type": "Cash"}) for r in rows[5600:6200]]
    write_log_file(tmp_path / "logs", 0, clean)
    write_log_file(tmp_path / "logs", 1, shifted, 1)
    report = _run(tmp_path / "logs", base_path)
    first, second = report.windows
    assert (first.verdict, second.verdict) == ("ok", "over_threshold")
    assert {(f.feature, f.kind) for f in report.over} == {("payment_type", "skew"), ("payment_type", "drift")}
    assert report.exit_code == 3
    [skew] = [f for f in report.over if f.kind == "skew"]
    assert skew.distribution.labels[0] == "Cash" and skew.distribution.served[0] == 1.0


def test_refused_requests_are_counted_not_judged(base_path, rows, tmp_path):
    records = [log_record(r) for r in rows[5000:5600]] + [log_record(r, refused=True) for r in rows[:60]]
    write_log_file(tmp_path / "logs", 0, records)
    [window] = _run(tmp_path / "logs", base_path).windows
    assert (window.requests, window.refused, window.rows) == (660, 60, 600)
    assert window.refused_ratio == pytest.approx(60 / 660)


@pytest.mark.parametrize("setup, reason", [("missing", "missing_logs"), ("empty", "empty_logs")])
def test_no_logs_is_named_and_gives_no_verdict(base_path, tmp_path, setup, reason):
    folder = tmp_path / "logs"
    if setup == "empty":
        folder.mkdir()
    report = _run(folder, base_path)
    assert [s.reason for s in report.skipped] == [reason]
    assert report.windows == [] and report.findings == [] and report.exit_code == 0


def test_corrupt_and_truncated_files_are_counted_and_skipped(base_path, rows, tmp_path):
    path = write_log_file(tmp_path / "logs", 0, [log_record(r) for r in rows[5000:5600]])
    data = bytearray(path.read_bytes())
    length = struct.unpack("<Q", data[:8])[0]
    data[12 + 3] ^= 0xFF  # the first record's data fails its checksum
    path.write_bytes(bytes(data[: len(data) - length // 2]))  # and the last record is cut short
    (tmp_path / "logs" / "notes.txt").write_text("not a TFRecord")
    report = _run(tmp_path / "logs", base_path)
    reasons = {(s.reason, os.path.basename(s.where)): s.count for s in report.skipped}
    assert reasons[("corrupt_record", path.name)] == 2
    assert reasons[("corrupt_record", "notes.txt")] == 1
    [window] = report.windows
    assert window.requests == 598 and window.verdict == "ok"  # 600 written, one corrupt, one cut short


def test_unknown_models_and_versions_and_versions_without_a_reference(base_path, rows, tmp_path):
    import shutil

    old = base_path.parent / "old"
    shutil.copytree(base_path, old)
    shutil.rmtree(old / "1" / reference.MONITORING_DIR)  # pushed by an older release
    records = [log_record(r, version=1) for r in rows[5000:5600]]
    write_log_file(tmp_path / "logs", 0, records)
    write_log_file(
        tmp_path / "logs", 1, [log_record({**r, "payment_type": "Cash"}, version=1) for r in rows[5600:6200]], 1
    )
    write_log_file(tmp_path / "logs", 2, [log_record(r, version=7) for r in rows[:10]], 2)
    report = monitor_lib.monitor(str(tmp_path / "logs"), {MODEL: str(old)}, 3600)
    reasons = {s.reason for s in report.skipped}
    assert {"no_reference", "unknown_version"} <= reasons
    assert [w.verdict for w in report.windows if w.version == 1] == ["no_reference", "over_threshold"]
    # Drift is still checked without a reference: the shifted hour is found against the clean one.
    assert {(f.feature, f.kind) for f in report.over} == {("payment_type", "drift")}
    other = monitor_lib.monitor(str(tmp_path / "logs"), {"another": str(base_path)}, 3600)
    assert other.windows == [] and {s.reason for s in other.skipped} == {"unknown_model"}


def test_a_window_with_too_few_rows_gets_no_verdict(base_path, rows, tmp_path):
    write_log_file(tmp_path / "logs", 0, [log_record({**r, "payment_type": "Cash"}) for r in rows[5000:5100]])
    report = _run(tmp_path / "logs", base_path)
    [window] = report.windows
    assert window.verdict == "too_few_rows" and "500" in window.note
    assert report.findings == [] and report.exit_code == 0


def test_new_thresholds_reach_a_version_already_pushed(base_path, tmp_path):
    """The Pusher calls update_thresholds when the model was pushed before but project.yaml's monitoring changed."""
    import shutil

    copy = tmp_path / "taxi"
    shutil.copytree(base_path, copy)
    changed = Monitoring(min_rows=300, features=(("payment_type", 0.5, None),), prediction_drift=0.2)
    assert reference.update_thresholds(str(copy / "1"), changed)
    ref = reference.load(str(copy / "1"))
    assert ref.min_rows == 300 and ref.prediction.drift_threshold == 0.2
    assert (ref.features["payment_type"].skew_threshold, ref.features["payment_type"].drift_threshold) == (0.5, 0.15)
    assert ref.features["fare"].skew_threshold == changed.numeric_skew
    assert not [p for p in (copy / "1").rglob("*.tmp")]
    shutil.rmtree(copy / "1" / reference.MONITORING_DIR)
    assert not reference.update_thresholds(str(copy / "1"), changed)


def test_a_feature_with_no_value_in_a_window_is_named(base_path, rows, tmp_path):
    write_log_file(tmp_path / "logs", 0, [log_record({**r, "payment_type": None}) for r in rows[5000:5600]])
    [window] = _run(tmp_path / "logs", base_path).windows
    assert "not compared, no value in this window: payment_type" in window.note


def test_a_version_whose_eval_rows_were_all_refused_still_carries_its_reference(base_path, tmp_path):
    """No answers to describe (the model refused every eval row): the push goes on, the prediction is not compared."""
    import shutil

    folder = reference.MONITORING_DIR
    copy = tmp_path / "taxi" / "1"
    shutil.copytree(base_path / "1", copy)
    train = (copy / folder / reference.TRAIN_STATISTICS_FILE).read_bytes()
    schema = (copy / folder / reference.SCHEMA_FILE).read_text()
    shutil.rmtree(copy / folder)
    from monitoring_data import PROBLEM

    reference.write(str(copy), train, schema, PROBLEM, Monitoring(), [])
    ref = reference.load(str(copy))
    assert (
        ref.missing is None
        and ref.prediction is None
        and set(ref.features) == {"fare", "payment_type", "trip_start_hour"}
    )


def test_the_monitors_output_names_are_the_models():
    """reference.OUTPUTS is read without the model code; it must stay tfxp.models.features.OUTPUTS."""
    from tfxp.models import features

    assert reference.OUTPUTS == {task.value: name for task, name in features.OUTPUTS.items()}
