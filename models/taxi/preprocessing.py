"""Taxi's Transform: the tabular features, and the label "tip above 20% of the fare"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from models.common.features import LABEL_KEY, with_class_names
from models.custom_config import model_config
from models.tabular.preprocessing import Tensor, dense, transform_features
from models.taxi.features import BIG_TIP_FRACTION, FARE_COLUMN


def big_tipper(tips: Tensor, fare: Tensor) -> tf.Tensor:
    """1 when tips > BIG_TIP_FRACTION * fare; 0 when the fare is 0 or either is missing."""
    tips = tf.cast(dense(tips, 0), tf.float32)
    fare = tf.cast(dense(fare, 0), tf.float32)
    return tf.cast((fare > 0) & (tips > BIG_TIP_FRACTION * fare), tf.int64)


def preprocessing_fn(
    inputs: Mapping[str, Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """Transform's entry point; the label's raw column is `model.label.column` (tips)."""
    model = model_config(custom_config)
    outputs = transform_features(inputs, model)
    tipped = big_tipper(inputs[model.label.column], inputs[FARE_COLUMN])
    outputs[LABEL_KEY] = with_class_names(tipped, model.label.classes)
    return outputs
