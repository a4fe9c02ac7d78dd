"""Digits constants: 8x8 grey images, one CSV column per pixel, values 0..16."""

from models.common.features import transformed_name

IMAGE_SIDE = 8
PIXEL_COLUMNS = [f"pixel_{i}" for i in range(IMAGE_SIDE * IMAGE_SIDE)]
MAX_PIXEL_VALUE = 16.0
# The one model input: all pixels as floats in [0, 1], shape [IMAGE_SIDE * IMAGE_SIDE].
IMAGE_KEY = transformed_name("image")
