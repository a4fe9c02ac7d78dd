"""Transform for any CSV, driven only by `model.features` and `model.label` in the config.

Features of one kind are handled together, so Transform's analyzers, its graph and the
model's inputs stay the same size however many columns a table has:
- numeric: every column stacked into one `numeric_xf` block [batch, n], z-scored by one
  elementwise analyzer; a missing or non-finite value becomes 0, the column's mean;
- bucketized: one `bucketized_xf` block [batch, m] of quantile bucket ids, from one
  elementwise quantiles analyzer per distinct bucket count; a missing value falls in
  the bucket of the column's mean;
- categorical_int: one `categorical_int_xf` block [batch, k] of the integers clipped to
  [0, N) (missing: 0);
- categorical: per column (each has its own vocabulary), `<column>_xf`: ids of the
  `vocab_size` most frequent values plus `oov_buckets` hash buckets for the rest (a
  missing value is "" or -1, and so an id too).
The id blocks give each column its own id range, offset by the ranges of the columns
before it (column j's ids start at the sum of the earlier columns' N), so one embedding
table serves the whole block; blocks and vocabulary ids record their range in the
transformed schema, which sizes the model's embeddings. Numeric columns keep config
order; bucketized and categorical_int columns are in name order (pipeline.config).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

# TFT's own mappers record id ranges through this; it has no public alias.
from tensorflow_transform.schema_inference import set_tensor_schema_override

from models.common.features import LABEL_KEY, analyzed, transformed_name, with_class_names
from models.config import LabelConfig, ModelConfig
from models.custom_config import model_config
from models.errors import UserError

Tensor = tf.Tensor | tf.SparseTensor

# Analyzer results the end-to-end TFLite reads back (models.common.features.analyzed).
NUMERIC_MEAN = "numeric_mean"
NUMERIC_STD = "numeric_std"
BUCKET_BOUNDARIES = "bucket_boundaries"
BUCKET_FILL = "bucket_fill"

# The blocks; pipeline.config refuses a categorical column whose name would clash.
NUMERIC_KEY = transformed_name("numeric")
BUCKETIZED_KEY = transformed_name("bucketized")
CATEGORICAL_INT_KEY = transformed_name("categorical_int")


def dense(x: Tensor, default_value: Any) -> tf.Tensor:
    """A [batch] tensor: a CSV column's one value per row, `default_value` where missing."""
    if isinstance(x, tf.SparseTensor):
        one_per_row = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1]))
        x = tf.sparse.to_dense(one_per_row, default_value=default_value)
    return tf.reshape(x, [-1])


