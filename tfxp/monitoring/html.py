"""`tfxp monitor --html FILE`: one self-contained page of a MonitorReport, readable offline.

Why a page of our own: TFDV's and TFMA's views load Facets and widgets from a CDN and render blank offline
(tensorflow/model-analysis#511); Evidently's single file inlines a 3.5 MB script and grows with the data
(evidentlyai/evidently#47). This page has no script, no external style, font or image: HTML, one inline
<style> and inline SVG charts. It draws distributions (`Finding.distribution`), never rows, and caps what it
draws, so its size does not grow with the rows read; every cap is stated on the page:

- charts: only the latest window with a verdict of each version, at most MAX_CHARTS per page (over-threshold
  findings first, then the prediction distribution, then the newest versions);
- a chart shows at most MAX_CATEGORIES values (the least frequent merged into "(other)") or MAX_BUCKETS
  histogram buckets (neighbours merged);
- the windows table of a version lists its latest MAX_WINDOW_ROWS windows; the table of every finding lists
  at most MAX_FINDING_ROWS rows (every over-threshold finding, then the latest others); the Skipped list, at
  most MAX_SKIPPED_ROWS items (the rest counted by reason). `--json` has it all.

Everything that comes from data (model and feature names, category values, file names, messages) is escaped.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tfxp import charts
from tfxp.charts import bar_width, escape as _e, nice_scale, pct as _pct, short_label
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
    Distribution,
    Finding,
    MonitorReport,
    Skipped,
    Window,
)

MAX_CHARTS = 60
MAX_CATEGORIES = 12
MAX_BUCKETS = 20
MAX_WINDOW_ROWS = 48
MAX_FINDING_ROWS = 3000
MAX_SKIPPED_ROWS = 200
SUM_TOLERANCE = 1e-6  # float sums of fractions that add up to 1

CATEGORICAL = "categorical"
NUMERIC = "numeric"
OTHER = "(other)"

# Okabe-Ito's blue and orange: told apart with every common colour-vision deficiency. Only chart bars and
# their legend swatches use them (tests find the bars in a screenshot by these colours).
REFERENCE_COLOUR = "#0072b2"
SERVED_COLOUR = "#e69f00"
OVER_COLOUR = "#d55e00"

# Chart geometry (px): horizontal grouped bars, one group (reference above served) per value or bucket, so a
# value's name and each bar's percentage are written out in full at any number of groups.
LABEL_W = 190
PLOT_W = 300
PCT_W = 60
BAR_H = 12
GROUP_H = 2 * BAR_H + 8
TOP = 62
BOTTOM = 40
CHART_W = LABEL_W + PLOT_W + PCT_W
NICE_SCALES = charts.NICE_SCALES  # where an axis ends; shared with the run report (tfxp/charts.py)

STATISTIC_NAMES = {L_INFINITY: "L-infinity distance", JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon divergence"}
STATISTIC_SHORT = {L_INFINITY: "L∞", JENSEN_SHANNON_DIVERGENCE: "JSD"}
VERDICT_WORDS = {
    OK: "ok: nothing over a threshold",
    OVER_THRESHOLD: "over a threshold",
    TOO_FEW_ROWS: "no verdict: too few rows",
    NO_REFERENCE: "drift only: no training statistics",
}

STYLE = "".join(
    (
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a1a1a;max-width:70em}",
        "table{border-collapse:collapse;margin:.5em 0}",
        "th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;white-space:nowrap}",
        "td:last-child{white-space:normal}th{background:#eee}",
        "td.n,#every td:nth-child(7),#every td:nth-child(8){text-align:right}",
        "tr.o td{background:#fbe3d6;font-weight:600}",
        f".over{{border-left:6px solid {OVER_COLOUR};padding-left:8px}}",
        f".badge{{color:#fff;background:{OVER_COLOUR};padding:0 .4em;border-radius:3px;font-size:90%}}",
        ".note{color:#555}section.f{margin:1em 0}svg{display:block;margin:.3em 0}",
        "svg text{font:11px system-ui,sans-serif;fill:#1a1a1a}svg .p{font-size:10px}svg .t{font-weight:600}",
        f".a{{fill:{REFERENCE_COLOUR}}}.b{{fill:{SERVED_COLOUR}}}.g{{stroke:#ccc}}.x{{stroke:#333}}",
    )
)


def render_html(report: MonitorReport) -> str:
    """The whole page for `report`, as one HTML5 document (UTF-8 text; write it as is).

    No external reference of any kind, no script. Size: bounded by the MAX_* caps above, not by the rows
    read (about 0.5 MB for 50 features x 10 windows x 3 versions, most of it the table of every finding).
    Raises ValueError when the distribution of a charted Finding is malformed (labels, reference and served of
    different lengths, a fraction outside [0, 1] or not a number, fractions summing to more than 1, an unknown
    kind): a chart of it would be wrong.
    """
    plan = _ChartPlan.of(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>tfxp monitor report, {_e(report.generated_at)}</title>",
        f"<style>{STYLE}</style></head><body>",
        _header(report, plan),
        *(_version_section(report, key, plan) for key in _versions(report)),
        _skipped_section(report.skipped),
        _findings_section(report.findings),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# -- what gets a chart ------------------------------------------------------------------------------------


@dataclass
class _ChartPlan:
    """Which findings get a chart: those of each version's latest window with a verdict (`latest`) that
    carry a distribution, at most MAX_CHARTS, chosen in `_priority` order."""

    latest: dict[tuple[str, int], tuple[str, str]]
    drawn: set[int]  # id() of the findings drawn
    candidates: int

    @classmethod
    def of(cls, report: MonitorReport) -> _ChartPlan:
        latest = _latest_verdict_windows(report)
        candidates = [
            f
            for f in report.findings
            if f.distribution is not None and latest.get((f.model, f.version)) == (f.window_start, f.window_end)
        ]
        chosen = sorted(candidates, key=_priority)[:MAX_CHARTS]
        return cls(latest=latest, drawn={id(f) for f in chosen}, candidates=len(candidates))


def _priority(finding: Finding) -> tuple:
    return (
        not finding.over,
        finding.feature != PREDICTION,
        -finding.version,
        finding.model,
        finding.feature,
        finding.kind != SKEW,
    )


def _latest_verdict_windows(report: MonitorReport) -> dict[tuple[str, int], tuple[str, str]]:
    """(model, version) -> (start, end) of its latest window that has a verdict (not TOO_FEW_ROWS). A version
    with findings but no Window listed falls back to its findings' latest window."""
    latest: dict[tuple[str, int], tuple[str, str]] = {}
    for w in report.windows:
        key = (w.model, w.version)
        if w.verdict != TOO_FEW_ROWS and (key not in latest or w.start > latest[key][0]):
            latest[key] = (w.start, w.end)
    listed = {(w.model, w.version) for w in report.windows}
    for f in report.findings:
        key = (f.model, f.version)
        if key not in listed:
            if key not in latest or f.window_start > latest[key][0]:
                latest[key] = (f.window_start, f.window_end)
    return latest


