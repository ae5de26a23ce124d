"""The run report (issue 21): three real `tfxp run`s into one --output on real taxi rows, each writing its report,
then the pages parsed and rendered in headless Chromium offline (Debian's `chromium`, networking denied).

Runs: (1) 2,000 rows, pushed: no baseline; (2) other rows, evaluated against (1): statistics against (1)'s
training data, gates with the baseline's values; (3) rows with NaN fares: stopped at the data gate. Then one
multiclass (scikit-learn's wine) and one regression (diabetes) project, `tfxp init` + `tfxp run`, for their plots.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import chromium
from pipeline.test_tasks import _diabetes, _wine
from pipeline_harness import loose_taxi_project, tfxp_run, write_csv
from taxi_data import TAXI, read_csv_rows

NAME = "taxi"
TRAIN_STEPS = 20


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """[(exit code, --json summary)] of the three runs, and --output."""
    work = tmp_path_factory.mktemp("report")
    out = work / "out"
    rows = read_csv_rows(limit=3000)
    # taxi.csv comes in blocks: consecutive slices differ enough for DataDriftGate to stop the second run.
    random.Random(21).shuffle(rows)
    first = write_csv(work / "first" / "taxi.csv", rows[:2000])
    second = write_csv(work / "second" / "taxi.csv", rows[1000:3000])
    bad = [dict(r) for r in rows[:2000]]
    for row in bad[:50]:
        row["fare"] = "NaN"
    third = write_csv(work / "third" / "taxi.csv", bad)
    # The report is under test, not the gates: 20 steps land on either side of taxi's AUC >= 0.75 by chance
    # (CI 2026-12-06: 0.7431, so nothing was pushed to be the second run's baseline).
    project = ("--project", loose_taxi_project(work / "taxi"))
    results = []
    for data in (first, second, third):
        code, summary, stderr = tfxp_run(data, out, *project, name=NAME, train_steps=TRAIN_STEPS)
        results.append((code, summary))
    return results, out


class Page(HTMLParser):
    """Tags with attributes, the text, and the <svg> charts (attributes, marks: class "m" elements)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.svgs: list[dict] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "svg":
            self.svgs.append({"attrs": attrs, "marks": []})
        elif self.svgs and attrs.get("class") == "m":
            self.svgs[-1]["marks"].append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def charts(self, kind: str) -> list[dict]:
        return [s for s in self.svgs if s["attrs"].get("data-chart") == kind]


def _report(summary: dict) -> Page:
    path = summary["report"]
    assert path and Path(path).is_file(), summary.get("report")
    return Page(Path(path).read_text(encoding="utf-8"))


@pytest.mark.slow
def test_every_run_writes_its_report_under_output_reports(runs):
    results, out = runs
    codes = [code for code, _ in results]
    assert codes[0] == 0 and codes[2] == 3, [s.get("error") for _, s in results]
    paths = [Path(summary["report"]) for _, summary in results]
    assert len(set(paths)) == 3
    assert all(p.parent == out / "reports" / NAME and p.suffix == ".html" for p in paths), paths


@pytest.mark.slow
def test_first_run_binary_report(runs):
    (code, summary), *_ = runs[0]
    page = _report(summary)
    text = page.all_text
    assert f"pushed version {summary['pushed_version']}" in text
    assert "none (first model)" in text
    # lineage: the input file with its hash, every component, the pushed version
    assert re.search(r"taxi\.csv [0-9a-f]{64} [\d,]+ 2,000", text), text[:2000]
    for node in ("CsvExampleGen", "StatisticsGen", "ExampleValidator", "Trainer", "Evaluator", "Pusher"):
        assert node in text
    # the task's plots, the training curve, a chart per feature and split
    assert len(page.charts("roc")) == 1 and len(page.charts("calibration")) == 1
    roc = page.charts("roc")[0]
    assert any(tag == "polyline" for tag, _ in roc["marks"]) and len(roc["marks"]) > 10
    assert len(page.charts("training")) == 1
    features = page.charts("histogram") + page.charts("top-values")
    splits = summary["rows"]
    assert len(features) >= 10 * len(splits), len(features)
    assert all(len(svg["marks"]) >= 1 for svg in features)
    # nothing to fetch, nothing to run
    assert "script" not in {tag for tag, _ in page.tags}
    assert not re.search(r"(src|href)=\"?(https?:)?//", Path(summary["report"]).read_text())


