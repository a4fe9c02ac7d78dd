"""Transform's entry point for `model.module`: the module's own preprocessing_fn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from models.common.features import model_config
from models.custom.loader import module_function


def preprocessing_fn(
    inputs: Mapping[str, Any], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    module = model_config(custom_config).module
    return module_function(module, "preprocessing_fn")(inputs, custom_config)
