"""`tfxp monitor --html`: the page of a MonitorReport built here by hand, parsed, measured, and rendered in
headless Chromium (Debian's `chromium`) with networking denied, its charts found in a screenshot.

Reports are built from report.py's dataclasses (the data contract), so these tests need no TensorFlow.
"""

from __future__ import annotations

import re

import pytest
from browser import Page, chromium, colour_runs

from tfxp.monitoring import html as H
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

HOSTILE = "<script>alert(1)</script>"
QUOTES = "\"&'"
MODEL = "taxi"
W = [  # (start, end) of four hourly windows
    (f"2026-12-04T{h:02d}:00:00Z", f"2026-12-04T{h + 1:02d}:00:00Z") for h in range(4)
]


# -- reports built by hand --------------------------------------------------------------------------------


def categorical(reference_name: str = "training", shift: float = 0.0) -> Distribution:
    """Five values, most frequent first; two of them hostile to an HTML page."""
    return Distribution(
        kind="categorical",
        labels=("Cash", "Credit Card", HOSTILE, QUOTES, "(other)"),
        reference=(0.5, 0.3, 0.1, 0.06, 0.04),
        served=(0.5 - shift, 0.3 + shift, 0.1, 0.06, 0.04),
        reference_name=reference_name,
    )


def numeric(reference_name: str = "training", scale: float = 1.0) -> Distribution:
    """Ten buckets in increasing order; `scale` moves served mass to the upper buckets."""
    reference = (0.02, 0.08, 0.15, 0.2, 0.2, 0.15, 0.1, 0.06, 0.03, 0.01)
    served = reference if scale == 1.0 else (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.22, 0.15, 0.1)
    labels = tuple(f"[{i * 2.5:g}, {(i + 1) * 2.5:g})" for i in range(10))
    return Distribution("numeric", labels, reference, served, reference_name)


def finding(version, window, feature, kind, value, threshold, distribution) -> Finding:
    categorical = distribution is not None and distribution.kind == "categorical"
    statistic = L_INFINITY if categorical else JENSEN_SHANNON_DIVERGENCE
    start, end = window
    return Finding(
        MODEL, version, start, end, feature, kind, statistic, value, threshold, value > threshold, distribution
    )


def sample_report() -> MonitorReport:
    """Version 2: W0 ok, W1 over (payment_type skewed, trip_miles drifted), W2 too few rows (so W1 is the latest
    window with a verdict). Version 1 (pushed without statistics): drift only, in W1. Skipped input, hostile
    names in a category, a skipped file and a message."""
    windows = [
        Window(MODEL, 2, *W[0], rows=800, requests=820, refused=20, verdict=OK),
        Window(MODEL, 2, *W[1], rows=900, requests=900, refused=0, verdict=OVER_THRESHOLD, note="skew: payment_type"),
        Window(MODEL, 2, *W[2], rows=12, requests=12, refused=0, verdict=TOO_FEW_ROWS, note="12 rows < min_rows 100"),
        Window(MODEL, 1, *W[0], rows=300, requests=300, refused=0, verdict=NO_REFERENCE, note="no statistics"),
        Window(MODEL, 1, *W[1], rows=310, requests=330, refused=20, verdict=NO_REFERENCE, note="no statistics"),
    ]
    findings = [
        finding(2, W[0], "payment_type", SKEW, 0.02, 0.3, categorical()),
        finding(2, W[0], "trip_miles", SKEW, 0.01, 0.1, numeric()),
        finding(2, W[0], PREDICTION, SKEW, 0.004, 0.1, numeric("eval predictions")),
        finding(2, W[1], "payment_type", SKEW, 0.45, 0.3, categorical(shift=0.45)),
        finding(2, W[1], "payment_type", DRIFT, 0.02, 0.3, categorical(f"window {W[0][0]}")),
        finding(2, W[1], "trip_miles", SKEW, 0.05, 0.1, numeric()),
        finding(2, W[1], "trip_miles", DRIFT, 0.21, 0.1, numeric(f"window {W[0][0]}", scale=2.0)),
        finding(2, W[1], PREDICTION, SKEW, 0.006, 0.1, numeric("eval predictions")),
        finding(2, W[1], "fare", SKEW, 0.03, 0.1, None),  # no distribution: in the tables, no chart
        finding(1, W[1], "trip_miles", DRIFT, 0.02, 0.1, numeric(f"window {W[0][0]}")),
    ]
    skipped = [
        Skipped("corrupt_record", f"logs/{HOSTILE}.tfrecord", 3, f"truncated record {QUOTES}"),
        Skipped("no_reference", "taxi version 1", 1, "pushed without training statistics: drift only"),
    ]
    return MonitorReport("2026-12-04T05:00:00Z", 3600, 100, findings, windows, skipped, 2342, 2322)


