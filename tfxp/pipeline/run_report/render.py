"""The run report as one self-contained HTML page: no script, no external style, font or image; inline SVG charts
(tfxp.charts). TFDV's and TFMA's own viewers load Facets and widgets from a CDN and render blank offline
(tensorflow/model-analysis#511). TF-free: it renders a RunReport's fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from tfxp import charts
from tfxp.charts import escape as _e, num as _num, pct as _pct
from tfxp.pipeline.run_report.collect import NUMERIC, FeatureStats, RunReport, SplitStats

STYLE = "".join(
    (
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a1a1a;max-width:76em}",
        "table{border-collapse:collapse;margin:.5em 0}",
        "th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}",
        "th{background:#eee}td.n{text-align:right}code{font-size:90%}",
        "tr.bad td{background:#fbe3d6}.note{color:#555}",
        "#outcome{font-size:110%;padding:.4em .6em;border-left:6px solid #009e73}#outcome.stop{border-color:#d55e00}",
        ".charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0}",
        "svg{display:block}svg text{font:11px system-ui,sans-serif;fill:#1a1a1a}svg .p{font-size:10px}",
        "svg .t{font-weight:600}",
    )
)

# The per-slice table's columns, in this order when present (TFMA's names; the console summary's choice): the
# confusion counts stay out, multiclass per-class metrics are in the confusion matrix.
TABLE_METRICS = (
    "example_count",
    "auc",
    "binary_accuracy",
    "precision",
    "recall",
    "calibration",
    "sparse_categorical_accuracy",
    "mean_squared_error",
    "root_mean_squared_error",
    "mean_absolute_error",
)

# The training curves drawn as lines; eval/* metrics, written once at the last step, are tabled.
LOSS_TAGS = ("train/loss", "eval/loss")


def render_html(report: RunReport) -> str:
    """The page of `report` as one HTML5 document (UTF-8 text).

    Raises ValueError (tfxp.charts) when a chart's data is malformed (a share outside [0, 1], a confusion matrix of
    the wrong shape): drawing it would be wrong.
    """
    title = f"tfxp run report: {report.pipeline}, run {report.run}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        _header(report, title),
        _lineage(report),
        _anomalies(report.summary.get("anomalies") or []),
        _metrics(report),
        _plots(report),
        _curves(report.curves),
        _statistics(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], row_class: Iterable[str] | None = None) -> str:
    classes = list(row_class) if row_class is not None else None
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{cell}" for cell in row))
    return "<table><tr>" + "".join(f"<th>{_e(h)}" for h in head) + "".join(body) + "</table>"


def _header(report: RunReport, title: str) -> str:
    s = report.summary
    facts = [
        ("Pipeline", _e(report.pipeline)),
        ("Run (pipeline_run context)", _e(report.run)),
        ("Task", _e(report.task or "unknown: the Trainer did not run")),
        ("Rows per split", _e(", ".join(f"{k}: {v:,}" for k, v in (s.get("rows") or {}).items()) or "n/a")),
        ("Blessed", _e({True: "yes", False: "no", None: "not evaluated"}[s.get("blessed")])),
        ("Pushed version", _e(s.get("pushed_version") or "none")),
        ("Baseline model", _e(_baseline(report))),
    ]
    stopped = "" if s.get("pushed") else ' class="stop"'
    notes = "".join(f"<p class=note>{_e(n)}</p>" for n in report.notes)
    return (
        f"<header><h1>{_e(title)}</h1><table>"
        + "".join(f"<tr><th scope=row>{k}<td>{v}" for k, v in facts)
        + f'</table><p id="outcome"{stopped}><strong>{_e(report.outcome)}</strong></p>{notes}</header>'
    )


def _baseline(report: RunReport) -> str:
    if report.baseline_version or report.summary.get("baseline_model"):
        return report.baseline_version or f"{report.summary['baseline_model']} (never pushed)"
    evaluated = any(step.node == "Evaluator" and step.execution_id is not None for step in report.steps)
    return "none (first model)" if evaluated else "not resolved: the run stopped before the Evaluator"


def _lineage(report: RunReport) -> str:
    files = _table(
        ("file", "sha256", "bytes", "rows"),
        (
            (
                _e(f.get("path", "?")) + (f" (span {_e(f['span'])})" if "span" in f else ""),
                f"<code>{_e(f.get('sha256', '?'))}</code>",
                f"{f.get('bytes', 0):,}",
                f"{f.get('rows', 0):,}",
            )
            for f in report.input_files
        ),
    )
    if not report.input_files:
        files = "<p>No input files recorded (ExampleGen did not run, or ran before it recorded them).</p>"
    steps = _table(
        ("component", "state", "execution", "outputs"),
        (
            (
                _e(step.node),
                _e(step.state.lower()),
                _e(step.execution_id if step.execution_id is not None else "-"),
                "<br>".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in step.outputs.items()),
            )
            for step in report.steps
        ),
        ("bad" if step.state == "FAILED" else "" for step in report.steps),
    )
    s = report.summary
    pushed = (
        f"<p>Pushed: version <strong>{_e(s['pushed_version'])}</strong> at <code>{_e(s.get('pushed_path'))}</code>"
        + (f"; mobile: <code>{_e(s['mobile_path'])}</code>" if s.get("mobile_pushed") else "")
        + "</p>"
        if s.get("pushed")
        else "<p>Pushed: nothing.</p>"
    )
    return (
        f'<section id="lineage"><h2>Lineage</h2><h3>Input files</h3>{files}<h3>Components</h3>{steps}{pushed}</section>'
    )


def _anomalies(anomalies: list[dict]) -> str:
    if not anomalies:
        return '<section id="anomalies"><h2>Anomalies</h2><p>None: the data matches the schema.</p></section>'
    rows = (
        (_e(a.get("split", "")), _e(a.get("feature", "")), _e(a.get("anomaly", "")), _e(a.get("description", "")))
        for a in anomalies
    )
    return (
        f'<section id="anomalies"><h2>Anomalies ({len(anomalies)})</h2>'
        + _table(("split", "feature", "anomaly", "description"), rows)
        + "</section>"
    )


def _delta(value, baseline) -> str:
    """value - baseline, signed; "-" when either is missing or not a number (a metric undefined on a slice)."""
    if value is None or baseline is None or not math.isfinite(value) or not math.isfinite(baseline):
        return "-"
    return f"{value - baseline:+.4g}"


def _natural(name: str) -> list:
    """Sort key: "trip_start_hour=2" before "trip_start_hour=10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _metrics(report: RunReport) -> str:
    s = report.summary
    metrics: Mapping[str, Mapping] = s.get("metrics") or {}
    if not metrics:
        return _section("metrics", "Metrics", "<p>Not evaluated: the run stopped before the Evaluator.</p>")
    gates = _table(
        ("gated metric (overall)", "threshold", "value", "baseline", "change", "decision"),
        (
            (
                _e(g.metric),
                _e(g.threshold),
                _num(g.value),
                _num(g.baseline),
                _delta(g.value, g.baseline),
                "passed" if g.passed else "<strong>failed</strong>",
            )
            for g in report.gates
        ),
        ("" if g.passed else "bad" for g in report.gates),
    )
    failures = "".join(f"<li>{_e(_failure_text(f))}" for f in s.get("failures") or [])
    present = {m for values in metrics.values() for m in values}
    names = [m for m in TABLE_METRICS if m in present]
    rows = []
    for slice_name, values in sorted(metrics.items(), key=lambda kv: (kv[0] != "Overall", _natural(kv[0]))):
        base = report.baseline_metrics.get(slice_name, {})
        cells = [_e(slice_name)]
        for m in names:
            value = values.get(m)
            cell = _num(value)
            if m in base:
                cell += f" <span class=note>({_delta(value, base[m])})</span>"
            cells.append(cell)
        rows.append(cells)
    per_slice = _table(("slice", *names), rows)
    with_baseline = " (change against the baseline in brackets)" if report.baseline_metrics else ""
    return (
        '<section id="metrics"><h2>Metrics</h2>'
        f"<h3>Gates</h3>{gates if report.gates else '<p>No gate configured.</p>'}"
        + (f"<ul>{failures}</ul>" if failures else "")
        + f"<h3>Per slice{with_baseline}</h3>{per_slice}</section>"
    )


