"""The compressed model a config asks for: the search's choice, or the fixed recipe
(distilling a student first where it says so). Library code, apart from the
Compressor's executor, so benchmarks and tests compress exactly as a run does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import tensorflow_transform as tft
import tf_keras as keras

from models.common import compression, search
from models.common.distillation import distill
from models.common.features import model_inputs
from models.config import CompressionConfig, ModelConfig
from models.errors import UserError


def _student_builder(
    model: ModelConfig, tf_transform_output: tft.TFTransformOutput
) -> Callable[[ModelConfig], keras.Model]:
    """Builds a student: the model's own build_model with the student's sizes."""
    build_model = importlib.import_module(f"models.{model.package}.model").build_model
    inputs = model_inputs(tf_transform_output)
    return lambda student: build_model(inputs, student)


def compress_as_configured(
    float_model: keras.Model,
    model: ModelConfig,
    config: CompressionConfig,
    inputs: compression.CompressionInputs,
    tf_transform_output: tft.TFTransformOutput,
) -> tuple[compression.CompressedModel, CompressionConfig, search.SearchResult | None]:
    """The compressed model, the fixed recipe that built it, and the search that chose
    it (None for a fixed recipe). A search with no candidate within budget stops the run."""
    build_student = _student_builder(model, tf_transform_output)
    if config.search is not None:
        searched = search.search(float_model, build_student, model, config, inputs)
        if searched.chosen is None or searched.chosen_recipe is None:
            raise UserError(searched.nothing_found())
        return searched.chosen, searched.chosen_recipe, searched
    start = float_model
    if config.distillation is not None:
        start = distill(float_model, build_student, config.distillation, inputs.fine_tuning)
    return compression.compress(start, config, inputs.fine_tuning, inputs.calibration), config, None
