"""A component's `custom_config`, both ways: the config sections as the plain JSON dicts
TFX passes to Transform, Trainer and Compressor (`to_custom_config`), and back into the
typed sections (`model_config`, `training_config`, `compression_config`), so model code
never reads raw dict keys. One module for both directions, so that they agree;
pipeline.config.custom_config resolves a LeanlineConfig's sections and calls
`to_custom_config`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.config import MODULE_FILE_SUFFIX, CompressionConfig, ModelConfig, TrainingConfig

# The custom_config key of a module file's content hash (see to_custom_config).
MODULE_SHA256_KEY = "module_sha256"


def to_custom_config(sections: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The dumped sections as a component receives them. A model module file found here
    also adds its content hash: components name it by path or name, and without the
    hash an edited module would be answered from TFX's cache. (Only the module's own
    file counts, not what it imports.)"""
    data = dict(sections)
    model = data.get("model")
    source = _module_source(model["module"]) if model and model["module"] else None
    if source is not None:
        data[MODULE_SHA256_KEY] = hashlib.sha256(source.read_bytes()).hexdigest()
    return data


def _module_source(module: str) -> Path | None:
    """The local file of a model module, when there is one here: a .py path, or where
    a dotted module is installed (an image path or a bucket URI has none)."""
    if module.endswith(MODULE_FILE_SUFFIX):
        return Path(module) if os.path.isfile(module) else None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec else None
    return Path(origin) if origin and os.path.isfile(origin) else None


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
