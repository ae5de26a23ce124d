"""Console output of a run: progress lines on stderr, the summary on stdout."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import click
from tabulate import tabulate

from tfxp.pipeline.runner import ComponentEvent, ExitCode, Outcome
from tfxp.pipeline.summary import COUNT_METRICS

# The table's columns, per task, in this order when present (TFMA's metric names). The
# confusion counts stay out (they explain "-" cells); multiclass per-class metrics get their own
# table by class name (_per_class_lines); --json keeps every metric.
_SUMMARY_METRICS = (
    "example_count",
    "auc",
    "binary_accuracy",
    "precision",
    "recall",
    "calibration",
    "sparse_categorical_accuracy",
    "mean_squared_error",
    "root_mean_squared_error",
    "mean_absolute_error",
)


def _columns(metrics: Mapping[str, Mapping[str, float | int | None]]) -> list[str]:
    """The table's metrics: those of _SUMMARY_METRICS some slice has (the task's)."""
    present = {name for values in metrics.values() for name in values}
    return [name for name in _SUMMARY_METRICS if name in present]


# A TFLite variant's name in words (tfxp.mobile.runtime.FLOAT / QUANT).
_VARIANT_TEXT = {"float": "float", "quant": "quantized"}

_NOTE_WIDTH = 100  # about the width of the table above the notes


def print_event(event: ComponentEvent) -> None:
    if event.status == "started":
        click.echo(f"  {event.node_id:<20} started", err=True)
    else:
        click.echo(f"  {event.node_id:<20} {event.status:<9} {event.seconds:7.1f} s", err=True)


def finite(value):
    """NaN/inf -> None: strict JSON has no NaN (the summary already turns undefined metrics into None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def as_json(outcome: Outcome) -> dict:
    """The summary for --json: undefined metrics are null, `undefined_metrics` says why."""
    return finite(
        {
            "exit_code": int(outcome.exit_code),
            "result": outcome.exit_code.name.lower(),
            "error": outcome.error,
            "log_file": outcome.log_file,
            **outcome.summary.as_dict(),
        }
    )


def _metrics_table(metrics: Mapping[str, Mapping[str, float | int | None]]) -> str:
    """One row per slice; "-" for an undefined metric (None or NaN), counts as integers."""
    columns = _columns(metrics)
    rows = [
        [slice_name] + [_cell(metric, metrics[slice_name].get(metric)) for metric in columns]
        for slice_name in _table_order(metrics)
    ]
    # floatfmt only touches float cells, so int counts print as "4966", not "4966.0000";
    # right alignment keeps "-" under the digits (decimal alignment puts it at the left).
    return tabulate(rows, headers=["slice", *columns], floatfmt=".4f", missingval="-", numalign="right")


def _cell(metric: str, value: float | int | None) -> float | int | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None  # printed as missingval "-"
    if metric in COUNT_METRICS and float(value).is_integer():
        return int(value)  # TFMA reports counts as doubles
    return value


def _table_order(slices: Iterable[str]) -> list[str]:
    """Overall first, then by feature, numeric values numerically (hour 2 before hour 10)."""
    return sorted(slices, key=lambda name: (name != "Overall", name.split("=")[0], _numeric_suffix(name)))


def _numeric_suffix(slice_name: str) -> tuple:
    value = slice_name.split("=", 1)[-1]
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _undefined_notes(undefined: Mapping[str, Mapping[str, str]], width: int = _NOTE_WIDTH) -> list[str]:
    """Lines under the table saying why each "-" is there, e.g. "auc: one class only on payment_type=Dispute".

    Metrics with the same reason on the same slices share a line ("recall, calibration:
    no positive labels on ..."). Only the table's metrics are explained; JSON has all.
    """
    slices = _table_order(undefined)
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for metric in _SUMMARY_METRICS:
        by_reason: dict[str, list[str]] = {}
        for slice_name in slices:
            reason = undefined[slice_name].get(metric)
            if reason is not None:
                by_reason.setdefault(reason, []).append(slice_name)
        for reason, names in by_reason.items():
            groups.setdefault((reason, tuple(names)), []).append(metric)
    if not groups:
        return []
    lines = ['"-" = undefined:']
    for (reason, names), group_metrics in groups.items():
        lines += _wrap(f"  {', '.join(group_metrics)}: {reason} on ", list(names), width)
    return lines


def _per_class_lines(per_class: Mapping[str, Mapping[str, float | int | None]], matrix: Mapping | None) -> list[str]:
    """Multiclass: per-class precision/recall by class name, then the confusion matrix; both top-1."""
    lines = []
    if per_class:
        rows = [[name, v.get("precision"), v.get("recall"), v.get("examples")] for name, v in per_class.items()]
        lines += [
            "\nper class, overall (top-1: a row counts as the class of its highest probability):",
            tabulate(rows, headers=["class", "precision", "recall", "examples"], floatfmt=".4f", missingval="-"),
        ]
    if matrix:
        classes = matrix["classes"]
        rows = [[name, *counts] for name, counts in zip(classes, matrix["counts"], strict=True)]
        headers = ["actual \\ predicted", *classes]
        if any(matrix["no_prediction"]):
            rows = [row + [n] for row, n in zip(rows, matrix["no_prediction"], strict=True)]
            headers.append("no prediction")
        lines += [
            "\nconfusion matrix, overall (rows: actual class; columns: predicted class, top-1):",
            tabulate(rows, headers=headers, numalign="right"),
        ]
    return lines


def _wrap(prefix: str, items: list[str], width: int) -> list[str]:
    """`prefix` + comma-separated items, broken only between items (slice values contain spaces)."""
    pieces = [item + "," for item in items[:-1]] + items[-1:]
    lines, line, empty = [], prefix, True
    for piece in pieces:
        if not empty and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line, empty = "    " + piece, False
        else:
            line, empty = (line + piece if empty else f"{line} {piece}"), False
    lines.append(line)
    return lines


def _data_line(files: list[dict]) -> str:
    """ "data: 2 files, 1,200 rows, spans 2, 3 (sha256 in the model card)"."""
    spans = sorted({f["span"] for f in files if f.get("span") is not None})
    rows = sum(f.get("rows", 0) for f in files)
    text = f"data: {len(files)} file{'s' if len(files) != 1 else ''}, {rows:,} rows"
    if spans:
        text += f", span{'s' if len(spans) != 1 else ''} " + ", ".join(str(s) for s in spans)
    if len(files) == 1:
        text += f" ({files[0]['path']}, sha256 {files[0]['sha256'][:12]}…)"
    return text


def _drift_line(drift: Mapping) -> str:
    """DataDriftGate's result in one line: against which served version, and what was over or accepted."""
    if drift.get("status") == "skipped":
        return f"data drift: not compared ({drift.get('skipped')})"
    over = [f for f in drift.get("findings", []) if f.get("over")]
    accepted = ", ".join(f"{f['feature']} {f['statistic']} {f['value']:.3g} > {f['threshold']:.3g}" for f in over)
    where = f"against served version {drift.get('served_version')}'s training data"
    return f"data drift {where}: " + (f"accepted: {accepted}" if accepted else "none over its threshold")


def _hyperparameters_line(record: dict, tuning: dict | None) -> str:
    """Which hyperparameters trained the model, and where they came from (tfxp.models.tuning)."""
    tuned = ("hidden_units", "embedding_dim", "learning_rate", "dropout", "train_batch_size")
    values = ", ".join(f"{k}={record['values'].get(k)}" for k in tuned)
    source = record.get("source")
    if source == "default":
        origin = "defaults (no tuning in this output yet: tfxp run --tune N)"
    else:
        origin = f"tuned by {source.get('tuner')} search, {source.get('completed')}/{source.get('trials')} trials"
        origin += f", run {source.get('run')}" if tuning is None else " (this run)"
    return f"hyperparameters: {values} — {origin}"


def _release_line(release: dict) -> str:
    """The canary push's line (tfxp.pipeline.canary_push)."""
    pinned = " (pinned the served versions in a specific policy first)" if release.get("pinned") else ""
    if release.get("error"):
        return f"release: canary not set: {release['error']}"
    if release.get("version") is None:
        return f"release: canary mode, no new version pushed; labels unchanged{pinned}"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(release["labels"].items()))
    if release.get("done"):
        return f"release: version {release['version']} is the canary ({labels}){pinned}"
    return (
        f"release: version {release['version']} is served beside stable ({labels}); once it is AVAILABLE, "
        f"label it: {release['next']}{pinned}"
    )


