"""Console output of a run: progress lines on stderr, the summary on stdout."""
from __future__ import annotations

import math

import click
from tabulate import tabulate

from pipeline.runner import ComponentEvent, ExitCode, Outcome

_SUMMARY_METRICS = ("example_count", "auc", "binary_accuracy", "precision", "recall", "calibration")


def print_event(event: ComponentEvent) -> None:
    if event.status == "started":
        click.echo(f"  {event.node_id:<20} started", err=True)
    else:
        click.echo(f"  {event.node_id:<20} {event.status:<9} {event.seconds:7.1f} s", err=True)


def finite(value):
    """NaN/inf -> None: strict JSON has no NaN, and TFMA reports NaN for empty slices."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def as_json(outcome: Outcome) -> dict:
    return finite({
        "exit_code": int(outcome.exit_code),
        "result": outcome.exit_code.name.lower(),
        "error": outcome.error,
        "log_file": outcome.log_file,
        **outcome.summary.as_dict(),
    })


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    def order(slice_name: str) -> tuple:
        return (slice_name != "Overall", slice_name.split("=")[0], _numeric_suffix(slice_name))

    rows = []
    for slice_name in sorted(metrics, key=order):
        values = metrics[slice_name]
        rows.append([slice_name] + [values.get(m) for m in _SUMMARY_METRICS])
    return tabulate(rows, headers=["slice", *_SUMMARY_METRICS], floatfmt=".4f", missingval="-")


def _numeric_suffix(slice_name: str) -> tuple:
    value = slice_name.split("=", 1)[-1]
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def print_summary(outcome: Outcome) -> None:
    summary = outcome.summary
    echo = click.echo
    echo(f"\npipeline {summary.pipeline}: {outcome.exit_code.name.lower()} in {summary.wall_seconds:.1f} s")
    if summary.rows:
        echo("rows: " + ", ".join(f"{split} {n}" for split, n in summary.rows.items()))
    if summary.anomalies:
        echo(f"\ndata anomalies ({len(summary.anomalies)}):")
        echo(tabulate(
            [[a["feature"], a["split"], a["anomaly"], a["description"]] for a in summary.anomalies],
            headers=["feature", "split", "anomaly", "description"],
            maxcolwidths=[None, None, 30, 60],
        ))
    else:
        echo("data anomalies: none" if summary.rows else "")
    if summary.metrics:
        echo("\n" + _metrics_table(summary.metrics))
    if summary.blessed is not None:
        echo(f"\nblessed: {'yes' if summary.blessed else 'no'}"
             + (f" (baseline {summary.baseline_model})" if summary.baseline_model else " (no baseline yet)"))
    for failure in summary.failures:
        echo(f"  threshold failed: {failure}")
    if summary.pushed and summary.fully_cached:
        echo(f"pushed: {summary.pushed_path} (by an earlier run; every component was cached)")
    elif summary.pushed:
        echo(f"pushed: {summary.pushed_path}")
    else:
        echo("pushed: nothing")
    if summary.mobile_pushed:
        echo(f"mobile: {summary.mobile_path} ({', '.join(summary.mobile_variants)})")
    for variant, reasons in summary.mobile_rejected.items():
        echo(f"mobile variant {variant} not pushed: {'; '.join(reasons)}")
    if outcome.error and outcome.exit_code is not ExitCode.PUSHED:
        echo(f"\nerror: {outcome.error}", err=True)
    if outcome.log_file:
        echo(f"log: {outcome.log_file}")
