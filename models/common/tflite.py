"""TFLite conversion of tf_keras models, and the interpreter that runs them.

TFLite models take and return what the Keras model does (float features, int64 ids,
float probabilities or predictions); the ops inside may be int8. So both run on the same
feature dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from models.common.tflite_format import without_debug_strings

# LiteRT is TFLite's successor; tf.lite.Interpreter is deprecated since TF 2.20.
INTERPRETER = "ai_edge_litert"
# One interpreter thread: latencies that hold still on a shared CPU.
TFLITE_THREADS = 1

Features = Mapping[str, np.ndarray]
TfliteOptimization = Literal["none", "dynamic", "int8"]


def num_rows(features: Features) -> int:
    return len(next(iter(features.values())))


def take_rows(features: Features, count: int) -> dict[str, np.ndarray]:
    """The first `count` rows, cycling through the rows when there are fewer."""
    indices = np.arange(count) % num_rows(features)
    return {name: values[indices] for name, values in features.items()}


def to_tflite(
    model: keras.Model,
    optimization: TfliteOptimization = "none",
    calibration: Features | None = None,
) -> bytes:
    """A TFLite flatbuffer of `model`, signature `serving_default` keyed by input name,
    without debugging strings.

    - none: float32 throughout.
    - dynamic: int8 weights; activations stay float.
    - int8: int8 weights and activations. With `calibration` rows (post-training
      quantization) every op must have an int8 kernel, or conversion fails; without,
      the ranges come from a QAT model's fake-quant ops.
    Inputs and outputs keep the Keras model's dtypes in every case.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if optimization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if optimization == "int8" and calibration is not None:

        def calibration_rows() -> Iterator[dict[str, np.ndarray]]:
            for index in range(num_rows(calibration)):
                yield {name: values[index : index + 1] for name, values in calibration.items()}

        converter.representative_dataset = calibration_rows
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return without_debug_strings(converter.convert())


class TfliteModel:
    """A TFLite flatbuffer loaded into an interpreter, called like the Keras model."""

    def __init__(self, content: bytes):
        self.interpreter = Interpreter(model_content=content, num_threads=TFLITE_THREADS)
        self._runner = self.interpreter.get_signature_runner()
        (self._output,) = self._runner.get_output_details()

    def __call__(self, features: Features) -> np.ndarray:
        return self._runner(**features)[self._output]

    def inputs(self) -> list[dict[str, Any]]:
        """The input tensors in the interpreter's positional order (for callers that
        set tensors by index), with their signature keys."""
        by_index = {
            detail["index"]: key for key, detail in self._runner.get_input_details().items()
        }
        return [
            {
                "key": by_index[detail["index"]],
                "index": int(detail["index"]),
                "dtype": np.dtype(detail["dtype"]).name,
                "shape": [int(d) for d in detail["shape_signature"]],
            }
            for detail in self.interpreter.get_input_details()
        ]

    def tensor_dtype_counts(self) -> dict[str, int]:
        """How many tensors (weights and activations) the model holds of each dtype."""
        counts: dict[str, int] = {}
        for detail in self.interpreter.get_tensor_details():
            dtype = np.dtype(detail["dtype"]).name
            counts[dtype] = counts.get(dtype, 0) + 1
        return dict(sorted(counts.items()))
