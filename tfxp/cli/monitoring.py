"""`tfxp monitor`: skew and drift of logged requests against what each served version was trained on.

Heavy imports (TensorFlow protos, TFDV's protos) happen inside the command, so `--help` stays fast.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path

import click

from tfxp.cli._common import JsonErrorsCommand, model_source_name, model_source_options
from tfxp.cli.exit_codes import ExitCode, epilog

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """Seconds in "90", "90s", "15m", "1h" or "1d". Raises click.BadParameter for anything else or 0."""
    match = _DURATION.match(text)
    if match is None or float(match[1]) <= 0:
        raise click.BadParameter(f"{text!r}: give a positive duration such as 30s, 15m, 1h or 1d")
    return float(match[1]) * _UNITS[match[2]]


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        return value if isinstance(value, float) else parse_duration(str(value))


def _output_path(path: Path | None) -> Path | None:
    """A file to write: its folder must exist (found before the pass, not after it)."""
    if path is not None and not path.resolve().parent.is_dir():
        raise click.BadParameter(f"{path}: no folder {path.resolve().parent} to write it in")
    return path


def _prom_path(path: Path | None) -> Path | None:
    """node-exporter's textfile collector reads only *.prom files: another name would be ignored silently."""
    if path is not None and path.suffix != ".prom":
        raise click.BadParameter(f"{path}: node-exporter's textfile collector only reads files ending in .prom")
    return _output_path(path)


def _check_base_path(base: Path) -> None:
    """A base path holds version folders: a missing one, or a version folder given instead, is a usage error
    (a CronJob with a typo must fail, not report "no verdict" forever)."""
    if not base.is_dir():
        raise click.BadParameter(f"{base}: no such folder", param_hint="--model-base-path")
    from tfxp.files import is_version_name

    if is_version_name(base.name) and ((base / "saved_model.pb").is_file() or (base / "assets.extra").is_dir()):
        raise click.BadParameter(
            f"{base} is a version folder (a SavedModel's); give the folder of the versions, {base.resolve().parent}",
            param_hint="--model-base-path",
        )


