"""`tfxp lineage VERSION`: the upstream graph of one pushed version, walked back through ML Metadata's events.

From the PushedModel artifact whose `pushed_version` is VERSION: its producer (the Pusher execution that made it,
not a later cached reuse), that execution's input artifacts, their producers, and so on back to CsvExampleGen,
whose Examples artifact names the input files by content (`input_files`: path, sha256, bytes, rows, span). The
walk follows recorded events, not the DAG as written today, so it tells what really happened, cached steps
included (a cached execution records the reused artifacts; the walk goes to the execution that made them). The
Evaluator's `baseline_model` is not walked (it belongs to an earlier version's lineage): its pushed version is
named instead. ML Metadata has the lineage but no open-source UI (TFX's MLMD, tensorflow/tfx#4226's thread).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tfxp.pipeline.mlmd import MetadataQueries, int_property, str_property

INPUT_FILES = "input_files"  # tfxp.pipeline.example_gen.INPUT_FILES_PROPERTY (not imported: it loads TFX)
# Artifact properties worth showing, TFX's and ours, when an artifact has them.
_SHOWN = ("span", "version", "input_fingerprint", "blessed", "pushed", "pushed_version", "split_names")
# Inputs that lead to another version's lineage, not this one's.
_NOT_WALKED = ("baseline_model",)


class LineageError(ValueError):
    """No such version (the message names the versions pushed)."""


@dataclass
class ArtifactNode:
    id: int
    type: str
    uri: str  # relative to the pipeline root when under it
    properties: dict[str, Any] = field(default_factory=dict)
    producer: int | None = None  # the execution id that made it
    pushed_version: str | None = None  # for a baseline model: the version it was pushed as


@dataclass
class ExecutionNode:
    id: int
    node: str
    state: str
    inputs: dict[str, list[int]] = field(default_factory=dict)  # input key -> artifact ids


@dataclass
class Lineage:
    pipeline: str
    version: str
    run: str | None  # the pipeline_run context of the Pusher execution that made the version
    root: int  # the PushedModel artifact
    artifacts: dict[int, ArtifactNode] = field(default_factory=dict)
    executions: dict[int, ExecutionNode] = field(default_factory=dict)
    input_files: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON of `tfxp lineage --json`: version, run, input_files, executions and artifacts as lists by id."""
        return {
            "pipeline": self.pipeline,
            "version": self.version,
            "run": self.run,
            "root": self.root,
            "input_files": self.input_files,
            "executions": [asdict(e) for _, e in sorted(self.executions.items())],
            "artifacts": [asdict(a) for _, a in sorted(self.artifacts.items())],
        }


def _relative(uri: str, root: str) -> str:
    return uri[len(root) :].lstrip("/") if root and uri.startswith(root.rstrip("/") + "/") else uri


def _properties(artifact) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source in (artifact.properties, artifact.custom_properties):
        for name in _SHOWN:
            if name in source:
                value = source[name]
                out[name] = value.string_value or value.int_value
    return out


def pushed_model(queries: MetadataQueries, version: str):
    """The serving Pusher's PushedModel artifact of `version`. Raises LineageError naming the versions pushed."""
    known = []
    for artifact in queries.store.get_artifacts_by_type("PushedModel"):
        pushed = str_property(artifact, "pushed_version")
        if not pushed or int_property(artifact, "pushed") != 1:
            continue
        producers = queries.executions_with(artifact.id, output=True)
        if not any(queries.node_of(e.id) == "Pusher" for e in producers):
            continue  # MobilePusher's output carries the same version
        if pushed == str(version):
            return artifact
        known.append(pushed)
    raise LineageError(f"no version {version} was pushed; versions pushed: {', '.join(sorted(set(known))) or 'none'}")


def _maker(queries: MetadataQueries, artifact_id: int):
    """The execution that made an artifact: the first COMPLETE producer (a cached execution only reuses it)."""
    producers = queries.executions_with(artifact_id, output=True)
    complete = [e for e in producers if queries.state(e) == "COMPLETE"]
    return (complete or producers or [None])[0]


def _inputs(queries: MetadataQueries, execution_id: int) -> dict[str, list]:
    kinds = (queries.pb2.Event.INPUT, queries.pb2.Event.DECLARED_INPUT)
    events = [e for e in queries.store.get_events_by_execution_ids([execution_id]) if e.type in kinds]
    artifacts = {a.id: a for a in queries.store.get_artifacts_by_id([e.artifact_id for e in events])}
    out: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        out.setdefault(key, []).append(artifacts[event.artifact_id])
    return out


