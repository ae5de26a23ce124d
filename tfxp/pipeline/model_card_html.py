"""`model_card.html`: the model card (tfxp.pipeline.model_card's JSON) as one self-contained page.

No script, no external style, font or image (TFX's Model Card Toolkit can't be installed beside TFX 1.16, and
TFMA's views render blank offline): HTML, one inline <style>, inline SVG bar charts — each gated metric of
the model beside its baseline's, and the first gated metric per slice. Every text from data is escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

# Okabe-Ito blue (this model) and orange (the baseline), as tfxp.monitoring.html.
MODEL_COLOUR = "#0072b2"
BASELINE_COLOUR = "#e69f00"
LABEL_W, PLOT_W, VALUE_W, BAR_H = 220, 280, 70, 14
MAX_SLICE_BARS = 40

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.pass{color:#1b7f3b}.fail{color:#b00020;font-weight:bold}code{font-size:90%}
svg text{font:12px system-ui,sans-serif}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """A table of cells already escaped; `header` None for a key-value table."""
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def bar_chart(title: str, bars: Sequence[tuple[str, float | None, float | None]], legend: bool) -> str:
    """Horizontal bars, per label one for this model and (when given) one for the baseline; values drawn
    against the largest |value| of the chart. `bars`: (label, model value, baseline value)."""
    values = [abs(v) for _, a, b in bars for v in (a, b) if v is not None]
    scale = max(values, default=0.0) or 1.0
    paired = any(b is not None for _, _, b in bars)
    group_h = (2 if paired else 1) * BAR_H + 6
    top = 40 if legend else 24
    height = top + group_h * len(bars) + 10
    width = LABEL_W + PLOT_W + VALUE_W
    parts = [f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<title>{_e(title)}</title><text x="0" y="14" font-weight="bold">{_e(title)}</text>')
    if legend:
        for i, (name, colour) in enumerate((("this model", MODEL_COLOUR), ("baseline", BASELINE_COLOUR))):
            x = LABEL_W + i * 130
            parts.append(f'<rect x="{x}" y="22" width="10" height="10" fill="{colour}"/>')
            parts.append(f'<text x="{x + 14}" y="31">{name}</text>')
    for i, (label, value, baseline) in enumerate(bars):
        y = top + i * group_h
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + BAR_H}" text-anchor="end">{_e(label[:32])}</text>')
        for j, (v, colour) in enumerate(((value, MODEL_COLOUR), (baseline, BASELINE_COLOUR))):
            if v is None:
                continue
            w = max(1, round(PLOT_W * abs(v) / scale))
            yy = y + j * BAR_H
            parts.append(f'<rect class="bar" x="{LABEL_W}" y="{yy}" width="{w}" height="{BAR_H - 2}" fill="{colour}"/>')
            parts.append(f'<text x="{LABEL_W + w + 4}" y="{yy + BAR_H - 3}">{_num(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(card: Mapping[str, Any]) -> str:
    """The page of one card (a dict in model_card's layout; sections it lacks are left out)."""
    model = card.get("model", {})
    title = f"Model card: {model.get('name')} version {model.get('version')}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        _details(card),
        _considerations(card.get("considerations") or {}),
        _evaluation(card.get("evaluation") or {}, card.get("baseline")),
        _data(card.get("data") or {}),
        _mobile(card.get("mobile")),
        _provenance(card),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(s for s in sections if s)}</body></html>"
    )


def _details(card: Mapping[str, Any]) -> str:
    model = card.get("model", {})
    classes = ", ".join(str(c) for c in model.get("classes") or []) or "–"
    rows = [
        ("task", _e(model.get("task"))),
        (
            "label",
            f"<code>{_e(model.get('label'))}</code>"
            + (f" (hook {_e(model['label_hook'])})" if model.get("label_hook") else ""),
        ),
        ("classes", _e(classes)),
        ("inputs", _e(", ".join(model.get("inputs") or []))),
        ("pushed at", _e(model.get("pushed_at"))),
    ]
    return "<h2>Model details</h2>" + _table(None, [(f"<b>{k}</b>", v) for k, v in rows])


def _considerations(considerations: Mapping[str, Any]) -> str:
    parts = [
        f"<h3>{title}</h3><p>{_e(considerations[key])}</p>"
        for key, title in (("intended_use", "Intended use"), ("limitations", "Limitations"))
        if considerations.get(key)
    ]
    if not parts:
        return (
            "<h2>Considerations</h2><p>The project states no intended use or limitations (project.yaml "
            "<code>intended_use:</code>, <code>limitations:</code>).</p>"
        )
    return "<h2>Considerations</h2>" + "".join(parts)


