"""The tabular Transform for the end-to-end TFLite: the same features from dense raw
inputs, with the analyzers' results as constants and builtin TFLite ops only.

TFT's graph reads vocabularies from asset files through hash tables, hashes unseen
values into buckets and densifies sparse inputs: ops TFLite's builtins (and so TF
Serving's TFLite runtime) do not have. Here the z-scores, buckets and clipped ids reuse
preprocessing.py's own functions with the values Transform computed, and a vocabulary
lookup is a comparison with the vocabulary as a constant. Every input is one value per
row, as `serving_raw` takes it, a missing one as MISSING_VALUES says. `models.common.end_to_end` checks the result equal to
the TFT graph's on eval rows before it ships.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.common.end_to_end import RawTransform, float_block, vocabulary_ids
from models.common.features import analyzed_constants, transformed_name
from models.config import ModelConfig
from models.tabular.preprocessing import (
    BUCKET_BOUNDARIES,
    BUCKET_FILL,
    BUCKETIZED_KEY,
    CATEGORICAL_INT_KEY,
    MISSING_CATEGORY,
    NUMERIC_KEY,
    NUMERIC_MEAN,
    NUMERIC_STD,
    bucket_ids,
    clip_ids,
    standardized,
)


def _vocabulary(tf_transform_output: tft.TFTransformOutput, column: str) -> np.ndarray:
    """The column's vocabulary as its raw values: integer columns were looked up by their
    decimal strings."""
    entries = tf_transform_output.vocabulary_by_name(column)
    if tf_transform_output.raw_feature_spec()[column].dtype.is_integer:
        return np.array([int(entry) for entry in entries], np.int64)
    return np.array(entries, dtype=object)


def builtin_transform(
    tf_transform_output: tft.TFTransformOutput, model: ModelConfig
) -> RawTransform:
    """The Transform in builtin ops (for configs with `model.end_to_end_tflite`)."""
    features = model.features
    keys = []
    if features.numeric:
        keys += [NUMERIC_MEAN, NUMERIC_STD]
    if features.bucketized:
        keys += [BUCKET_BOUNDARIES, BUCKET_FILL]
    constants = analyzed_constants(tf_transform_output, keys)
    vocabularies = {c: _vocabulary(tf_transform_output, c) for c in features.categorical}

    def transform(raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = {}
        if features.numeric:
            outputs[NUMERIC_KEY] = standardized(
                float_block(raw, features.numeric), constants[NUMERIC_MEAN], constants[NUMERIC_STD]
            )
        if features.bucketized:
            outputs[BUCKETIZED_KEY] = bucket_ids(
                float_block(raw, list(features.bucketized)),
                constants[BUCKET_BOUNDARIES],
                constants[BUCKET_FILL],
                list(features.bucketized.values()),
            )
        if features.categorical_int:
            outputs[CATEGORICAL_INT_KEY] = clip_ids(
                float_block(raw, list(features.categorical_int)),
                list(features.categorical_int.values()),
            )
        for column, vocabulary in vocabularies.items():
            x = raw[column]
            outputs[transformed_name(column)] = vocabulary_ids(
                x, vocabulary, MISSING_CATEGORY[x.dtype == tf.string]
            )
        return outputs

    return transform
