"""Keras building blocks every model family uses: inputs from the transform graph, the output."""

from __future__ import annotations

from collections.abc import Mapping

import tf_keras as keras

from models.common.features import ModelInput
from models.config import ModelConfig


def keras_inputs(inputs: Mapping[str, ModelInput]) -> dict[str, keras.Input]:
    """One `keras.Input` per transformed feature, named and shaped like the feature."""
    return {
        name: keras.Input(shape=spec.shape, dtype=spec.dtype, name=name)
        for name, spec in inputs.items()
    }


def classification_output(hidden: keras.layers.Layer, num_classes: int) -> keras.layers.Layer:
    """Probabilities: one sigmoid unit for two classes, else a softmax over `num_classes`."""
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", name="probabilities")(hidden)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(hidden)


# The regression output's name: one number per row, the label in standard units (train
# rescales it to the label's own units; see models.common.train.in_label_units).
PREDICTION_LAYER = "prediction"


def model_output(hidden: keras.layers.Layer, model: ModelConfig) -> keras.layers.Layer:
    """What `model.task` asks for: class probabilities, or one linear unit that predicts
    the label's z-score."""
    if model.is_regression:
        return keras.layers.Dense(1, name=PREDICTION_LAYER)(hidden)
    return classification_output(hidden, model.label.num_classes)
