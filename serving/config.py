"""The `serving` section of a leanline config: TF Serving's batching and TFLite options
and the Kubernetes deployment. Floor 2 (serving/) owns it, so serving code reads its
own type and pipeline.config only composes it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from models.config import NonNegativeInt, PositiveInt, StrictSection


class ServingConfig(StrictSection):
    # TF Serving's batching parameters (batching.config).
    max_batch_size: PositiveInt = 128
    batch_timeout_micros: NonNegativeInt = 2000
    max_enqueued_batches: PositiveInt = 100
    num_batch_threads: PositiveInt = 4
    # Eval examples written as warm-up requests into assets.extra.
    warmup_requests: NonNegativeInt = 16
    # Serve each version's end-to-end int8 model.tflite instead of its SavedModel
    # (TF Serving's experimental --prefer_tflite_model), with these interpreter pools.
    prefer_tflite: bool = False
    num_tflite_pools: PositiveInt = 1
    num_tflite_interpreters_per_pool: PositiveInt = 1
    # Kubernetes.
    replicas: PositiveInt = 1
    max_replicas: PositiveInt = 4
    cpu: str = "1"
    memory: str = "2Gi"
    model_base_path: str = "/models"


class ServedModel(Protocol):
    """What serving reads of a run's config: its name, its `serving` section and where
    pushed versions go. pipeline.config.LeanlineConfig is one; serving names this shape
    rather than importing it from the floor above."""

    @property
    def name(self) -> str: ...

    @property
    def serving(self) -> ServingConfig: ...

    @property
    def serving_model_dir(self) -> Path: ...
