"""Read-only queries of the pipeline's ML Metadata store (what ran, what it produced)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class NodeRun:
    """The latest execution of one pipeline node and its output artifacts."""

    node_id: str
    execution_id: int
    state: str  # COMPLETE, CACHED, FAILED, RUNNING, ...
    outputs: dict[str, list] = field(default_factory=dict)  # output key -> MLMD Artifact protos
    inputs: dict[str, list] = field(default_factory=dict)  # input key -> MLMD Artifact protos

    def output(self, key: str):
        artifacts = self.outputs.get(key) or []
        return artifacts[-1] if artifacts else None

    def input(self, key: str):
        artifacts = self.inputs.get(key) or []
        return artifacts[-1] if artifacts else None


class MetadataReader:
    def __init__(self, sqlite_path: Path):
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2

        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(sqlite_path)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        self._store = metadata_store.MetadataStore(config)
        self._pb2 = metadata_store_pb2

    def executions(self, pipeline_name: str, node_id: str) -> list:
        context = self._store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
        if context is None:
            return []
        return sorted(self._store.get_executions_by_context(context.id), key=lambda e: e.id)

    def latest_run_execution_ids(self) -> set[int]:
        """Executions of the newest pipeline run (LocalDagRunner makes one run context per run)."""
        runs = self._store.get_contexts_by_type("pipeline_run")
        if not runs:
            return set()
        newest = max(runs, key=lambda c: c.id)
        return {e.id for e in self._store.get_executions_by_context(newest.id)}

    def latest(self, pipeline_name: str, node_id: str, within: set[int] | None = None) -> NodeRun | None:
        """The node's newest execution, optionally only among the execution ids `within`."""
        executions = self.executions(pipeline_name, node_id)
        if within is not None:
            executions = [e for e in executions if e.id in within]
        if not executions:
            return None
        execution = executions[-1]
        state = self._pb2.Execution.State.Name(execution.last_known_state)
        run = NodeRun(node_id, execution.id, state)
        events = self._store.get_events_by_execution_ids([execution.id])
        artifacts = {a.id: a for a in self._store.get_artifacts_by_id([e.artifact_id for e in events])}
        output_types = (self._pb2.Event.OUTPUT, self._pb2.Event.DECLARED_OUTPUT)
        input_types = (self._pb2.Event.INPUT, self._pb2.Event.DECLARED_INPUT)
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            if event.type in output_types:
                run.outputs.setdefault(key, []).append(artifacts[event.artifact_id])
            elif event.type in input_types:
                run.inputs.setdefault(key, []).append(artifacts[event.artifact_id])
        return run


def int_property(artifact, name: str) -> int | None:
    if artifact is None or name not in artifact.custom_properties:
        return None
    return artifact.custom_properties[name].int_value


def str_property(artifact, name: str) -> str | None:
    if artifact is None or name not in artifact.custom_properties:
        return None
    return artifact.custom_properties[name].string_value
