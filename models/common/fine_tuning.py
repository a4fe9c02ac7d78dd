"""Fine-tuning a model while it is compressed: the data, and a copy to wrap layers in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tf_keras as keras

from models.common.train import compile_model
from models.config import ModelConfig


@dataclass(frozen=True)
class FineTuning:
    """What compression fine-tunes on: repeating batches of `(features, label)`."""

    data: tf.data.Dataset
    steps_per_epoch: int
    # Task and label: the loss and metrics fine-tuning compiles with.
    model: ModelConfig
    learning_rate: float


def rebuilt(
    model: keras.Model, replace: Callable[[keras.layers.Layer], keras.layers.Layer | None]
) -> keras.Model:
    """A copy of `model` with its own weights, each layer swapped for `replace(layer)`
    where that is not None. The copy comes first because tfmot's wrappers share the
    weights of the layer they wrap, and the caller's model must stay as it was."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return replace(layer) or layer

    return keras.models.clone_model(copy, clone_function=clone)


def fine_tune(
    model: keras.Model, fine_tuning: FineTuning, epochs: int, callbacks: list[Any]
) -> None:
    compile_model(model, fine_tuning.model, fine_tuning.learning_rate)
    model.fit(
        fine_tuning.data,
        epochs=epochs,
        steps_per_epoch=fine_tuning.steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    )
