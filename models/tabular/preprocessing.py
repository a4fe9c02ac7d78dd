"""Transform for any CSV, driven only by `model.features` and `model.label` in the config.

Every feature comes out dense, one value per row, named `<column>_xf`:
- numeric: missing values imputed with the mean, then z-scored;
- bucketized: missing values imputed with the mean, then N quantile buckets;
- categorical: vocabulary ids of the `vocab_size` most frequent values plus
  `oov_buckets` hash buckets for the rest (a missing value is "" or -1, and so an id too);
- categorical_int: the integer itself, clipped to [0, N) (missing becomes 0).
Integer outputs record their id range in the transformed schema, which sizes the
model's embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from models.common.features import LABEL_KEY, model_config, transformed_name
from pipeline.config import ModelConfig

Tensor = tf.Tensor | tf.SparseTensor


def dense(x: Tensor, default_value: Any) -> tf.Tensor:
    """A [batch] tensor: a CSV column's one value per row, `default_value` where missing."""
    if isinstance(x, tf.SparseTensor):
        one_per_row = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1]))
        x = tf.sparse.to_dense(one_per_row, default_value=default_value)
    return tf.reshape(x, [-1])


def _as_float(x: Tensor) -> Tensor:
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return tf.cast(x, tf.float32)


def mean_imputed(x: Tensor) -> tf.Tensor:
    """Floats with missing values replaced by the mean of the present ones."""
    x = _as_float(x)
    return dense(x, default_value=tft.mean(x))


def _missing_value(x: Tensor) -> Any:
    return "" if x.dtype == tf.string else tf.constant(-1, x.dtype)


def _clipped_ids(x: Tensor, num_ids: int) -> tf.Tensor:
    # apply_buckets with boundaries 1..N-1 is a clip to [0, N) that also records the range.
    boundaries = tf.constant([list(range(1, num_ids))], tf.float32)
    return tft.apply_buckets(tf.cast(dense(x, 0), tf.float32), boundaries)


def _vocabulary_op_name(column: str) -> str:
    # TF names a vocabulary's lookup table after its op while Transform analyzes, and
    # tables are shared by name within a process: names by column keep the tables of
    # two Transform runs in one process (tests, notebooks) apart.
    return "vocabulary_" + re.sub(r"[^A-Za-z0-9_.-]", "_", column)


def transform_features(inputs: Mapping[str, Tensor], model: ModelConfig) -> dict[str, tf.Tensor]:
    """The transformed features (no label) of `model.features`; taxi reuses this."""
    features = model.features
    outputs = {}
    for column in features.numeric:
        outputs[transformed_name(column)] = tft.scale_to_z_score(mean_imputed(inputs[column]))
    for column, num_buckets in features.bucketized.items():
        outputs[transformed_name(column)] = tft.bucketize(mean_imputed(inputs[column]), num_buckets)
    for column in features.categorical:
        x = inputs[column]
        outputs[transformed_name(column)] = tft.compute_and_apply_vocabulary(
            dense(x, _missing_value(x)),
            top_k=model.vocab_size,
            num_oov_buckets=model.oov_buckets,
            vocab_filename=column,
            name=_vocabulary_op_name(column),
        )
    for column, num_ids in features.categorical_int.items():
        outputs[transformed_name(column)] = _clipped_ids(inputs[column], num_ids)
    return outputs


def present(x: Tensor, column: str) -> tf.Tensor:
    """A [batch] tensor of a column that must have a value in every row (a label)."""
    if isinstance(x, tf.SparseTensor):
        rows = tf.cast(x.dense_shape[0], tf.int64)
        check = tf.debugging.assert_equal(
            tf.size(x.values, out_type=tf.int64), rows, message=f"{column!r} has missing values"
        )
        with tf.control_dependencies([check]):
            return dense(x, _missing_value(x))
    return dense(x, _missing_value(x))


def class_ids(x: Tensor, column: str) -> tf.Tensor:
    """The label as int64 class ids: strings through a vocabulary, integers as they are.

    Vocabulary ids follow TFT's order (most frequent first, ties by value), so they
    are fixed for a given dataset.
    """
    labels = present(x, column)
    if labels.dtype == tf.string:
        return tft.compute_and_apply_vocabulary(
            labels, vocab_filename=LABEL_KEY, name=_vocabulary_op_name(LABEL_KEY)
        )
    return tf.cast(labels, tf.int64)


def preprocessing_fn(
    inputs: Mapping[str, Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """Transform's entry point: the configured features and the label."""
    model = model_config(custom_config)
    outputs = transform_features(inputs, model)
    outputs[LABEL_KEY] = class_ids(inputs[model.label.column], model.label.column)
    return outputs
