"""What a model costs and how fast it answers: sizes (raw and zipped), predictions in
batches, and wall-clock latencies, for Keras models and TFLite interpreters alike."""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.common.tflite import Features, num_rows, take_rows

LATENCY_BATCH_SIZES = (1, 256)
LATENCY_RUNS = {1: 300, 256: 50}
DEFAULT_LATENCY_RUNS = 100
LATENCY_WARMUP_RUNS = 10
PREDICT_BATCH_SIZE = 256


@dataclass(frozen=True)
class Size:
    bytes: int
    # DEFLATE (zip, level 9): what zeros and repeated int8 values save on the wire.
    zipped_bytes: int


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float


def zipped_size(files: Mapping[str, bytes]) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.tell()


def tflite_size(content: bytes) -> Size:
    return Size(len(content), zipped_size({"model.tflite": content}))


def saved_model_variables_size(model: keras.Model) -> Size:
    """Size of the model's weights as a SavedModel's variables/ stores them (a checkpoint)."""
    with tempfile.TemporaryDirectory() as directory:
        tf.train.Checkpoint(weights=model.variables).write(os.path.join(directory, "variables"))
        files = {path.name: path.read_bytes() for path in sorted(Path(directory).iterdir())}
    return Size(sum(len(content) for content in files.values()), zipped_size(files))


Predict = Callable[[Features], np.ndarray]


def keras_predictor(model: keras.Model) -> Predict:
    """`model` in inference mode behind one tf.function, as a SavedModel would run it."""

    @tf.function(reduce_retracing=True)
    def call(features: dict[str, tf.Tensor]) -> tf.Tensor:
        return model(features, training=False)

    def predict(features: Features) -> np.ndarray:
        return call(dict(features)).numpy()

    return predict


def predict_in_batches(predict: Predict, features: Features) -> np.ndarray:
    total = num_rows(features)
    return np.concatenate(
        [
            predict(
                {
                    name: values[start : start + PREDICT_BATCH_SIZE]
                    for name, values in features.items()
                }
            )
            for start in range(0, total, PREDICT_BATCH_SIZE)
        ]
    )


def latency(predict: Predict, features: Features, batch_size: int) -> Latency:
    """Wall-clock p50/p95 of one `predict` call on `batch_size` rows, input copy included."""
    batch = take_rows(features, batch_size)
    for _ in range(LATENCY_WARMUP_RUNS):
        predict(batch)
    seconds = []
    for _ in range(LATENCY_RUNS.get(batch_size, DEFAULT_LATENCY_RUNS)):
        start = time.perf_counter()
        predict(batch)
        seconds.append(time.perf_counter() - start)
    p50, p95 = np.percentile(seconds, [50, 95]) * 1000
    return Latency(p50_ms=float(p50), p95_ms=float(p95))


def latencies(predict: Predict, features: Features) -> dict[str, Latency]:
    return {f"batch_{size}": latency(predict, features, size) for size in LATENCY_BATCH_SIZES}
