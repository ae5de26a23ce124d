"""`tfxp history` and `tfxp lineage`: what a pipeline pushed and ran, and where one version came from, read from
its version folders (model cards) and ML Metadata under --output.

ML Metadata (and, for a run's metrics, TFMA) is imported inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from tfxp.cli.exit_codes import epilog
from tfxp.cli.report import _quiet, pipeline_name

_OUTPUT = click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("output"),
    show_default=True,
    help="The --output of `tfxp run` (serving/<name>/ and metadata/<name>/metadata.db are read).",
)
_NAME = click.option("--name", default=None, help="Pipeline name. Default: the only pipeline under --output.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


def _short(files: list[dict]) -> str:
    """The data of a version or run in a table cell: "taxi.csv d940dcf4e7b5" (one file) or "3 files, spans 2-4"."""
    if not files:
        return "-"
    if len(files) == 1:
        return f"{files[0]['path']} {str(files[0]['sha256'])[:12]}"
    spans = sorted({f["span"] for f in files if f.get("span") is not None})
    return f"{len(files)} files" + (f", spans {spans[0]}-{spans[-1]}" if spans else "")


def _metrics_cell(entry: dict) -> str:
    metrics, deltas = entry.get("metrics") or {}, entry.get("deltas") or {}
    cells = []
    for name, value in metrics.items():
        change = deltas.get(name)
        cells.append(f"{name} {value:.4f}" if value is not None else f"{name} -")
        if change is not None:
            cells[-1] += f" ({change:+.4f})"
    return ", ".join(cells) or "-"


def _print_history(found: dict) -> None:
    from tabulate import tabulate

    versions = found["versions"]
    click.echo(f"versions of {found['pipeline']} (newest first; * served):")
    rows = [
        [
            f"{v['version']}{' *' if v['served'] else ''}",
            v["pushed_at"] or "-",
            _short(v["data"]),
            _metrics_cell(v),
            v["baseline_version"] or "-",
        ]
        for v in versions
    ]
    headers = ["version", "pushed at", "data (sha256)", "metrics (change vs baseline)", "baseline"]
    click.echo(tabulate(rows, headers=headers) if rows else "  none pushed")
    not_pushed = [r for r in found["runs"] if r["version"] is None and r["status"] != "cached"]
    click.echo(f"\nruns that pushed nothing ({len(not_pushed)} of {len(found['runs'])} runs):")
    rows = [[r["started"], r["status"], _short(r["data"]), r["reason"]] for r in not_pushed]
    if rows:
        click.echo(
            tabulate(rows, headers=["started", "status", "data (sha256)", "why"], maxcolwidths=[None, None, None, 70])
        )
    else:
        click.echo("  none")


@click.command("history", epilog=epilog("history"))
@_OUTPUT
@_NAME
@_JSON
def history(output: Path, name: str | None, as_json: bool) -> None:
    """Pushed versions and runs: data, metrics, why not pushed."""
    name = pipeline_name(output, name)
    _quiet()
    from tfxp.pipeline.history import history as read_history

    found = read_history(output, name)
    if not found["versions"] and not found["runs"]:
        raise click.UsageError(f"nothing pushed or run for {name!r} under {output}")
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _print_history(found)


@click.command("lineage", epilog=epilog("lineage"))
@click.argument("version")
@_OUTPUT
@_NAME
@_JSON
def lineage(version: str, output: Path, name: str | None, as_json: bool) -> None:
    """Where pushed VERSION came from, back to its input files."""
    name = pipeline_name(output, name)
    _quiet()
    from tfxp.pipeline.lineage import LineageError, lineage as read_lineage, render_text

    try:
        graph = read_lineage(output, name, version)
    except LineageError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(graph.as_dict(), indent=2) if as_json else render_text(graph))