def lineage(output: Path, name: str, version: str) -> Lineage:
    """The upstream graph of `version` of pipeline `name` under OUTPUT (OUTPUT/metadata/<name>/metadata.db).

    Raises LineageError when the metadata is missing (naming the path) or no such version was pushed."""
    path = Path(output) / "metadata" / name / "metadata.db"
    if not path.is_file():
        raise LineageError(f"no metadata for pipeline {name!r} at {path}")
    queries = MetadataQueries(path)
    root = pushed_model(queries, version)
    types = {t.id: t.name for t in queries.store.get_artifact_types()}
    pipeline_root = str(Path(output).resolve() / "pipelines" / name)
    maker = _maker(queries, root.id)
    run = queries.run_of(maker.id) if maker is not None else None
    graph = Lineage(name, str(version), run.name if run is not None else None, root.id)
    pending = [root]
    while pending:
        artifact = pending.pop()
        if artifact.id in graph.artifacts:
            continue
        execution = _maker(queries, artifact.id)
        node = ArtifactNode(artifact.id, types.get(artifact.type_id, "?"), _relative(artifact.uri, pipeline_root))
        node.properties = _properties(artifact)
        node.producer = execution.id if execution is not None else None
        graph.artifacts[artifact.id] = node
        if INPUT_FILES in artifact.custom_properties:
            graph.input_files = json.loads(artifact.custom_properties[INPUT_FILES].string_value or "[]")
        if execution is None or execution.id in graph.executions:
            continue
        step = ExecutionNode(execution.id, queries.node_of(execution.id) or "?", queries.state(execution))
        graph.executions[execution.id] = step
        for key, artifacts in _inputs(queries, execution.id).items():
            step.inputs[key] = [a.id for a in artifacts]
            for a in artifacts:
                if key in _NOT_WALKED:
                    base = ArtifactNode(a.id, types.get(a.type_id, "?"), _relative(a.uri, pipeline_root))
                    base.pushed_version = pushed_version_of(queries, a.id)
                    graph.artifacts.setdefault(a.id, base)
                else:
                    pending.append(a)
    return graph


def pushed_version_of(queries: MetadataQueries, model_id: int) -> str | None:
    """The version the serving Pusher pushed a Model artifact as (None: never pushed)."""
    for execution in queries.executions_with(model_id, output=False):
        if queries.node_of(execution.id) != "Pusher":
            continue
        events = queries.store.get_events_by_execution_ids([execution.id])
        outputs = [e.artifact_id for e in events if e.type == queries.pb2.Event.OUTPUT]
        for artifact in queries.store.get_artifacts_by_id(outputs):
            version = str_property(artifact, "pushed_version")
            if version and int_property(artifact, "pushed") == 1:
                return version
    return None


def render_text(graph: Lineage) -> str:
    """An indented tree from the version back to the input files; an execution met again is named, not repeated."""
    lines = [f"version {graph.version} of {graph.pipeline} (run {graph.run or 'unknown'})"]
    shown: set[int] = set()

    def artifact(artifact_id: int, key: str, depth: int) -> None:
        node = graph.artifacts[artifact_id]
        props = ", ".join(f"{k} {v}" for k, v in node.properties.items() if k != "split_names")
        pushed = f", pushed as version {node.pushed_version}" if node.pushed_version else ""
        lines.append("  " * depth + f"{key}: {node.type} {node.uri}" + (f" ({props})" if props else "") + pushed)
        if node.producer is not None and node.producer in graph.executions and key not in _NOT_WALKED:
            execution(node.producer, depth + 1)

    def execution(execution_id: int, depth: int) -> None:
        step = graph.executions[execution_id]
        if execution_id in shown:
            lines.append("  " * depth + f"<- {step.node} #{step.id} (above)")
            return
        shown.add(execution_id)
        lines.append("  " * depth + f"<- {step.node} #{step.id} {step.state.lower()}")
        if step.node == "CsvExampleGen":
            for f in graph.input_files:
                span = f", span {f['span']}" if f.get("span") is not None else ""
                lines.append(
                    "  " * (depth + 1)
                    + f"{f['path']}: sha256 {f['sha256']}, {f['bytes']:,} bytes, {f['rows']:,} rows{span}"
                )
        for key, ids in sorted(step.inputs.items()):
            for artifact_id in ids:
                artifact(artifact_id, key, depth + 1)

    artifact(graph.root, "pushed_model", 0)
    return "\n".join(lines)