def _failure_text(failure: Mapping) -> str:
    value = "undefined" if failure.get("value") is None else f"{failure['value']:.4f}"
    return f"{failure.get('metric')} = {value} on slice {failure.get('slice')} fails {failure.get('threshold')}"


def _plots(report: RunReport) -> str:
    figures = []
    if report.task == "binary":
        if report.roc:
            figures.append(
                _fig(
                    charts.lines(
                        "roc",
                        "ROC curve (TFMA ConfusionMatrixPlot, overall eval slice)",
                        [("candidate", report.roc)],
                        "false positive rate",
                        "true positive rate",
                        (0.0, 1.0),
                        (0.0, 1.0),
                        diagonal=True,
                    )
                )
            )
        if report.calibration:
            points = [(b["prediction"], b["label"]) for b in report.calibration]
            figures.append(
                _fig(
                    charts.lines(
                        "calibration",
                        "Calibration (TFMA CalibrationPlot): mean label per prediction bucket, overall eval slice",
                        [("candidate", points)],
                        "mean prediction",
                        "mean label (positive share)",
                        (0.0, 1.0),
                        (0.0, 1.0),
                        diagonal=True,
                    )
                )
            )
        if not figures:
            figures.append("<p>No plots in this evaluation (it ran before the Evaluator computed them).</p>")
    elif report.task == "multiclass":
        matrix = report.summary.get("confusion_matrix")
        if matrix:
            figures.append(
                _fig(
                    charts.matrix(
                        "confusion",
                        "Confusion matrix (TFMA MultiClassConfusionMatrixPlot, top-1), overall eval slice",
                        matrix["classes"],
                        matrix["classes"],
                        matrix["counts"],
                    )
                )
            )
        else:
            figures.append("<p>No confusion matrix in this evaluation.</p>")
    elif report.task == "regression":
        if report.residuals:
            points = [(b["prediction"], b["label"] - b["prediction"]) for b in report.residuals]
            figures.append(
                _fig(
                    charts.lines(
                        "residuals",
                        "Mean residual (label - prediction) per prediction bucket (ResidualPlot: ~26% wide "
                        "buckets on a log scale), overall eval slice",
                        [("candidate", points)],
                        "mean prediction",
                        "mean residual",
                        zero_line=True,
                    )
                )
            )
        else:
            figures.append("<p>No residual plot in this evaluation (it ran before the Evaluator computed it).</p>")
    if not report.summary.get("metrics"):
        figures = ["<p>Not evaluated.</p>"]
    return f'<section id="plots"><h2>Plots</h2><div class=charts>{"".join(figures)}</div></section>'