# The charts sample_report() draws, in page order: (version, feature, kind); each has 2 bars per label.
EXPECTED_CHARTS = [
    (2, "payment_type", SKEW),
    (2, "payment_type", DRIFT),
    (2, "trip_miles", SKEW),
    (2, "trip_miles", DRIFT),
    (2, PREDICTION, SKEW),
    (1, "trip_miles", DRIFT),
]


def big_report(features: int = 50, windows: int = 10, versions: int = 3, labels: int = 30) -> MonitorReport:
    """`features` features (half categorical with `labels` values, half numeric) plus the prediction, skew and
    drift in each of `windows` windows of `versions` versions; one feature over in every window."""
    findings, all_windows = [], []
    categories = tuple(f"v{i}" for i in range(labels))
    flat = Distribution("categorical", categories, (1 / labels,) * labels, (1 / labels,) * labels)
    for version in range(1, versions + 1):
        for w in range(windows):
            start, end = f"2026-12-{1 + w // 24:02d}T{w % 24:02d}:00:00Z", f"window {w} end"
            all_windows.append(Window(MODEL, version, start, end, 1000, 1000, 0, OK))
            for j in range(features + 1):
                name = PREDICTION if j == features else f"feature_{j:03d}"
                dist = flat if j % 2 else numeric()
                for kind in (SKEW, DRIFT):
                    value = 0.5 if j == 3 else 0.01
                    findings.append(finding(version, (start, end), name, kind, value, 0.1, dist))
    return MonitorReport("2026-12-04T05:00:00Z", 3600, 100, findings, all_windows, [], 10**6, 10**6)


# -- the page as parsed ------------------------------------------------------------------------------------


def bars(svg: dict) -> list[dict]:
    """The bars of a chart: its class a/b rects below the legend."""
    return [r for r in svg["rects"] if int(r["y"]) >= H.TOP]


# -- the page -------------------------------------------------------------------------------------------------


def test_page_header_windows_findings_and_skipped():
    report = sample_report()
    page = Page(H.render_html(report))
    text = page.all_text
    assert "Generated at 2026-12-04T05:00:00Z" in text
    assert "Window length 1 h (3600 s)" in text and "(min_rows) 100" in text
    assert "Requests read 2,342" in text and "Rows read 2,322" in text
    assert "Skew or drift found (exit code 3): skew in payment_type (taxi version 2); drift in trip_miles" in text
    # windows: rows, requests, refused share, verdict and note; the too-few-rows window says so, no verdict
    assert "2026-12-04T00:00:00Z 2026-12-04T01:00:00Z 800 820 2.4% ok: nothing over a threshold" in text
    assert "12 12 0% no verdict: too few rows 12 rows < min_rows 100" in text
    assert "drift only: no training statistics no statistics" in text
    # the latest window with a verdict is W1 (W2 has too few rows), for both versions
    assert text.count(f"Latest window with a verdict: {W[1][0]} to {W[1][1]}") == 2
    # skipped: reason, where, count, message (escaped data, read back as text)
    assert f"corrupt_record logs/{HOSTILE}.tfrecord 3 truncated record {QUOTES}" in text
    # every finding, one row each, plus the header row
    every = text[text.index("Every finding (10)") :]
    assert "taxi 2 2026-12-04T01:00:00Z payment_type skew L∞ 0.45 0.3 yes" in every
    assert "taxi 2 2026-12-04T01:00:00Z trip_miles drift JSD 0.21 0.1 yes" in every
    assert "taxi 2 2026-12-04T00:00:00Z trip_miles skew JSD 0.01 0.1 no" in every
    tables = [i for i, (tag, _) in enumerate(page.tags) if tag == "table"]
    last_rows = [t for t, _ in page.tags[tables[-1] :] if t == "tr"]
    assert len(last_rows) == 1 + len(report.findings)
    # every table starts with a header row
    cells = [tag for tag, _ in page.tags if tag in ("table", "th", "td")]
    starts = [cells[i + 1] for i, tag in enumerate(cells) if tag == "table"]
    assert len(starts) == 1 + 2 + 5 + 1 + 1 and set(starts) == {"th"}


def test_over_threshold_features_first_marked_and_prediction_titled():
    page_text = H.render_html(sample_report())
    v2 = page_text[page_text.index("Model taxi, version 2") : page_text.index("Model taxi, version 1")]
    headings = re.findall(r"<h4>(.*?)</h4>", v2)
    assert [re.sub(r"<.*", "", h).strip() for h in headings] == [
        "payment_type",
        "trip_miles",
        "prediction distribution",
        "fare",
    ]
    assert [("over threshold" in h) for h in headings] == [True, True, False, False]
    assert v2.count('<section class="f over">') == 2
    # a finding without a distribution: in its table, no chart
    fare = v2[v2.index("<h4>fare") :]
    assert "<svg" not in fare and "Jensen-Shannon divergence" in fare


