"""Runs the pipeline locally (LocalDagRunner, SQLite MLMD) and turns the result into an exit code."""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfxp.pipeline.config import PipelineConfig, is_uri
from tfxp.pipeline.console import route_library_logs, stderr_to_log
from tfxp.pipeline.summary import Summary


class ExitCode(enum.IntEnum):
    PUSHED = 0
    FAILURE = 1
    USAGE = 2
    ANOMALIES = 3
    NOT_BLESSED = 4
    MOBILE_FAILED = 5


@dataclass(frozen=True)
class ComponentEvent:
    node_id: str
    status: str  # started | cached | finished | failed
    seconds: float = 0.0


# Resolver nodes: they run every time (a metadata query), so they never make a run "not cached".
RESOLVERS = ("baseline_resolver", "latest_hyperparameters")


@dataclass
class Outcome:
    exit_code: ExitCode
    summary: Summary
    error: str | None = None
    log_file: str | None = None


class _ProgressHandler(logging.Handler):
    """Turns TFX's own per-node log lines into ComponentEvents.

    LocalDagRunner logs "Component <id> is running." / "... is finished." around
    each node, and the launcher logs "A cached execution <n> is used." when it
    reuses a result; listening to them keeps us on TFX's runner, not a copy of it.
    """

    def __init__(self, emit: Callable[[ComponentEvent], None]):
        super().__init__(level=logging.INFO)
        self._emit = emit
        self.current: str | None = None
        self._started = 0.0
        self._cached = False
        self.events: list[ComponentEvent] = []

    def _send(self, event: ComponentEvent) -> None:
        self.events.append(event)
        self._emit(event)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if msg == "Component %s is running.":
            self.current, self._started, self._cached = record.args[0], time.monotonic(), False
            self._send(ComponentEvent(self.current, "started"))
        elif msg == "A cached execution %d is used.":
            self._cached = True
        elif msg == "Component %s is finished.":
            status = "cached" if self._cached else "finished"
            self._send(ComponentEvent(record.args[0], status, time.monotonic() - self._started))
            self.current = None

    def fail_current(self) -> str | None:
        if self.current is None:
            return None
        node, self.current = self.current, None
        self._send(ComponentEvent(node, "failed", time.monotonic() - self._started))
        return node


def _preflight(config: PipelineConfig) -> Outcome | PipelineConfig:
    """Checks before any component: the schema, which files the data names (a span pattern's: TFX's matching,
    see _list_data) and that they read as one dataset.

    Returns the refusing Outcome, or the config to run: with local data, its `input_files` (each file's
    sha256, bytes, rows, hashed while the check read it, and span). Local data only: on Vertex AI the data is
    read by the pipeline image (pipeline.example_gen).
    """
    from tfxp.pipeline.csv_files import DataFileError, check_dataset
    from tfxp.schema.anomalies import Anomaly
    from tfxp.schema.rules import schema_problem

    problem = schema_problem(config.schema_file)
    if problem:
        return Outcome(ExitCode.USAGE, Summary(config.name), f"schema: {problem}")
    if config.remote is None:
        refused = _identity_preflight(config)
        if refused is not None:
            return refused
    if config.remote is not None or is_uri(config.data):
        return config
    listed = _list_data(config)
    if isinstance(listed, Outcome):
        return listed
    files, span_of = listed
    try:
        dataset = check_dataset(files)
    except DataFileError as exc:
        summary = Summary(config.name, anomalies=[Anomaly("-", "(file)", "unreadable CSV", str(exc)).as_dict()])
        return Outcome(ExitCode.ANOMALIES, summary, f"data file can't be read: {exc}")
    if dataset.total_rows == 0:
        where = ", ".join(dataset.rows)
        summary = Summary(
            config.name, anomalies=[Anomaly("-", "(dataset)", "no rows", f"{where}: a header, no data rows").as_dict()]
        )
        return Outcome(ExitCode.ANOMALIES, summary, f"no rows: a header but no data rows in {where}")
    logging.getLogger(__name__).info(
        "input: %d rows in %d file(s), columns %s", dataset.total_rows, len(files), dataset.header
    )
    base = config.data_dir
    files_seen = tuple(
        (os.path.relpath(path, base), dataset.sha256[path], dataset.sizes[path], rows, span_of.get(path))
        for path, rows in sorted(dataset.rows.items())
    )
    return dataclasses.replace(config, input_files=files_seen)


def _list_data(config: PipelineConfig) -> Outcome | tuple[list[Path], dict[str, int]]:
    """The local files ExampleGen will read and each one's span ({str(path): span}, spans only), or the refusal.

    A folder: its `*.csv` files; a file: itself; a pattern (`DIR/span-{SPAN}/*.csv`, `--rolling N`): the files
    of the spans TFX's driver resolves (tfxp.pipeline.spans). Refused: no CSV file, no match or a span that is
    not a number (USAGE); a gap in the window, or a latest span older than what the served version was trained
    on (ANOMALIES: the data feed is incomplete or stale, nothing is trained).
    """
    from tfxp.pipeline import spans
    from tfxp.pipeline.config import is_data_pattern
    from tfxp.pipeline.csv_files import NoCsvFilesError, list_csv_files
    from tfxp.schema.anomalies import Anomaly

    log = logging.getLogger(__name__)
    if not is_data_pattern(config.data):
        try:
            return list_csv_files(Path(config.data)), {}
        except (NoCsvFilesError, FileNotFoundError) as exc:
            return Outcome(ExitCode.USAGE, Summary(config.name), f"--data: {exc}")
    try:
        # data_uri: the resolved path ExampleGen's input base and pattern come from (config.data_dir).
        _, listed, window = spans.data_files(config.data_uri, config.rolling)
        if window is not None:
            log.info("input spans: %s", window.describe())
            served = spans.served_spans(config.serving_dir, str(config.metadata_path), config.name)
            if served.spans is None and served.version is not None:
                log.warning("spans: can't check the data is newer than the served model's: %s", served.why)
            stale = spans.stale_problem(window, served)
            if stale is not None:
                raise spans.SpanError("stale", stale)
    except FileNotFoundError as exc:
        return Outcome(ExitCode.USAGE, Summary(config.name), f"--data: {exc}")
    except spans.SpanError as exc:
        if exc.kind in ("no_match", "bad_span"):
            return Outcome(ExitCode.USAGE, Summary(config.name), f"--data: {exc}")
        what = {"gap": "span gap", "stale": "stale span"}[exc.kind]
        summary = Summary(config.name, anomalies=[Anomaly("-", "(spans)", what, str(exc)).as_dict()])
        return Outcome(ExitCode.ANOMALIES, summary, f"{what}: {exc}")
    return [Path(path) for path, _ in listed], {str(Path(path)): span for path, span in listed if span is not None}


def _identity_preflight(config: PipelineConfig) -> Outcome | None:
    """Refuses (USAGE) a project whose model is another model than the one pushed under its name.

    See pipeline.identity: a changed label, task, classes, label hook or set of inputs would be
    gated against the old model and, once blessed, hot-swapped in for its clients.
    """
    from tfxp.pipeline.identity import pushed_identity_change

    try:
        change = pushed_identity_change(config.name, config.serving_dir, config.problem.to_dict())
    except ValueError as exc:
        return Outcome(ExitCode.USAGE, Summary(config.name), f"the pushed model can't be compared: {exc}")
    if change is None:
        return None
    summary = Summary(config.name, identity_changes=change.differences)
    return Outcome(ExitCode.USAGE, summary, change.message(config.serving_dir, config.mobile_dir))


def run(config: PipelineConfig, on_event: Callable[[ComponentEvent], None] = lambda e: None) -> Outcome:
    """Runs the whole pipeline once; never raises for pipeline failures, returns an Outcome.

    Refuses at once, before any component: a second run on the same output
    (ExitCode.USAGE), a schema that lets NaN through (USAGE), a model of another identity
    (label, task, classes, hook, inputs) than the one pushed under the name (USAGE), a `data` folder
    without CSV files (USAGE), files that can't be read as one dataset or hold no
    rows (ANOMALIES, naming the file and line).
    """
    from tfxp.pipeline.output_lock import OutputBusyError, hold_output

    try:
        with hold_output(config.output):
            return _run_locked(config, on_event)
    except OutputBusyError as exc:
        return Outcome(ExitCode.USAGE, Summary(config.name), str(exc))


def _run_locked(config: PipelineConfig, on_event: Callable[[ComponentEvent], None]) -> Outcome:
    started = time.monotonic()
    # The pid keeps two runs started in the same second (another --output, same folder) apart.
    log_file = config.output.resolve() / "logs" / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    file_handler = route_library_logs(log_file)
    with stderr_to_log(log_file):
        checked = _preflight(config)
        pinned = None
        if not isinstance(checked, Outcome) and checked.push_mode == "canary":
            checked, pinned = _pin_for_canary(checked)
        if isinstance(checked, Outcome):
            checked.log_file = str(log_file)
            return checked
        outcome = _run_pipeline(checked, on_event, started, log_file, file_handler)
        return outcome if pinned is None else _label_canary(checked, outcome, pinned)


def _pin_for_canary(config: PipelineConfig) -> tuple[Outcome | PipelineConfig, dict | None]:
    """Canary push, before any component: the served versions pinned in the model config file (or USAGE)."""
    from tfxp.pipeline.canary_push import CanaryPushError, prepare

    try:
        pinned = prepare(str(config.model_config_file), config.name, config.serving_dir)
    except CanaryPushError as exc:
        return Outcome(ExitCode.USAGE, Summary(config.name), str(exc)), None
    logging.getLogger(__name__).info("canary push: %s pinned at %s", config.model_config_file, pinned)
    return config, pinned


