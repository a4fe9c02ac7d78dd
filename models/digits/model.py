"""A small CNN for 8x8 digits: 3x3 convolutions (`model.conv_filters`, two by default),
a pooling, two Dense layers.

Every weight sits in a Conv2D or Dense layer, so pruning and int8 quantization
reach all of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from models.common.features import ModelInput
from models.common.layers import keras_inputs, model_output
from models.common.train import train_and_export
from models.config import ModelConfig
from models.digits.features import IMAGE_KEY, IMAGE_SIDE


def build_model(inputs: Mapping[str, ModelInput], model: ModelConfig) -> keras.Model:
    """The CNN over `image_xf` (uncompiled); `model.hidden_units[0]` sizes its Dense layer."""
    if set(inputs) != {IMAGE_KEY}:
        raise ValueError(f"the digits model takes only {IMAGE_KEY!r}, got {sorted(inputs)}")
    keras_in = keras_inputs(inputs)
    x = keras.layers.Reshape((IMAGE_SIDE, IMAGE_SIDE, 1), name="image")(keras_in[IMAGE_KEY])
    for index, filters in enumerate(model.conv_filters):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"conv_{index}"
        )(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(model.hidden_units[0], activation="relu", name="hidden_0")(x)
    outputs = model_output(x, model)
    return keras.Model(inputs=keras_in, outputs=outputs, name="digits_cnn")


def run_fn(fn_args: FnArgs) -> None:
    """Trainer's entry point."""
    train_and_export(fn_args, build_model)