def test_charts_one_per_finding_with_distribution_and_two_bars_per_label():
    report = sample_report()
    page = Page(H.render_html(report))
    assert len(page.svgs) == len(EXPECTED_CHARTS)
    drawn = {(f.version, f.feature, f.kind): f for f in report.findings if f.window_start == W[1][0]}
    for svg, key in zip(page.svgs, EXPECTED_CHARTS, strict=True):
        dist = drawn[key].distribution
        assert svg["attrs"]["role"] == "img" and svg["title"].startswith(H._feature_title(key[1]))
        assert f"{key[2]}: {dist.reference_name} vs served" in svg["title"]
        shown = bars(svg)
        assert [r["class"] for r in shown] == ["a", "b"] * len(dist.labels)
        scale = next(s for s in H.NICE_SCALES if max(*dist.reference, *dist.served) <= s)
        widths = [int(r["width"]) for r in shown]
        for width, share in zip(
            widths, [x for pair in zip(dist.reference, dist.served, strict=True) for x in pair], strict=True
        ):
            assert abs(width - share / scale * H.PLOT_W) <= 1, (key, widths)
    # the skewed chart's served "Credit Card" bar is longer than its reference bar
    credit = bars(page.svgs[0])[2:4]
    assert int(credit[1]["width"]) > int(credit[0]["width"])


def test_categorical_and_numeric_caps_merge_and_say_so():
    many = Distribution("categorical", tuple(f"value{i}" for i in range(500)), (0.002,) * 500, (0.002,) * 500)
    report = MonitorReport(
        "2026-12-04T05:00:00Z",
        60,
        10,
        [finding(1, W[0], "city", SKEW, 0.0, 0.3, many)],
        [Window(MODEL, 1, *W[0], 500, 500, 0, OK)],
    )
    text = H.render_html(report)
    page = Page(text)
    assert len(bars(page.svgs[0])) == 2 * H.MAX_CATEGORIES
    assert f"{500 - H.MAX_CATEGORIES + 1} less frequent values merged into (other)." in page.all_text
    labels, reference, _, _ = H._fit(many)
    assert labels[-1] == "(other)" and reference[-1] == pytest.approx(0.002 * (500 - H.MAX_CATEGORIES + 1))
    buckets = Distribution(
        "numeric", tuple(f"[{i}, {i + 1})" for i in range(50)), (0.02,) * 50, (0.02,) * 50, "training"
    )
    labels, reference, served, said = H._fit(buckets)
    assert len(labels) == 17 and labels[0] == "[0, 3)" and labels[-1] == "[48, 50)"
    assert sum(reference) == pytest.approx(1.0) and said == "50 buckets merged 3 by 3 into 17."


def test_no_external_reference_and_no_script():
    text = H.render_html(sample_report())
    page = Page(text)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "base"}
    assert tags >= {"svg", "rect", "title", "table", "th", "style"}
    for pattern in (r"https?:", r"//", r"\bsrc\s*=", r"\bhref\s*=", r"@import", r"url\(", r"@font-face"):
        assert not re.search(pattern, text, re.I), pattern
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), attrs


def test_data_is_escaped():
    report = sample_report()
    report.findings.append(finding(2, W[1], "zone", SKEW, 0.0, 0.1, categorical()))
    report.windows.append(Window(f"{HOSTILE}{QUOTES}", 1, *W[0], 1, 1, 0, TOO_FEW_ROWS, note=HOSTILE))
    text = H.render_html(report)
    page = Page(text)
    assert "script" not in {tag for tag, _ in page.tags}
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;&amp;&#x27;" in text  # the quotes category, in text and in the charts' <title>s
    assert f"Model {HOSTILE}{QUOTES}, version 1" in page.all_text  # read back as text, not markup
    # as labels of the 3 categorical charts (+ the window's note), read back as text
    assert page.text.count(HOSTILE) == 3 + 1 and page.text.count(QUOTES) == 3


def test_no_finding_says_no_verdict():
    report = MonitorReport(
        "2026-12-04T05:00:00Z",
        3600,
        100,
        windows=[Window(MODEL, 1, *W[0], 7, 7, 0, TOO_FEW_ROWS, note="7 rows < min_rows 100")],
    )
    page = Page(H.render_html(report))
    assert "No verdict: nothing was compared (exit code 0)" in page.all_text
    assert "No window of this version has a verdict" in page.all_text and not page.svgs


