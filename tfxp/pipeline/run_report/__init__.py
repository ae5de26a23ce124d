"""The run report (`tfxp report`, and one per `tfxp run`): what a pipeline run read, checked, trained, evaluated and
pushed, as one self-contained HTML page. collect.py reads it from ML Metadata; render.py draws it (TF-free)."""

from __future__ import annotations

from pathlib import Path

from tfxp.pipeline.run_report.collect import ReportError, RunReport, collect_run
from tfxp.pipeline.run_report.render import render_html

__all__ = ["ReportError", "RunReport", "collect_run", "render_html", "write_report"]


def write_report(output: Path, name: str, html_file: Path, version: str | None = None) -> RunReport:
    """Collects the report of the run that pushed `version` (None: the newest run) and writes its page to
    `html_file` (folders made). Raises ReportError (see collect_run); OSError when the file can't be written."""
    report = collect_run(output, name, version)
    html_file = Path(html_file)
    html_file.parent.mkdir(parents=True, exist_ok=True)
    html_file.write_text(render_html(report), encoding="utf-8")
    return report
