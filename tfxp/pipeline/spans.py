"""Data spans: `--data 'DIR/span-{SPAN}/*.csv' [--rolling N]` trains on the latest N spans.

TFX's vocabulary (tfx/components/example_gen/utils.py, 1.16): an ExampleGen input pattern may hold one
`{SPAN}` (or `{SPAN:width}`, zero-padded) spec; TFX's FileBasedDriver globs the pattern with `*` in its
place, reads each match's span number with a regex (`(?P<span>.*)`, or `.{width}`), takes the largest, and
substitutes it, so the executor reads that span's files; the Examples artifact gets the custom properties
`span` (that number), `version` (with a `{VERSION}` spec only) and `input_fingerprint`. A `RangeConfig`
narrows the choice: `static_range` picks one span, `rolling_range` the latest, and TFX 1.16's ExampleGen
refuses `rolling_range.num_spans != 1` (input_processor.py: "ExampleGen only support single span for
RangeConfig.RollingRange"): in TFX a window of spans is one ExampleGen run per span, joined downstream by a
resolver, which a single local run of a fresh pipeline can't do.

So a window of N > 1 spans is resolved here, with TFX's own matching: the latest span as TFX's driver finds
it (rolling range of 1), then each span of the window `latest-N+1 .. latest` as TFX resolves a static range
of that span (its latest `{VERSION}` too). `ContentFingerprintDriver` runs it and hands the executor each
span's pattern (`SPAN_PATTERNS_PROPERTY`); `tfxp run`'s preflight runs the same resolution to list, check
and hash exactly those files. The Examples artifact keeps TFX's `span` (the latest) and `version`.

Refused, never trained on (`SpanError.kind`): a pattern no file matches ("no_match"), a span number that is
not an integer ("bad_span"), a span missing inside the window while an older one exists ("gap": spans 1, 2, 4
with `--rolling 3`). A window reaching before the first span there is (the first days of a schedule) trains on
the spans there are and says so (`SpanWindow.short`).
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from typing import Any

# TFX's spec spellings (tfx.components.example_gen.utils.SPAN_FULL_REGEX), here so the CLI needn't load TFX.
SPAN_SPEC_REGEX = re.compile(r"\{SPAN\}|\{SPAN:(?P<width>.*?)\}")
_GLOB_CHARS = re.compile(r"[*?\[]")
# The executor's exec property (set by ContentFingerprintDriver): JSON {span: pattern relative to input_base}.
SPAN_PATTERNS_PROPERTY = "span_patterns"
_SPLIT = "single_split"


class SpanError(ValueError):
    """The span pattern can't be trained on. `kind`: "no_match" | "bad_span" | "gap" | "stale"."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def has_span(pattern: str | os.PathLike) -> bool:
    """True when `pattern` holds a `{SPAN}` or `{SPAN:width}` spec."""
    return SPAN_SPEC_REGEX.search(str(pattern)) is not None


def is_pattern(data: str | os.PathLike) -> bool:
    """True for `--data` values that are patterns (a `{SPAN}` spec or a glob character), not a path."""
    return has_span(data) or _GLOB_CHARS.search(str(data)) is not None


def split_pattern(data: str) -> tuple[str, str]:
    """(input_base, pattern) of a data pattern: the leading folders without a spec or glob character, and the
    rest, as ExampleGen takes them (`input_base` + a split pattern relative to it).

    `"/d/span-{SPAN}/*.csv"` -> `("/d", "span-{SPAN}/*.csv")`; `"gs://b/d/{SPAN}/x.csv"` -> `("gs://b/d",
    "{SPAN}/x.csv")`. Raises ValueError when the first path component is already a pattern.
    """
    parts = data.rstrip("/").split("/")
    for index, part in enumerate(parts):
        if is_pattern(part):
            base = "/".join(parts[:index])
            if not base or base.endswith(":"):
                raise ValueError(f"{data}: name the folder the pattern starts in (e.g. data/span-{{SPAN}}/*.csv)")
            return base, "/".join(parts[index:])
    raise ValueError(f"{data} is not a pattern")


def check_pattern(data: str, rolling: int | None) -> str | None:
    """What is wrong with `--data DATA --rolling N` before any file is looked at (a usage error), else None."""
    if rolling is not None and not has_span(data):
        return f"--rolling {rolling} needs a {{SPAN}} spec in --data (e.g. 'DIR/span-{{SPAN}}/*.csv'), got {data}"
    specs = SPAN_SPEC_REGEX.findall(str(data))
    if len(specs) > 1:
        return f"{data}: only one {{SPAN}} spec is allowed (TFX's rule)"
    if is_pattern(data):
        try:
            split_pattern(str(data))
        except ValueError as exc:
            return str(exc)
    return None


