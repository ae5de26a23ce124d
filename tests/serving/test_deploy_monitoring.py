"""The monitoring deploy files: Prometheus rules checked and unit-tested by promtool, every metric name the
rules and the Grafana dashboard query exported by a real `tfxp serve`, by `tfxp monitor`'s textfile or by TF
Serving 2.16, and the monitor's CronJob calling `tfxp monitor` with flags it accepts."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import reference_models as rm
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import MODEL_NAME, start_server

from tfxp.monitoring.report import (
    DRIFT,
    JENSEN_SHANNON_DIVERGENCE,
    L_INFINITY,
    OK,
    SKEW,
    Finding,
    MonitorReport,
    Skipped,
    Window,
)
from tfxp.monitoring.textfile import write_textfile

DEPLOY = Path(__file__).resolve().parents[2] / "tfxp" / "serving" / "deploy"
RULES = DEPLOY / "alert-rules.yml"
RULES_TEST = DEPLOY / "alert-rules.test.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
CRONJOB = DEPLOY / "monitor-cronjob.yaml"

# What TF Serving 2.16.1 exports under these names, each defined in tensorflow/serving at tag 2.16.1 (the
# Prometheus exporter, util/prometheus_exporter.cc, turns "/" into ":" and writes a Sampler as a histogram:
# _bucket, _sum, _count).
TF_SERVING_FAMILIES = {
    # servables/tensorflow/util.cc: Counter<2> "/tensorflow/serving/request_count" {model_name, status}
    ":tensorflow:serving:request_count": "counter",
    # servables/tensorflow/util.cc: Sampler<3> "/tensorflow/serving/request_latency" {model_name, API,
    # entrypoint}, microseconds
    ":tensorflow:serving:request_latency": "histogram",
    # servables/tensorflow/util.cc: Sampler<3> "/tensorflow/serving/runtime_latency", microseconds
    ":tensorflow:serving:runtime_latency": "histogram",
    # servables/tensorflow/util.cc: Sampler<1> "/tensorflow/serving/request_example_counts" {model}
    ":tensorflow:serving:request_example_counts": "histogram",
    # batching/batching_util.h RecordProcessedBatchSize with BatchingSession::Name() "batching_session"
    # (batching/batching_session.h): Sampler<0> "/tensorflow/serving/batching_session/processed_batch_size"
    ":tensorflow:serving:batching_session:processed_batch_size": "histogram",
    # batching/batching_session.cc: Sampler<1> "/tensorflow/serving/batching_session/queuing_latency", µs
    ":tensorflow:serving:batching_session:queuing_latency": "histogram",
}
# Made by Prometheus itself for every scrape target, whatever it exports.
PROMETHEUS_SERIES = {"up"}

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan",
}  # fmt: skip
_PROMQL_TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)"""
    r"|(?P<braces>\{[^}]*\})"
    r"|(?P<range>\[[^\]]*\])"
    r"|(?P<variable>\$\{?\w+\}?)"
    r"|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)"
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
)
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that aren't a function or aggregation (followed
    by "("), a keyword, a label (inside {...} or a by/on/... clause), a string, a number, a range or a Grafana
    variable."""
    expr = _GROUPING.sub(" ", _PROMQL_TOKEN.sub(lambda m: m.group(0) if m.group("name") else " ", expr))
    names = set()
    for match in _PROMQL_TOKEN.finditer(expr):
        name = match.group("name")
        if name and name.lower() not in PROMQL_KEYWORDS and not expr[match.end() :].lstrip().startswith("("):
            names.add(name)
    return names


def test_metric_names_are_told_from_functions_labels_and_numbers():
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(:a:b_bucket{status!="OK", x=~"by(y)"}[5m]))) / 1e6'
        " > on (model) group_left (z) c_total offset 5m or absent(d) unless sum(e) without (f)"
        " and ignoring(g) rate(h[$__rate_interval]) > bool 2 * time()"
    )
    assert metric_names(expr) == {":a:b_bucket", "c_total", "d", "e", "h"}


# ------------------------------------------------------------------------------------------------ promtool


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool is not installed: it is in Debian's `prometheus` package (apt-get install prometheus; "
        ".ci/run installs it when missing)"
    )
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=DEPLOY)


def test_promtool_check_rules():
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_promtool_test_rules():
    """Every alert fires on a series built to cross it and not on one that doesn't (alert-rules.test.yml):
    drift on two windows over the threshold and not one, both metric namings for the serving alerts."""
    result = _promtool("test", "rules", RULES_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_promtool_case():
    alerts = {rule["alert"] for group in _rules()["groups"] for rule in group["rules"] if "alert" in rule}
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert alerts == {
        "TfxpFeatureDrift",
        "TfxpFeatureSkew",
        "TfxpMonitorStale",
        "TfxpServingHighErrorRatio",
        "TfxpServingHighLatencyP99",
        "TfxpServingNoVersionAvailable",
        "TfxpServingNoVersionAnswering",
        "TfxpServingDown",
    }
    assert {name: cases.get(name) for name in alerts} == dict.fromkeys(alerts, {True, False})


def test_promtool_lints_the_monitor_textfile(tmp_path):
    path = tmp_path / "tfxp_monitor.prom"
    write_textfile(_full_report(), path)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install prometheus"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=path.read_text(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr


# ------------------------------------------------------------------------------------------- metric names


@pytest.fixture(scope="module")
def served_names(tmp_path_factory) -> set[str]:
    """Sample names on a real `tfxp serve`'s metrics page after one batched REST predict (TF Serving's
    half_plus_two, served as `taxi`)."""
    folder = tmp_path_factory.mktemp("deploy_monitoring")
    base = rm.write_half_plus_two_tf1(folder, MODEL_NAME)
    params = folder / "batching.config"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n")
    server = start_server(base, enable_batching=True, batching_parameters_file=params)
    try:
        rest = f"http://127.0.0.1:{server.server.rest_port}"
        answer = requests.post(f"{rest}/v1/models/{MODEL_NAME}:predict", json={"instances": [2.0]}, timeout=30)
        assert answer.json() == {"predictions": [rm.half_plus_two(2.0)]}
        page = requests.get(f"{rest}/monitoring/prometheus/metrics", timeout=10).text
    finally:
        server.stop()
    return _sample_names(page)


@pytest.fixture(scope="module")
def monitor_names(tmp_path_factory) -> set[str]:
    path = tmp_path_factory.mktemp("textfile") / "tfxp_monitor.prom"
    write_textfile(_full_report(), path)
    return _sample_names(path.read_text())


def _tf_serving_names() -> set[str]:
    names = set()
    for family, kind in TF_SERVING_FAMILIES.items():
        names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"} if kind == "histogram" else {family}
    return names


def test_the_rules_query_only_exported_or_recorded_names(served_names, monitor_names):
    recorded = {rule["record"] for group in _rules()["groups"] for rule in group["rules"] if "record" in rule}
    used = set().union(*(metric_names(rule["expr"]) for group in _rules()["groups"] for rule in group["rules"]))
    exported = served_names | monitor_names | _tf_serving_names() | PROMETHEUS_SERIES
    assert used - recorded - exported == set()
    # Each source is used: tfxp serve's and TF Serving's namings, and the monitor's.
    assert used & served_names and used & _tf_serving_names() and used & monitor_names
    assert {"tensorflow_serving_loaded_versions", "tensorflow_serving_request_count_total"} <= used


def test_the_dashboard_queries_only_exported_names(served_names, monitor_names):
    exprs = _dashboard_exprs()
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert used - served_names - monitor_names - _tf_serving_names() - PROMETHEUS_SERIES == set()
    for needed in (
        "tensorflow_serving_request_count_total",
        ":tensorflow:serving:request_count",
        "tensorflow_serving_request_latency_seconds_bucket",
        ":tensorflow:serving:request_latency_bucket",
        "tensorflow_serving_batching_processed_batch_size_bucket",
        ":tensorflow:serving:batching_session:processed_batch_size_bucket",
        "tensorflow_serving_loaded_versions",
        "tfxp_monitor_drift_score",
        "tfxp_monitor_skew_score",
        "tfxp_monitor_rows",
        "tfxp_monitor_refused_ratio",
        "tfxp_monitor_last_success_timestamp_seconds",
    ):
        assert needed in used, needed


def test_the_dashboard_is_a_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41 and dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [*dashboard["panels"], *(p for row in dashboard["panels"] for p in row.get("panels", []))]
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert len(exprs) >= 20
    return exprs


def _rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def _sample_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def _full_report() -> MonitorReport:
    """One window with a skew and a drift finding per statistic, and something skipped: every metric present."""
    start, end = "2026-12-04T10:00:00Z", "2026-12-04T11:00:00Z"
    findings = [
        Finding("taxi", 1, start, end, feature, kind, statistic, 0.05, 0.1, False)
        for kind in (SKEW, DRIFT)
        for feature, statistic in (("payment_type", L_INFINITY), ("fare", JENSEN_SHANNON_DIVERGENCE))
    ]
    return MonitorReport(
        generated_at="2026-12-04T11:05:00Z",
        window_seconds=3600,
        min_rows=100,
        findings=findings,
        windows=[Window("taxi", 1, start, end, 500, 250, 5, OK)],
        skipped=[Skipped("corrupt_record", "logs/a.tfrecord", 2, "truncated")],
        requests_read=250,
        rows_read=500,
    )


# -------------------------------------------------------------------------------------------------- CronJob

# `tfxp monitor`'s flags as the lead specified them (issue 20), used while the command isn't in this checkout.
MONITOR_FLAGS = {
    "--logs": True,
    "--model-base-path": True,
    "--model-config-file": True,
    "--window": True,
    "--min-rows": True,
    "--json": False,
    "--textfile": True,
    "--html": True,
    "--every": True,
}


def _cronjob() -> dict:
    docs = [doc for doc in yaml.safe_load_all(CRONJOB.read_text()) if doc is not None]
    [cronjob] = [doc for doc in docs if doc["kind"] == "CronJob"]
    assert {doc["kind"] for doc in docs} == {"CronJob", "PersistentVolumeClaim"}
    return cronjob


def _monitor_args() -> list[str]:
    """The words of the `tfxp monitor` command the CronJob's shell runs (before the first ';')."""
    [container] = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    words = shlex.split(command[2].split(";", 1)[0])
    assert words[:2] == ["tfxp", "monitor"]
    return words[2:]


