"""The Evaluators' results: metrics per slice for candidate and baseline, the thresholds
the run used (read from the execution's recorded eval_config, not today's config),
which checks failed, and the blessing."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from tensorflow_model_analysis.proto import config_pb2

from components.slice_gate.spec import (
    BASELINE,
    CANDIDATE,
    SLICE_FAILURES_PROPERTY,
    proto_slice_pairs,
    slice_order,
)
from pipeline.config import metric_name
from pipeline.evaluation import TFLITE_MODEL_TYPE
from pipeline.layout import (
    EVALUATE_COMPRESSION,
    EVALUATE_TFLITE_VS_BLESSED,
    EVALUATE_VS_BLESSED,
    SLICE_GATE,
)
from pipeline.report.markup import (
    Markup,
    badge,
    bullets,
    esc,
    heading,
    note,
    number,
    paragraph,
    table,
)
from pipeline.report.run import PipelineRun, custom_property

OVERALL = "Overall"
# Metrics TFMA adds next to the candidate's (candidate minus baseline) and the row count.
_DIFF_SUFFIX = "_diff"
_COUNT = "example_count"
# (component id, what its candidate is compared with)
GATES = (
    (EVALUATE_COMPRESSION, "the uncompressed model of this run"),
    (EVALUATE_VS_BLESSED, "the last blessed (pushed) model"),
    (EVALUATE_TFLITE_VS_BLESSED, "the last blessed (pushed) model"),
)
# Every component whose blessing decides a push.
DECIDING = (*(gate for gate, _ in GATES), SLICE_GATE)

Metrics = dict[str, float]


@dataclasses.dataclass(frozen=True)
class SliceMetrics:
    slice: str
    candidate: Metrics
    baseline: Metrics


@dataclasses.dataclass(frozen=True)
class Evaluation:
    blessed: bool | None
    thresholds: list[str]
    # The metric the thresholds gate, e.g. "binary_accuracy".
    gated_metric: str | None
    slices: list[SliceMetrics]
    failures: list[str]
    # What the Evaluator ran: the models' end-to-end TFLite files, or their SavedModels.
    tflite: bool = False

    def overall(self, model: str, metric: str) -> float | None:
        for item in self.slices:
            if item.slice == OVERALL:
                return getattr(item, model).get(metric)
        return None


def _slice_name(slice_key: Iterable[tuple[str, Any]]) -> str:
    parts = [
        f"{column} = {value.decode() if isinstance(value, bytes) else value}"
        for column, value in slice_key
    ]
    return ", ".join(parts) or OVERALL


def _load_metrics(uri: str, model: str | None) -> dict[str, Metrics]:
    """Metrics by slice name, in natural order (components.slice_gate.spec.slice_order): overall first."""
    import tensorflow_model_analysis as tfma  # all of TFMA (Beam): not for `leanline runs`

    by_slice: dict[str, Metrics] = {}
    for slice_key, by_output in sorted(
        tfma.load_eval_result(uri, model_name=model).slicing_metrics,
        key=lambda item: slice_order(item[0]),
    ):
        values = by_slice.setdefault(_slice_name(slice_key), {})
        for by_sub_key in by_output.values():
            for metrics in by_sub_key.values():
                values.update(
                    (name, value["doubleValue"])
                    for name, value in metrics.items()
                    if "doubleValue" in value
                )
    return by_slice


def _bound(threshold: Any) -> str:
    bounds = []
    if threshold.HasField("lower_bound"):
        bounds.append(f">= {number(threshold.lower_bound.value)}")
    # An infinite upper bound only keeps a first run's threshold from being empty.
    if threshold.HasField("upper_bound") and math.isfinite(threshold.upper_bound.value):
        bounds.append(f"<= {number(threshold.upper_bound.value)}")
    return " and ".join(bounds)


def _describe_threshold(metric: str, threshold: Any) -> list[str]:

    described = []
    if threshold.HasField("value_threshold") and _bound(threshold.value_threshold):
        described.append(f"{metric} {_bound(threshold.value_threshold)}")
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        higher = change.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
        if change.HasField("absolute"):
            limit = change.absolute.value
            described.append(
                f"{metric} change vs baseline {'>=' if higher else '<='} {number(limit)}"
            )
        if change.HasField("relative"):
            described.append(
                f"{metric} relative change vs baseline {'>=' if higher else '<='} "
                f"{number(change.relative.value)}"
            )
    return described


def _slices_words(slicing_spec: Any) -> str:
    fixed = [f"{key} = {value}" for key, value in sorted(slicing_spec.feature_values.items())]
    by = [f"by {key}" for key in slicing_spec.feature_keys]
    return " ".join(fixed + by) or "overall"


def _recorded_eval_config(eval_config_json: str | None) -> Any:

    return json_format.Parse(eval_config_json or "{}", config_pb2.EvalConfig())


def _thresholds(eval_config: Any) -> tuple[list[str], str | None]:
    """Threshold descriptions (with the slices they apply to) and the gated metric, from
    the recorded eval_config."""
    described, gated = [], None
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            name = metric_name(metric.class_name)
            scoped = [(metric.threshold, "every slice")] if metric.HasField("threshold") else []
            scoped += [
                (per_slice.threshold, ", ".join(map(_slices_words, per_slice.slicing_specs)))
                for per_slice in metric.per_slice_thresholds
            ]
            for threshold, where in scoped:
                gated = gated or name
                described += [f"{text} ({where})" for text in _describe_threshold(name, threshold)]
    return described, gated


def _failures(uri: str) -> list[str]:
    import tensorflow_model_analysis as tfma  # all of TFMA (Beam): not for `leanline runs`

    result = tfma.load_validation_result(uri)
    lines = []
    for per_slice in sorted(
        result.metric_validations_per_slice,
        key=lambda validation: slice_order(proto_slice_pairs(validation.slice_key)),
    ):
        where = _slice_name(proto_slice_pairs(per_slice.slice_key))
        for failure in per_slice.failures:
            name = failure.metric_key.name
            measured = "change vs baseline" if failure.metric_key.is_diff else "value"
            needed = " and ".join(_describe_threshold(name, failure.metric_threshold))
            lines.append(
                f"{where}: {name} {measured} {number(failure.metric_value.double_value.value)}; "
                f"needs {needed}"
            )
    return lines


def load_evaluation(run: PipelineRun, component: str) -> Evaluation | None:
    """What Evaluator `component` found in `run`; None when it did not run."""
    artifact = run.artifact(component, "evaluation")
    if artifact is None:
        return None
    blessing = run.artifact(component, "blessing")
    eval_config = _recorded_eval_config(run.components[component].properties.get("eval_config"))
    thresholds, gated = _thresholds(eval_config)
    candidate = _load_metrics(artifact.uri, CANDIDATE)
    if candidate:
        baseline = _load_metrics(artifact.uri, BASELINE)
    else:  # no baseline yet (nothing blessed): TFX evaluated the candidate alone, unnamed
        candidate, baseline = _load_metrics(artifact.uri, None), {}
    return Evaluation(
        blessed=None if blessing is None else custom_property(blessing, "blessed") == 1,
        thresholds=thresholds,
        gated_metric=gated,
        slices=[
            SliceMetrics(name, metrics, baseline.get(name, {}))
            for name, metrics in candidate.items()
        ],
        failures=_failures(artifact.uri),
        tflite=any(spec.model_type == TFLITE_MODEL_TYPE for spec in eval_config.model_specs),
    )


def _metrics_table(slices: Sequence[SliceMetrics]) -> Markup:
    metrics = sorted(
        {
            name
            for item in slices
            for name in item.candidate
            if not name.endswith(_DIFF_SUFFIX) and name != _COUNT
        }
    )
    headers = ["slice", "examples"]
    for name in metrics:
        headers += [f"{name} (candidate)", "baseline", "change"]
    rows = []
    for item in slices:
        row: list[object] = [item.slice, number(item.candidate.get(_COUNT))]
        for name in metrics:
            candidate, baseline = item.candidate.get(name), item.baseline.get(name)
            change = None if candidate is None or baseline is None else candidate - baseline
            row += [
                number(candidate),
                number(baseline),
                "-" if change is None else f"{change:+.4f}",
            ]
        rows.append(row)
    return table(headers, rows)


def _slice_gate(run: PipelineRun) -> Markup:
    """The SliceGate's decision, where the run had one: part of the compression gate."""
    blessing = run.artifact(SLICE_GATE, "blessing")
    if blessing is None:
        return Markup("")

    failures = (custom_property(blessing, SLICE_FAILURES_PROPERTY) or "").splitlines()
    blessed = custom_property(blessing, "blessed") == 1
    decision = "blessed" if blessed else "not blessed"
    parts = [
        Markup(
            f"<h3>{esc(SLICE_GATE)} {badge(decision, 'complete' if blessed else 'failed')}</h3>"
        ),
        paragraph(
            "Each slice above with enough eval rows (evaluation.thresholds.min_slice_examples), "
            "compressed against uncompressed (max_slice_drop or max_slice_increase)."
        ),
    ]
    if failures:
        parts += [note("Slices that lost too much:", "bad"), bullets(failures)]
    return Markup("".join(parts))


