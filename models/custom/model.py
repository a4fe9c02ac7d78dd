"""The Trainer's entry point for `model.module`: the module's own build_model, trained,
compressed and exported as leanline does for every family."""

from __future__ import annotations

from collections.abc import Mapping

import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from models.common.features import ModelInput
from models.common.train import train_and_export
from models.config import ModelConfig
from models.custom.loader import module_function


def build_model(inputs: Mapping[str, ModelInput], model: ModelConfig) -> keras.Model:
    return module_function(model.module, "build_model", model.module_sha256)(inputs, model)


def run_fn(fn_args: FnArgs) -> None:
    """Trainer's entry point."""
    train_and_export(fn_args, build_model)