def _versions(report: MonitorReport) -> list[tuple[str, int]]:
    """Every (model, version) in the windows or findings: model by name, newest version first."""
    keys = {(w.model, w.version) for w in report.windows} | {(f.model, f.version) for f in report.findings}
    return sorted(keys, key=lambda k: (k[0], -k[1]))


# -- header -----------------------------------------------------------------------------------------------


def _header(report: MonitorReport, plan: _ChartPlan) -> str:
    facts = [
        ("Generated at", _e(report.generated_at)),
        ("Window length", _e(_duration(report.window_seconds))),
        ("Fewest rows for a verdict (min_rows)", f"{report.min_rows:,}"),
        ("Requests read", f"{report.requests_read:,}"),
        ("Rows read", f"{report.rows_read:,}"),
        ("Skipped input", f"{len(report.skipped):,} item(s), {sum(s.count for s in report.skipped):,} record(s)"),
    ]
    rows = "".join(f"<tr><th scope=row>{k}<td>{v}" for k, v in facts)
    over_class = ' class="over"' if report.over else ""
    return (
        "<header><h1>tfxp monitor report</h1>"
        f"<table>{rows}</table>"
        f'<p id="verdict"{over_class}><strong>{_verdict_sentence(report)}</strong></p>'
        f"<p class=note>{_caps_sentence(report, plan)}</p></header>"
    )


