"""`<output>/report.html`: one self-contained page on what the latest run did, opening
with what it shipped (pipeline/report/result.py).

Everything is found through MLMD (the latest pipeline_run of the config's pipeline),
never by globbing the pipeline root. Plots are PNG files under `<output>/report/`,
referenced relatively, so the page and its folder can be copied anywhere and opened
offline.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.config import LeanlineConfig
from pipeline.layout import (
    METADATA_FILE,
    REPORT_ASSETS_DIR,
    REPORT_FILE,
    SERVING_DIR,
    SUMMARY_FILE,
    TFLITE_DIR,
)
from pipeline.report.data import data_section, schema_section
from pipeline.report.evaluation import evaluation_section
from pipeline.report.graph import pipeline_nodes, pipeline_svg
from pipeline.report.markup import Markup, Section, badge, esc, note, page, paragraph
from pipeline.report.model import compression_section, serving_section, training_section
from pipeline.report.result import result_section
from pipeline.report.run import PipelineRun, load_run, open_existing_store
from pipeline.summary import latest_run_context

SECTION_TITLES = {
    "result": "Result",
    "pipeline": "Pipeline",
    "data": "Data",
    "schema": "Schema",
    "training": "Training",
    "evaluation": "Evaluation",
    "compression": "Compression",
    "serving": "Serving",
}

log = logging.getLogger(__name__)


def latest_run(output_dir: Path, pipeline_name: str) -> PipelineRun | None:
    """The latest run of `pipeline_name` recorded under `output_dir`, if any."""
    store = open_existing_store(output_dir / METADATA_FILE)
    context = latest_run_context(store, pipeline_name) if store else None
    return load_run(store, context) if context else None


def _run_error(output_dir: Path, run: PipelineRun) -> str | None:
    """The error `run_local` recorded for this run in run_summary.json, if any."""
    path = output_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    return recorded.get("error") if recorded.get("run_id") == run.run_id else None


def _pipeline_section(config: LeanlineConfig, run: PipelineRun | None, output_dir: Path) -> Markup:
    graph = pipeline_svg(pipeline_nodes(config), run)
    if run is None:
        return Markup(note(f"No run of {config.name!r} is recorded in {output_dir}.") + graph)
    counts: dict[str, int] = {}
    for component in run.components.values():
        counts[component.status] = counts.get(component.status, 0) + 1
    summary = paragraph(
        f"{len(run.components)} components ran in {run.wall_seconds:.1f} s: "
        + ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        + ". Bars show each component's wall time."
    )
    return Markup(summary + graph)


def _subtitle(run: PipelineRun | None) -> Markup:
    if run is None:
        return esc("no run recorded yet")
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_ms / 1000))
    return Markup(
        f"run {esc(run.run_id)} · started {esc(started)} · {run.wall_seconds:.1f} s · "
        f"{badge(run.status)}"
    )


def _build(anchor: str, build: Callable[[], Markup]) -> Section:
    """A section; one that cannot be built says why and the rest of the report stands,
    since the report is what a person reads to find out what went wrong."""
    try:
        body = build()
    except Exception as error:  # noqa: BLE001 - shown in the report and logged
        log.exception("report section %r failed", anchor)
        body = note(f"This section could not be built: {type(error).__name__}: {error}", "bad")
    return Section(anchor, SECTION_TITLES[anchor], body)


def write_report(output_dir: Path, config: LeanlineConfig) -> Path:
    """Writes `<output_dir>/report.html` (plus PNGs in `<output_dir>/report/`) for the
    latest run of `config`'s pipeline there; returns the page's path."""
    output_dir = Path(output_dir)
    run = latest_run(output_dir, config.name)
    assets = output_dir / REPORT_ASSETS_DIR
    assets.mkdir(parents=True, exist_ok=True)
    sections = [
        _build(
            "result",
            lambda: result_section(run, _run_error(output_dir, run) if run else None),
        ),
        _build("pipeline", lambda: _pipeline_section(config, run, output_dir)),
        _build("data", lambda: data_section(run)),
        _build("schema", lambda: schema_section(run)),
        _build("training", lambda: training_section(run, assets)),
        _build("evaluation", lambda: evaluation_section(run)),
        _build("compression", lambda: compression_section(run, assets)),
        _build(
            "serving",
            lambda: serving_section(
                run, output_dir / SERVING_DIR / config.name, output_dir / TFLITE_DIR / config.name
            ),
        ),
    ]
    path = output_dir / REPORT_FILE
    staging = path.with_suffix(".tmp")
    staging.write_text(page(f"leanline run report: {config.name}", _subtitle(run), sections))
    os.replace(staging, path)
    return path