def _label_canary(config: PipelineConfig, outcome: Outcome, pinned: dict) -> Outcome:
    """Canary push, after the run: a newly pushed version goes beside stable (release.canary step 1)."""
    from tfxp.pipeline.canary_push import CanaryPushError, label_canary

    summary = outcome.summary
    summary.release = {"mode": "canary", "pinned": pinned["pinned"], "version": None}
    if not summary.pushed or summary.pushed_version is None or summary.pushed_earlier or summary.fully_cached:
        return outcome  # nothing new was pushed (a cached run's version was labelled then): labels stay
    try:
        summary.release = {**label_canary(str(config.model_config_file), config.name, int(summary.pushed_version))}
        summary.release["pinned"] = pinned["pinned"]
    except CanaryPushError as exc:
        summary.release["error"] = str(exc)
        if outcome.exit_code is ExitCode.PUSHED:
            outcome.exit_code = ExitCode.FAILURE
            outcome.error = (
                f"pushed version {summary.pushed_version} to {summary.pushed_path}, but it is not served "
                f"(the pinned policy keeps stable): canary not set: {exc}"
            )
    return outcome


def _partial_run(config: PipelineConfig):
    """TFX's partial run of `config.run_nodes` (None: the whole DAG). The nodes' other inputs come from the
    previous pipeline run in this output's ML Metadata (TFX's default base run), which
    tfx.orchestration.portable.partial_run_utils snapshots into the new run's context."""
    if not config.run_nodes:
        return None
    from tfx.orchestration.pipeline import RunOptions

    return RunOptions(from_nodes=config.run_nodes, to_nodes=config.run_nodes)


def _class_names(config: PipelineConfig) -> tuple[str, ...]:
    """A multiclass model's classes in output order (the summary names per-class results by them); ()."""
    from tfxp.models.features import Task

    label = config.problem.label
    return tuple(label.classes) if label.task is Task.MULTICLASS else ()


def _run_pipeline(
    config: PipelineConfig,
    on_event: Callable[[ComponentEvent], None],
    started: float,
    log_file: Path,
    file_handler: logging.Handler,
) -> Outcome:
    from tfxp.pipeline.mlmd import MetadataReader
    from tfxp.pipeline.summary import collect
    from tfxp.schema.anomalies import DataAnomaliesError, with_fixes

    progress = _ProgressHandler(on_event)
    logging.getLogger("absl").addHandler(progress)
    error: str | None = None
    failed_node: str | None = None
    gate_anomalies: list[dict] = []
    code = ExitCode.PUSHED
    try:
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        from tfxp.pipeline.pipeline import create_pipeline

        config.metadata_path.parent.mkdir(parents=True, exist_ok=True)
        LocalDagRunner().run(create_pipeline(config), run_options=_partial_run(config))
    except DataAnomaliesError as exc:
        progress.fail_current()
        code, error = ExitCode.ANOMALIES, f"{exc} (data: {config.data})"
        gate_anomalies = [a.as_dict() for a in exc.anomalies]
    except Exception as exc:  # any pipeline failure becomes exit 1 with its message
        node = progress.fail_current()
        logging.getLogger(__name__).exception("pipeline failed")
        code, error = ExitCode.FAILURE, f"{node or 'pipeline'} failed: {type(exc).__name__}: {exc}"
        failed_node = node
    finally:
        logging.getLogger("absl").removeHandler(progress)
        file_handler.flush()

    summary = (
        collect(MetadataReader(config.metadata_path), config.name, _class_names(config))
        if config.metadata_path.exists()
        else Summary(config.name)
    )
    summary.components = [
        {"id": e.node_id, "status": e.status, "seconds": round(e.seconds, 2)}
        for e in progress.events
        if e.status != "started"
    ]
    # The gate's findings include ones ExampleValidator doesn't make (an empty split).
    summary.anomalies += [a for a in gate_anomalies if a not in summary.anomalies]
    # A value outside the schema's domain: which schema.pbtxt (and project.yaml) line accepts it.
    summary.anomalies = with_fixes(summary.anomalies, config.schema)
    finished = [c for c in summary.components if c["id"] not in RESOLVERS]
    summary.fully_cached = bool(finished) and all(c["status"] == "cached" for c in finished)
    summary.wall_seconds = round(time.monotonic() - started, 2)
    if failed_node == "MobilePusher" and summary.pushed:
        # Its failure came after the serving push, which stays: reported as what it is, not as exit 1.
        summary.mobile_error = error.removeprefix("MobilePusher failed: ")
        code = ExitCode.MOBILE_FAILED
    if code is ExitCode.PUSHED and summary.pushed and summary.mobile_error is not None:
        code = ExitCode.MOBILE_FAILED
    if code is ExitCode.MOBILE_FAILED:
        error = (
            f"pushed for serving: {summary.pushed_path} (version {summary.pushed_version}); "
            f"mobile (TFLite): not pushed: {summary.mobile_error}"
        )
    # A partial run without the Pusher pushes nothing by design: its nodes ran, which is its success.
    pushes = not config.run_nodes or "Pusher" in config.run_nodes
    if code is ExitCode.PUSHED and not summary.pushed and pushes:
        code = ExitCode.NOT_BLESSED
        failing = "; ".join(str(f) for f in summary.failures) or "no blessing recorded"
        error = f"model not blessed, nothing pushed: {failing}"
        infra = summary.infra_validation or {}
        if summary.blessed and infra.get("status") == "failed":
            error = f"model not blessed by the InfraValidator: {infra.get('reason')}"
    return Outcome(code, summary, error, str(log_file))