@dataclass(frozen=True)
class SpanWindow:
    """The spans a run reads. `spans`: ascending; `patterns`: span -> pattern relative to the input base with
    the span (and version) filled in, as TFX's driver writes it; `latest` and `version`: what TFX's driver
    sets on the Examples artifact; `requested`: --rolling; `short`: the window reached before the first span."""

    latest: int
    version: int | None
    spans: tuple[int, ...]
    patterns: dict[int, str]
    requested: int
    available: tuple[int, ...]

    @property
    def short(self) -> bool:
        return len(self.spans) < self.requested

    def describe(self) -> str:
        """E.g. "spans 2, 3 (--rolling 2)"; says so when fewer spans exist than requested."""
        listed = ", ".join(str(s) for s in self.spans)
        text = f"span{'s' if len(self.spans) > 1 else ''} {listed}"
        if self.requested > 1:
            text += f" (--rolling {self.requested})"
        if self.short:
            text += f": only {len(self.spans)} span(s) up to {self.latest} exist, the window starts before them"
        return text


def _tfx_error(error: ValueError, input_base: str, pattern: str) -> SpanError:
    text = str(error)
    if text.startswith("Cannot find matching"):
        return SpanError("no_match", f"no file matches the span pattern {os.path.join(input_base, pattern)}")
    return SpanError("bad_span", f"{os.path.join(input_base, pattern)}: {text}")


def available_spans(input_base: str, pattern: str) -> tuple[int, ...]:
    """Every span number TFX's matching finds for `pattern` under `input_base`, ascending.

    Raises SpanError("bad_span") when a match's span is not an integer (TFX's driver would fail on it too).
    """
    from tfx.components.example_gen import utils
    from tfx.dsl.io import fileio
    from tfx.proto import example_gen_pb2

    split = example_gen_pb2.Input.Split(name=_SPLIT, pattern=pattern)
    is_span, is_date, is_version = utils.verify_split_pattern_specs(split)
    # TFX's private helpers (pinned tfx 1.16): the glob and regex its driver matches files with.
    glob, regex = utils._create_matching_glob_and_regex(input_base, split, is_span, is_date, is_version, None)
    found = set()
    for path in fileio.glob(glob):
        try:
            _, span, _, _ = utils._find_matched_span_version_from_path(path, regex, is_span, is_date, is_version)
        except ValueError as exc:
            raise _tfx_error(exc, input_base, pattern) from None
        found.add(span)
    return tuple(sorted(found))


def resolve_window(input_base: str, pattern: str, num_spans: int = 1) -> SpanWindow:
    """The latest `num_spans` spans of `input_base/pattern`, resolved by TFX's driver rules (module docstring).

    Raises SpanError: "no_match" (no file), "bad_span" (a span that is not an integer), "gap" (a span of the
    window missing while an older one exists). ValueError for num_spans < 1.
    """
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2, range_config_pb2

    if num_spans < 1:
        raise ValueError(f"num_spans must be >= 1, got {num_spans}")
    split = example_gen_pb2.Input.Split(name=_SPLIT, pattern=pattern)
    try:
        # TFX's FileBasedDriver: the latest span (and its latest version), rolling range of one.
        latest, version = utils._get_target_span_version(
            input_base,
            copy.deepcopy(split),
            range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(num_spans=1)),
        )
    except ValueError as exc:
        raise _tfx_error(exc, input_base, pattern) from None
    available = available_spans(input_base, pattern)
    window = range(max(latest - num_spans + 1, 0), latest + 1)
    missing = [s for s in window if s not in available and s > available[0]]
    if missing:
        present = [s for s in window if s in available]
        raise SpanError(
            "gap",
            f"span(s) {', '.join(map(str, missing))} missing from {os.path.join(input_base, pattern)}: "
            f"--rolling {num_spans} covers spans {window[0]}..{latest}, found {', '.join(map(str, present))}",
        )
    patterns = {}
    versions = {latest: version}
    for span in (s for s in window if s in available):
        resolved = copy.deepcopy(split)
        # TFX's static range of one span: the span's files (and its latest {VERSION}).
        static = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
        try:
            _, versions[span] = utils._get_target_span_version(input_base, resolved, static)
        except ValueError as exc:
            raise _tfx_error(exc, input_base, pattern) from None
        patterns[span] = resolved.pattern
    return SpanWindow(latest, version, tuple(sorted(patterns)), patterns, num_spans, available)


def window_files(input_base: str, window: SpanWindow) -> list[tuple[int, str]]:
    """(span, file path) of every file the window's patterns match (the executor's glob), by span then path."""
    from tfx.dsl.io import fileio

    return [
        (span, path)
        for span in window.spans
        for path in sorted(fileio.glob(os.path.join(input_base, window.patterns[span])))
    ]