@pytest.mark.slow
def test_second_run_against_the_baseline(runs):
    (_, first), (code, second), _ = runs[0]
    page = _report(second)
    text = page.all_text
    assert second["baseline_model"], second
    assert f"Baseline model {first['pushed_version']}" in text
    assert "Against the baseline's training data" in text
    # each feature chart draws two series, this run's split and the baseline's training data: two bars a label
    raw = Path(second["report"]).read_text(encoding="utf-8")
    features = re.findall(r'<svg[^>]*data-chart="(?:histogram|top-values)".*?</svg>', raw, re.S)
    assert len(features) >= 20
    assert all("baseline&#x27;s training data" in svg for svg in features)
    assert all(svg.count('class="m"') % 2 == 0 for svg in features)
    # the gates with the decision TFMA made: a failed gate exactly when not blessed
    row = r"(auc|binary_accuracy) (>= [^ ]+; change vs baseline >= [^ ]+) [\d.]+ [\d.]+ [+-][\d.e-]+ (passed|failed)"
    gates = re.findall(row, text)
    assert {g[0] for g in gates} == {"auc", "binary_accuracy"}, text
    assert (code == 0) == all(g[2] == "passed" for g in gates), (code, gates)


@pytest.mark.slow
def test_a_run_stopped_at_the_data_gate_gets_a_report(runs):
    _, _, (code, summary) = runs[0]
    page = _report(summary)
    text = page.all_text
    assert code == 3
    assert "stopped at the data gate" in text
    assert "fare" in text and "Anomalies (" in text
    assert "Not evaluated" in text and "not resolved: the run stopped before the Evaluator" in text
    assert "Trainer not run" in text and "Pusher not run" in text  # the components table
    assert "DataGate failed" in text


