"""`tfxp serve` and `tfxp predict`: a TF Serving-compatible server and its client.

Heavy imports (TensorFlow, gRPC stubs) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from tfxp.cli._common import (
    CommandFailed,
    JsonErrorsCommand,
    bad_row_error,
    check_model_columns,
    class_cells,
    classes_fit,
    json_safe,
    model_source_name,
    model_source_options,
    predicted_classes,
    read_rows_option,
    rows_option,
    table_cells,
)
from tfxp.cli.exit_codes import ExitCode, epilog
from tfxp.serving.options import MAX_CONNECTIONS, ServerOptions, default_max_connections


@click.command(cls=JsonErrorsCommand, epilog=epilog("predict"))
@click.option(
    "--server",
    "target",
    required=True,
    metavar="HOST:PORT|http://HOST:PORT",
    help="gRPC target host:port, or the REST base URL http://host:port.",
)
@click.option("--model", required=True, help="Served model name.")
@rows_option
@click.option(
    "--protocol",
    type=click.Choice(["grpc", "rest"]),
    default=None,
    help="Default: rest for http:// URLs, grpc for host:port.",
)
@click.option(
    "--signature",
    type=click.Choice(["serving_default", "predict_raw"]),
    default="serving_default",
    show_default=True,
    help="serving_default sends tf.Examples; predict_raw sends one tensor per feature.",
)
@click.option("--version", type=click.IntRange(min=0), default=None, help="Ask this model version.")
@click.option("--label", default=None, help="Ask the version with this label.")
@click.option(
    "--canary-percent",
    type=click.FloatRange(0, 100),
    default=None,
    help="Split the rows between the versions labelled canary (this share of route keys) and stable, by a "
    "stable hash of --route-key-column (TF Serving leaves the split to clients; docs/release.md).",
)
@click.option(
    "--route-key-column",
    default=None,
    help="The rows file's column whose value routes a row (e.g. a user id): a key always gets the same label.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds per attempt; an unavailable server is retried for up to 10 s more.",
)
@click.option(
    "--allow-missing-optional",
    is_flag=True,
    help="Let the rows file lack columns of model inputs: read as missing in every row. The model "
    "refuses rows missing a required input (TF Serving's metadata does not say which inputs are "
    "optional, so without this flag every input needs a column).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON object instead of a table; on an error, an error object (the text also goes to stderr).",
)
def predict(
    target: str,
    model: str,
    rows_path: Path,
    protocol: str | None,
    signature: str,
    version: int | None,
    label: str | None,
    canary_percent: float | None,
    route_key_column: str | None,
    timeout: float,
    allow_missing_optional: bool,
    as_json: bool,
) -> None:
    """Predictions for raw rows from a TF Serving server.

    Any TF Serving compatible server: `tfxp serve` or TF Serving itself, any model
    this pipeline pushes. The model's inputs and outputs come from its metadata:
    every input needs a column in the rows file (a blank cell is a missing value);
    one result per row, one column per output value. A classification model's rows
    also get the predicted class, and each probability is named by its class.
    """
    from tfxp.serving import client as client_lib

    if version is not None and label is not None:
        raise click.UsageError("give --version or --label, not both")
    routed = canary_percent is not None or route_key_column is not None
    if routed and (canary_percent is None or route_key_column is None):
        raise click.UsageError("--canary-percent and --route-key-column go together")
    if routed and (version is not None or label is not None):
        raise click.UsageError("--canary-percent picks the label per row: not with --version or --label")
    try:
        kind, address = client_lib.parse_target(target, protocol)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from None
    rows_file = read_rows_option(rows_path)
    if routed and route_key_column not in rows_file.columns:
        raise click.BadParameter(
            f"{rows_file.path} has no column {route_key_column!r} (it has {', '.join(rows_file.columns)})",
            param_hint="--route-key-column",
        )
    if kind == "grpc":
        # The gRPC client loads TensorFlow (its protos); GrpcClient keeps TF's C++ start-up lines off
        # the console, and google.api_core's Python-version notice is not this command's business.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core")
    factory = client_lib.RestClient if kind == "rest" else client_lib.GrpcClient

    def open_client(with_label: str | None):
        return factory(address, model, version=version, label=with_label, timeout=timeout, signature=signature)

    try:
        if not routed:
            with open_client(label) as client:
                rows = check_model_columns(rows_file, list(client.model_inputs()), None, allow_missing_optional)
                answer = _ask(client, rows_file, rows, list(range(len(rows))), signature)
            _print_predictions(
                model, answer.served, kind, signature, answer.outputs, answer.results, answer.classes, as_json
            )
            return
        share = float(canary_percent or 0.0)  # given whenever routed (checked above)
        with client_lib.LabelRouter(open_client, share) as router:
            rows = check_model_columns(
                rows_file, list(router.client("stable").model_inputs()), None, allow_missing_optional
            )
            keys = ["" if row.get(route_key_column) is None else str(row[route_key_column]) for row in rows]
            answers = {
                routed_label: _ask(
                    router.client(routed_label), rows_file, [rows[i] for i in positions], positions, signature
                )
                for routed_label, positions in client_lib.split_by_label(keys, share).items()
            }
    except client_lib.ServingClientError as exc:
        raise CommandFailed(f"{exc.code}: {exc.message}", status=exc.code) from None
    _print_routed(model, kind, signature, answers, len(rows), as_json)


@dataclasses.dataclass
class _Answer:
    """One client's predictions for some rows of the file (`positions`: their 0-based indexes there)."""

    positions: list[int]
    results: list
    outputs: list[str]
    served: int | None
    classes: list[str] | None


