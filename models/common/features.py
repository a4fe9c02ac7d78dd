"""Names shared by every model family, and the typed config behind `custom_config`.

Transform, Trainer and Compressor receive `pipeline.config.custom_config(config)`: plain
JSON dicts of config sections. The functions here validate them back into the typed
`pipeline.config` objects, so model code never reads raw dict keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from pipeline.config import CompressionConfig, ModelConfig, TrainingConfig

# Every preprocessing_fn outputs the label under this key: the class id (int64,
# 0..num_classes-1), or for regression the number (float32).
LABEL_KEY = "label"
TRANSFORMED_SUFFIX = "_xf"
# Names of analyzer results the end-to-end TFLite reads back (see `analyzed`).
ANALYZED_PREFIX = "leanline_analyzed_"


def transformed_name(column: str) -> str:
    """The transformed feature name of a raw column."""
    return f"{column}{TRANSFORMED_SUFFIX}"


def analyzed(tensor: tf.Tensor, key: str) -> tf.Tensor:
    """An analyzer's result inside a preprocessing_fn, named so that
    `models.common.end_to_end.analyzed_constants` can read its value back from the
    transform graph, where TFT has made it a constant."""
    return tf.identity(tensor, name=f"{ANALYZED_PREFIX}{key}")


def _section(custom_config: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    if not custom_config or name not in custom_config:
        raise ValueError(
            f"custom_config has no {name!r} section; pass pipeline.config.custom_config(config)"
        )
    return custom_config[name]


def model_config(custom_config: Mapping[str, Any] | None) -> ModelConfig:
    return ModelConfig.model_validate(_section(custom_config, "model"))


def training_config(custom_config: Mapping[str, Any] | None) -> TrainingConfig:
    return TrainingConfig.model_validate(_section(custom_config, "training"))


def compression_config(custom_config: Mapping[str, Any] | None) -> CompressionConfig:
    return CompressionConfig.model_validate(_section(custom_config, "compression"))


@dataclass(frozen=True)
class ModelInput:
    """One transformed feature as the Keras model sees it."""

    name: str
    dtype: tf.dtypes.DType
    # Per-example shape: () for a scalar, (64,) for the digits image.
    shape: tuple[int, ...]
    # Number of ids of an integerized feature (vocabulary, buckets); None for floats.
    num_categories: int | None


def model_inputs(tf_transform_output: tft.TFTransformOutput) -> dict[str, ModelInput]:
    """The Keras model's inputs: every transformed feature except the label, by name.

    Integer features carry the id range Transform recorded in the transformed schema
    (vocabularies and buckets record theirs), so models size one-hots and embeddings
    from what the data holds rather than from config upper bounds.
    """
    inputs = {}
    for name, spec in sorted(tf_transform_output.transformed_feature_spec().items()):
        if name == LABEL_KEY:
            continue
        if not isinstance(spec, tf.io.FixedLenFeature):
            raise ValueError(f"transformed feature {name!r} must be dense, got {spec}")
        num_categories = None
        if spec.dtype.is_integer:
            num_categories = tf_transform_output.num_buckets_for_transformed_feature(name)
        inputs[name] = ModelInput(name, spec.dtype, tuple(spec.shape), num_categories)
    return inputs