def _models(model_base_path: Path | None, model_name: str | None, config_file: Path | None) -> dict[str, str]:
    """Model name -> base path, from --model-base-path (and --model-name) or a --model-config-file."""
    name = model_source_name(model_base_path, model_name, config_file)
    if model_base_path is not None and name is not None:
        _check_base_path(model_base_path)
        return {name: str(model_base_path)}
    assert config_file is not None  # model_source_name: exactly one source
    from tfxp.serving.config import ConfigError, load_model_server_config

    try:
        config = load_model_server_config(config_file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return {m.name: m.base_path for m in config.model_config_list.config}


@click.command(cls=JsonErrorsCommand, epilog=epilog("monitor"))
@click.option(
    "--logs",
    "logs_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The request-log folder (`tfxp serve --request-log DIR`): PredictionLog TFRecord files.",
)
@model_source_options("The served model's base path: its version folders carry the training statistics.")
@click.option(
    "--window",
    "window_seconds",
    type=Duration(),
    default="1h",
    show_default=True,
    help="Window length (30s, 15m, 1h, 1d): drift compares each window with the previous one.",
)
@click.option(
    "--min-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Fewest rows a window needs for a verdict. Default: each version's (project.yaml monitoring.min_rows, 500).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=lambda ctx, param, value: _prom_path(value),
    help="Also write Prometheus metrics (atomically) for node-exporter's textfile collector (FILE.prom).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=lambda ctx, param, value: _output_path(value),
    help="Also write one self-contained HTML page (no network needed to open it).",
)
@click.option(
    "--every",
    type=Duration(),
    default=None,
    help="Repeat every DURATION (for --textfile), until stopped; the exit code is the last pass's.",
)
def monitor(
    logs_dir: Path,
    model_base_path: Path | None,
    model_name: str | None,
    model_config_file: Path | None,
    window_seconds: float,
    min_rows: int | None,
    as_json: bool,
    textfile: Path | None,
    html_file: Path | None,
    every: float | None,
) -> None:
    """Skew and drift of served traffic, from request logs.

    Reads the PredictionLog files under --logs (Predict, Classify and Regress; REST and gRPC alike),
    turns each request back into raw rows, groups them by the version that answered and by window,
    and compares each window with the training statistics that version carries (skew) and with the
    previous window (drift): L-infinity for categorical features, Jensen-Shannon divergence for
    numeric ones and for the predictions, against the project's thresholds. Also the share of
    refused requests. A window with fewer than --min-rows rows gets no verdict.
    """
    models = _models(model_base_path, model_name, model_config_file)
    if every is None:
        sys.exit(_one_pass(logs_dir, models, window_seconds, min_rows, as_json, textfile, html_file))
    # SIGTERM (a container stopping) ends the loop as Ctrl-C does: with the last pass's exit code.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code = 0
    try:
        while True:
            code = _one_pass(logs_dir, models, window_seconds, min_rows, as_json, textfile, html_file)
            time.sleep(every)
    except KeyboardInterrupt:
        sys.exit(code)


def _one_pass(logs_dir, models, window_seconds, min_rows, as_json, textfile, html_file) -> int:
    from tfxp.monitoring.monitor import monitor as run_monitor

    report = run_monitor(str(logs_dir), models, window_seconds, min_rows)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        _print_table(report, min_rows)
    try:
        if textfile is not None:
            from tfxp.monitoring.textfile import write_textfile

            write_textfile(report, str(textfile))
        if html_file is not None:
            from tfxp.monitoring.html import render_html

            html_file.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:  # the report is printed; what could not be written is named
        click.echo(f"error: could not write {exc.filename}: {exc.strerror}", err=True)
        return ExitCode.FAILURE
    return report.exit_code


def _print_table(report, min_rows: int | None) -> None:
    from tabulate import tabulate

    from tfxp.monitoring.report import TOO_FEW_ROWS

    windows = [
        [w.model, w.version, w.start, w.rows, w.requests, f"{w.refused_ratio:.1%}", w.verdict, w.note]
        for w in report.windows
    ]
    if windows:
        click.echo(
            tabulate(windows, headers=["model", "version", "window", "rows", "requests", "refused", "verdict", "note"])
        )
    findings = [
        [
            f.model,
            f.version,
            f.window_start,
            f.feature,
            f.kind,
            f.statistic,
            f"{f.value:.4f}",
            f.threshold,
            "OVER" if f.over else "",
        ]
        for f in report.findings
    ]
    if findings:
        click.echo()
        headers = ["model", "version", "window", "feature", "kind", "statistic", "value", "threshold", "over"]
        click.echo(tabulate(findings, headers=headers, disable_numparse=True))
    for s in report.skipped:
        click.echo(f"skipped ({s.reason}, {s.count}x): {s.where}: {s.message}", err=True)
    # A window is judged when something was compared in it (a version without a reference has nothing to
    # compare its first window with).
    compared = {(f.model, f.version, f.window_start) for f in report.findings}
    judged = [w for w in report.windows if (w.model, w.version, w.start) in compared]
    minimum = f"--min-rows {min_rows}" if min_rows is not None else "each version's min_rows"
    if not report.windows:
        click.echo("no verdict: no logged request of a monitored model was read")
    elif all(w.verdict == TOO_FEW_ROWS for w in report.windows):
        click.echo(f"no verdict: every window has fewer rows than its minimum ({minimum})")
    elif not judged:
        click.echo("no verdict: nothing could be compared (no reference, no earlier window): see the notes above")
    elif report.over:
        names = sorted({f"{f.feature} ({f.kind})" for f in report.over})
        click.echo(f"\nskew or drift over a threshold: {', '.join(names)}")
    else:
        click.echo(f"\nnothing over a threshold in {len(judged)} window(s)")
