"""A pipeline run as MLMD recorded it: each component's status, wall time and outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline.summary import STATE_NAMES, node_id, open_store, outputs, property_value


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    id: str
    status: str  # complete, cached, failed, running, ...
    started_ms: int
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    # Execution properties as recorded (JSON strings for protos, e.g. Evaluator's eval_config).
    properties: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    pipeline: str
    run_id: str
    started_ms: int
    components: dict[str, ComponentRun]  # by component id, in start order

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.components.values()}
        for worst in ("failed", "canceled", "running"):
            if worst in statuses:
                return worst
        return "complete"

    @property
    def wall_seconds(self) -> float:
        ends = [c.started_ms + c.seconds * 1000 for c in self.components.values()]
        return (max(ends, default=self.started_ms) - self.started_ms) / 1000

    def artifact(self, component: str, key: str) -> metadata_store_pb2.Artifact | None:
        """The (first) artifact `component` produced under output `key`, if it ran."""
        run = self.components.get(component)
        artifacts = run.outputs.get(key, []) if run else []
        return artifacts[0] if artifacts else None


def custom_property(artifact: metadata_store_pb2.Artifact, key: str) -> Any:
    return property_value(artifact.custom_properties, key)


def _pipeline_name(store: mlmd.MetadataStore, run_context: metadata_store_pb2.Context) -> str:
    parents = store.get_parent_contexts_by_context(run_context.id)
    return next((p.name for p in parents if p.type == "pipeline"), "?")


def _component_run(
    store: mlmd.MetadataStore, execution: metadata_store_pb2.Execution
) -> ComponentRun:
    return ComponentRun(
        id=node_id(store, execution.id),
        status=STATE_NAMES.get(execution.last_known_state, "unknown"),
        started_ms=execution.create_time_since_epoch,
        seconds=(execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000,
        outputs=outputs(store, execution.id),
        properties={
            key: property_value(execution.custom_properties, key)
            for key in execution.custom_properties
        },
    )


def load_run(store: mlmd.MetadataStore, run_context: metadata_store_pb2.Context) -> PipelineRun:
    executions = sorted(
        store.get_executions_by_context(run_context.id),
        key=lambda e: (e.create_time_since_epoch, e.id),
    )
    # A component executed twice in one run (a retry) is shown by its last execution.
    components = {run.id: run for run in (_component_run(store, e) for e in executions)}
    return PipelineRun(
        pipeline=_pipeline_name(store, run_context),
        run_id=run_context.name,
        started_ms=run_context.create_time_since_epoch,
        components=components,
    )


def run_contexts(store: mlmd.MetadataStore) -> list[metadata_store_pb2.Context]:
    """Every pipeline run the store knows, oldest first."""
    return sorted(
        store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch
    )


def open_existing_store(metadata_path: Path) -> mlmd.MetadataStore | None:
    """The store read-only, or None when no run has written one yet."""
    return open_store(metadata_path) if metadata_path.is_file() else None
