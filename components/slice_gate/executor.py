"""SliceGate executor: judges each large enough slice of a TFMA evaluation, candidate
against baseline, and writes the compression gate's blessing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import tensorflow_model_analysis as tfma
from absl import logging
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, json_utils

from components.slice_gate.spec import (
    BASELINE,
    BLESSING_KEY,
    CANDIDATE,
    EVALUATION_KEY,
    EVALUATOR_BLESSING_KEY,
    EXAMPLE_COUNT,
    SLICE_FAILURES_PROPERTY,
    THRESHOLDS_KEY,
    proto_slice_pairs,
    slice_name,
    slice_order,
)
from models.config import ThresholdsConfig


@dataclass(frozen=True)
class SliceResult:
    name: str  # e.g. "payment_type=Cash"
    examples: int
    candidate: float
    baseline: float


def slice_results(evaluation_uri: str, metric: str) -> Iterator[SliceResult]:
    """Each slice but the overall one with its row count and `metric` for both models,
    in natural order (components.slice_gate.spec.slice_order); slices missing either value (no baseline, a
    TFMA error) are left out."""
    for per_slice in sorted(
        tfma.load_metrics(evaluation_uri),
        key=lambda metrics: slice_order(proto_slice_pairs(metrics.slice_key)),
    ):
        if not per_slice.slice_key.single_slice_keys:
            continue
        values = {
            (entry.key.name, entry.key.model_name): entry.value.double_value.value
            for entry in per_slice.metric_keys_and_values
            if not entry.key.is_diff and entry.value.HasField("double_value")
        }
        wanted = [(EXAMPLE_COUNT, CANDIDATE), (metric, CANDIDATE), (metric, BASELINE)]
        if all(key in values for key in wanted):
            count, candidate, baseline = (values[key] for key in wanted)
            yield SliceResult(slice_name(per_slice.slice_key), int(count), candidate, baseline)


def slice_failures(evaluation_uri: str, thresholds: ThresholdsConfig) -> list[str]:
    """Each slice of at least `min_slice_examples` rows whose gated metric moved past
    `thresholds.vs_slices`, in words: slice, size, both values, the allowed change; in
    natural order."""
    change = thresholds.vs_slices
    if change is None:
        return []
    kind, amount = change
    failures = []
    for result in slice_results(evaluation_uri, thresholds.metric):
        if result.examples < thresholds.min_slice_examples:
            continue
        moved = result.candidate - result.baseline
        if thresholds.lower_is_better:
            allowed = amount * abs(result.baseline) if kind == "relative" else amount
            failed, bound = moved > allowed, f"up to +{allowed:.4f}"
        else:
            failed, bound = moved < -amount, f"down to -{amount:.4f}"
        if failed:
            failures.append(
                f"slice {result.name} ({result.examples} eval rows): {thresholds.metric} "
                f"{result.baseline:.4f} uncompressed -> {result.candidate:.4f} compressed "
                f"({moved:+.4f}; allowed {bound})"
            )
    return failures


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        thresholds = ThresholdsConfig.model_validate(
            json_utils.loads(exec_properties[THRESHOLDS_KEY])
        )
        evaluation = artifact_utils.get_single_instance(input_dict[EVALUATION_KEY])
        evaluator_blessing = artifact_utils.get_single_instance(input_dict[EVALUATOR_BLESSING_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        failures = slice_failures(evaluation.uri, thresholds)
        evaluator_blessed = evaluator_blessing.get_int_custom_property("blessed") == 1
        blessed = evaluator_blessed and not failures
        for failure in failures:
            logging.info("Slice gate: %s", failure)
        # What TFX's Evaluator records on its blessings, which readers of this one expect.
        for key in (
            evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY,
            evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY,
            evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY,
            evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
        ):
            if key in evaluator_blessing.mlmd_artifact.custom_properties:
                blessing.mlmd_artifact.custom_properties[key].CopyFrom(
                    evaluator_blessing.mlmd_artifact.custom_properties[key]
                )
        blessing.set_int_custom_property(
            evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed)
        )
        blessing.set_string_custom_property(SLICE_FAILURES_PROPERTY, "\n".join(failures))
        file_name = (
            evaluator_constants.BLESSED_FILE_NAME
            if blessed
            else evaluator_constants.NOT_BLESSED_FILE_NAME
        )
        io_utils.write_string_file(f"{blessing.uri}/{file_name}", "")
