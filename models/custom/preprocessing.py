"""Transform's entry point for `model.module`: the module's own preprocessing_fn, its
label named by `model.label.classes` where the config lists them (the module's own
mapping decides what each id means; the served `classes` output names ids by the list)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from models.common.features import LABEL_KEY, with_class_names
from models.custom.loader import module_function
from models.custom_config import model_config


def preprocessing_fn(
    inputs: Mapping[str, Any], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    model = model_config(custom_config)
    outputs = dict(
        module_function(model.module, "preprocessing_fn", model.module_sha256)(
            inputs, custom_config
        )
    )
    if LABEL_KEY in outputs:  # else the Trainer names what is missing
        outputs[LABEL_KEY] = with_class_names(outputs[LABEL_KEY], model.label.classes)
    return outputs