def _verdict_sentence(report: MonitorReport) -> str:
    """The overall verdict in words (escaped): which features are over a threshold, or why there is none."""
    if report.over:
        by_kind: dict[str, dict[str, list[str]]] = {SKEW: defaultdict(list), DRIFT: defaultdict(list)}
        for f in report.over:
            where = f"{f.model} version {f.version}"
            places = by_kind.setdefault(f.kind, defaultdict(list))[_feature_title(f.feature)]
            if where not in places:
                places.append(where)
        said = [
            f"{kind} in " + ", ".join(f"{_e(name)} ({_e('; '.join(places))})" for name, places in features.items())
            for kind, features in by_kind.items()
            if features
        ]
        return f"Skew or drift found (exit code {report.exit_code}): " + "; ".join(said) + "."
    if not report.findings:
        return (
            f"No verdict: nothing was compared (exit code {report.exit_code}). No window had at least "
            f"{report.min_rows:,} rows, or no logged request could be used; see the windows and skipped input."
        )
    return f"Nothing over a threshold (exit code {report.exit_code}): {len(report.findings):,} findings, none over."


def _caps_sentence(report: MonitorReport, plan: _ChartPlan) -> str:
    drawn = len(plan.drawn)
    left = plan.candidates - drawn
    said = (
        f"Charts: the latest window with a verdict of each version; {drawn} drawn"
        + (
            f", {left} more not drawn (at most {MAX_CHARTS} per page: over-threshold findings first, then the "
            "prediction distribution, then the newest versions; their figures are in the tables)"
            if left
            else ""
        )
        + f". A chart shows at most {MAX_CATEGORIES} values or {MAX_BUCKETS} buckets (merged beyond). "
        f"Older windows have no charts: their findings are in the table of every finding."
    )
    return said


# -- one version ----------------------------------------------------------------------------------------


def _version_section(report: MonitorReport, key: tuple[str, int], plan: _ChartPlan) -> str:
    model, version = key
    windows = sorted((w for w in report.windows if (w.model, w.version) == key), key=lambda w: w.start)
    parts = [f"<section><h2>Model {_e(model)}, version {version}</h2>", _windows_table(windows)]
    latest = plan.latest.get(key)
    if latest is None:
        parts.append("<p>No window of this version has a verdict: no skew or drift was measured.</p>")
    else:
        findings = [
            f for f in report.findings if (f.model, f.version) == key and (f.window_start, f.window_end) == latest
        ]
        parts.append(
            f"<h3>Latest window with a verdict: {_e(latest[0])} to {_e(latest[1])}</h3>"
            + ("" if findings else "<p>No findings in this window.</p>")
        )
        parts.extend(_feature_section(feature, group, plan) for feature, group in _by_feature(findings))
    parts.append("</section>")
    return "\n".join(parts)


def _windows_table(windows: Sequence[Window]) -> str:
    left = len(windows) - MAX_WINDOW_ROWS
    shown = windows[-MAX_WINDOW_ROWS:]
    rows = "".join(_window_row(w) for w in shown)
    caption = f"<caption>Windows ({len(windows)})</caption>"
    note = (
        f"<p class=note>{left} earlier window(s) not listed (the latest {MAX_WINDOW_ROWS} are).</p>" if left > 0 else ""
    )
    head = "<tr><th>start<th>end<th>rows<th>requests<th>refused share<th>verdict<th>note"
    return f"{note}<table>{caption}{head}{rows}</table>" if windows else "<p>No windows.</p>"


def _window_row(w: Window) -> str:
    row_class = " class=o" if w.verdict == OVER_THRESHOLD else ""
    verdict = VERDICT_WORDS.get(w.verdict, w.verdict)
    return (
        f"<tr{row_class}><td>{_e(w.start)}<td>{_e(w.end)}<td class=n>{w.rows:,}<td class=n>{w.requests:,}"
        f"<td class=n>{_pct(w.refused_ratio)}<td>{_e(verdict)}<td>{_e(w.note)}"
    )


