"""Distributions of one feature and TFDV's two comparator statistics, TF-free.

The reference of a feature comes from TFDV statistics (`FeatureNameStatistics`, as StatisticsGen writes
them): a categorical feature's value frequencies from its rank histogram (`string_stats.rank_histogram`,
up to 1,000 values), a numeric feature's from its QUANTILES histogram (10 buckets). Served values are
counted into the same categories or buckets, window by window (counts only: memory does not grow with
traffic).

The statistics are TFDV's definitions (tensorflow_data_validation/anomalies/metrics.cc):
- L-infinity: max |p_i - q_i| over the union of values, each side normalised over its own present values.
- Jensen-Shannon divergence: (KL(P||M) + KL(Q||M)) / 2 with M = (P + Q) / 2, log base 2, in [0, 1].

Why the buckets are the reference's and not TFDV's own alignment: TFDV 1.16.1 re-buckets both sides
before its JSD (equal-width STANDARD histograms, or QUANTILES ones aligned by interpolation), and on
clean samples of the taxi data that gave 0.3-1.0 (pickup_latitude 1.0 at 100 rows, trip_miles 0.83 at
500 rows with STANDARD, trip_start_day 0.2-0.3 at 1,000 rows with QUANTILES): it fires on sampling
noise alone. Counting served values into the training quantile buckets keeps the clean noise near
(buckets - 1) / (2 n ln 4) and still moves at once when a feature shifts (docs/monitoring.md).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CATEGORICAL = "categorical"
NUMERIC = "numeric"
# Labels of the open buckets below the reference's minimum and above its maximum.
_BELOW = "below training min"
_ABOVE = "above training max"


@dataclass(frozen=True)
class Buckets:
    """Numeric buckets from distinct edges e0 < e1 < ... < ek: (-inf, e0), [e0, e1], (e1, e2], ...,
    (e(k-1), ek], (ek, +inf). With one edge (a constant feature): (-inf, e0), [e0, e0], (e0, +inf).

    Right-closed on purpose: TFDV's quantile histograms put a point mass (many equal values, e.g. a
    day of the week) partly in a bucket [e, e] and partly in the bucket ending at e; both land in the
    bucket ending at e here, so an integer feature's reference matches how its values are counted.
    """

    edges: tuple[float, ...]

    def __len__(self) -> int:
        return max(len(self.edges) - 1, 1) + 2

    def index(self, value: float) -> int:
        """The bucket of `value` (a finite float)."""
        edges = self.edges
        if value < edges[0]:
            return 0
        if value > edges[-1]:
            return len(self) - 1
        if len(edges) == 1 or value <= edges[1]:
            return 1
        return bisect.bisect_left(edges, value)

    def labels(self) -> tuple[str, ...]:
        edges = self.edges
        inner = [f"[{_num(edges[0])}, {_num(edges[-1] if len(edges) == 1 else edges[1])}]"]
        inner += [f"({_num(low)}, {_num(high)}]" for low, high in zip(edges[1:-1], edges[2:], strict=True)]
        return (_BELOW, *inner, _ABOVE)


def _num(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class FeatureReference:
    """What one feature (or the model's output) looked like in training.

    `kind`: CATEGORICAL (`fractions` by value) or NUMERIC (`fractions` by bucket of `buckets`).
    `skew_threshold` / `drift_threshold`: the comparator thresholds (None: that comparison is skipped,
    as TFDV skips a comparator without a threshold). `statistic` follows `kind`: L-infinity for
    categorical features, Jensen-Shannon divergence for numeric ones.
    """

    name: str
    kind: str
    skew_threshold: float | None
    drift_threshold: float | None
    buckets: Buckets | None = None
    fractions: Mapping[object, float] = field(default_factory=dict)

    @property
    def statistic(self) -> str:
        from tfxp.monitoring.report import JENSEN_SHANNON_DIVERGENCE, L_INFINITY

        return L_INFINITY if self.kind == CATEGORICAL else JENSEN_SHANNON_DIVERGENCE


class Tally:
    """Served values of one feature in one window: counts by category or by bucket, plus missing ones."""

    def __init__(self, kind: str, buckets: Buckets | None = None):
        self.kind = kind
        self.buckets = buckets
        self.counts: Counter = Counter()
        self.present = 0
        self.missing = 0

    def add(self, value: object) -> None:
        """Counts one value; None (and NaN) count as missing. Numeric values must be floats or ints."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            self.missing += 1
            return
        self.present += 1
        if self.kind == CATEGORICAL:
            self.counts[value] += 1
        elif self.buckets is not None and isinstance(value, int | float) and math.isfinite(value):
            self.counts[self.buckets.index(float(value))] += 1
        else:
            self.counts[_ABOVE if value > 0 else _BELOW] += 1  # an infinity: beyond every bucket

    def fractions(self) -> dict[object, float]:
        total = sum(self.counts.values())
        return {key: count / total for key, count in self.counts.items()} if total else {}


def l_infinity(p: Mapping[object, float], q: Mapping[object, float]) -> float:
    """TFDV's L-infinity distance between two value distributions (metrics.cc LInftyDistance)."""
    keys = set(p) | set(q)
    return max((abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys), default=0.0)


def jensen_shannon_divergence(p: Mapping[object, float], q: Mapping[object, float]) -> float:
    """TFDV's Jensen-Shannon divergence, log base 2, in [0, 1] (metrics.cc JensenShannonDivergence)."""
    total = 0.0
    for key in set(p) | set(q):
        a, b = p.get(key, 0.0), q.get(key, 0.0)
        m = (a + b) / 2
        if a > 0:
            total += a * math.log2(a / m) / 2
        if b > 0:
            total += b * math.log2(b / m) / 2
    return min(max(total, 0.0), 1.0)


def compare(kind: str, p: Mapping[object, float], q: Mapping[object, float]) -> float:
    """The kind's statistic between two distributions (L-infinity or Jensen-Shannon divergence)."""
    return l_infinity(p, q) if kind == CATEGORICAL else jensen_shannon_divergence(p, q)


def numeric_reference(quantile_buckets: Iterable[tuple[float, float, float]]) -> tuple[Buckets, dict[int, float]]:
    """Buckets and their training fractions from TFDV's QUANTILES histogram buckets (low, high, count).

    Raises ValueError for a histogram without buckets or counts.
    """
    rows = [(float(low), float(high), float(count)) for low, high, count in quantile_buckets]
    if not rows or sum(count for _, _, count in rows) <= 0:
        raise ValueError("a numeric reference needs a quantiles histogram with counts")
    buckets = Buckets(tuple(sorted({v for low, high, _ in rows for v in (low, high)})))
    counts: Counter = Counter()
    for _, high, count in rows:
        counts[buckets.index(high)] += count
    total = sum(counts.values())
    return buckets, {index: count / total for index, count in counts.items()}


def categorical_reference(rank_buckets: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Training fractions by value from TFDV's rank histogram (label, count). Empty when training had no
    value: then any served value is new, and L-infinity is its share (up to 1)."""
    counts = {label: float(count) for label, count in rank_buckets}
    total = sum(counts.values())
    return {label: count / total for label, count in counts.items()} if total > 0 else {}


def quantile_edges(values: Iterable[float], buckets: int = 10) -> Buckets:
    """Buckets at the deciles (by default) of a sample: the binning of a feature without a reference
    (a version pushed without statistics), taken from its first window. Raises ValueError when empty."""
    ordered = sorted(v for v in values if isinstance(v, int | float) and math.isfinite(v))
    if not ordered:
        raise ValueError("no finite values to bucket")
    picks = {ordered[min(len(ordered) - 1, round(i * (len(ordered) - 1) / buckets))] for i in range(buckets + 1)}
    return Buckets(tuple(sorted(float(v) for v in picks)))