def test_the_cronjob_calls_tfxp_monitor_with_flags_it_accepts():
    args = _monitor_args()
    from tfxp.cli import main

    ctx = click.Context(main, info_name="tfxp")
    monitor = main.get_command(ctx, "monitor")
    if monitor is not None:
        values, positional, _ = monitor.make_parser(click.Context(monitor, parent=ctx)).parse_args(list(args))
        assert not positional, positional
    else:  # not merged here yet: the flags the lead specified
        i = 0
        while i < len(args):
            assert args[i] in MONITOR_FLAGS, f"tfxp monitor has no {args[i]}"
            i += 2 if MONITOR_FLAGS[args[i]] else 1
    options = dict(zip(args[::2], args[1::2], strict=False))
    assert options["--logs"] == "/logs"
    assert options["--model-base-path"] == "/models/taxi"
    assert options["--textfile"] == "/textfile/tfxp_monitor.prom"


def test_the_cronjob_mounts_what_the_command_reads_and_exit_3_is_success():
    cronjob = _cronjob()
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/logs", "/models/taxi", "/textfile"}
    assert (
        mounts["/logs"]["readOnly"] and mounts["/models/taxi"]["readOnly"] and not mounts["/textfile"].get("readOnly")
    )
    # The same claim and subPath as TF Serving's Deployment (kubernetes.yaml).
    assert volumes[mounts["/models/taxi"]["name"]]["persistentVolumeClaim"]["claimName"] == "taxi-models"
    assert mounts["/models/taxi"]["subPath"] == "serving/taxi"
    assert "hostPath" in volumes[mounts["/textfile"]["name"]]
    assert pod["restartPolicy"] == "Never" and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    # Exit 3 (skew or drift found, tfxp.monitoring.report.EXIT_SKEW_OR_DRIFT) ends the shell with 0.
    script = container["command"][2]
    for code, expected in ((0, 0), (3, 0), (1, 1), (2, 2)):
        shell = script.replace(script.split(";", 1)[0], f"(exit {code})", 1)
        assert subprocess.run(["/bin/sh", "-c", shell]).returncode == expected, (code, shell)
    assert container["image"].endswith("/tfxp:TAG")  # the pipeline image (Dockerfile)


def test_the_alert_timings_match_the_cronjob_s_window_and_schedule():
    """for = 1.5 x --window on skew/drift, scores counted while their window ended < 1.25 x --window ago; stale =
    2 runs of the hourly schedule."""
    window = _duration_seconds(dict(zip(_monitor_args()[::2], _monitor_args()[1::2], strict=False))["--window"])
    assert _cronjob()["spec"]["schedule"].split()[1:] == ["*", "*", "*", "*"]  # hourly
    rules = {rule["alert"]: rule for group in _rules()["groups"] for rule in group["rules"] if "alert" in rule}
    for alert in ("TfxpFeatureDrift", "TfxpFeatureSkew"):
        assert _duration_seconds(rules[alert]["for"]) == 1.5 * window
        assert f"< 1.25 * {window:.0f}" in rules[alert]["expr"]
    assert "> 2 * 3600" in rules["TfxpMonitorStale"]["expr"]


def _duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text))