def _by_feature(findings: Iterable[Finding]) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by feature: over-threshold features first, then the prediction, then by name."""
    groups: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        groups[f.feature].append(f)
    order = sorted(groups, key=lambda name: (not any(f.over for f in groups[name]), name != PREDICTION, name))
    return [(name, sorted(groups[name], key=lambda f: f.kind != SKEW)) for name in order]


def _feature_section(feature: str, findings: Sequence[Finding], plan: _ChartPlan) -> str:
    over = any(f.over for f in findings)
    badge = " <span class=badge>over threshold</span>" if over else ""
    rows = "".join(
        f"<tr{' class=o' if f.over else ''}><td>{_e(f.kind)}<td>{_e(STATISTIC_NAMES.get(f.statistic, f.statistic))}"
        f"<td class=n>{_num(f.value)}<td class=n>{_num(f.threshold)}<td>{'yes' if f.over else 'no'}"
        for f in findings
    )
    table = f"<table><tr><th>kind<th>statistic<th>value<th>threshold<th>over{rows}</table>"
    charts = []
    for f in findings:
        if f.distribution is None:
            continue
        if id(f) in plan.drawn:
            charts.append(_chart(f, f.distribution))
        else:
            charts.append(f"<p class=note>{_e(f.kind)} chart not drawn: the page's {MAX_CHARTS} charts are used.</p>")
    section_class = "f over" if over else "f"
    return (
        f'<section class="{section_class}"><h4>{_e(_feature_title(feature))}{badge}</h4>{table}{"".join(charts)}'
        "</section>"
    )


def _feature_title(feature: str) -> str:
    return "prediction distribution" if feature == PREDICTION else feature


# -- charts -----------------------------------------------------------------------------------------------


def _check_distribution(feature: str, dist: Distribution) -> None:
    if dist.kind not in (CATEGORICAL, NUMERIC):
        raise ValueError(f"feature {feature!r}: distribution kind {dist.kind!r} is neither categorical nor numeric")
    if not len(dist.labels) == len(dist.reference) == len(dist.served):
        raise ValueError(
            f"feature {feature!r}: {len(dist.labels)} labels, {len(dist.reference)} reference and "
            f"{len(dist.served)} served fractions; a chart needs one fraction of each per label"
        )
    for x in (*dist.reference, *dist.served):
        if not (isinstance(x, int | float) and 0.0 <= x <= 1.0):
            raise ValueError(f"feature {feature!r}: fraction {x!r} is not a number in [0, 1]")
    for name, shares in (("reference", dist.reference), ("served", dist.served)):
        if sum(shares) > 1.0 + SUM_TOLERANCE:
            raise ValueError(f"feature {feature!r}: {name} fractions sum to {sum(shares):.6g}, more than 1")


def _chart(finding: Finding, dist: Distribution) -> str:
    """One SVG: reference vs served, a group of two horizontal bars per value (categorical, most frequent
    first) or per bucket (numeric, in increasing order), percentages written at the bars' ends."""
    _check_distribution(finding.feature, dist)
    labels, reference, served, merged = _fit(dist)
    scale = nice_scale(max((*reference, *served), default=0.0))
    height = TOP + len(labels) * GROUP_H + BOTTOM
    plot_bottom = TOP + len(labels) * GROUP_H
    kind = "histogram" if dist.kind == NUMERIC else "top values"
    heading = (
        f"{finding.kind}: {STATISTIC_NAMES.get(finding.statistic, finding.statistic)} {_num(finding.value)}, "
        f"threshold {_num(finding.threshold)}: {'OVER' if finding.over else 'not over'}"
    )
    title = (
        f"{_feature_title(finding.feature)}, {finding.kind}: {dist.reference_name} vs served, {kind}; "
        f"{STATISTIC_NAMES.get(finding.statistic, finding.statistic)} {_num(finding.value)}, threshold "
        f"{_num(finding.threshold)}, {'over' if finding.over else 'not over'}"
    )
    parts = [
        f'<svg role="img" width="{CHART_W}" height="{height}" '
        f'viewBox="0 0 {CHART_W} {height}" data-kind="{_e(dist.kind)}"><title>{_e(title)}</title>',
        f'<text class="t" x="4" y="14">{_e(heading)}</text>',
        _legend(dist.reference_name),
        f'<text class="t" x="4" y="{TOP - 6}">{"bucket (increasing)" if dist.kind == NUMERIC else "value"}</text>',
        _x_axis(scale, plot_bottom),
    ]
    for i, (label, ref, srv) in enumerate(zip(labels, reference, served, strict=True)):
        parts.append(_group(i, label, ref, srv, scale))
    parts.append("</svg>")
    note = f"<p class=note>{_e(merged)}</p>" if merged else ""
    return "".join(parts) + note


