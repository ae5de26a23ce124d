"""What `tfxp monitor` found, as data: the table, `--json`, `--textfile` and `--html` all read a MonitorReport.

TF-free on purpose: the renderers (text, JSON, Prometheus textfile, HTML) need no TensorFlow.
Vocabulary as TFDV's (`drift_skew_info`): `kind` is "skew" (served rows against the training statistics of
the version that answered) or "drift" (a window against the previous window of the same version);
`statistic` is "l_infinity" (categorical features) or "jensen_shannon_divergence" (numeric ones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SKEW = "skew"
DRIFT = "drift"
KINDS = (SKEW, DRIFT)
L_INFINITY = "l_infinity"
JENSEN_SHANNON_DIVERGENCE = "jensen_shannon_divergence"
# The "feature" name of the model's output (its prediction distribution). Column names can't contain "<"
# (tfxp.project.spec.TF_NAME), so this never collides with a feature.
PREDICTION = "<prediction>"

# Window verdicts.
OK = "ok"
OVER_THRESHOLD = "over_threshold"
TOO_FEW_ROWS = "too_few_rows"  # fewer rows than `min_rows`: no verdict, and the report says so
NO_REFERENCE = "no_reference"  # the version carries no training statistics: drift only

# Skipped.reason values: what the monitor could not use (the textfile writes each, 0 when none).
SKIPPED_REASONS = (
    "missing_logs",
    "empty_logs",
    "corrupt_record",
    "unknown_model",
    "unknown_version",
    "no_reference",
    "unreadable_request",
)

# Exit codes (tfxp.cli.exit_codes has the table): 0 nothing over a threshold, 3 skew or drift found.
EXIT_OK = 0
EXIT_SKEW_OR_DRIFT = 3


@dataclass(frozen=True)
class Distribution:
    """Two distributions of one feature side by side, for a chart.

    `kind`: "categorical" (labels are values, most frequent first; "(other)" may close the list) or
    "numeric" (labels are bucket ranges "[low, high)" in increasing order). `reference` and `served`:
    fractions of rows per label (each sums to <= 1; a missing value is counted in no label), same length
    as `labels`. `reference_name` says what the reference is ("training", "eval predictions", or
    "window <start>").
    """

    kind: str
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    served: tuple[float, ...]
    reference_name: str = "training"


@dataclass(frozen=True)
class Finding:
    """One statistic of one feature in one window. `over`: value > threshold (TFDV's rule: an anomaly when the
    measurement exceeds the comparator's threshold). `window_start`/`window_end`: ISO-8601 UTC ("…Z")."""

    model: str
    version: int
    window_start: str
    window_end: str
    feature: str
    kind: str
    statistic: str
    value: float
    threshold: float
    over: bool
    distribution: Distribution | None = None


@dataclass(frozen=True)
class Window:
    """One window of one served version. `rows`: raw rows recovered from logged requests; `requests`: logged
    requests; `refused`: logged requests the server refused (answered with an error). `verdict`: OK,
    OVER_THRESHOLD, TOO_FEW_ROWS or NO_REFERENCE; `note` says why in words when the verdict is not OK."""

    model: str
    version: int
    start: str
    end: str
    rows: int
    requests: int
    refused: int
    verdict: str
    note: str = ""

    @property
    def refused_ratio(self) -> float:
        return self.refused / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Skipped:
    """Input the monitor could not use, named and counted: `reason` is one of SKIPPED_REASONS; `where` is a
    file, model or version; `count` how many records (or 1)."""

    reason: str
    where: str
    count: int
    message: str


@dataclass
class MonitorReport:
    """Everything one `tfxp monitor` pass found. `generated_at`: ISO-8601 UTC; `window_seconds`: the window
    length; `min_rows`: the fewest rows a window needs for a verdict."""

    generated_at: str
    window_seconds: float
    min_rows: int
    findings: list[Finding] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    requests_read: int = 0
    rows_read: int = 0

    @property
    def over(self) -> list[Finding]:
        return [f for f in self.findings if f.over]

    @property
    def exit_code(self) -> int:
        return EXIT_SKEW_OR_DRIFT if self.over else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """The `--json` document: every field above plus "over" (count) and "exit_code"."""
        data = asdict(self)
        data["over"] = len(self.over)
        data["exit_code"] = self.exit_code
        for window, source in zip(data["windows"], self.windows, strict=True):
            window["refused_ratio"] = source.refused_ratio
        return data