def stacked_floats(inputs: Mapping[str, Tensor], columns: Sequence[str]) -> tf.Tensor:
    """The columns as one [batch, len(columns)] float32 block, NaN where a value is missing.

    Built with one op for all sparse columns (a CSV column with missing cells) and one
    for all dense ones, not an op chain per column: Transform traces this function about
    ten times, so per-column ops are paid per column and per trace.
    """
    sparse = [c for c in columns if isinstance(inputs[c], tf.SparseTensor)]
    dense_columns = [c for c in columns if not isinstance(inputs[c], tf.SparseTensor)]
    blocks = []
    if sparse:
        # A parsed column is [batch, values in the fullest row]: 0 wide in a batch where
        # the column is missing everywhere. Concatenated as [batch, 1] blocks, column j
        # sits at index j whatever the widths.
        one_wide = tf.stack([inputs[sparse[0]].dense_shape[0], tf.constant(1, tf.int64)])
        if len(sparse) == 1:  # SparseConcat takes two or more
            indices, values, shape = inputs[sparse[0]].indices, inputs[sparse[0]].values, one_wide
            values = tf.cast(values, tf.float32)
        else:
            indices, values, shape = tf.raw_ops.SparseConcat(
                indices=[inputs[c].indices for c in sparse],
                values=[tf.cast(inputs[c].values, tf.float32) for c in sparse],
                shapes=[one_wide] * len(sparse),
                concat_dim=1,
            )
        values = tf.sparse.to_dense(tf.SparseTensor(indices, values, shape), np.nan)
        # Static width for Transform's output schema (shape inference loses it here).
        blocks.append(tf.reshape(values, [-1, len(sparse)]))
    if dense_columns:
        columns_2d = [tf.reshape(tf.cast(inputs[c], tf.float32), [-1, 1]) for c in dense_columns]
        blocks.append(tf.concat(columns_2d, axis=1))
    block = tf.concat(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    order = [*sparse, *dense_columns]
    if order != list(columns):
        position = {column: index for index, column in enumerate(order)}
        block = tf.gather(block, [position[c] for c in columns], axis=1)
    return block


def standardized(block: tf.Tensor, mean: tf.Tensor, std: tf.Tensor) -> tf.Tensor:
    """`(x - mean) / std` per column, `x - mean` where std is 0 (as tft.scale_to_z_score);
    a missing or non-finite value becomes 0, the mean."""
    deviation = block - mean
    spread = tf.not_equal(std, 0)
    scaled = tf.where(spread, deviation / tf.where(spread, std, tf.ones_like(std)), deviation)
    return tf.where(tf.math.is_finite(block), scaled, tf.zeros_like(scaled))


def z_scores(block: tf.Tensor) -> tf.Tensor:
    """Each column of a [batch, n] float block z-scored over the dataset; a missing or
    non-finite value becomes 0 (the mean). TFT's analyzers ignore non-finite values."""
    mean = analyzed(tft.mean(block, reduce_instance_dims=False), NUMERIC_MEAN)
    std = analyzed(tf.sqrt(tft.var(block, reduce_instance_dims=False)), NUMERIC_STD)
    return standardized(block, mean, std)


def _ids_with_range(ids: tf.Tensor, num_ids: int) -> tf.Tensor:
    set_tensor_schema_override(ids, tf.constant(0, tf.int64), tf.constant(num_ids - 1, tf.int64))
    return ids


def _offsets(num_ids: Sequence[int]) -> tf.Tensor:
    """Where each column's ids start in a block's shared id range."""
    return tf.constant(np.concatenate([[0], np.cumsum(num_ids)[:-1]]), tf.int64)


def bucket_ids(
    block: tf.Tensor, boundaries: tf.Tensor, fill: tf.Tensor, num_buckets: Sequence[int]
) -> tf.Tensor:
    """Column j of a [batch, m] block as its bucket id, offset into one id range: the
    number of boundaries[j] <= x, as `tft.apply_buckets` assigns it, written as
    comparisons rather than a per-column search. A missing value takes `fill[j]`."""
    imputed = tf.where(tf.math.is_finite(block), block, fill + tf.zeros_like(block))
    ids = tf.reduce_sum(
        tf.cast(imputed[:, :, tf.newaxis] >= boundaries[tf.newaxis], tf.int64), axis=2
    )
    return ids + _offsets(num_buckets)


def quantile_buckets(block: tf.Tensor, num_buckets: Sequence[int]) -> tf.Tensor:
    """Column j of a [batch, m] float block as ids in [0, num_buckets[j]), offset into one range.

    One elementwise quantiles analyzer per distinct bucket count (TFT's analyzer takes a
    single count), computed over the present values. A missing value takes the column's
    mean, computed in the same analysis phase.
    """
    counts = list(num_buckets)
    widest = max(counts) - 1
    groups, grouped_columns = [], []
    for count in sorted(set(counts)):
        members = [j for j, c in enumerate(counts) if c == count]
        epsilon = min(1.0 / count, 0.01)  # tft.bucketize's default
        found = tft.quantiles(
            tf.gather(block, members, axis=1), count, epsilon, reduce_instance_dims=False
        )
        found = tf.reshape(found, [len(members), count - 1])
        # Boundaries past a column's own count are +inf: no value reaches them.
        groups.append(tf.pad(found, [[0, 0], [0, widest - (count - 1)]], constant_values=np.inf))
        grouped_columns += members
    # [m, widest], rows back in the block's column order.
    boundaries = analyzed(
        tf.gather(tf.concat(groups, axis=0), np.argsort(grouped_columns)), BUCKET_BOUNDARIES
    )
    fill = analyzed(tft.mean(block, reduce_instance_dims=False), BUCKET_FILL)
    return _ids_with_range(bucket_ids(block, boundaries, fill, counts), sum(counts))


def clip_ids(block: tf.Tensor, num_ids: Sequence[int]) -> tf.Tensor:
    """Column j of a [batch, k] float block as integers clipped to [0, num_ids[j]), offset
    into one range; a missing value is 0."""
    counts = list(num_ids)
    present = tf.where(tf.math.is_finite(block), block, tf.zeros_like(block))
    highest = tf.constant([c - 1 for c in counts], tf.float32)
    ids = tf.cast(tf.clip_by_value(present, 0.0, highest), tf.int64)
    return ids + _offsets(counts)


def clipped_ids(block: tf.Tensor, num_ids: Sequence[int]) -> tf.Tensor:
    """clip_ids, with the block's id range recorded for the model's embedding."""
    return _ids_with_range(clip_ids(block, num_ids), sum(num_ids))


# What a missing categorical cell is looked up as, by whether the column holds strings.
MISSING_CATEGORY = {True: "", False: -1}


def _missing_value(x: Tensor) -> Any:
    return tf.constant(MISSING_CATEGORY[x.dtype == tf.string], x.dtype)


def _vocabulary_op_name(column: str) -> str:
    # TF names a vocabulary's lookup table after its op while Transform analyzes, and
    # tables are shared by name within a process: names by column keep the tables of
    # two Transform runs in one process (tests, notebooks) apart.
    return "vocabulary_" + re.sub(r"[^A-Za-z0-9_.-]", "_", column)


def transform_features(inputs: Mapping[str, Tensor], model: ModelConfig) -> dict[str, tf.Tensor]:
    """The transformed features (no label) of `model.features`; taxi reuses this."""
    features = model.features
    outputs = {}
    if features.numeric:
        outputs[NUMERIC_KEY] = z_scores(stacked_floats(inputs, features.numeric))
    if features.bucketized:
        block = stacked_floats(inputs, list(features.bucketized))
        outputs[BUCKETIZED_KEY] = quantile_buckets(block, list(features.bucketized.values()))
    if features.categorical_int:
        block = stacked_floats(inputs, list(features.categorical_int))
        outputs[CATEGORICAL_INT_KEY] = clipped_ids(block, list(features.categorical_int.values()))
    for column in features.categorical:
        x = inputs[column]
        outputs[transformed_name(column)] = tft.compute_and_apply_vocabulary(
            dense(x, _missing_value(x)),
            top_k=model.vocab_size,
            num_oov_buckets=model.oov_buckets,
            vocab_filename=column,
            name=_vocabulary_op_name(column),
        )
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


def class_ids(x: Tensor, label: LabelConfig) -> tf.Tensor:
    """The label as int64 class ids, with `label.classes` recorded as their names
    (with_class_names): a string is its position in `label.classes` (-1 for another,
    which the Trainer's label check refuses with the rows per id), an integer is its id.

    A constant lookup, not a vocabulary of the data: ids must not depend on how often
    each class occurs (TFT's order), or they would swap between data versions while
    clients read probabilities by position. A string label without `classes` is
    refused: where pre-flight reads no CSV (TFRecord, Kubeflow) nothing has listed them
    before the pipeline was built (pipeline/classes.py).
    """
    labels = present(x, label.column)
    if labels.dtype != tf.string:
        return with_class_names(tf.cast(labels, tf.int64), label.classes)
    if label.classes is None:
        raise UserError(
            f"label column {label.column!r} holds strings, and model.label.classes does not "
            "list the classes they name; list them in id order (e.g. classes: [cat, dog]): "
            "served probabilities are read by position, so ids come from that list, not "
            "from the data"
        )
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(label.classes), tf.range(len(label.classes), dtype=tf.int64)
        ),
        default_value=-1,
    )
    return with_class_names(table.lookup(labels), label.classes)


def label(x: Tensor, model: ModelConfig) -> tf.Tensor:
    """The label of `model.task`: class ids, or the number as float32 (regression)."""
    if model.is_regression:
        return tf.cast(present(x, model.label.column), tf.float32)
    return class_ids(x, model.label)


def preprocessing_fn(
    inputs: Mapping[str, Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """Transform's entry point: the configured features and the label."""
    model = model_config(custom_config)
    outputs = transform_features(inputs, model)
    outputs[LABEL_KEY] = label(inputs[model.label.column], model)
    return outputs
