"""Inline SVG charts for self-contained HTML pages (the run report; no script, font or external style).

TF-free and dependency-free: each function returns one `<svg>` element as text, every string from data escaped.
Colours are Okabe-Ito's (told apart with every common colour-vision deficiency); the page's <style> may style the
classes used here (`.a`, `.b` for the two series, `.g` grid, `.x` axes, `.t` titles, `.p` small labels), and each
element also carries its colour as an attribute so a chart reads the same without that style.

Every chart is an `<svg role="img" data-chart=KIND>` with a `<title>` naming what it shows; the marks that carry
data (bars, lines, cells) have class `m`, so a test can find them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

# Okabe-Ito blue, orange, bluish green, vermillion.
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#d55e00")
MAX_LABEL_CHARS = 28


def escape(text: object) -> str:
    """Escaped for HTML text and quoted attributes alike (<, >, &, " and ')."""
    return html.escape(str(text), quote=True)


def num(x: float | int | None) -> str:
    """A number in 4 significant digits; "n/a" for None or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.4g}"


def pct(share: float) -> str:
    """A share as a percentage, already escaped ("&lt;0.1%" for a tiny non-zero share)."""
    if share == 0:
        return "0%"
    if share < 0.001:
        return "&lt;0.1%"
    return f"{share * 100:.1f}%".replace(".0%", "%")


def short_label(label: str) -> str:
    """`label` escaped, cut to MAX_LABEL_CHARS with "…" and then preceded by a <title> holding it in full (a
    tooltip), for an SVG <text>."""
    shown = label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
    full = f"<title>{escape(label)}</title>" if shown != label else ""
    return full + escape(shown)


_short = short_label

NICE_SCALES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0)


def nice_scale(top: float) -> float:
    """The share a bar chart's axis ends at: the smallest of NICE_SCALES at least `top` (1.0 beyond)."""
    return next((s for s in NICE_SCALES if top <= s), 1.0)


def bar_width(share: float, scale: float, plot_width: int) -> int:
    """A bar's length in px for `share` on an axis ending at `scale`; a non-zero share is at least 1 px so it is
    never drawn as nothing."""
    width = round(share / scale * plot_width)
    return max(width, 1) if share > 0 else 0


def _open(kind: str, width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" data-chart="{escape(kind)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
    )


def _legend(names: Sequence[str], x: int, y: int) -> str:
    parts = []
    for i, name in enumerate(names):
        left = x + i * 170
        parts.append(
            f'<rect x="{left}" y="{y}" width="12" height="12" fill="{COLOURS[i % len(COLOURS)]}"/>'
            f'<text x="{left + 16}" y="{y + 10}">{_short(name)}</text>'
        )
    return "".join(parts)


# -- grouped horizontal bars: histograms and top values, one bar per series per label ------------------------

LABEL_W, PLOT_W, PCT_W, BAR_H, TOP, BOTTOM = 190, 300, 60, 12, 44, 36


def bars(kind: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    """Horizontal bars of shares in [0, 1]: per label, one bar per series (name, shares), shares written out.

    Raises ValueError when a series has not one share per label or a share is outside [0, 1] (not a number
    included): the chart would be wrong.
    """
    for name, shares in series:
        if len(shares) != len(labels):
            raise ValueError(f"{title}: series {name!r} has {len(shares)} values for {len(labels)} labels")
        for share in shares:
            if not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
                raise ValueError(f"{title}: series {name!r}: share {share!r} is not a number in [0, 1]")
    group_h = len(series) * BAR_H + 8
    scale = nice_scale(max((s for _, shares in series for s in shares), default=0.0))
    width, plot_bottom = LABEL_W + PLOT_W + PCT_W, TOP + len(labels) * group_h
    height = plot_bottom + BOTTOM
    parts = [_open(kind, width, height, title), _legend([name for name, _ in series], 4, 8)]
    for share in (0.0, scale / 2, scale):
        x = LABEL_W + round(share / scale * PLOT_W)
        parts.append(
            f'<line class="g" x1="{x}" y1="{TOP}" x2="{x}" y2="{plot_bottom}" stroke="#ccc"/>'
            f'<text x="{x}" y="{plot_bottom + 14}" text-anchor="middle">{pct(share)}</text>'
        )
    for i, label in enumerate(labels):
        y = TOP + i * group_h + 4
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + BAR_H + 2}" text-anchor="end">{_short(label)}</text>')
        for j, (_, shares) in enumerate(series):
            share = shares[i]
            w = bar_width(share, scale, PLOT_W)
            row_y = y + j * BAR_H
            parts.append(
                f'<rect class="m" x="{LABEL_W}" y="{row_y}" width="{w}" height="{BAR_H}" '
                f'fill="{COLOURS[j % len(COLOURS)]}"/>'
                f'<text class="p" x="{LABEL_W + w + 4}" y="{row_y + BAR_H - 2}">{pct(share)}</text>'
            )
    parts.append(
        f'<line class="x" x1="{LABEL_W}" y1="{TOP}" x2="{LABEL_W}" y2="{plot_bottom}" stroke="#333"/>'
        f'<text x="{LABEL_W + PLOT_W // 2}" y="{plot_bottom + 30}" text-anchor="middle">share of rows</text></svg>'
    )
    return "".join(parts)


# -- lines: ROC, calibration, residuals, training curves --------------------------------------------------------

LINE_W, LINE_H, PAD_L, PAD_R, PAD_T, PAD_B = 420, 300, 56, 16, 40, 44


def _ticks(low: float, high: float) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / 4 for i in range(5)]


def lines(
    kind: str,
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    zero_line: bool = False,
) -> str:
    """One line per series (name, [(x, y)] in drawing order), with a dot at each point; axes span `x_range` and
    `y_range` or the points' extent. `diagonal`: the dashed y = x line (ROC's chance, perfect calibration);
    `zero_line`: the dashed y = 0 line (residuals), the y axis then spanning 0.

    Raises ValueError when no series has a finite point.
    """
    finite = [(x, y) for _, points in series for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not finite:
        raise ValueError(f"{title}: no finite point to draw")
    x0, x1 = x_range or (min(x for x, _ in finite), max(x for x, _ in finite))
    y0, y1 = y_range or (min(y for _, y in finite), max(y for _, y in finite))
    if zero_line:
        y0, y1 = min(y0, 0.0), max(y1, 0.0)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    plot_w, plot_h = LINE_W - PAD_L - PAD_R, LINE_H - PAD_T - PAD_B

    def sx(x: float) -> float:
        return round(PAD_L + (x - x0) / (x1 - x0) * plot_w, 1)

    def sy(y: float) -> float:
        return round(PAD_T + plot_h - (y - y0) / (y1 - y0) * plot_h, 1)

    parts = [_open(kind, LINE_W, LINE_H, title), _legend([name for name, _ in series], 4, 8)]
    for t in _ticks(x0, x1):
        parts.append(
            f'<line class="g" x1="{sx(t)}" y1="{PAD_T}" x2="{sx(t)}" y2="{PAD_T + plot_h}" stroke="#ddd"/>'
            f'<text x="{sx(t)}" y="{PAD_T + plot_h + 14}" text-anchor="middle">{num(t)}</text>'
        )
    for t in _ticks(y0, y1):
        parts.append(
            f'<line class="g" x1="{PAD_L}" y1="{sy(t)}" x2="{PAD_L + plot_w}" y2="{sy(t)}" stroke="#ddd"/>'
            f'<text x="{PAD_L - 4}" y="{sy(t) + 4}" text-anchor="end">{num(t)}</text>'
        )
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        if hi > lo:
            parts.append(
                f'<line x1="{sx(lo)}" y1="{sy(lo)}" x2="{sx(hi)}" y2="{sy(hi)}" stroke="#888" stroke-dasharray="4 3"/>'
            )
    if zero_line:
        parts.append(
            f'<line x1="{PAD_L}" y1="{sy(0.0)}" x2="{PAD_L + plot_w}" y2="{sy(0.0)}" stroke="#888" '
            'stroke-dasharray="4 3"/>'
        )
    for i, (_, points) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        drawn = [(sx(x), sy(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        if len(drawn) > 1:
            path = " ".join(f"{x},{y}" for x, y in drawn)
            parts.append(f'<polyline class="m" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle class="m" cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>' for x, y in drawn)
    parts.append(
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>'
        f'<text x="{PAD_L + plot_w // 2}" y="{LINE_H - 8}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="rotate(-90)" x="{-(PAD_T + plot_h // 2)}" y="12" text-anchor="middle">'
        f"{escape(y_label)}</text></svg>"
    )
    return "".join(parts)


# -- a matrix of counts: the confusion matrix --------------------------------------------------------------------

CELL = 56


def matrix(
    kind: str, title: str, rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[float]]
) -> str:
    """A heat map of counts (rows x columns), each cell shaded by its share of its row and its count written.

    Raises ValueError when `counts` is not len(rows) x len(columns) or holds a negative count.
    """
    if len(counts) != len(rows) or any(len(r) != len(columns) for r in counts):
        raise ValueError(f"{title}: counts are not {len(rows)} x {len(columns)}")
    if any(c < 0 for r in counts for c in r):
        raise ValueError(f"{title}: a negative count")
    left, top = LABEL_W, 60
    width, height = left + len(columns) * CELL + 20, top + len(rows) * CELL + 40
    parts = [
        _open(kind, width, height, title),
        f'<text class="t" x="{left}" y="{top - 30}">predicted</text>',
        f'<text class="t" x="4" y="{top - 8}">actual</text>',
    ]
    for j, name in enumerate(columns):
        parts.append(
            f'<text x="{left + j * CELL + CELL // 2}" y="{top - 8}" text-anchor="middle">{_short(name)}</text>'
        )
    for i, name in enumerate(rows):
        total = sum(counts[i]) or 1
        y = top + i * CELL
        parts.append(f'<text x="{left - 6}" y="{y + CELL // 2 + 4}" text-anchor="end">{_short(name)}</text>')
        for j, count in enumerate(counts[i]):
            share = count / total
            shade = round(255 - share * 200)
            fill = f"#{shade:02x}{shade:02x}ff" if i != j else f"#{shade:02x}ff{shade:02x}"
            text_colour = "#1a1a1a"
            parts.append(
                f'<rect class="m" x="{left + j * CELL}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" '
                f'stroke="#fff"/><text x="{left + j * CELL + CELL // 2}" y="{y + CELL // 2 + 4}" '
                f'text-anchor="middle" fill="{text_colour}">{num(count)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
