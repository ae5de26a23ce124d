"""tfxp.charts (TF-free inline SVG) and the run report's page built from a RunReport made by hand: geometry,
escaping, refusals of data a chart would draw wrong."""

from __future__ import annotations

import re

import pytest

from tfxp import charts
from tfxp.pipeline.run_report.collect import CATEGORICAL, NUMERIC, FeatureStats, Gate, RunReport, SplitStats, Step
from tfxp.pipeline.run_report.render import render_html

HOSTILE = "<script>alert(1)</script>"


def test_bars_scale_to_the_largest_share_and_write_each_share():
    svg = charts.bars("top-values", "t", ["a", "b"], [("run", [0.4, 0.1]), ("baseline", [0.3, 0.0])])
    widths = [int(w) for w in re.findall(r'class="m" x="\d+" y="\d+" width="(\d+)"', svg)]
    # scale 0.5 over 300 px: 0.4 -> 240, 0.1 -> 60; 0.3 -> 180, 0 -> nothing drawn
    assert widths == [240, 180, 60, 0]
    assert ">40%<" in svg and ">10%<" in svg and ">0%<" in svg


@pytest.mark.parametrize("shares", [[1.5, 0.0], [float("nan"), 0.1], [0.1]])
def test_bars_refuse_what_they_would_draw_wrong(shares):
    with pytest.raises(ValueError):
        charts.bars("histogram", "t", ["a", "b"], [("run", shares)])


def test_lines_map_the_range_onto_the_plot_and_skip_non_finite_points():
    svg = charts.lines("roc", "t", [("c", [(0.0, 0.0), (0.5, float("nan")), (1.0, 1.0)])], "x", "y", (0, 1), (0, 1))
    points = re.search(r'<polyline class="m" points="([^"]+)"', svg)[1].split()
    assert points == [f"{charts.PAD_L}.0,{charts.LINE_H - charts.PAD_B}.0", f"{charts.LINE_W - charts.PAD_R}.0,40.0"]
    with pytest.raises(ValueError, match="no finite point"):
        charts.lines("roc", "t", [("c", [(float("nan"), 1.0)])], "x", "y")


def test_matrix_refuses_a_wrong_shape_and_negative_counts():
    svg = charts.matrix("confusion", "t", ["a", "b"], ["a", "b"], [[3, 1], [0, 4]])
    assert svg.count('class="m"') == 4 and ">3<" in svg and ">4<" in svg
    with pytest.raises(ValueError):
        charts.matrix("confusion", "t", ["a", "b"], ["a", "b"], [[1, 2]])
    with pytest.raises(ValueError):
        charts.matrix("confusion", "t", ["a"], ["a"], [[-1]])


def _report(task: str, **summary) -> RunReport:
    split = SplitStats(
        "train",
        100,
        [
            FeatureStats(HOSTILE, CATEGORICAL, 0.1, [HOSTILE, "b"], [0.6, 0.3], [0.5, 0.4], 0.0),
            FeatureStats("x", NUMERIC, 0.0, ["[0, 1)", "[1, 2]"], [0.5, 0.5]),
            FeatureStats("empty", NUMERIC, 1.0, ["[0, 0]"], [0.0]),
        ],
    )
    return RunReport(
        pipeline="p",
        run="2026-12-05T01:00:00",
        task=task,
        steps=[Step("CsvExampleGen", "COMPLETE", 1, {"examples": "/x/1"}), Step("Trainer", "NOT RUN")],
        outcome="pushed version 7",
        summary={"pushed": True, "pushed_version": "7", "pushed_path": "/s/7", "metrics": {"Overall": {}}, **summary},
        input_files=[{"path": HOSTILE, "sha256": "ab" * 32, "bytes": 10, "rows": 2}],
        statistics=[split],
        baseline_stats_source="here",
        baseline_version="6",
        baseline_metrics={},
        gates=[Gate("auc", ">= 0.7", 0.8, 0.79, True)],
        roc=[(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)],
        calibration=[{"low": 0, "high": 0.5, "prediction": 0.2, "label": 0.25, "examples": 4}],
        residuals=None,
        curves={"train/loss": [(0, 0.7), (10, 0.3)]},
    )


def test_page_escapes_data_and_draws_the_tasks_plots():
    page = render_html(_report("binary"))
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    kinds = re.findall(r'data-chart="([^"]+)"', page)
    # no chart for a feature without values
    assert sorted(kinds) == ["calibration", "histogram", "roc", "top-values", "training"]


def test_multiclass_draws_the_confusion_matrix_and_regression_says_why_no_residuals():
    matrix = {"classes": ["a", "b"], "counts": [[3, 1], [0, 4]], "no_prediction": [0, 0]}
    page = render_html(_report("multiclass", confusion_matrix=matrix))
    assert 'data-chart="confusion"' in page and 'data-chart="roc"' not in page
    page = render_html(_report("regression"))
    assert "No residual plot in this evaluation" in page and 'data-chart="roc"' not in page
    report = _report("regression")
    report.residuals = [{"low": 1, "high": 2, "prediction": 1.5, "label": 2.0, "examples": 3}] * 2
    page = render_html(report)
    assert 'data-chart="residuals"' in page and 'data-chart="calibration"' not in page


def test_metrics_sort_slices_naturally_and_never_print_nan():
    report = _report("binary")
    report.summary["metrics"] = {
        "trip_start_hour=10": {"auc": 0.7},
        "Overall": {"auc": 0.8, "precision": None},
        "trip_start_hour=2": {"auc": 0.9},
    }
    report.baseline_metrics = {"Overall": {"auc": float("nan"), "precision": 0.5}, "trip_start_hour=2": {"auc": 0.8}}
    page = render_html(report)
    assert not re.search(r"[>(+-]nan", page.lower())
    assert page.index("Overall<td>") < page.index("trip_start_hour=2<") < page.index("trip_start_hour=10<")
    assert "0.9 <span class=note>(+0.1)</span>" in page
