"""ServingPusher component: a doubly blessed model in, a TF Serving version out.

The model is pushed only when both gates blessed it: the compression gate
("EvaluateCompression", compressed vs the run's uncompressed model, and the SliceGate
where configured) and "EvaluateVsBlessed" or "EvaluateTFLiteVsBlessed" (compressed vs
the last blessed model). The executor builds each version with warm-up requests
from the eval split, checks that it loads and answers, and publishes it
atomically (serving/versions.py). When the Evaluators' `evaluation` outputs are
wired too, a refusal records which metric failed, not just which gate.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.serving_pusher import executor
from components.serving_pusher.spec import (
    COMPRESSION_BLESSING_KEY,
    COMPRESSION_EVALUATION_KEY,
    EXAMPLES_KEY,
    MIN_TFLITE_AGREEMENT_KEY,
    MODEL_BLESSING_KEY,
    MODEL_EVALUATION_KEY,
    MODEL_KEY,
    MODEL_NAME_KEY,
    PUSHED_MODEL_KEY,
    SERVING_MODEL_DIR_KEY,
    TFLITE_MODEL_DIR_KEY,
    WARMUP_REQUESTS_KEY,
)


class ServingPusherSpec(ComponentSpec):
    PARAMETERS = {
        # TF Serving's model base path; versions are published as <dir>/<version>/.
        SERVING_MODEL_DIR_KEY: ExecutionParameter(type=str),
        # Where <version>/model.tflite goes; no TFLite push when unset.
        TFLITE_MODEL_DIR_KEY: ExecutionParameter(type=str, optional=True),
        # Eval examples written as warm-up requests; 0 writes none.
        WARMUP_REQUESTS_KEY: ExecutionParameter(type=int, optional=True),
        MODEL_NAME_KEY: ExecutionParameter(type=str),
        # Refuse a classifier whose end-to-end TFLite and SavedModel agree on fewer eval rows.
        MIN_TFLITE_AGREEMENT_KEY: ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        COMPRESSION_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True
        ),
        MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        COMPRESSION_EVALUATION_KEY: ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True
        ),
        MODEL_EVALUATION_KEY: ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True
        ),
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel)}


class ServingPusher(base_component.BaseComponent):
    """Publishes the model as a new, warmed-up, checked TF Serving version when blessed."""

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        *,
        serving_model_dir: str,
        model_name: str,
        compression_blessing: types.BaseChannel | None = None,
        model_blessing: types.BaseChannel | None = None,
        compression_evaluation: types.BaseChannel | None = None,
        model_evaluation: types.BaseChannel | None = None,
        examples: types.BaseChannel | None = None,
        tflite_model_dir: str | None = None,
        warmup_requests: int = 0,
        min_tflite_agreement: float | None = None,
    ):
        if warmup_requests and examples is None:
            raise ValueError("warmup_requests needs `examples` (ExampleGen's output) to draw from")
        super().__init__(
            spec=ServingPusherSpec(
                model=model,
                compression_blessing=compression_blessing,
                model_blessing=model_blessing,
                compression_evaluation=compression_evaluation,
                model_evaluation=model_evaluation,
                examples=examples,
                serving_model_dir=serving_model_dir,
                tflite_model_dir=tflite_model_dir,
                warmup_requests=warmup_requests,
                model_name=model_name,
                min_tflite_agreement=min_tflite_agreement,
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
