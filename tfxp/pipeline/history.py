"""`tfxp history`: every pushed version of a pipeline and every run, from the version folders and ML Metadata.

Versions come from the serving base path (OUTPUT/serving/<name>/<version>/), newest first, each described by its
model card (tfxp.pipeline.model_card) — data by sha256, headline metrics (the gated ones), their change against
the baseline, the baseline's version — and by its push record; a version pushed before cards existed is listed
with what is known (its push time; its data from ML Metadata when the store has its run) and null elsewhere.
Runs come from ML Metadata's pipeline_run contexts (one per `tfxp run` that reached the pipeline; a run the
preflight refused never started one), each with its status and why it pushed nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tfxp.files import is_version_name
from tfxp.pipeline.lineage import LineageError, lineage
from tfxp.pipeline.model_card import CARD_HTML, read_card
from tfxp.pipeline.publish import read_push_record

# A run's status: what it left behind.
PUSHED = "pushed"  # a new version
PUSHED_EARLIER = "pushed_earlier"  # blessed a model pushed before: no new version
CACHED = "cached"  # every component reused an earlier result
ANOMALIES = "anomalies"  # stopped at the data gate
DRIFT = "drift"  # stopped at the drift gate
NOT_BLESSED = "not_blessed"
FAILED = "failed"
INTERRUPTED = "interrupted"


def _data(files: list[dict]) -> list[dict]:
    return [{k: f.get(k) for k in ("path", "sha256", "rows", "bytes", "span")} for f in files]


def version_entry(output: Path, name: str, version_dir: Path, served: int | None) -> dict[str, Any]:
    """One version as `tfxp history --json` lists it: version, pushed_at, data, metrics, deltas,
    baseline_version, served, run, model_card (null where not known)."""
    version = int(version_dir.name)
    card = read_card(str(version_dir)) or {}
    record = read_push_record(str(version_dir)) or {}
    gates = (card.get("evaluation") or {}).get("gates") or []
    entry: dict[str, Any] = {
        "version": version,
        "pushed_at": (card.get("model") or {}).get("pushed_at") or record.get("pushed_at"),
        "data": _data((card.get("data") or {}).get("files") or []),
        "data_fingerprint": (card.get("data") or {}).get("fingerprint"),
        "metrics": {g["name"]: g.get("value") for g in gates} if card else None,
        "deltas": {g["name"]: g.get("change") for g in gates} if card.get("baseline") else None,
        "baseline_version": (card.get("baseline") or {}).get("version"),
        "served": version == served,
        "run": None,
        "model_card": str(version_dir / CARD_HTML) if card else None,
    }
    try:
        graph = lineage(output, name, str(version))
    except LineageError:
        return entry  # pushed from another output, or its store is gone: the card is what is known
    entry["run"] = graph.run
    if not entry["data"]:
        entry["data"] = _data(graph.input_files)
    return entry


def versions(output: Path, name: str) -> list[dict[str, Any]]:
    """Every version folder under OUTPUT/serving/<name>, newest first (TF Serving's latest policy serves the first)."""
    base = Path(output) / "serving" / name
    found = sorted((int(d) for d in os.listdir(base) if is_version_name(d)), reverse=True) if base.is_dir() else []
    served = found[0] if found else None
    return [version_entry(output, name, base / str(v), served) for v in found]


def _status(summary, steps) -> str:
    ran = [s for s in steps if s.state != "NOT RUN" and s.node not in ("baseline_resolver", "latest_hyperparameters")]
    failed = next((s for s in ran if s.state == "FAILED"), None)
    if ran and all(s.state == "CACHED" for s in ran):
        return CACHED
    if summary.pushed:
        return PUSHED_EARLIER if summary.pushed_earlier else PUSHED
    if failed is not None and failed.node == "DataDriftGate":
        return DRIFT
    if summary.anomalies:
        return ANOMALIES
    if summary.blessed is False:
        return NOT_BLESSED
    return FAILED if failed is not None else INTERRUPTED


def runs(output: Path, name: str) -> list[dict[str, Any]]:
    """Every run in ML Metadata, newest first: {"run", "started" (ISO 8601 UTC), "status", "reason" (null when
    pushed), "version" (the version it pushed or re-pushed), "data"}. [] without metadata."""
    from tfxp.pipeline.mlmd import MetadataQueries
    from tfxp.pipeline.run_report.collect import NODES, RunReader, input_files_of, outcome_of, step_of
    from tfxp.pipeline.summary import collect

    path = Path(output) / "metadata" / name / "metadata.db"
    if not path.is_file():
        return []
    queries = MetadataQueries(path)
    out = []
    for run in reversed(queries.runs()):
        ids = queries.run_ids(run)
        reader = RunReader(path, ids)
        nodes = {node: reader.latest(name, node, within=ids) for node in NODES}
        if not any(nodes.values()):
            continue  # a run of another pipeline in the same store
        summary = collect(reader, name)
        steps = [step_of(node, nodes[node]) for node in NODES]
        status = _status(summary, steps)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.create_time_since_epoch / 1000))
        out.append(
            {
                "run": run.name,
                "started": started,
                "status": status,
                "reason": None if status in (PUSHED, CACHED, PUSHED_EARLIER) else outcome_of(summary, steps),
                "version": int(summary.pushed_version) if summary.pushed and summary.pushed_version else None,
                "data": _data(input_files_of(nodes["CsvExampleGen"])),
            }
        )
    return out


def history(output: Path, name: str) -> dict[str, Any]:
    """`tfxp history --json`: {"pipeline", "versions": [...newest first], "runs": [...newest first]}."""
    return {"pipeline": name, "versions": versions(output, name), "runs": runs(output, name)}
