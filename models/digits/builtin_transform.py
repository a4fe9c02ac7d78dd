"""Digits' Transform for the end-to-end TFLite: the 64 pixel columns stacked and scaled,
in builtin TFLite ops (it has no analyzers)."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf
import tensorflow_transform as tft

from models.common.end_to_end import RawTransform, float_block
from models.config import ModelConfig
from models.digits.features import IMAGE_KEY, PIXEL_COLUMNS
from models.digits.preprocessing import scaled_pixels


def builtin_transform(
    tf_transform_output: tft.TFTransformOutput, model: ModelConfig
) -> RawTransform:
    del tf_transform_output, model  # nothing analyzed, nothing configured

    def transform(raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {IMAGE_KEY: scaled_pixels(float_block(raw, PIXEL_COLUMNS))}

    return transform
