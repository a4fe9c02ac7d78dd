"""Keras building blocks every model family uses: inputs from the transform graph, the output."""

from __future__ import annotations

from collections.abc import Mapping

import tf_keras as keras

from models.common.features import ModelInput


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
