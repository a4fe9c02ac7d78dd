"""Digits' Transform: the 64 pixel columns stacked into one image scaled to [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from models.common.features import LABEL_KEY
from models.custom_config import model_config
from models.digits.features import IMAGE_KEY, MAX_PIXEL_VALUE, PIXEL_COLUMNS
from models.tabular.preprocessing import Tensor, class_ids, stacked_floats


def scaled_pixels(pixels: tf.Tensor) -> tf.Tensor:
    """A [batch, 64] block of pixel values in [0, 1]; a missing or non-finite pixel is black."""
    pixels = tf.where(tf.math.is_finite(pixels), pixels, tf.zeros_like(pixels))
    return pixels / MAX_PIXEL_VALUE


def preprocessing_fn(
    inputs: Mapping[str, Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """Transform's entry point: `image_xf` [batch, 64] floats, and the label."""
    model = model_config(custom_config)
    return {
        IMAGE_KEY: scaled_pixels(stacked_floats(inputs, PIXEL_COLUMNS)),
        LABEL_KEY: class_ids(inputs[model.label.column], model.label),
    }
