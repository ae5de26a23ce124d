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


class MetadataQueries:
    """Read-only ML Metadata queries beyond MetadataReader's: runs, producers and consumers of artifacts."""

    def __init__(self, sqlite_path: Path):
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2

        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(sqlite_path)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        self.store = metadata_store.MetadataStore(config)
        self.pb2 = metadata_store_pb2

    def runs(self) -> list:
        """Every pipeline_run context, oldest first."""
        return sorted(self.store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)

    def run_ids(self, run) -> set[int]:
        return {e.id for e in self.store.get_executions_by_context(run.id)}

    def run_of(self, execution_id: int):
        runs = [c for c in self.store.get_contexts_by_execution(execution_id) if c.type_id == self._run_type()]
        return runs[0] if runs else None

    def _run_type(self) -> int:
        return self.store.get_context_type("pipeline_run").id

    def node_of(self, execution_id: int) -> str | None:
        node_type = self.store.get_context_type("node").id
        for context in self.store.get_contexts_by_execution(execution_id):
            if context.type_id == node_type:
                return context.name.split(".", 1)[-1]
        return None

    def executions_with(self, artifact_id: int, output: bool) -> list:
        """Executions that produced (output) or read (not output) the artifact, oldest first."""
        kinds = (
            (self.pb2.Event.OUTPUT, self.pb2.Event.DECLARED_OUTPUT)
            if output
            else (self.pb2.Event.INPUT, self.pb2.Event.DECLARED_INPUT)
        )
        ids = sorted({e.execution_id for e in self.store.get_events_by_artifact_ids([artifact_id]) if e.type in kinds})
        return self.store.get_executions_by_id(ids) if ids else []

    def state(self, execution) -> str:
        return self.pb2.Execution.State.Name(execution.last_known_state)


def int_property(artifact, name: str) -> int | None:
    if artifact is None or name not in artifact.custom_properties:
        return None
    return artifact.custom_properties[name].int_value


def str_property(artifact, name: str) -> str | None:
    if artifact is None or name not in artifact.custom_properties:
        return None
    return artifact.custom_properties[name].string_value