def _curves(curves: Mapping[str, list]) -> str:
    if not curves:
        return _section("curves", "Training curves", "<p>No TensorBoard logs (the Trainer did not run).</p>")
    series = [(tag, curves[tag]) for tag in LOSS_TAGS if curves.get(tag)]
    figures = []
    if series:
        figures.append(
            _fig(
                charts.lines(
                    "training", "Loss by training step (the Trainer's TensorBoard logs)", series, "step", "loss"
                )
            )
        )
    others = [(tag, points) for tag, points in curves.items() if tag not in LOSS_TAGS]
    for tag, points in others:
        if len(points) > 1:
            figures.append(_fig(charts.lines("training", f"{tag} by step", [(tag, points)], "step", tag)))
    table = _table(
        ("tag", "last step", "last value"), ((_e(t), str(p[-1][0]), _num(p[-1][1])) for t, p in curves.items())
    )
    return f'<section id="curves"><h2>Training curves</h2><div class=charts>{"".join(figures)}</div>{table}</section>'


def _statistics(report: RunReport) -> str:
    if not report.statistics:
        return _section("statistics", "Statistics", "<p>No statistics (StatisticsGen did not run).</p>")
    source = (
        f"Against the baseline's training data ({_e(report.baseline_stats_source)}): numeric buckets are 10 "
        "equal-width buckets over both ranges, TFDV's histogram counts spread evenly within its buckets."
        if report.baseline_stats_source
        else "No baseline: the first model, or the run stopped before the Evaluator resolved one."
    )
    parts = [f'<section id="statistics"><h2>Statistics per split</h2><p class=note>{source}</p>']
    for split in report.statistics:
        parts.append(_split(split, report.baseline_stats_source is not None))
    parts.append("</section>")
    return "".join(parts)


def _split(split: SplitStats, with_baseline: bool) -> str:
    rows = (
        (
            _e(f.name),
            _e(f.kind),
            _pct(f.missing),
            _pct(f.baseline_missing) if f.baseline_missing is not None else "-",
        )
        for f in split.features
    )
    table = _table(("feature", "kind", "missing", "baseline missing"), rows)
    # A feature without a value in the split (and in the baseline) has no chart: its bars would all be empty.
    figures = [
        _feature_chart(split.split, f, with_baseline)
        for f in split.features
        if f.labels and (any(f.shares) or any(f.baseline or ()))
    ]
    return f"<h3>Split {_e(split.split)}: {split.rows:,} rows</h3>{table}<div class=charts>{''.join(figures)}</div>"


def _feature_chart(split: str, f: FeatureStats, with_baseline: bool) -> str:
    kind = "histogram" if f.kind == NUMERIC else "top values"
    series = [(f"{split} split", f.shares)]
    if with_baseline and f.baseline is not None:
        series.append(("baseline's training data", f.baseline))
    title = f"{f.name}: {kind}, {split} split; missing {_pct(f.missing).replace('&lt;', '<')}"
    return _fig(charts.bars(kind.replace(" ", "-"), title, f.labels, series))


def _fig(svg: str) -> str:
    """A chart in a <figure>, its <title> written out as the caption."""
    caption = svg.split("<title>", 1)[1].split("</title>", 1)[0]
    return f"<figure><figcaption>{caption}</figcaption>{svg}</figure>"


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{body}</section>'