def _tfxp(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.slow
def test_report_version_is_the_run_that_pushed_it(runs, tmp_path):
    (results, out) = runs
    first = results[0][1]
    html = tmp_path / "v1.html"
    done = _tfxp("report", "--output", str(out), "--version", first["pushed_version"], "--html", str(html))
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(first["report"]).read_text() == html.read_text()
    newest = _tfxp("report", "--output", str(out), "--html", str(tmp_path / "newest.html"))
    assert newest.returncode == 0 and "stopped at the data gate" in newest.stdout, newest.stdout + newest.stderr
    unknown = _tfxp("report", "--output", str(out), "--version", "42", "--html", str(tmp_path / "x.html"))
    assert unknown.returncode == 2
    assert f"no run pushed version 42; versions pushed: {first['pushed_version']}" in unknown.stderr, unknown.stderr
    assert not (tmp_path / "x.html").exists()


# -- headless Chromium ---------------------------------------------------------------------------------------------

# Appended to a copy of the page only (the page has no script): writes each chart's rendered box and its data
# marks' boxes into the DOM that --dump-dom prints.
MEASURE = (
    "<script>document.body.insertAdjacentHTML('beforeend','<pre id=measured>'+JSON.stringify("
    "[...document.querySelectorAll('svg')].map(s=>{const r=s.getBoundingClientRect();return {kind:s.dataset.chart,"
    "w:r.width,h:r.height,marks:[...s.querySelectorAll('.m')].map(m=>{const b=m.getBBox();"
    "return [b.width,b.height]})}}))"
    "+'</pre>')</script>"
)


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page asked for (Chromium's net log; the page's requests carry its file:// isolation key, the
    browser's own background requests do not), except the page itself."""
    text = net_log.read_text()
    log, _ = json.JSONDecoder().raw_decode(text if text.rstrip().endswith("}") else text.rstrip().rstrip(",") + "]}")
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if "url" in params and "file://" in params.get("network_isolation_key", ""):
            urls.append(params["url"])
    return [u for u in urls if not u.startswith("file://")]


@pytest.mark.slow
def test_rendered_in_headless_chromium_offline_with_every_chart_drawn(runs, tmp_path):
    (_, second) = runs[0][1]
    page_file = Path(second["report"])
    expected = Page(page_file.read_text(encoding="utf-8")).svgs
    measured = _measured(page_file, tmp_path)
    assert len(measured) == len(expected) > 20
    kinds = {m["kind"] for m in measured}
    assert {"roc", "calibration", "training", "histogram", "top-values"} <= kinds, kinds
    for chart in measured:
        assert chart["w"] > 100 and chart["h"] > 100, chart
        # a line or a bar with a non-zero extent: drawn, not just present
        assert any(w > 0 and h > 0 for w, h in chart["marks"]), chart

    net_log = tmp_path / "net.json"
    chromium(page_file, tmp_path, "--dump-dom", f"--log-net-log={net_log}")
    assert _page_requests(net_log) == []
    # the check sees a page's request: the same page with one external image is caught
    leaky = tmp_path / "leaky.html"
    leaky.write_text(page_file.read_text().replace("</body>", '<img src="http://example.com/x.png"></body>'))
    chromium(leaky, tmp_path, "--dump-dom", f"--log-net-log={tmp_path / 'leaky.json'}")
    assert _page_requests(tmp_path / "leaky.json") == ["http://example.com/x.png"]


# -- multiclass and regression ------------------------------------------------------------------------------------

TASK_PROJECTS = {"multiclass": (_wine, "cultivar"), "regression": (_diabetes, "progression")}


@pytest.fixture(scope="module")
def task_reports(tmp_path_factory) -> dict[str, Path]:
    """Task -> the report `tfxp run` wrote for a small project of that task (20 training steps: the report is
    written whether or not the model is blessed)."""
    reports = {}
    for task, (build, label) in TASK_PROJECTS.items():
        work = tmp_path_factory.mktemp(task)
        data = build(work)
        init = _tfxp("init", "--data", str(data), "--label", label, "--dir", str(work / "project"))
        assert init.returncode == 0, init.stderr[-2000:]
        run = _tfxp(
            "run", "--project", str(work / "project"), "--output", str(work / "out"), "--train-steps", "20", "--json"
        )
        assert run.returncode in (0, 4), run.stderr[-3000:]
        reports[task] = Path(json.loads(run.stdout)["report"])
    return reports


def _measured(page_file: Path, tmp_path: Path) -> list[dict]:
    """Each chart's rendered box and its data marks' boxes, as headless Chromium lays the page out."""
    probe = tmp_path / "probe.html"
    probe.write_text(page_file.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = chromium(probe, tmp_path, "--dump-dom").decode()
    return json.loads(re.search(r"<pre id=\"measured\">(.*?)</pre>", dom, re.S)[1].replace("&quot;", '"'))


@pytest.mark.slow
@pytest.mark.parametrize("task, plot", [("multiclass", "confusion"), ("regression", "residuals")])
def test_the_tasks_plot_is_drawn(task_reports, tmp_path, task, plot):
    page_file = task_reports[task]
    text = Page(page_file.read_text(encoding="utf-8")).all_text
    assert f"Task {task}" in text
    measured = _measured(page_file, tmp_path)
    assert not {"roc", "calibration"} & {c["kind"] for c in measured}
    charts = [c for c in measured if c["kind"] == plot]
    assert len(charts) == 1, plot
    (chart,) = charts
    assert chart["w"] > 100 and chart["h"] > 100
    drawn = [m for m in chart["marks"] if m[0] > 0 and m[1] > 0]
    if task == "multiclass":
        assert len(drawn) == 9, chart  # a cell per (actual, predicted) pair of the 3 cultivars
    else:
        assert len(drawn) >= 3, chart  # a line and a dot per prediction bucket


# -- the plots asked of TFMA ------------------------------------------------------------------------------------


def _combiners(problem) -> list[str]:
    """The per-example combiners TFMA runs for the problem's eval config (each one passes over every example of
    every slice), by name."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as evaluator
    from tensorflow_model_analysis.metrics import metric_specs

    from tfxp.pipeline.config import EvalThresholds
    from tfxp.pipeline.evaluation import eval_config

    config = tfma.utils.update_eval_config_with_defaults(
        eval_config(EvalThresholds(), problem), has_baseline=False, rubber_stamp=True
    )
    computations = metric_specs.to_computations(list(config.metrics_specs), eval_config=config)
    return sorted(
        c.keys[0].name.split(":")[0]
        for c in evaluator._filter_and_separate_computations(computations).non_derived_computations
    )


def test_binary_plots_are_asked_and_add_no_combiner():
    from tfxp.pipeline.batched_metrics import tfma_class_name
    from tfxp.pipeline.config import EvalThresholds
    from tfxp.pipeline.evaluation import eval_config

    config = eval_config(EvalThresholds(), TAXI)
    names = {tfma_class_name(m.class_name) for spec in config.metrics_specs for m in spec.metrics}
    assert {"ConfusionMatrixPlot", "CalibrationPlot"} <= names
    # derived from AUC's histogram: still TFMA's three combiners (tests/pipeline/test_pipeline.py)
    assert _combiners(TAXI) == ["_binary_confusion_matrices", "_calibration_histogram", "example_count"]


def test_regression_residual_plot_is_one_combiner_bucketed_without_a_range():
    from tfxp.models import features as F
    from tfxp.pipeline.evaluation import RESIDUAL_PLOT_NAME, residual_bucket, residual_bucket_edges

    value = F.Problem(TAXI.features, F.Label("tips", F.DType.FLOAT, F.Task.REGRESSION))
    assert _combiners(value).count(RESIDUAL_PLOT_NAME) == 1
    for x in (-1234.5, -0.3, 0.0, 2e-7, 0.5, 1.0, 77.0, 3.2e9):
        k = residual_bucket(x)
        low, high = residual_bucket_edges(k)
        assert low <= x < high or (k < 0 and low < x <= high), (x, k, low, high)
        if k:
            assert high / low == pytest.approx(10**0.1) or low / high == pytest.approx(10**0.1)
    assert residual_bucket(float("nan")) is None and residual_bucket(float("inf")) is None
