"""Digits' Transform: the 64 pixel columns stacked into one image scaled to [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from models.common.features import LABEL_KEY, model_config
from models.digits.features import IMAGE_KEY, MAX_PIXEL_VALUE, PIXEL_COLUMNS
from models.tabular.preprocessing import Tensor, class_ids, dense


def preprocessing_fn(
    inputs: Mapping[str, Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """Transform's entry point: `image_xf` [batch, 64] floats, and the label."""
    model = model_config(custom_config)
    pixels = [tf.cast(dense(inputs[column], 0), tf.float32) for column in PIXEL_COLUMNS]
    return {
        IMAGE_KEY: tf.stack(pixels, axis=1) / MAX_PIXEL_VALUE,
        LABEL_KEY: class_ids(inputs[model.label.column], model.label.column),
    }