def _ask(client, rows_file, rows: list[dict], positions: list[int], signature: str) -> _Answer:
    """`client.predict(rows)` with the command's errors: a bad row or a refused one named by file:line."""
    from tfxp.serving import client as client_lib

    try:
        results = client.predict(rows)
    except client_lib.RowError as exc:
        # Named by where it is in the file (file:line), not by its index among the rows; the
        # inputs are those of the metadata the request was built from.
        example = signature != client_lib.PREDICT_RAW
        raise bad_row_error(rows_file, client.model_inputs(), exc, as_example=example) from None
    except client_lib.ServingClientError as exc:
        raise _refused(client, rows_file, rows, exc, positions) from None
    outputs = list(client.outputs())
    served = client.last_version  # gRPC answers name it
    if served is None:  # REST answers don't: the version the metadata came from
        served = client.model_metadata().version
    if served is None:
        served = _latest_version(client)
    classes = _class_names(client, rows, results) if len(outputs) == 1 else None
    return _Answer(positions, results, outputs, served, classes)


def _print_routed(model: str, protocol: str, signature: str, answers: dict, count: int, as_json: bool) -> None:
    """The predictions of a split (--canary-percent) in row order, each row with the label and version that
    answered it: JSON adds `labels` (per row) and `versions` ({label: version}); the table a `label` column."""
    results, labels = [None] * count, [""] * count
    for routed_label, answer in answers.items():
        for position, result in zip(answer.positions, answer.results, strict=True):
            results[position], labels[position] = result, routed_label
    first = next(iter(answers.values()))
    same_classes = all(a.classes == first.classes for a in answers.values())
    if as_json:
        chosen = predicted_classes(results, first.classes) if first.classes and same_classes else None
        body: dict[str, Any] = {"model": model, "version": None}
        body["versions"] = {k: a.served for k, a in answers.items()}
        body.update(protocol=protocol, signature=signature, outputs=first.outputs, labels=labels)
        body.update(predictions=json_safe(results), classes=first.classes if same_classes else None)
        click.echo(json.dumps({**body, "predicted_classes": chosen}, allow_nan=False))
        return
    for routed_label, answer in sorted(answers.items()):
        click.echo(f"{routed_label}: version {answer.served}, {len(answer.positions)} rows")
    _print_predictions(
        model, None, protocol, signature, first.outputs, results, first.classes if same_classes else None, False, labels
    )


# The server's answer to a request it refuses for what it holds (TF Serving: INVALID_ARGUMENT, 400 over REST).
_REFUSED = (400, "INVALID_ARGUMENT")


def _refused(client, rows_file, rows: list[dict], error, positions: list[int] | None = None) -> CommandFailed:
    """The command's error for a request the server refused: naming the first row it refuses, by file:line.

    TF Serving's refusals rarely say which row ("Feature: fare ... is required but could not be
    found"), so the rows are asked again by halves (about log2(rows) small requests, on this error
    path only) down to the first row refused on its own, whose error is then shown. When no single
    row is refused (a batch-level error) or the server fails otherwise, the error is shown as it came.
    """
    from tfxp.cli._common import row_line
    from tfxp.serving.client import ServingClientError

    failure = CommandFailed(f"{error.code}: {error.message}", status=error.code)
    if error.code not in _REFUSED or len(rows) < 2:
        return failure
    lo, hi = 0, len(rows)  # rows[lo:hi] holds a refused row
    try:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _refuses(client, rows[lo:mid]):
                hi = mid
            else:
                lo = mid
        client.predict(rows[lo : lo + 1])
    except ServingClientError as alone:
        if alone.code not in _REFUSED:
            return failure
        line = row_line(rows_file.path, positions[lo] if positions is not None else lo)
        return CommandFailed(
            f"{rows_file.path}:{line}: the server refuses this row (sent alone): {alone.code}: {alone.message}",
            status=alone.code,
            file=str(rows_file.path),
            line=line,
        )
    return failure  # every row is answered on its own


