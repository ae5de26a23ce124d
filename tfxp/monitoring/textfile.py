"""A MonitorReport as a Prometheus textfile, for node-exporter's textfile collector (`tfxp monitor --textfile`).

The metric names are a contract: tfxp/serving/deploy/alert-rules.yml and grafana-dashboard.json query them,
and tests/serving/test_deploy_monitoring.py checks that every name those files use is written here.

- `tfxp_monitor_skew_score`, `tfxp_monitor_drift_score` {model, version, feature, statistic}: the statistic's
  value in the latest window *with a verdict* of that model version (a window with too few rows has no findings,
  so it never replaces the last scored one); `feature` "<prediction>" is the model's output.
- `tfxp_monitor_skew_threshold`, `tfxp_monitor_drift_threshold` {model, version, feature, statistic}: the
  threshold each score is compared with (TFDV's rule: over when value > threshold).
- `tfxp_monitor_scored_window_end_timestamp_seconds` {model, version}: when the scored window ended.
- `tfxp_monitor_rows`, `tfxp_monitor_requests`, `tfxp_monitor_refused_ratio` {model, version}: the latest
  window of that version, with or without a verdict (so a window that got too few rows shows here).
- `tfxp_monitor_rows_read`, `tfxp_monitor_requests_read`: read in this pass (gauges: each pass re-reads the
  logs, so the values don't only go up as a counter's must).
- `tfxp_monitor_window_seconds`, `tfxp_monitor_min_rows`: the pass's settings.
- `tfxp_monitor_skipped` {reason}: records or files skipped, by reason; every known reason is written (0 when
  none) so a query on one reason never sees a missing series.
- `tfxp_monitor_last_success_timestamp_seconds`: the pass's `generated_at` (Prometheus' practice for batch
  jobs: alert when it gets old).

The file is replaced atomically (prometheus_client.write_to_textfile writes `<path>.<pid>.<thread>` next to it
and renames it over `path`), so the collector never reads half a file; it only reads names ending in ".prom".
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from tfxp.monitoring.report import DRIFT, SKEW, SKIPPED_REASONS, TOO_FEW_ROWS, Finding, MonitorReport, Window

_FEATURE_LABELS = ("model", "version", "feature", "statistic")
_VERSION_LABELS = ("model", "version")


def write_textfile(report: MonitorReport, path: str | os.PathLike) -> None:
    """Writes `report` to `path` atomically, for node-exporter's textfile collector.

    Call it after a pass completed: the file's last-success timestamp is the report's `generated_at`.
    Raises ValueError if `path` doesn't end in ".prom" (the collector would silently ignore the file) or a
    timestamp in the report isn't ISO-8601; OSError if the directory is missing or not writable.
    """
    if not os.fspath(path).endswith(".prom"):
        raise ValueError(f"{os.fspath(path)}: node-exporter's textfile collector only reads files ending in .prom")
    write_to_textfile(os.fspath(path), build_registry(report))


def build_registry(report: MonitorReport) -> CollectorRegistry:
    """The metrics of `report` (the module docstring lists them) in a registry of their own."""
    registry = CollectorRegistry()
    _add_scores(registry, report)
    _add_windows(registry, report.windows)
    _add_pass(registry, report)
    return registry


def _add_scores(registry: CollectorRegistry, report: MonitorReport) -> None:
    gauges = {
        (kind, what): Gauge(f"tfxp_monitor_{kind}_{what}", help_text, _FEATURE_LABELS, registry=registry)
        for kind in (SKEW, DRIFT)
        for what, help_text in (
            ("score", f"{kind.capitalize()} statistic of the latest window with a verdict."),
            ("threshold", f"Threshold of the {kind} statistic (over when score > threshold)."),
        )
    }
    scored_end = Gauge(
        "tfxp_monitor_scored_window_end_timestamp_seconds",
        "End of the window the scores come from.",
        _VERSION_LABELS,
        registry=registry,
    )
    by_window = findings_by_window(report.findings)
    for (model, version), window in latest_windows(report.windows, scored=True).items():
        scored_end.labels(model, str(version)).set(_epoch(window.end))
        for finding in by_window.get((model, version, window.start, window.end), []):
            labels = (model, str(version), finding.feature, finding.statistic)
            gauges[finding.kind, "score"].labels(*labels).set(finding.value)
            gauges[finding.kind, "threshold"].labels(*labels).set(finding.threshold)


def _add_windows(registry: CollectorRegistry, windows: list[Window]) -> None:
    rows = Gauge("tfxp_monitor_rows", "Rows in the latest window.", _VERSION_LABELS, registry=registry)
    requests = Gauge(
        "tfxp_monitor_requests", "Logged requests in the latest window.", _VERSION_LABELS, registry=registry
    )
    refused = Gauge(
        "tfxp_monitor_refused_ratio",
        "Share of the latest window's logged requests the server refused.",
        _VERSION_LABELS,
        registry=registry,
    )
    for (model, version), window in latest_windows(windows, scored=False).items():
        rows.labels(model, str(version)).set(window.rows)
        requests.labels(model, str(version)).set(window.requests)
        refused.labels(model, str(version)).set(window.refused_ratio)


def _add_pass(registry: CollectorRegistry, report: MonitorReport) -> None:
    def gauge(name: str, help_text: str, value: float) -> None:
        Gauge(name, help_text, registry=registry).set(value)

    gauge("tfxp_monitor_rows_read", "Rows read from the request logs in this pass.", report.rows_read)
    gauge("tfxp_monitor_requests_read", "Logged requests read in this pass.", report.requests_read)
    gauge("tfxp_monitor_window_seconds", "Window length.", report.window_seconds)
    gauge("tfxp_monitor_min_rows", "Fewest rows a window needs for a verdict.", report.min_rows)
    skipped = Gauge("tfxp_monitor_skipped", "Records or files skipped, by reason.", ["reason"], registry=registry)
    counts: dict[str, int] = dict.fromkeys(SKIPPED_REASONS, 0)
    for item in report.skipped:
        counts[item.reason] = counts.get(item.reason, 0) + item.count
    for reason, count in counts.items():
        skipped.labels(reason).set(count)
    gauge(
        "tfxp_monitor_last_success_timestamp_seconds",
        "When the last successful pass ran (Unix time).",
        _epoch(report.generated_at),
    )


def latest_windows(windows: list[Window], scored: bool) -> dict[tuple[str, int], Window]:
    """The latest window (by end) of each (model, version); with `scored`, the latest that has a verdict."""
    latest: dict[tuple[str, int], Window] = {}
    for window in windows:
        if scored and window.verdict == TOO_FEW_ROWS:
            continue
        key = (window.model, window.version)
        if key not in latest or _epoch(window.end) > _epoch(latest[key].end):
            latest[key] = window
    return latest


def findings_by_window(findings: list[Finding]) -> dict[tuple[str, int, str, str], list[Finding]]:
    """Findings keyed by their window: (model, version, window_start, window_end)."""
    by_window: dict[tuple[str, int, str, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        by_window[finding.model, finding.version, finding.window_start, finding.window_end].append(finding)
    return dict(by_window)


def _epoch(iso: str) -> float:
    """ISO-8601 ("…Z" or with an offset) to Unix seconds. Raises ValueError if it isn't one."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{iso!r}: a timestamp without a time zone (the report's are UTC, ending in 'Z')")
    return moment.timestamp()