def _evaluation(evaluation: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str:
    gates = evaluation.get("gates") or []
    metrics = evaluation.get("metrics") or {}
    base = (baseline or {}).get("metrics") or {}
    blessed = evaluation.get("blessed")
    out = ["<h2>Evaluation</h2>", f"<p>Blessed: <b>{'yes' if blessed else 'no'}</b>. "]
    if baseline:
        version = baseline.get("version")
        out.append(
            f"Compared with the baseline version {_e(version) if version is not None else '(not pushed here)'}.</p>"
        )
    else:
        out.append("No baseline: the first blessed model of this pipeline.</p>")
    rows = []
    for g in gates:
        bound = f"≥ {_num(g.get('bound'))}" if g.get("higher_is_better", True) else f"≤ {_num(g.get('bound'))}"
        decision = '<span class="pass">passed</span>' if g.get("passed") else '<span class="fail">failed</span>'
        rows.append(
            (
                _e(g.get("name")),
                _num(g.get("value")),
                bound,
                _num(base.get(g.get("name"))),
                _num(g.get("change")),
                f"{_num(g.get('max_change'))}",
                decision,
            )
        )
    out.append(_table(("gate", "value", "bound", "baseline", "change", "max change (bad direction)", "decision"), rows))
    if gates:
        bars = [(g["name"], g.get("value"), base.get(g["name"])) for g in gates]
        out.append(bar_chart("Gated metrics, overall", bars, legend=True))
        first = gates[0]["name"]
        slices = [(s, m.get(first), None) for s, m in metrics.items() if s != "Overall" and m.get(first) is not None]
        if slices:
            out.append(bar_chart(f"{first} per slice", slices[:MAX_SLICE_BARS], legend=False))
            if len(slices) > MAX_SLICE_BARS:
                out.append(f"<p>{len(slices) - MAX_SLICE_BARS} more slices in the table below.</p>")
    names = sorted({k for m in metrics.values() for k in m if "/" not in k})
    table_rows = [[_e(s)] + [_num(m.get(k)) for k in names] for s, m in metrics.items()]
    out.append("<h3>Metrics per slice</h3>" + _table(["slice", *names], table_rows))
    return "".join(out)


def _data(data: Mapping[str, Any]) -> str:
    rows = [
        (
            f"<code>{_e(f.get('path'))}</code>",
            f"<code>{_e(f.get('sha256'))}</code>",
            _num(f.get("bytes")),
            _num(f.get("rows")),
            _num(f.get("span")),
        )
        for f in data.get("files") or []
    ]
    split = ", ".join(f"{_e(k)} {_num(v)}" for k, v in (data.get("rows") or {}).items())
    spans = ", ".join(str(s) for s in data.get("spans") or []) or "–"
    return (
        "<h2>Training data</h2>"
        f"<p>Rows per split: {split or '–'}. Spans: {_e(spans)}. "
        f"Fingerprint: <code>{_e(data.get('fingerprint'))}</code></p>"
        + _table(("file", "sha256", "bytes", "rows", "span"), rows)
    )


def _mobile(mobile: Mapping[str, Any] | None) -> str:
    if not mobile:
        return "<h2>TFLite</h2><p>No TFLite model recorded for this version (yet).</p>"
    rows = []
    for name, parity in (mobile.get("parity") or {}).items():
        parity = parity or {}
        written = name in (mobile.get("variants") or [])
        reasons = "; ".join((mobile.get("rejected") or {}).get(name, []))
        rows.append(
            (
                _e(name),
                "yes" if written else "no",
                _num(parity.get("metric")),
                _num(parity.get("metric_value")),
                _num(parity.get("reference_metric_value")),
                _num(parity.get("max_abs_diff")),
                _e(reasons),
            )
        )
    error = f"<p class='fail'>{_e(mobile['error'])}</p>" if mobile.get("error") else ""
    header = ("variant", "written", "gated metric", "TFLite", "SavedModel", "max |diff|", "reasons")
    return "<h2>TFLite parity</h2>" + error + _table(header, rows)


def _provenance(card: Mapping[str, Any]) -> str:
    facts = {
        "run": card.get("run"),
        "schema": card.get("schema"),
        "code": card.get("code"),
        "hyperparameters": card.get("hyperparameters"),
    }
    return "<h2>Provenance</h2><pre>" + _e(json.dumps(facts, indent=2, sort_keys=True)) + "</pre>"
