"""A leanline model module: penguin species from body measurements, with a feature the
bundled tabular family does not make (the bill's shape) and a network of our own.

leanline calls the two functions below; everything else (label checks, training under
the configured tf.distribute strategy, pruning and quantization, the TFMA gates, the
serving SavedModel with this Transform inside, the TFLite model, the push) is leanline's.

- preprocessing_fn(inputs, custom_config): Transform's function. `inputs` holds one
  tensor per raw CSV column (a tf.SparseTensor where a column has empty cells);
  `custom_config["model"]` is the config's `model` section. It returns the transformed
  features by name, plus the label under "label": int64 class ids for classification,
  a float32 number for `task: regression`.
- build_model(inputs, model_config): returns an uncompiled functional (or Sequential)
  tf_keras model whose inputs are named like the transformed features. `inputs` maps each
  name to its dtype, per-row shape and id range (`num_categories`, for integer features);
  `model_config` is the typed `model` section, `model_config.params` this module's own
  settings. The output is one sigmoid probability (2 classes), num_classes softmax
  probabilities, or one linear unit (regression: leanline trains it on the label's
  z-score and rescales it to the label's units).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
MEASUREMENTS_KEY = "measurements_xf"
ISLAND_KEY = "island_xf"
LABEL_KEY = "label"


def _column(x: tf.Tensor | tf.SparseTensor, default) -> tf.Tensor:
    """A CSV column as a [batch] tensor, `default` in its empty cells."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
        )
    return tf.reshape(x, [-1])


def preprocessing_fn(inputs, custom_config):
    # Integer columns (flipper length, body mass) too, so that NaN can mark a missing one.
    values = {name: _column(tf.cast(inputs[name], tf.float32), np.nan) for name in MEASUREMENTS}
    # Long, shallow bills tell Gentoo from Adelie better than either length alone.
    bill_shape = values["bill_length_mm"] / values["bill_depth_mm"]
    block = tf.stack([*values.values(), bill_shape], axis=1)
    # z-scores per column; a missing measurement becomes the mean (0).
    scaled = tft.scale_to_z_score(block, elementwise=True)
    species = custom_config["model"]["label"]["column"]
    return {
        MEASUREMENTS_KEY: tf.where(tf.math.is_finite(block), scaled, tf.zeros_like(scaled)),
        ISLAND_KEY: tft.compute_and_apply_vocabulary(
            _column(inputs["island"], ""), num_oov_buckets=1, vocab_filename="island"
        ),
        LABEL_KEY: tft.compute_and_apply_vocabulary(
            _column(inputs[species], ""), vocab_filename="species"
        ),
    }


def build_model(inputs, model_config):
    width = int(model_config.params.get("width", 16))
    measurements = keras.Input(shape=inputs[MEASUREMENTS_KEY].shape, name=MEASUREMENTS_KEY)
    island = keras.Input(shape=(), dtype=tf.int64, name=ISLAND_KEY)
    island_vector = keras.layers.Embedding(inputs[ISLAND_KEY].num_categories, 2, name="island")(
        island
    )
    x = keras.layers.Concatenate()([measurements, island_vector])
    hidden = keras.layers.Dense(width, activation="relu", name="hidden")(x)
    # A residual block: what a module is for, a network the bundled families do not build.
    residual = keras.layers.Dense(width, activation="relu", name="residual")(hidden)
    x = keras.layers.Add()([hidden, residual])
    probabilities = keras.layers.Dense(
        model_config.label.num_classes, activation="softmax", name="probabilities"
    )(x)
    return keras.Model([measurements, island], probabilities, name="penguins_residual")