def patterns_json(window: SpanWindow) -> str:
    """The executor's SPAN_PATTERNS_PROPERTY: JSON {"<span>": pattern}."""
    return json.dumps({str(span): window.patterns[span] for span in window.spans}, sort_keys=True)


def patterns_of(exec_properties: dict[str, Any]) -> list[str] | None:
    """The patterns of SPAN_PATTERNS_PROPERTY in span order; None without it (TFX's single pattern)."""
    raw = exec_properties.get(SPAN_PATTERNS_PROPERTY)
    if not raw:
        return None
    patterns = json.loads(raw)
    return [patterns[key] for key in sorted(patterns, key=int)]


# ------------------------------------------------------------------------- the served model's spans


@dataclass(frozen=True)
class ServedSpans:
    """The spans the served version was trained on. `spans` None: not known (`why` says why)."""

    version: int | None
    spans: tuple[int, ...] | None
    source: str  # "model card" | "ML Metadata" | ""
    why: str = ""


def served_spans(serving_dir: str, metadata_path: str | None, pipeline_name: str) -> ServedSpans:
    """What the served version (the newest under `serving_dir`, TF Serving's default) was trained on: its
    card's `data.spans`, else the spans of the Examples its Pusher read in ML Metadata."""
    from tfxp.pipeline.model_card import read_card
    from tfxp.pipeline.publish import latest_version

    version = latest_version(serving_dir) if os.path.isdir(serving_dir) else None
    if version is None:
        return ServedSpans(None, None, "", "no version is served")
    card = read_card(os.path.join(serving_dir, str(version)))
    if card is not None and card.get("data", {}).get("spans"):
        return ServedSpans(version, tuple(int(s) for s in card["data"]["spans"]), "model card")
    recorded = _mlmd_spans(metadata_path, pipeline_name, version) if metadata_path else None
    if recorded:
        return ServedSpans(version, recorded, "ML Metadata")
    return ServedSpans(version, None, "", f"served version {version} records no spans (no card or ML Metadata record)")


def _mlmd_spans(metadata_path: str, pipeline_name: str, version: int) -> tuple[int, ...] | None:
    """The spans of the Examples the Pusher that pushed `version` read (input_files' spans, else TFX's `span`)."""
    if not os.path.isfile(metadata_path):
        return None
    from tfxp.pipeline.example_gen import INPUT_FILES_PROPERTY
    from tfxp.pipeline.mlmd import MetadataReader, str_property

    reader = MetadataReader(metadata_path)
    store = reader._store  # a read-only store: the Pusher's events, as MetadataReader.latest reads them
    for execution in reversed(reader.executions(pipeline_name, "Pusher")):
        events = store.get_events_by_execution_ids([execution.id])
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        by_key: dict[str, list] = {}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            by_key.setdefault(key, []).append(artifacts[event.artifact_id])
        pushed = [a for a in by_key.get("pushed_model", []) if str_property(a, "pushed_version") == str(version)]
        if not pushed or not by_key.get("examples"):
            continue
        examples = by_key["examples"][-1]
        files = json.loads(str_property(examples, INPUT_FILES_PROPERTY) or "[]")
        spans = sorted({int(f["span"]) for f in files if f.get("span") is not None})
        return tuple(spans) or None
    return None


def stale_problem(window: SpanWindow, served: ServedSpans) -> str | None:
    """Why `window` is older than what is served (its latest span below the served version's newest), else None."""
    if not served.spans or window.latest >= max(served.spans):
        return None
    return (
        f"the latest span {window.latest} is older than span {max(served.spans)} the served version "
        f"{served.version} was trained on ({served.source}): new data would replace newer data; "
        "check the data feed"
    )


# ------------------------------------------------------------------------- the preflight's listing


def data_files(data: str, rolling: int | None = None) -> tuple[str, list[tuple[str, int | None]], SpanWindow | None]:
    """(input base, [(file, span or None)], window) a local pattern `data` makes ExampleGen read: the files
    of the latest `rolling` (None: 1) spans of a `{SPAN}` pattern, each span's files sorted, by span; the
    sorted matches of a plain glob pattern (window None). The executor globs the same patterns.

    Raises SpanError (see resolve_window), FileNotFoundError when a glob pattern matches nothing.
    """
    from tfx.dsl.io import fileio

    base, pattern = split_pattern(data)
    if not has_span(pattern):
        matched = sorted(fileio.glob(os.path.join(base, pattern)))
        if not matched:
            raise FileNotFoundError(f"no file matches {data}")
        return base, [(path, None) for path in matched], None
    window = resolve_window(base, pattern, rolling or 1)
    return base, [(path, span) for span, path in window_files(base, window)], window
