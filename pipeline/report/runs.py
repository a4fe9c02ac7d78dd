"""`leanline runs`: one line per pipeline run recorded in an output directory's MLMD."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from components.serving_pusher.spec import PUSHED_PROPERTY, PUSHED_VERSION_PROPERTY
from components.slice_gate.spec import CANDIDATE
from models.errors import UserError
from pipeline.layout import EVALUATE_COMPRESSION, SERVING_PUSHER
from pipeline.report.evaluation import DECIDING, load_evaluation
from pipeline.report.run import (
    PipelineRun,
    custom_property,
    load_run,
    open_existing_store,
    run_contexts,
)

HEADERS = ("run", "pipeline", "started", "status", "seconds", "blessed", "pushed", "metric")


@dataclasses.dataclass(frozen=True)
class RunRow:
    run_id: str
    pipeline: str
    started: str
    status: str
    seconds: float
    blessed: str  # yes, no (which gate), or - when no gate ran
    pushed_version: str | None
    # The gated metric of the compressed model on the overall slice, e.g. "auc 0.8123".
    metric: str | None

    def cells(self) -> tuple[str, ...]:
        return (
            self.run_id,
            self.pipeline,
            self.started,
            self.status,
            f"{self.seconds:.1f}",
            self.blessed,
            self.pushed_version or "-",
            self.metric or "-",
        )


def _blessed(run: PipelineRun) -> str:
    refused = []
    decided = False
    for gate in DECIDING:
        blessing = run.artifact(gate, "blessing")
        if blessing is not None:
            decided = True
            if custom_property(blessing, "blessed") != 1:
                refused.append(gate)
    if not decided:
        return "-"
    return f"no ({', '.join(refused)})" if refused else "yes"


def _pushed_version(run: PipelineRun) -> str | None:
    pushed = run.artifact(SERVING_PUSHER, "pushed_model")
    if pushed is None or custom_property(pushed, PUSHED_PROPERTY) != 1:
        return None
    return custom_property(pushed, PUSHED_VERSION_PROPERTY)


def _metric(run: PipelineRun) -> str | None:
    evaluation = load_evaluation(run, EVALUATE_COMPRESSION)
    if evaluation is None or evaluation.gated_metric is None:
        return None
    value = evaluation.overall(CANDIDATE, evaluation.gated_metric)
    return None if value is None else f"{evaluation.gated_metric} {value:.4f}"


def run_rows(metadata_path: Path) -> list[RunRow]:
    """Every run in the store, oldest first."""
    store = open_existing_store(metadata_path)
    if store is None:
        raise UserError(f"no runs recorded: {metadata_path} does not exist")
    rows = []
    for context in run_contexts(store):
        run = load_run(store, context)
        rows.append(
            RunRow(
                run_id=run.run_id,
                pipeline=run.pipeline,
                started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_ms / 1000)),
                status=run.status,
                seconds=run.wall_seconds,
                blessed=_blessed(run),
                pushed_version=_pushed_version(run),
                metric=_metric(run),
            )
        )
    return rows


def format_runs(rows: list[RunRow]) -> str:
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )
