"""Compressor component: the Trainer's model in, a smaller model and the proof out.

Sits between the Trainer and the Evaluators: its `compressed_model` is laid out like
the Trainer's Model (`Format-Serving/`), plus `Format-TFLite/model.tflite` (end to
end: raw features in, where the family has a builtin Transform) and
`Format-TFLite/transformed_inputs.tflite`, so the Evaluator can compare it with the
uncompressed model and the Pusher can serve it. Where the run has an end-to-end TFLite,
the gates judge it (TFMA `tf_lite` models): the Compressor then also writes
`float_model`, the compression gate's baseline, and `tflite_examples`, the eval split as
TFMA feeds it to the TFLite (tflite_examples.py). Beam runs that step, so the
component takes the pipeline's Beam args.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import json_utils

from components.compressor import executor
from components.compressor.spec import (
    COMPRESSED_MODEL_KEY,
    COMPRESSION_REPORT_KEY,
    CUSTOM_CONFIG_KEY,
    EXAMPLES_KEY,
    FLOAT_MODEL_KEY,
    MODEL_KEY,
    RAW_EXAMPLES_KEY,
    TFLITE_EXAMPLES_KEY,
    TRANSFORM_GRAPH_KEY,
)


class CompressionReport(types.Artifact):
    """Float vs compressed model: `report.json` and `report.md` (sizes, sparsity,
    quality, latency), headline numbers as custom properties."""

    # On Kubeflow, TFX's entrypoint imports this name as a class path: leanline/__init__.py.
    TYPE_NAME = "leanline.CompressionReport"


class CompressorSpec(ComponentSpec):
    PARAMETERS = {
        # JSON of pipeline.config.custom_config(config): model, training, compression.
        CUSTOM_CONFIG_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
        # Transform's transformed examples, splits `train` and `eval`.
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        # ExampleGen's raw examples: the end-to-end TFLite is checked and calibrated on
        # them. Without, the TFLite takes Transform's outputs.
        RAW_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {
        COMPRESSED_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        COMPRESSION_REPORT_KEY: ChannelParameter(type=CompressionReport),
        # Written only with an end-to-end TFLite (models.config.gates_judge_tflite).
        FLOAT_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        TFLITE_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }


class Compressor(base_beam_component.BaseBeamComponent):
    """Prunes and/or quantizes the Trainer's model as `custom_config["compression"]` says."""

    SPEC_CLASS = CompressorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        transform_graph: types.BaseChannel,
        examples: types.BaseChannel,
        custom_config: Mapping[str, Any] | str,
        raw_examples: types.BaseChannel | None = None,
    ):
        """
        Args:
          model: the Trainer's Model (`Format-Serving/` and `keras_model.keras`).
          transform_graph: Transform's graph, put in front of the compressed model.
          examples: Transform's transformed examples with `train` and `eval` splits.
          custom_config: `pipeline.config.custom_config(config)`, as a dict or JSON.
          raw_examples: ExampleGen's examples, for the end-to-end TFLite.
        """
        if not isinstance(custom_config, str):
            custom_config = json_utils.dumps(dict(custom_config))
        super().__init__(
            spec=CompressorSpec(
                model=model,
                transform_graph=transform_graph,
                examples=examples,
                raw_examples=raw_examples,
                custom_config=custom_config,
                compressed_model=types.Channel(type=standard_artifacts.Model),
                compression_report=types.Channel(type=CompressionReport),
                float_model=types.Channel(type=standard_artifacts.Model),
                tflite_examples=types.Channel(type=standard_artifacts.Examples),
            )
        )