def _gate(component: str, compared_with: str, evaluation: Evaluation | None) -> Markup:
    if evaluation is None:
        return Markup(
            heading(component)
            + note(f"Did not run (compares the compressed model with {compared_with}).")
        )
    decision = {True: "blessed", False: "not blessed", None: "no blessing"}[evaluation.blessed]
    parts = [
        Markup(
            f"<h3>{esc(component)} "
            f"{badge(decision, 'complete' if evaluation.blessed else 'failed')}</h3>"
        ),
        paragraph(
            f"Candidate: the compressed model; baseline: {compared_with}. "
            + (
                "Judged as end-to-end TFLite files (model.tflite, what TF Serving serves with "
                "--prefer_tflite_model and devices run), on every eval row. "
                if evaluation.tflite
                else "Judged as SavedModels. "
            )
            + f"Decision: {decision}."
        ),
        paragraph("Thresholds: " + ("; ".join(evaluation.thresholds) or "none")),
    ]
    if not any(item.baseline for item in evaluation.slices):
        parts.append(note("No baseline model yet (first run): only absolute thresholds apply."))
    parts.append(_metrics_table(evaluation.slices))
    if evaluation.failures:
        parts += [note("Failed checks:", "bad"), bullets(evaluation.failures)]
    return Markup("".join(parts))


def evaluation_section(run: PipelineRun | None) -> Markup:
    if run is None:
        return note("No evaluation: the run did not reach the Evaluators.")
    (compression, compared_with), *vs_blessed = GATES
    # A run has one of the two: the one it ran, or the first if it stopped before.
    vs_blessed = [gate for gate in vs_blessed if gate[0] in run.components] or vs_blessed[:1]
    return Markup(
        _gate(compression, compared_with, load_evaluation(run, compression))
        + _slice_gate(run)
        + "".join(_gate(gate, words, load_evaluation(run, gate)) for gate, words in vs_blessed)
    )
