"""One monitoring pass: logged requests, by the version that answered and by window, against the reference
each version carries (skew) and against the previous window (drift).

Memory is bounded by the number of (version, feature, category or bucket) counts, not by traffic: a
window keeps counts (tfxp.monitoring.statistics.Tally) and is closed as soon as a later file starts
another window of that version. Only a version without a reference keeps up to SAMPLE_LIMIT values of
each numeric feature in its first window, to place the buckets its later windows are counted in.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from tfxp.monitoring import logs, reference as reference_lib
from tfxp.monitoring.report import (
    DRIFT,
    NO_REFERENCE,
    OK,
    OVER_THRESHOLD,
    PREDICTION,
    SKEW,
    SKIPPED_REASONS,
    TOO_FEW_ROWS,
    Distribution,
    Finding,
    MonitorReport,
    Skipped,
    Window,
)
from tfxp.monitoring.statistics import (
    CATEGORICAL,
    NUMERIC,
    Buckets,
    FeatureReference,
    Tally,
    compare,
    quantile_edges,
)

SAMPLE_LIMIT = 20_000
# Categories drawn per chart: the most frequent ones on either side, then "(other)".
CHART_CATEGORIES = 12
OTHER = "(other)"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass
class _Window:
    index: int
    tallies: dict[str, Tally] = field(default_factory=dict)
    prediction: Tally | None = None
    samples: dict[str, list] = field(default_factory=dict)
    requests: int = 0
    refused: int = 0
    rows: int = 0


@dataclass
class _Version:
    model: str
    version: int
    reference: reference_lib.VersionReference
    # Buckets per numeric feature: the reference's, or placed from the first window (no reference).
    buckets: dict[str, Buckets | None] = field(default_factory=dict)
    current: _Window | None = None
    previous: _Window | None = None


class Monitor:
    """Accumulates logged requests and closes windows into a MonitorReport.

    `models`: model name -> base path (the folder of its version directories). `window_seconds` > 0;
    `min_rows`: the fewest rows a window needs for a verdict (None: each version's own, from its
    monitoring.json, default reference.Monitoring.min_rows).
    """

    def __init__(self, models: Mapping[str, str], window_seconds: float, min_rows: int | None = None):
        if window_seconds <= 0:
            raise ValueError("the window must be longer than 0 s")
        self.models = dict(models)
        self.window_seconds = window_seconds
        self.min_rows = min_rows
        self.report = MonitorReport(
            generated_at=_iso(time.time()),
            window_seconds=window_seconds,
            min_rows=min_rows if min_rows is not None else reference_lib.Monitoring.min_rows,
        )
        self._versions: dict[tuple[str, int], _Version] = {}
        self._skipped: Counter = Counter()
        self._skip_messages: dict[tuple[str, str], str] = {}

    # -- input ---------------------------------------------------------------------------------------------
    def read(self, directory: str) -> None:
        """Reads every log file under `directory`, oldest first."""
        try:
            files = logs.log_files(directory)
        except FileNotFoundError:
            self.skip("missing_logs", directory, f"no such folder: {directory}")
            return
        if not files:
            self.skip("empty_logs", directory, f"no log files in {directory}")
        for started, path in files:
            self.read_file(path, started)

    def read_file(self, path: str, started: float) -> None:
        for record in logs.read_records(path):
            if isinstance(record, logs.CorruptRecord):
                self.skip("corrupt_record", path, str(record))
                continue
            try:
                request = logs.parse(record, self._output)
            except ValueError as exc:
                self.skip("unreadable_request", path, str(exc))
                continue
            self.add(request, started)

    def _output(self, model: str, version: int | None) -> tuple[str, tuple[str, ...]] | None:
        """(task, classes) of a served version: how to read its answers; None when unknown."""
        state = self._state(model, version) if model in self.models and version is not None else None
        problem = state.reference.problem if state is not None else None
        if not problem:
            return None
        return problem["label"]["task"], tuple(problem["label"].get("classes") or ("0", "1"))

    def add(self, request: logs.LoggedRequest, started: float) -> None:
        """Counts one logged request into its version's window: that of its own time, else of `started`
        (its file's time, epoch seconds)."""
        state = self._version(request)
        if state is None:
            return
        index = math.floor((request.time or started) / self.window_seconds)
        if state.current is not None and index > state.current.index:
            self._close(state)
        # A record older than the open window (another process's file, read after a newer one) is counted
        # into the open window: closed windows are final.
        if state.current is None:
            state.current = _Window(index)
        window = state.current
        window.requests += 1
        window.refused += int(request.refused)
        self.report.requests_read += 1
        if request.refused:
            return  # a refused request got no answer: its rows are not served traffic
        for row in request.rows:
            window.rows += 1
            for name, kind in self._kinds(state, row).items():
                self._count(state, window, name, kind, row.get(name))
        if request.predictions and state.reference.prediction is not None:
            window.prediction = window.prediction or Tally(
                state.reference.prediction.kind, state.reference.prediction.buckets
            )
            for answer in request.predictions:
                window.prediction.add(answer)
        self.report.rows_read += len(request.rows)

    def _kinds(self, state: _Version, row: dict) -> dict[str, str]:
        """The monitored columns: the model's inputs, or (no problem file) every column, by value type."""
        if state.reference.kinds:
            return state.reference.kinds
        return {name: CATEGORICAL if isinstance(v, str) else NUMERIC for name, v in row.items() if v is not None}

    def _count(self, state: _Version, window: _Window, name: str, kind: str, value: object) -> None:
        ref = state.reference.features.get(name)
        kind = ref.kind if ref is not None else kind
        tally = window.tallies.get(name)
        if tally is None:
            buckets = ref.buckets if ref is not None else state.buckets.get(name)
            tally = window.tallies[name] = Tally(kind, buckets)
        if kind == NUMERIC and isinstance(value, str):
            value = _number(value)
        if kind == NUMERIC and tally.buckets is None and value is not None:
            sample = window.samples.setdefault(name, [])
            if len(sample) < SAMPLE_LIMIT and isinstance(value, int | float) and math.isfinite(value):
                sample.append(float(value))
            tally.present += 1
            return
        tally.add(value)

    def _version(self, request: logs.LoggedRequest) -> _Version | None:
        if request.model not in self.models:
            self.skip("unknown_model", request.model or "(no name)", f"model {request.model!r} is not monitored")
            return None
        if request.version is None:
            self.skip("unreadable_request", request.model, "a logged request names no version")
            return None
        return self._state(request.model, request.version)

    def _state(self, model: str, version: int) -> _Version:
        key = (model, version)
        if key not in self._versions:
            path = os.path.join(self.models[model], str(version))
            ref = reference_lib.load(path)
            if not os.path.isdir(path):
                self.skip("unknown_version", f"{model}/{version}", f"no version folder {path}: drift only")
            elif ref.missing:
                self.skip("no_reference", f"{model}/{version}", f"{ref.missing}; drift only")
            buckets = {name: r.buckets for name, r in ref.features.items() if r.kind == NUMERIC}
            self._versions[key] = _Version(model, version, ref, buckets)
        return self._versions[key]

    def skip(self, reason: str, where: str, message: str) -> None:
        """Counts one thing not used; `reason` is one of report.SKIPPED_REASONS."""
        assert reason in SKIPPED_REASONS, reason
        self._skipped[(reason, where)] += 1
        self._skip_messages.setdefault((reason, where), message)

    # -- windows -------------------------------------------------------------------------------------------
    def finish(self) -> MonitorReport:
        """Closes every open window and returns the report (findings in version and window order)."""
        for state in self._versions.values():
            if state.current is not None:
                self._close(state)
        self.report.skipped = [
            Skipped(reason, where, count, self._skip_messages[(reason, where)])
            for (reason, where), count in self._skipped.items()
        ]
        self.report.windows.sort(key=lambda w: (w.model, w.version, w.start))
        self.report.findings.sort(key=lambda f: (f.model, f.version, f.window_start, f.feature, f.kind))
        return self.report

    def _close(self, state: _Version) -> None:
        window, state.current = state.current, None
        assert window is not None
        self._place_buckets(state, window)
        min_rows = self.min_rows if self.min_rows is not None else state.reference.min_rows
        start, end = window.index * self.window_seconds, (window.index + 1) * self.window_seconds
        common = (state.model, state.version, _iso(start), _iso(end))
        if window.rows < min_rows:
            source = "--min-rows" if self.min_rows is not None else "the version's min_rows"
            note = f"{window.rows} rows: a verdict needs at least {min_rows} ({source})"
            self.report.windows.append(
                Window(*common, window.rows, window.requests, window.refused, TOO_FEW_ROWS, note)
            )
            return
        findings = self._skew(state, window, common) + self._drift(state, window, common)
        self.report.findings += findings
        if any(f.over for f in findings):
            over = sorted({f"{f.feature} ({f.kind})" for f in findings if f.over})
            verdict, note = OVER_THRESHOLD, "over a threshold: " + ", ".join(over)
        elif state.reference.missing:
            checked = "drift checked" if findings else "nothing compared: no verdict until a second window"
            verdict, note = NO_REFERENCE, f"no skew check ({state.reference.missing}); {checked}"
        else:
            verdict, note = OK, ""
        unseen = _not_compared(state, window)
        if unseen:
            note = "; ".join(n for n in (note, f"not compared, no value in this window: {', '.join(unseen)}") if n)
        self.report.windows.append(Window(*common, window.rows, window.requests, window.refused, verdict, note))
        state.previous = window

    def _place_buckets(self, state: _Version, window: _Window) -> None:
        """Numeric features without reference buckets get them from their first window's sample."""
        for name, sample in window.samples.items():
            if state.buckets.get(name) is None and sample:
                state.buckets[name] = quantile_edges(sample)
            tally = window.tallies[name]
            tally.buckets, present = state.buckets[name], tally.present
            tally.present = 0
            for value in sample:
                tally.add(value)
            tally.present = present

    def _skew(self, state: _Version, window: _Window, common: tuple) -> list[Finding]:
        references = dict(state.reference.features)
        if state.reference.prediction is not None:
            references[PREDICTION] = state.reference.prediction
        findings = []
        for name, ref in references.items():
            tally = window.prediction if name == PREDICTION else window.tallies.get(name)
            if tally is None or ref.skew_threshold is None or not tally.counts:
                continue
            served = tally.fractions()
            reference_name = "eval predictions" if name == PREDICTION else "training"
            findings.append(
                _finding(common, name, SKEW, ref, ref.fractions, served, ref.skew_threshold, reference_name)
            )
        return findings

    def _drift(self, state: _Version, window: _Window, common: tuple) -> list[Finding]:
        previous = state.previous
        if previous is None:
            return []
        names = set(window.tallies) | ({PREDICTION} if window.prediction is not None else set())
        findings = []
        for name in sorted(names):
            tally = window.prediction if name == PREDICTION else window.tallies.get(name)
            before = previous.prediction if name == PREDICTION else previous.tallies.get(name)
            if tally is None or before is None or not tally.counts or not before.counts:
                continue
            ref = state.reference.prediction if name == PREDICTION else state.reference.features.get(name)
            if ref is None:  # no reference: the project's default thresholds by kind
                _, threshold = state.reference.thresholds.of(name, tally.kind)
                ref = FeatureReference(name, tally.kind, None, threshold, tally.buckets)
            if ref.drift_threshold is None:
                continue
            start = _iso(previous.index * self.window_seconds)
            findings.append(
                _finding(
                    common,
                    name,
                    DRIFT,
                    ref,
                    before.fractions(),
                    tally.fractions(),
                    ref.drift_threshold,
                    f"window {start}",
                )
            )
        return findings


def _not_compared(state: _Version, window: _Window) -> list[str]:
    """Model inputs with a training reference but no value at all in the window: nothing to compare, and
    a whole feature gone missing is worth a look (its share of missing values is not a statistic here)."""
    return sorted(
        name
        for name in state.reference.features
        if (name not in window.tallies or window.tallies[name].present == 0) and window.rows > 0
    )


def _finding(
    common: tuple,
    name: str,
    kind: str,
    ref: FeatureReference,
    before: Mapping,
    served: Mapping,
    threshold: float,
    reference_name: str,
) -> Finding:
    value = compare(ref.kind, before, served)
    return Finding(
        *common,
        feature=name,
        kind=kind,
        statistic=ref.statistic,
        value=value,
        threshold=threshold,
        over=value > threshold,
        distribution=_distribution(ref, before, served, reference_name),
    )


def _distribution(ref: FeatureReference, before: Mapping, served: Mapping, reference_name: str) -> Distribution:
    if ref.kind == NUMERIC and ref.buckets is not None:
        labels = ref.buckets.labels()
        return Distribution(
            NUMERIC,
            labels,
            tuple(before.get(i, 0.0) for i in range(len(labels))),
            tuple(served.get(i, 0.0) for i in range(len(labels))),
            reference_name,
        )
    keys = sorted(set(before) | set(served), key=lambda k: -max(before.get(k, 0.0), served.get(k, 0.0)))
    shown = keys[:CHART_CATEGORIES]
    labels = tuple(str(k) for k in shown)
    ref_values = [before.get(k, 0.0) for k in shown]
    served_values = [served.get(k, 0.0) for k in shown]
    if len(keys) > len(shown):
        labels += (OTHER,)
        ref_values.append(max(0.0, 1.0 - sum(ref_values)))
        served_values.append(max(0.0, 1.0 - sum(served_values)))
    return Distribution(CATEGORICAL, labels, tuple(ref_values), tuple(served_values), reference_name)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def monitor(
    logs_dir: str, models: Mapping[str, str], window_seconds: float, min_rows: int | None = None
) -> MonitorReport:
    """One pass over `logs_dir` for `models` (name -> base path). See Monitor."""
    pass_ = Monitor(models, window_seconds, min_rows)
    pass_.read(logs_dir)
    return pass_.finish()
