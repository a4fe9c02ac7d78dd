"""The tabular network: embeddings for integer ids, floats as they are, then Dense layers.

Categorical features go through small Embeddings rather than one-hot encodings:
an embedding is a table lookup that TFLite runs natively and int8 quantizes, and its
size grows with the square root of the vocabulary instead of linearly. A block of id
columns (Transform gives each column its own id range) shares one table, with the width
one of its columns would get; a float block enters as it is. So the model has one input
and one layer per block, however many columns the block holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from models.common.features import ModelInput
from models.common.layers import keras_inputs, model_output
from models.common.train import train_and_export
from models.config import ModelConfig


def embedding_dim(num_categories: int, max_dim: int) -> int:
    return min(max_dim, math.ceil(math.sqrt(num_categories)))


def _encoded(spec: ModelInput, x: keras.layers.Layer, max_embedding_dim: int) -> keras.layers.Layer:
    """One feature or block as a [batch, width] float block."""
    columns = math.prod(spec.shape)
    if spec.num_categories is not None:
        per_column = math.ceil(spec.num_categories / columns)
        x = keras.layers.Embedding(
            spec.num_categories,
            embedding_dim(per_column, max_embedding_dim),
            name=f"{spec.name}_embedding",
        )(x)
        return keras.layers.Flatten(name=f"{spec.name}_flat")(x) if spec.shape else x
    if not spec.shape:
        return keras.layers.Reshape((1,), name=f"{spec.name}_column")(x)
    if len(spec.shape) == 1:
        return x
    return keras.layers.Flatten(name=f"{spec.name}_flat")(x)


def build_model(inputs: Mapping[str, ModelInput], model: ModelConfig) -> keras.Model:
    """A functional tf_keras model over the transformed features (uncompiled)."""
    keras_in = keras_inputs(inputs)
    blocks = [
        _encoded(spec, keras_in[name], model.max_embedding_dim) for name, spec in inputs.items()
    ]
    hidden = keras.layers.Concatenate(name="features")(blocks) if len(blocks) > 1 else blocks[0]
    for index, units in enumerate(model.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(hidden)
    kind = "regressor" if model.is_regression else "classifier"
    return keras.Model(
        inputs=keras_in, outputs=model_output(hidden, model), name=f"{model.name}_{kind}"
    )


def run_fn(fn_args: FnArgs) -> None:
    """Trainer's entry point."""
    train_and_export(fn_args, build_model)
