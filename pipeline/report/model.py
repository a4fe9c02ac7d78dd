"""Report sections on the model: training curves, compression, and the pushed versions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from components.compressor.spec import COMPRESSION_REPORT_KEY, REPORT_JSON
from components.serving_pusher.spec import (
    NOT_PUSHED_REASON_PROPERTY,
    PUSH_SUMMARY_FILE,
    PUSHED_DESTINATION_PROPERTY,
    PUSHED_MODEL_KEY,
    PUSHED_PROPERTY,
    PUSHED_VERSION_PROPERTY,
)
from models.common.export import saved_classes
from models.common.quality import (
    QUALITY_TITLES,
    budget_words,
    format_quality,
    quality_change_words,
)
from models.config import LOWER_IS_BETTER_METRICS
from pipeline.layout import COMPRESSOR, EVALUATE_COMPRESSION, SERVING_PUSHER, SLICE_GATE, TRAINER
from pipeline.report import plots
from pipeline.report.markup import (
    Markup,
    heading,
    image,
    note,
    number,
    paragraph,
    percent,
    table,
)
from pipeline.report.run import PipelineRun, custom_property
from pipeline.summary import artifact_json
from serving.versions import existing_versions

TRAINING_PLOT = "training_curves.png"
COMPRESSION_PLOT = "quality_vs_size.png"
SEARCH_PLOT = "search_frontier.png"
# Compression report variants: (label, quality key, size key).
_VARIANTS = (
    ("float Keras", "float_keras", "float_saved_model_variables"),
    ("float TFLite", "float_tflite", "float_tflite"),
    ("compressed Keras (served)", "compressed_keras", "compressed_saved_model_variables"),
    ("compressed TFLite", "compressed_tflite", "compressed_tflite"),
)


def training_section(run: PipelineRun | None, assets: Path) -> Markup:
    from models.common.train import HISTORY_FILE  # TFX: not for `leanline runs`

    model_run = run.artifact(TRAINER, "model_run") if run else None
    history = artifact_json(model_run.uri, HISTORY_FILE) if model_run else None
    if history is None:
        return note("No training history: the Trainer did not run.")
    epochs = history["epochs"]
    if not epochs:
        return note("The Trainer recorded no epochs.")
    plot = plots.training_curves(epochs, assets / TRAINING_PLOT)
    last = epochs[-1]
    details = (
        f"{len(epochs)} epochs of {history.get('steps_per_epoch', '?')} steps, "
        f"global batch size {history.get('global_batch_size', '?')}, "
        f"{history.get('replicas', 1)} replica(s)."
    )
    if history.get("schedule_reason"):
        details += (
            f" Chosen for {history['fitted_rows']} training rows: {history['schedule_reason']}."
        )
    if history.get("best_epoch"):
        details += (
            f" Validation on {history['validation_rows']}; the model keeps epoch "
            f"{history['best_epoch']}'s weights (lowest validation loss)."
        )
    metrics = [name for name in last if name != "epoch"]
    return Markup(
        paragraph(details)
        + image(f"{assets.name}/{plot.name}", "training curves")
        + heading("Last epoch")
        + table(metrics, [[number(last[name]) for name in metrics]], align="r" * len(metrics))
    )


def _headline(report: dict[str, Any]) -> dict[str, float]:
    """The report's headline; a report written before regression named its figures after
    accuracy."""
    head = dict(report["headline"])
    for old, new in (
        ("float_accuracy", "float_quality"),
        ("compressed_accuracy", "compressed_quality"),
        ("accuracy_delta", "quality_change"),
    ):
        head.setdefault(new, head.get(old))
    return head


def _compression_table(report: dict[str, Any]) -> Markup:
    shown = [
        name for name in QUALITY_TITLES if report["quality"]["float_keras"].get(name) is not None
    ]
    rows = []
    for label, quality_key, size_key in _VARIANTS:
        size, quality = report["sizes"][size_key], report["quality"][quality_key]
        timings = report["latency_ms"].get(quality_key, {})
        rows.append(
            [
                label,
                number(size["bytes"]),
                number(size["zipped_bytes"]),
                *(format_quality(name, quality.get(name)) for name in shown),
                *(
                    f"{number(t['p50_ms'])} / {number(t['p95_ms'])}" if t else "-"
                    for t in (timings.get("batch_1"), timings.get("batch_256"))
                ),
            ]
        )
    return table(
        [
            "model",
            "size (bytes)",
            "zipped (bytes)",
            *(QUALITY_TITLES[name] for name in shown),
            "batch 1 p50 / p95 ms",
            "batch 256 p50 / p95 ms",
        ],
        rows,
    )


def compression_section(run: PipelineRun | None, assets: Path) -> Markup:

    artifact = run.artifact(COMPRESSOR, COMPRESSION_REPORT_KEY) if run else None
    report = artifact_json(artifact.uri, REPORT_JSON) if artifact else None
    if report is None:
        return note("No compression report: the Compressor did not run.")
    if not report.get("enabled"):
        return note(report.get("message", "Compression is disabled."))
    head, metric = _headline(report), report.get("quality_metric", "accuracy")
    points = {
        label: (
            report["sizes"][size_key]["zipped_bytes"],
            report["quality"][quality_key][metric],
        )
        for label, quality_key, size_key in _VARIANTS
    }
    plot = plots.quality_vs_size(points, QUALITY_TITLES[metric], assets / COMPRESSION_PLOT)
    config = report["config"]
    sparsity = report["sparsity_by_layer"]
    return Markup(
        paragraph(
            "Model part (the model alone on transformed features, transformed_inputs.tflite): "
            f"the compressed TFLite is {head['tflite_zipped_ratio']:.1f}x smaller zipped than "
            f"the float TFLite; {quality_change_words(metric, head)} "
            f"on {number(report['eval_examples'])} eval rows."
        )
        + paragraph(
            f"Quantization: {config['quantization']} ({report['tflite_format']}); pruning: "
            + (
                f"{percent(config['pruning']['target_sparsity'])} target sparsity"
                if config["pruning"]["enabled"]
                else "off"
            )
            + f". Latency measured with {report['interpreter']} for TFLite."
        )
        + _compression_table(report)
        + image(f"{assets.name}/{plot.name}", f"{QUALITY_TITLES[metric]} vs size")
        + _end_to_end_section(report.get("end_to_end"))
        + _search_section(report.get("search"), assets)
        + heading("Sparsity by layer")
        + table(["layer", "sparsity"], [[name, percent(value)] for name, value in sparsity.items()])
    )


def _end_to_end_section(summary: dict[str, Any] | None) -> Markup:
    """The end-to-end TFLite files (models.common.end_to_end): the compressed one is the
    shipped model.tflite, with the Transform inside. Reports written before its headline
    keep their figures in report.md alone."""
    if not summary or "headline" not in summary:
        return Markup("")
    head, metric = summary["headline"], summary["quality_metric"]
    qualities = summary["quality"]
    shown = [name for name in QUALITY_TITLES if qualities["float_tflite"].get(name) is not None]
    rows = [
        [
            label,
            number(summary["sizes"][variant]["bytes"]),
            number(summary["sizes"][variant]["zipped_bytes"]),
            *(format_quality(name, qualities[variant].get(name)) for name in shown),
        ]
        for label, variant in (
            ("float end-to-end TFLite", "float_tflite"),
            ("compressed end-to-end TFLite (model.tflite, shipped)", "compressed_tflite"),
        )
    ]
    return Markup(
        heading("End-to-end TFLite (the shipped model.tflite)")
        + paragraph(
            f"{summary['format']}. Raw features in, the Transform inside: the file TF Serving "
            "serves with --prefer_tflite_model and devices run. It is "
            f"{head['tflite_zipped_ratio']:.1f}x smaller zipped than the float end-to-end "
            f"TFLite; {quality_change_words(metric, head)} on {number(summary['eval_rows'])} "
            "eval rows."
        )
        + table(
            ["model", "size (bytes)", "zipped (bytes)", *(QUALITY_TITLES[n] for n in shown)],
            rows,
        )
    )


def _search_section(search: dict[str, Any] | None, assets: Path) -> Markup:
    """The compression search's trials, drawn as a size-quality frontier and listed."""
    if not search:
        return Markup("")
    metric = search["metric"]
    plot = plots.search_frontier(
        search["trials"],
        (search["float_zipped_bytes"], search["float_quality"]),
        QUALITY_TITLES[metric],
        assets / SEARCH_PLOT,
        lower_is_better=metric in LOWER_IS_BETTER_METRICS,
    )
    budget = budget_words(metric, search["budget_kind"], search["budget"])
    rows = [
        [
            f"{trial['recipe']} (chosen)" if trial["chosen"] else trial["recipe"],
            number(trial["estimated_zipped_bytes"]),
            number(trial["zipped_bytes"]) if trial["zipped_bytes"] is not None else "-",
            format_quality(metric, trial["quality"]),
            f"{trial['seconds']:.1f}",
            trial["outcome"],
        ]
        for trial in search["trials"]
    ]
    return Markup(
        heading("Compression search")
        + paragraph(
            f"Chosen: {search['chosen']}. Budget: {budget} against the trained model "
            f"({format_quality(metric, search['float_quality'])}) on "
            f"{number(search['validation_examples'])} validation rows held out of the train "
            f"split (no eval row); {search['stopped']}; {search['seconds']:.0f} s."
        )
        + image(f"{assets.name}/{plot.name}", "compression search frontier")
        + table(
            [
                "candidate",
                "estimated zipped",
                "zipped (bytes)",
                QUALITY_TITLES[metric],
                "seconds",
                "outcome",
            ],
            rows,
            align="lrrrrl",
        )
    )