def _legend(reference_name: str) -> str:
    return (
        f'<rect class="a" x="4" y="24" width="12" height="12"/><text x="20" y="34">{_e(reference_name)}</text>'
        f'<rect class="b" x="{LABEL_W + 60}" y="24" width="12" height="12"/>'
        f'<text x="{LABEL_W + 76}" y="34">served</text>'
    )


def _x_axis(scale: float, plot_bottom: int) -> str:
    ticks = []
    for share in (0.0, scale / 2, scale):
        x = LABEL_W + round(share / scale * PLOT_W)
        ticks.append(
            f'<line class="g" x1="{x}" y1="{TOP}" x2="{x}" y2="{plot_bottom}"/>'
            f'<text x="{x}" y="{plot_bottom + 14}" text-anchor="middle">{_pct(share)}</text>'
        )
    return (
        "".join(ticks) + f'<line class="x" x1="{LABEL_W}" y1="{TOP}" x2="{LABEL_W}" y2="{plot_bottom}"/>'
        f'<line class="x" x1="{LABEL_W}" y1="{plot_bottom}" x2="{LABEL_W + PLOT_W}" y2="{plot_bottom}"/>'
        f'<text x="{LABEL_W + PLOT_W // 2}" y="{plot_bottom + 32}" text-anchor="middle">share of rows (%)</text>'
    )


def _group(i: int, label: str, reference: float, served: float, scale: float) -> str:
    y = TOP + i * GROUP_H + 4
    parts = [f'<text x="{LABEL_W - 6}" y="{y + BAR_H + 3}" text-anchor="end">{short_label(label)}</text>']
    for row, (css, share) in enumerate((("a", reference), ("b", served))):
        width = bar_width(share, scale, PLOT_W)
        top = y + row * BAR_H
        parts.append(
            f'<rect class="{css}" x="{LABEL_W}" y="{top}" width="{width}" height="{BAR_H}"/>'
            f'<text class="p" x="{LABEL_W + width + 4}" y="{top + BAR_H - 2}">{_pct(share)}</text>'
        )
    return "".join(parts)


def _fit(dist: Distribution) -> tuple[list[str], list[float], list[float], str]:
    """The distribution within the chart's caps: (labels, reference, served, what was merged or "")."""
    labels, reference, served = list(dist.labels), list(dist.reference), list(dist.served)
    if dist.kind == CATEGORICAL and len(labels) > MAX_CATEGORIES:
        keep = MAX_CATEGORIES - 1
        merged = len(labels) - keep - (1 if labels[-1] == OTHER else 0)
        return (
            [*labels[:keep], OTHER],
            [*reference[:keep], min(1.0, sum(reference[keep:]))],
            [*served[:keep], min(1.0, sum(served[keep:]))],
            f"{merged} less frequent values merged into {OTHER}.",
        )
    if dist.kind == NUMERIC and len(labels) > MAX_BUCKETS:
        step = math.ceil(len(labels) / MAX_BUCKETS)
        spans = [range(i, min(i + step, len(labels))) for i in range(0, len(labels), step)]
        return (
            [_merged_bucket(labels[s[0]], labels[s[-1]]) for s in spans],
            [min(1.0, sum(reference[j] for j in s)) for s in spans],
            [min(1.0, sum(served[j] for j in s)) for s in spans],
            f"{len(labels)} buckets merged {step} by {step} into {len(spans)}.",
        )
    return labels, reference, served, ""


