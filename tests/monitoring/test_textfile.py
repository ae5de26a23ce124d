"""tfxp.monitoring.textfile: MonitorReports built by hand, written, and read back with prometheus_client's parser."""

from __future__ import annotations

import os
import threading
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tfxp.monitoring.report import (
    DRIFT,
    JENSEN_SHANNON_DIVERGENCE,
    L_INFINITY,
    NO_REFERENCE,
    OK,
    OVER_THRESHOLD,
    PREDICTION,
    SKEW,
    TOO_FEW_ROWS,
    Finding,
    MonitorReport,
    Skipped,
    Window,
)
from tfxp.monitoring.textfile import SKIPPED_REASONS, write_textfile

HOUR = 3600.0


def _iso(hour: int) -> str:
    return f"2026-12-04T{hour:02d}:00:00Z"


def _window(model: str, version: int, hour: int, rows: int, verdict: str, requests: int = 0, refused: int = 0):
    return Window(model, version, _iso(hour), _iso(hour + 1), rows, requests or rows, refused, verdict)


def _finding(model, version, hour, feature, kind, statistic, value, threshold):
    return Finding(
        model, version, _iso(hour), _iso(hour + 1), feature, kind, statistic, value, threshold, value > threshold
    )


def _report(**fields) -> MonitorReport:
    fields.setdefault("generated_at", "2026-12-04T13:05:00Z")
    return MonitorReport(window_seconds=HOUR, min_rows=100, **fields)