def test_malformed_distribution_refused():
    bad = Distribution("categorical", ("a", "b"), (0.5,), (0.5, 0.5))
    report = MonitorReport("t", 60, 1, [finding(1, W[0], "color", SKEW, 0.0, 0.3, bad)])
    with pytest.raises(ValueError, match="'color': 2 labels, 1 reference and 2 served"):
        H.render_html(report)
    nan = Distribution("numeric", ("[0, 1)",), (1.0,), (float("nan"),))
    with pytest.raises(ValueError, match="fraction nan is not a number in"):
        H.render_html(MonitorReport("t", 60, 1, [finding(1, W[0], "c", SKEW, 0, 0.3, nan)]))
    too_much = Distribution("numeric", ("[0, 1)", "[1, 2)"), (0.6, 0.6), (0.5, 0.5))
    with pytest.raises(ValueError, match="reference fractions sum to 1.2, more than 1"):
        H.render_html(MonitorReport("t", 60, 1, [finding(1, W[0], "c", SKEW, 0, 0.3, too_much)]))
    unknown = Distribution("ordinal", ("a",), (1.0,), (1.0,))
    with pytest.raises(ValueError, match="distribution kind 'ordinal' is neither categorical nor numeric"):
        H.render_html(MonitorReport("t", 60, 1, [finding(1, W[0], "c", SKEW, 0, 0.3, unknown)]))


def test_size_bounded_by_caps_not_by_data():
    """50 features x 10 windows x 3 versions: well under 1 MB, charts capped and the cap said. Ten times the
    windows and 10,000-value categories: the page stays under 1 MB (caps, not rows, set its size)."""
    text = H.render_html(big_report())
    size = len(text.encode())
    assert size < 650_000, size
    page = Page(text)
    assert len(page.svgs) == H.MAX_CHARTS
    candidates = 3 * 51 * 2
    assert f"{H.MAX_CHARTS} drawn, {candidates - H.MAX_CHARTS} more not drawn" in page.all_text
    huge = H.render_html(big_report(windows=100, labels=10_000))
    assert len(huge.encode()) < 900_000, len(huge.encode())
    assert f"{100 - H.MAX_WINDOW_ROWS} earlier window(s) not listed" in huge
    assert f"{3 * 100 * 51 * 2 - H.MAX_FINDING_ROWS:,} findings under their threshold, from earlier windows" in huge
    over = huge.count("<tr class=o><td>taxi")
    assert over == 3 * 100 * 2  # feature_003, skew and drift, every window of every version
    skipped = [Skipped("corrupt_record", f"logs/{i}.tfrecord", 2, "truncated") for i in range(5000)]
    many = H.render_html(MonitorReport("t", 60, 1, skipped=skipped))
    assert len(many.encode()) < 100_000
    assert (
        f"{5000 - H.MAX_SKIPPED_ROWS:,} more item(s) not listed: corrupt_record: 4,800 item(s), 9,600 record(s)" in many
    )


def test_rendered_in_headless_chromium_offline(tmp_path):
    """The DOM Chromium builds has one <svg> per chart with two bars per label and no script; the screenshot
    has every bar in its colour, each as wide as its rect (so the charts are drawn, not just present)."""
    page_file = tmp_path / "report.html"
    page_file.write_text(H.render_html(sample_report()), encoding="utf-8")
    dom = Page(chromium(page_file, tmp_path, "--dump-dom").decode())
    assert "script" not in {tag for tag, _ in dom.tags}
    assert len(dom.svgs) == len(EXPECTED_CHARTS)
    # top to bottom, per colour: each chart's legend swatch (12 px), then its bars of non-zero width
    expected: dict[str, list[int]] = {"a": [], "b": []}
    for svg in dom.svgs:
        assert len(bars(svg)) == 2 * (5 if svg["attrs"]["data-kind"] == "categorical" else 10)
        for css in expected:
            expected[css] += [12] + [int(r["width"]) for r in bars(svg) if r["class"] == css and int(r["width"])]
    assert len(expected["a"]) + len(expected["b"]) == 2 * len(dom.svgs) + 2 * 5 * 2 + 4 * 10 * 2 - 1  # one 0 %

    shot = tmp_path / "report.png"
    chromium(page_file, tmp_path, "--window-size=900,9000", f"--screenshot={shot}")
    for css, colour in (("a", H.REFERENCE_COLOUR), ("b", H.SERVED_COLOUR)):
        widths = [width for _, width in colour_runs(shot, colour)]
        assert len(widths) == len(expected[css]), (css, widths, expected[css])
        assert all(abs(got - want) <= 1 for got, want in zip(widths, expected[css], strict=True)), (
            css,
            widths,
            expected[css],
        )
        assert max(widths) > 100
