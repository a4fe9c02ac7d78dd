"""The report's opening section: what the run shipped, as the run summary's first lines
say it. The pushed version or why nothing was pushed; the shipped model.tflite's zipped
size and quality against its float twin (the file TF Serving serves with
--prefer_tflite_model and devices run, not the model part inside it, which stands beside
it, labelled); and each gate's decision. A person reads this first, so it states the
figures of the file that ships."""

from __future__ import annotations

from components.compressor.spec import COMPRESSION_REPORT_KEY
from pipeline.layout import COMPRESSOR
from pipeline.report.evaluation import DECIDING
from pipeline.report.markup import Markup, note, paragraph
from pipeline.report.model import push_outcome
from pipeline.report.run import PipelineRun, custom_property
from pipeline.summary import blessings_words, custom_properties, tflite_figures


def result_section(run: PipelineRun | None, error: str | None) -> Markup:
    """`error`: what `run_local` recorded for this run, if it failed."""
    parts = [note(f"The run failed: {error}", "bad")] if error else []
    parts.append(push_outcome(run))
    if run is None:
        return Markup("".join(parts))
    report = run.artifact(COMPRESSOR, COMPRESSION_REPORT_KEY)
    shipped, model_part = tflite_figures(custom_properties(report) if report else {})
    if shipped is not None:
        parts.append(paragraph(f"Shipped: {shipped.words()}."))
    if model_part is not None:
        parts.append(paragraph(f"Model part: {model_part.words()}."))
    if shipped is None and model_part is None:
        parts.append(note("No compression figures: the Compressor did not run."))
    # In the order the gates ran.
    blessings = {
        gate: custom_property(blessing, "blessed") == 1
        for gate in run.components
        if gate in DECIDING and (blessing := run.artifact(gate, "blessing")) is not None
    }
    parts.append(
        paragraph(f"Gates: {blessings_words(blessings)}.") if blessings else note("No gate ran.")
    )
    return Markup("".join(parts))