def _refuses(client, rows: list[dict]) -> bool:
    """Whether the server refuses `rows` (raises its other failures)."""
    from tfxp.serving.client import ServingClientError

    try:
        client.predict(rows)
    except ServingClientError as exc:
        if exc.code not in _REFUSED:
            raise
        return True
    return False


def _class_names(client, rows: list[dict], results: list) -> list[str] | None:
    """The served model's class names in the order of its output's values, or None (a regression model).

    Asked of the model's `classification` signature with the first answered row (the metadata has
    the signature, not its class names): one small call. Its scores for that row must be the
    predict answer's, so names never come from another version than the one that answered (a
    version pushed in between); if they differ, or the call fails, the values are shown unnamed
    and a warning on stderr says why.
    """
    from tfxp.serving import client as client_lib

    if client_lib.CLASSIFICATION not in client.model_metadata().signatures:
        return None
    answered = [i for i, r in enumerate(results) if not isinstance(r, dict) and _finite(r)]
    if not answered:
        return None
    index = answered[0]
    try:
        classes, scores = client.class_scores(rows[index])
    except (client_lib.ServingClientError, client_lib.RowError) as exc:
        _warn(f"class names not shown: the {client_lib.CLASSIFICATION} signature failed: {exc}")
        return None
    expected = results[index] if isinstance(results[index], list) else [1.0 - results[index], results[index]]
    if not classes_fit(results, classes) or not _close(scores, expected):
        _warn(
            f"class names not shown: the {client_lib.CLASSIFICATION} signature's scores for row {index} "
            f"({', '.join(f'{s:.6g}' for s in scores)}) are not the predict answer's: another model version "
            "may have answered"
        )
        return None
    return classes


def _finite(value) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, float) and math.isfinite(v) for v in values)


def _close(scores: list, expected: list) -> bool:
    # The same SavedModel computes both (classification runs serving_default inside); predict_raw
    # differs from the tf.Example path by float rounding only (~1e-7).
    return len(scores) == len(expected) and all(
        isinstance(s, float) and math.isclose(s, e, rel_tol=1e-4, abs_tol=1e-5)
        for s, e in zip(scores, expected, strict=True)
    )


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _latest_version(client) -> int | None:
    """The highest AVAILABLE version, when neither the answer nor the metadata named one."""
    from tfxp.serving.client import ServingClientError

    try:
        versions = [s["version"] for s in client.status() if s["state"] == "AVAILABLE"]
    except ServingClientError:
        return None
    return max(versions, default=None)


def _print_predictions(
    model: str,
    version: int | None,
    protocol: str,
    signature: str,
    outputs: list[str],
    results: list,
    classes: list[str] | None,
    as_json: bool,
    labels: list[str] | None = None,
) -> None:
    """One line (JSON) or a table row per input row: `row` (and the `label` that answered it, when split
    by --canary-percent) and each output value.

    `results`: `ServingClient.predict`'s, one per row: a value ([N] output), a list
    of K values ([N, K]), or {output: value} for several outputs (`outputs`, by name).
    `classes`: the class names of a classification model's one output (multiclass: one per
    value; binary: negative, positive), else None. With them each row also gets its predicted
    class and the table names each probability by its class.
    """
    chosen = predicted_classes(results, classes) if classes else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": model,
                    "version": version,
                    "protocol": protocol,
                    "signature": signature,
                    "outputs": outputs,
                    "predictions": json_safe(results),
                    "classes": classes,
                    "predicted_classes": chosen,
                },
                allow_nan=False,
            )
        )
        return
    from tabulate import tabulate

    headers, table = ["row"] + (["label"] if labels else []), []
    for index, result in enumerate(results):
        if chosen is not None:
            cells = class_cells(outputs[0], result, chosen[index], classes)
        else:
            named = result if isinstance(result, dict) else {outputs[0] if len(outputs) == 1 else "prediction": result}
            cells = [(name, value) for name in sorted(named) for name, value in table_cells(name, named[name])]
        if index == 0:
            headers += [name for name, _ in cells]
        table.append([index] + ([labels[index]] if labels else []) + [value for _, value in cells])
    # Class names (and labels) are text: "007" or "1e3" must not be shown as numbers.
    predicted_column = 2 if labels else 1  # predicted_class comes first after row (and label)
    text_columns = ([1] if labels else []) + ([predicted_column] if chosen else [])
    click.echo(tabulate(table, headers=headers, floatfmt=".6g", disable_numparse=text_columns or False))


@click.command(epilog=epilog("serve"))
@model_source_options("Serve one model from DIR/<version>/ (e.g. output/serving/taxi).")
@click.option(
    "--model-config-file-poll-wait-seconds",
    "config_poll_seconds",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Re-read --model-config-file every N seconds and apply what changed (models, version policies, "
    "labels); 0 reads it once. TF Serving's --model_config_file_poll_wait_seconds.",
)
@click.option(
    "--allow-version-labels-for-unavailable-models",
    is_flag=True,
    help="Let a config set a new version label (or keep one) on a version not loaded yet, e.g. a labelled "
    "config at start-up; moving an existing label still needs its version AVAILABLE. TF Serving's "
    "--allow_version_labels_for_unavailable_models.",
)
@click.option(
    "--disable-reload-config-request",
    is_flag=True,
    help="Answer gRPC ModelService/HandleReloadConfigRequest with UNIMPLEMENTED. Without it (as in TF "
    "Serving) any client that reaches the gRPC port can make the server load any path it can read.",
)
@click.option(
    "--rest-port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="0 picks a free port."
)
@click.option(
    "--grpc-port", type=click.IntRange(0, 65535), default=8500, show_default=True, help="0 picks a free port."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 for all interfaces.")
@click.option(
    "--poll-seconds",
    type=float,
    default=1.0,
    show_default=True,
    help="File system poll for new versions; 0 loads once, < 0 never.",
)
@click.option(
    "--enable-signature-method-name-check",
    is_flag=True,
    help="Classify and Regress run only signatures with their method names (TF Serving's flag, off by "
    "default there too: TF2 SavedModels name every signature a predict method).",
)
@click.option("--enable-batching", is_flag=True, help="Batch concurrent requests together.")
@click.option(
    "--batching-parameters-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Text BatchingParameters (needs --enable-batching).",
)
@click.option(
    "--request-log",
    "request_log",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write sampled requests as PredictionLog TFRecords here.",
)
@click.option(
    "--log-sampling",
    type=click.FloatRange(0, 1),
    default=None,
    help="Fraction of requests logged (needs --request-log). Default with --request-log: 1.",
)
@click.option(
    "--request-log-rotate-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Start a new request-log file after this many seconds or 10,000 records; its name carries "
    "its UTC start time (needs --request-log). Default: 60.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1),
    default=64 * 1024 * 1024,
    show_default=True,
    help="Largest request body (REST); a larger one is refused with 413.",
)
@click.option(
    "--request-memory-budget-bytes",
    type=click.IntRange(min=1),
    default=None,
    show_default="a quarter of the machine's (or container's) memory, at least one --max-request-bytes request's",
    help="Memory for in-flight requests, server-wide (REST and gRPC): each is charged its body's size times "
    "what decoding makes of it (JSON 40x, gRPC 4x; docs/serving.md); a request beyond the budget waits up "
    "to 1 s, then gets 429 / RESOURCE_EXHAUSTED.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a REST request may take.",
)
@click.option(
    "--header-read-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=ServerOptions.header_read_timeout_seconds,
    show_default=True,
    help="Seconds a request head may take, from the connection opening or its first byte (REST: then 408 "
    "and the connection closed; gRPC: its HTTP/2 handshake). nginx's client_header_timeout.",
)
@click.option(
    "--keepalive-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=ServerOptions.keepalive_timeout_seconds,
    show_default=True,
    help="Seconds a connection may stay open with no request in progress (REST and gRPC). nginx's keepalive_timeout.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    show_default=f"{MAX_CONNECTIONS}, or half the descriptor limit (ulimit -n) if lower",
    help="REST connections open at once; one more is answered 503 and closed as it is accepted.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="$XDG_STATE_HOME/tfxp/serve.log, else ~/.local/state/tfxp/serve.log",
    help="Appended to: TensorFlow's own log lines (C++ included), every logged line with tracebacks. "
    "The console gets only the server's lines: versions loaded, unloaded or failed, warnings.",
)
def serve(
    model_base_path: Path | None,
    model_name: str | None,
    model_config_file: Path | None,
    config_poll_seconds: float,
    allow_version_labels_for_unavailable_models: bool,
    disable_reload_config_request: bool,
    rest_port: int,
    grpc_port: int,
    host: str,
    poll_seconds: float,
    enable_signature_method_name_check: bool,
    enable_batching: bool,
    batching_parameters_file: Path | None,
    request_log: Path | None,
    log_sampling: float | None,
    request_log_rotate_seconds: float | None,
    max_request_bytes: int,
    request_memory_budget_bytes: int | None,
    request_timeout: float,
    header_read_timeout: float,
    keepalive_timeout: float,
    max_connections: int | None,
    log_file: Path | None,
) -> None:
    """Serve pushed models over TF Serving's REST and gRPC APIs.

    Runs until interrupted. Both ports are bound before models load, so a
    port in use fails at once.
    """
    name = model_source_name(model_base_path, model_name, model_config_file)
    if config_poll_seconds and model_config_file is None:
        raise click.UsageError("--model-config-file-poll-wait-seconds needs --model-config-file")
    if batching_parameters_file is not None and not enable_batching:
        raise click.UsageError("--batching-parameters-file needs --enable-batching")
    if log_sampling is not None and request_log is None:
        raise click.UsageError("--log-sampling needs --request-log")
    if request_log_rotate_seconds is not None and request_log is None:
        raise click.UsageError("--request-log-rotate-seconds needs --request-log")
    if rest_port and rest_port == grpc_port:
        raise click.UsageError("--rest-port and --grpc-port must differ")
    options = ServerOptions(
        model_base_path=model_base_path,
        model_name=name or ServerOptions.model_name,
        model_config_file=model_config_file,
        model_config_file_poll_seconds=config_poll_seconds,
        enable_reload_config_request=not disable_reload_config_request,
        allow_version_labels_for_unavailable_models=allow_version_labels_for_unavailable_models,
        host=host,
        rest_port=rest_port,
        grpc_port=grpc_port,
        poll_seconds=poll_seconds,
        enable_signature_method_name_check=enable_signature_method_name_check,
        enable_batching=enable_batching,
        batching_parameters_file=batching_parameters_file,
        request_log_dir=request_log,
        log_sampling=(1.0 if log_sampling is None else log_sampling) if request_log is not None else 0.0,
        request_log_rotate_seconds=request_log_rotate_seconds or ServerOptions.request_log_rotate_seconds,
        max_request_bytes=max_request_bytes,
        request_memory_budget_bytes=request_memory_budget_bytes,
        request_timeout_seconds=request_timeout,
        header_read_timeout_seconds=header_read_timeout,
        keepalive_timeout_seconds=keepalive_timeout,
        max_connections=max_connections or default_max_connections(),
    )
    if log_file is None:  # the XDG base directory spec's place for logs: writable, not the model folders
        import os

        log_file = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tfxp" / "serve.log"
    _run_server(options, log_file)


def _run_server(options, log_file: Path) -> None:
    """Runs the server with library output (TF's C++ log lines included) in `log_file`.

    The console keeps the server's own lines (serving.server.console_handler) and
    its start-up line; a failure to start exits 1 with its reason.
    """
    import logging
    import os

    from tfxp.pipeline.console import library_output_to

    # TF's C++ warnings and errors belong in the log file; quiet_libraries' default would drop them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        click.echo(f"error: can't create the log file's folder: {exc} (give --log-file)", err=True)
        sys.exit(ExitCode.FAILURE)
    failure = None
    with library_output_to(log_file):
        from tfxp.serving import server

        console = server.console_handler(sys.stderr)  # the console, while descriptor 2 is the log file
        serving_log = logging.getLogger("tfxp.serving")
        serving_log.addHandler(console)
        click.echo(f"tfxp serve: log file {log_file} (TensorFlow's own log lines, tracebacks)", err=True)
        try:
            server.run(options)
        except (OSError, ValueError) as exc:
            # Bad config files (ValueError, incl. serving.config.ConfigError) and busy ports (OSError).
            logging.getLogger(__name__).error("tfxp serve could not start: %s", exc)
            failure = exc
        finally:
            serving_log.removeHandler(console)
    if failure is not None:
        click.echo(f"error: {failure}", err=True)
        sys.exit(ExitCode.FAILURE)