_BUCKET = re.compile(r"^\[(?P<low>[^,]*), (?P<high>.*)[\)\]]$")


def _merged_bucket(first: str, last: str) -> str:
    """ "[a, b)" and "[c, d)" -> "[a, d)" (Distribution's bucket labels); other shapes -> "first … last"."""
    a, b = _BUCKET.match(first), _BUCKET.match(last)
    return f"[{a['low']}, {b['high']}{last[-1]}" if a and b else f"{first} … {last}"


# -- skipped input and every finding --------------------------------------------------------------------


def _skipped_section(skipped: Sequence[Skipped]) -> str:
    """The Skipped list in the monitor's order; beyond MAX_SKIPPED_ROWS items, the rest counted by reason."""
    if not skipped:
        return "<section><h2>Skipped input</h2><p>Nothing was skipped.</p></section>"
    rows = "".join(
        f"<tr><td>{_e(s.reason)}<td>{_e(s.where)}<td class=n>{s.count:,}<td>{_e(s.message)}"
        for s in skipped[:MAX_SKIPPED_ROWS]
    )
    rest: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in skipped[MAX_SKIPPED_ROWS:]:
        rest[s.reason][0] += 1
        rest[s.reason][1] += s.count
    note = (
        f"<p class=note>{len(skipped) - MAX_SKIPPED_ROWS:,} more item(s) not listed: "
        + "; ".join(f"{_e(reason)}: {items:,} item(s), {count:,} record(s)" for reason, (items, count) in rest.items())
        + ".</p>"
        if rest
        else ""
    )
    return (
        f"<section><h2>Skipped input ({len(skipped):,})</h2>"
        f"<table><tr><th>reason<th>where<th>count<th>message{rows}</table>{note}</section>"
    )


def _findings_section(findings: Sequence[Finding]) -> str:
    """Every finding, one compact row each (end tags left out, as HTML allows), over-threshold rows marked;
    beyond MAX_FINDING_ROWS, every over-threshold finding and the latest others."""
    ordered = sorted(findings, key=lambda f: (f.model, f.version, f.window_start, f.feature, f.kind))
    shown = ordered
    note = ""
    if len(ordered) > MAX_FINDING_ROWS:
        over = [f for f in ordered if f.over]
        under = sorted((f for f in ordered if not f.over), key=lambda f: f.window_start)
        room = max(0, MAX_FINDING_ROWS - len(over))
        rest = under[len(under) - room :] if room else []
        keep = {id(f) for f in (*over, *rest)}
        shown = [f for f in ordered if id(f) in keep]
        note = (
            f"<p class=note>{len(ordered) - len(shown):,} findings under their threshold, from earlier windows, "
            "are not listed; <code>tfxp monitor --json</code> has every finding.</p>"
        )
    rows = "".join(
        f"<tr{' class=o' if f.over else ''}><td>{_e(f.model)}<td>{f.version}<td>{_e(f.window_start)}"
        f"<td>{_e(f.feature)}<td>{_e(f.kind)}<td>{_e(STATISTIC_SHORT.get(f.statistic, f.statistic))}"
        f"<td>{_num(f.value)}<td>{_num(f.threshold)}<td>{'yes' if f.over else 'no'}\n"
        for f in shown
    )
    key = "; ".join(f"{short}: {STATISTIC_NAMES[name]} ({name})" for name, short in STATISTIC_SHORT.items())
    return (
        f"<section><h2>Every finding ({len(findings):,})</h2><p class=note>Statistic: {_e(key)}. Window: its start "
        f"(the windows tables give the end).</p>{note}"
        "<table id=every><tr><th>model<th>version<th>window<th>feature<th>kind<th>statistic<th>value<th>threshold"
        "<th>over\n"
        f"{rows}</table></section>"
    )


# -- formatting -----------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.4g}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit} ({seconds:g} s)"
    return f"{seconds:g} s"