def print_summary(outcome: Outcome) -> None:
    summary = outcome.summary
    echo = click.echo
    echo(f"\npipeline {summary.pipeline}: {outcome.exit_code.name.lower()} in {summary.wall_seconds:.1f} s")
    if summary.input_files:
        echo(_data_line(summary.input_files))
    if summary.rows:
        echo("rows: " + ", ".join(f"{split} {n}" for split, n in summary.rows.items()))
    if summary.anomalies:
        echo(f"\ndata anomalies ({len(summary.anomalies)}):")
        echo(
            tabulate(
                [[a["feature"], a["split"], a["anomaly"], a["description"]] for a in summary.anomalies],
                headers=["feature", "split", "anomaly", "description"],
                maxcolwidths=[None, None, 30, 60],
            )
        )
        for feature, fix in dict.fromkeys((a["feature"], a.get("fix")) for a in summary.anomalies):
            if fix:  # how to accept a new value (anomalies.with_fixes), once per feature
                echo(f"{feature}: {fix}")
    else:
        echo("data anomalies: none" if summary.rows else "")
    if summary.drift:
        echo(_drift_line(summary.drift))
    if summary.metrics:
        echo("\n" + _metrics_table(summary.metrics))
        for line in _undefined_notes(summary.undefined_metrics):
            echo(line)
    for line in _per_class_lines(summary.per_class, summary.confusion_matrix):
        echo(line)
    if summary.blessed is not None:
        echo(
            f"\nblessed: {'yes' if summary.blessed else 'no'}"
            + (f" (baseline {summary.baseline_model})" if summary.baseline_model else " (no baseline yet)")
        )
    for failure in summary.failures:
        echo(f"  threshold failed: {failure}")
    if summary.pushed and summary.fully_cached:
        echo(f"pushed: {summary.pushed_path} (by an earlier run; every component was cached)")
    elif summary.pushed and summary.pushed_earlier:
        echo(f"pushed: {summary.pushed_path} (this model was pushed before; no new version)")
    elif summary.pushed:
        echo(f"pushed: {summary.pushed_path}")
    else:
        echo("pushed: nothing")
    if summary.model_card:
        echo(f"model card: {summary.model_card}")
    if summary.release is not None:
        echo(_release_line(summary.release))
    if summary.hyperparameters is not None:
        echo(_hyperparameters_line(summary.hyperparameters, summary.tuning))
    if summary.pushed and summary.served_version not in (None, summary.pushed_version):
        echo(
            f"note: version {summary.served_version} is newer, so TF Serving (latest policy) serves it, "
            f"not {summary.pushed_version}"
        )
    if summary.mobile_pushed:
        echo(f"mobile: {summary.mobile_path} ({', '.join(summary.mobile_variants)})")
    elif summary.pushed and summary.mobile_error:
        echo(f"mobile: not pushed: {summary.mobile_error}")
    for variant, reasons in summary.mobile_rejected.items():
        echo(f"mobile: {_VARIANT_TEXT.get(variant, variant)} variant not pushed: {'; '.join(reasons)}")
    if outcome.error and outcome.exit_code is not ExitCode.PUSHED:
        echo(f"\nerror: {outcome.error}", err=True)
    if outcome.log_file:
        echo(f"log: {outcome.log_file}")