def _samples(path) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a textfile."""
    text = open(path, encoding="utf-8").read()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(**labels) -> tuple:
    return tuple(sorted(labels.items()))


@pytest.fixture
def report() -> MonitorReport:
    """taxi v1 over three windows (10h scored, 11h scored, 12h too few rows) and v2 with one window."""
    windows = [
        _window("taxi", 1, 10, 500, OK),
        _window("taxi", 1, 11, 400, OVER_THRESHOLD, requests=200, refused=10),
        _window("taxi", 1, 12, 20, TOO_FEW_ROWS, requests=8, refused=2),
        _window("taxi", 2, 11, 300, NO_REFERENCE),
    ]
    findings = [
        # 10h: superseded by 11h.
        _finding("taxi", 1, 10, "payment_type", SKEW, L_INFINITY, 0.02, 0.1),
        _finding("taxi", 1, 10, "fare", SKEW, JENSEN_SHANNON_DIVERGENCE, 0.01, 0.1),
        # 11h: the latest with a verdict.
        _finding("taxi", 1, 11, "payment_type", SKEW, L_INFINITY, 0.35, 0.1),
        _finding("taxi", 1, 11, "fare", SKEW, JENSEN_SHANNON_DIVERGENCE, 0.04, 0.1),
        _finding("taxi", 1, 11, "payment_type", DRIFT, L_INFINITY, 0.33, 0.1),
        _finding("taxi", 1, 11, "fare", DRIFT, JENSEN_SHANNON_DIVERGENCE, 0.03, 0.05),
        _finding("taxi", 1, 11, PREDICTION, DRIFT, JENSEN_SHANNON_DIVERGENCE, 0.2, 0.1),
        # v2 has no training statistics: drift only (and no previous window, so nothing at all here but rows).
    ]
    skipped = [
        Skipped("corrupt_record", "logs/a.tfrecord", 3, "truncated record"),
        Skipped("corrupt_record", "logs/b.tfrecord", 2, "bad crc"),
        Skipped("unknown_version", "taxi/7", 40, "version 7 is not under the base path"),
    ]
    return _report(findings=findings, windows=windows, skipped=skipped, requests_read=1108, rows_read=1220)


def test_scores_and_thresholds_come_from_the_latest_window_with_a_verdict(report, tmp_path):
    path = tmp_path / "tfxp_monitor.prom"
    write_textfile(report, path)
    samples = _samples(path)

    v1 = {"model": "taxi", "version": "1"}
    assert samples["tfxp_monitor_skew_score", _labels(**v1, feature="payment_type", statistic=L_INFINITY)] == 0.35
    assert samples["tfxp_monitor_skew_threshold", _labels(**v1, feature="payment_type", statistic=L_INFINITY)] == 0.1
    assert samples["tfxp_monitor_skew_score", _labels(**v1, feature="fare", statistic=JENSEN_SHANNON_DIVERGENCE)] == (
        0.04
    )
    assert samples["tfxp_monitor_drift_score", _labels(**v1, feature="fare", statistic=JENSEN_SHANNON_DIVERGENCE)] == (
        0.03
    )
    assert samples[
        "tfxp_monitor_drift_threshold", _labels(**v1, feature="fare", statistic=JENSEN_SHANNON_DIVERGENCE)
    ] == (0.05)
    prediction = _labels(**v1, feature=PREDICTION, statistic=JENSEN_SHANNON_DIVERGENCE)
    assert samples["tfxp_monitor_drift_score", prediction] == 0.2
    # One series per (feature, statistic): the 10h values were replaced, not added.
    scores = {key: value for key, value in samples.items() if key[0] == "tfxp_monitor_skew_score"}
    assert len(scores) == 2
    assert 0.02 not in scores.values() and 0.01 not in scores.values()
    assert samples["tfxp_monitor_scored_window_end_timestamp_seconds", _labels(**v1)] == _epoch(_iso(12))


def test_rows_and_refused_ratio_come_from_the_latest_window_with_or_without_a_verdict(report, tmp_path):
    path = tmp_path / "tfxp_monitor.prom"
    write_textfile(report, path)
    samples = _samples(path)

    v1, v2 = _labels(model="taxi", version="1"), _labels(model="taxi", version="2")
    assert samples["tfxp_monitor_rows", v1] == 20  # the 12h window, too few rows for a verdict
    assert samples["tfxp_monitor_requests", v1] == 8
    assert samples["tfxp_monitor_refused_ratio", v1] == 0.25
    assert samples["tfxp_monitor_rows", v2] == 300
    assert samples["tfxp_monitor_refused_ratio", v2] == 0.0
    # v2's only window has a verdict (no reference) but no findings: no score series for it.
    assert not [key for key in samples if key[0].endswith("_score") and ("version", "2") in key[1]]


def test_pass_metrics_skipped_by_reason_and_last_success(report, tmp_path):
    path = tmp_path / "tfxp_monitor.prom"
    write_textfile(report, path)
    samples = _samples(path)

    assert samples["tfxp_monitor_rows_read", ()] == 1220
    assert samples["tfxp_monitor_requests_read", ()] == 1108
    assert samples["tfxp_monitor_window_seconds", ()] == HOUR
    assert samples["tfxp_monitor_min_rows", ()] == 100
    skipped = {
        dict(labels)["reason"]: value for (name, labels), value in samples.items() if name == "tfxp_monitor_skipped"
    }
    assert skipped == {**dict.fromkeys(SKIPPED_REASONS, 0.0), "corrupt_record": 5.0, "unknown_version": 40.0}
    assert samples["tfxp_monitor_last_success_timestamp_seconds", ()] == _epoch("2026-12-04T13:05:00Z")
    # No counter named without _total, no gauge named like a counter (promtool check metrics is run on this
    # file in tests/serving/test_deploy_monitoring.py).
    assert not [name for name, _ in samples if name.endswith("_total")]


def test_an_empty_pass_still_writes_last_success_and_zero_counts(tmp_path):
    path = tmp_path / "tfxp_monitor.prom"
    write_textfile(_report(generated_at="2026-12-04T13:05:00.250000+00:00"), path)
    samples = _samples(path)

    assert samples["tfxp_monitor_last_success_timestamp_seconds", ()] == _epoch("2026-12-04T13:05:00Z") + 0.25
    assert samples["tfxp_monitor_rows_read", ()] == 0
    assert not [name for name, _ in samples if name in ("tfxp_monitor_skew_score", "tfxp_monitor_rows")]


def test_refuses_a_path_the_collector_would_ignore_and_a_timestamp_without_zone(tmp_path):
    with pytest.raises(ValueError, match=r"\.prom"):
        write_textfile(_report(), tmp_path / "tfxp_monitor.txt")
    with pytest.raises(ValueError, match="time zone"):
        write_textfile(_report(generated_at="2026-12-04T13:05:00"), tmp_path / "tfxp_monitor.prom")
    assert os.listdir(tmp_path) == []


def test_the_file_is_replaced_atomically(report, tmp_path):
    """Each write renames a complete file over the old one: a reader polling meanwhile only ever parses a whole
    file (every family present, last-success line included), the inode changes, and no temp file is left."""
    path = tmp_path / "tfxp_monitor.prom"
    big = _report(
        findings=[
            _finding("taxi", 1, 11, f"feature_{i:04d}", SKEW, JENSEN_SHANNON_DIVERGENCE, i / 1e4, 0.1)
            for i in range(1000)
        ],
        windows=[_window("taxi", 1, 11, 500, OK)],
    )
    write_textfile(report, path)
    expected_small = len(_samples(path))
    write_textfile(big, path)
    expected_big = len(_samples(path))
    assert expected_big >= 2000  # a score and a threshold per feature: a file worth tearing

    stop, seen, torn = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            text = path.read_text(encoding="utf-8")
            count = sum(len(f.samples) for f in text_string_to_metric_families(text))
            seen.add(count)
            if count not in (expected_small, expected_big) or not text.endswith("\n"):
                torn.append(count)

    reader = threading.Thread(target=read)
    reader.start()
    inodes = set()
    try:
        for i in range(20):
            write_textfile(big if i % 2 else report, path)
            inodes.add(os.stat(path).st_ino)
    finally:
        stop.set()
        reader.join(30)
    assert torn == []
    assert seen == {expected_small, expected_big}  # the reader did see both versions of the file
    assert len(inodes) > 1  # renamed over, not rewritten in place
    assert os.listdir(tmp_path) == ["tfxp_monitor.prom"]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
