"""SliceGate component: EvaluateCompression's evaluation and blessing in, the compression
gate's blessing out, refused where one large enough slice lost too much.

TFMA's per-slice thresholds apply to every slice whatever its size, and its
`min_slice_size` option turns small slices into errors that its validator counts as
failed thresholds. So the slice gate reads TFMA's per-slice metrics itself: only slices
of `min_slice_examples` eval rows or more are judged, and every slice keeps its metrics
in the evaluation for the report.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import json_utils

from components.slice_gate import executor
from components.slice_gate.spec import (
    BLESSING_KEY,
    EVALUATION_KEY,
    EVALUATOR_BLESSING_KEY,
    THRESHOLDS_KEY,
)
from models.config import ThresholdsConfig


class SliceGateSpec(ComponentSpec):
    PARAMETERS = {
        # JSON of the config's evaluation.thresholds.
        THRESHOLDS_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        EVALUATOR_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing)}


class SliceGate(base_component.BaseComponent):
    """Blesses the compressed model when the Evaluator did and no slice of at least
    `thresholds.min_slice_examples` rows moved past `thresholds.vs_slices`."""

    SPEC_CLASS = SliceGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        evaluation: types.BaseChannel,
        evaluator_blessing: types.BaseChannel,
        thresholds: ThresholdsConfig,
    ):
        super().__init__(
            spec=SliceGateSpec(
                evaluation=evaluation,
                evaluator_blessing=evaluator_blessing,
                thresholds=json_utils.dumps(thresholds.model_dump(mode="json")),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