def push_outcome(run: PipelineRun | None) -> Markup:
    """The pushed version and where, or why nothing was pushed."""
    pushed = run.artifact(SERVING_PUSHER, PUSHED_MODEL_KEY) if run else None
    if pushed is None:
        return note(f"Nothing was pushed: {_why_pusher_skipped(run)}.", "bad" if run else "missing")
    if custom_property(pushed, PUSHED_PROPERTY) == 1:
        version = custom_property(pushed, PUSHED_VERSION_PROPERTY)
        destination = custom_property(pushed, PUSHED_DESTINATION_PROPERTY)
        return note(f"This run pushed version {version} to {destination}.", "ok")
    reason = custom_property(pushed, NOT_PUSHED_REASON_PROPERTY) or "no reason recorded"
    return note(f"Not pushed: {reason}", "bad")


def serving_section(run: PipelineRun | None, serving_dir: Path, tflite_dir: Path) -> Markup:

    outcome = push_outcome(run)
    pushed = run.artifact(SERVING_PUSHER, PUSHED_MODEL_KEY) if run else None
    if pushed is not None and custom_property(pushed, PUSHED_PROPERTY) == 1:
        push = artifact_json(pushed.uri, PUSH_SUMMARY_FILE)
        if push is not None:
            outcome = Markup(
                outcome
                + paragraph(
                    f"Checked before publishing: {push['warmup_requests']} warm-up requests, "
                    f"in-process latency p50 {number(push['latency_p50_ms'])} ms, "
                    f"p95 {number(push['latency_p95_ms'])} ms."
                )
            )
    versions = existing_versions(serving_dir)
    if not versions:
        return Markup(outcome + paragraph(f"No versions in {serving_dir} yet."))
    tflite_versions = set(existing_versions(tflite_dir))
    rows = [
        [
            str(version),
            _modified(serving_dir / str(version)),
            "yes" if version in tflite_versions else "no",
            _classes_words(serving_dir / str(version)),
            "serving" if version == versions[-1] else "",
        ]
        for version in reversed(versions)
    ]
    return Markup(
        outcome
        + paragraph(f"Versions in {serving_dir} (TF Serving serves the highest):")
        + table(["version", "published", "TFLite", "classes (by id)", ""], rows, align="rllll")
    )


def _classes_words(version_dir: Path) -> str:
    """The classes a version answers, in id order: `0 Adelie, 1 Chinstrap, 2 Gentoo`."""

    classes = saved_classes(str(version_dir))
    if classes is None:
        return "none recorded"  # a regressor, or a version pushed before classes were
    return ", ".join(f"{class_id} {name}" for class_id, name in enumerate(classes))


def _why_pusher_skipped(run: PipelineRun | None) -> str:
    if run is None:
        return "no run is recorded"
    for gate in (EVALUATE_COMPRESSION, SLICE_GATE):
        blessing = run.artifact(gate, "blessing")
        if blessing is not None and custom_property(blessing, "blessed") != 1:
            return f"{gate} did not bless the compressed model (see Evaluation)"
    return "the run stopped before the pusher"


def _modified(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
