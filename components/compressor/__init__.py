"""Compressor: prunes and quantizes the Trainer's model, and reports float vs compressed."""

from components.compressor.component import CompressionReport, Compressor
from components.compressor.executor import (
    COMPRESSED_MODEL_KEY,
    COMPRESSION_REPORT_KEY,
    REPORT_JSON,
    REPORT_MARKDOWN,
    tflite_model_path,
)

__all__ = [
    "COMPRESSED_MODEL_KEY",
    "COMPRESSION_REPORT_KEY",
    "REPORT_JSON",
    "REPORT_MARKDOWN",
    "CompressionReport",
    "Compressor",
    "tflite_model_path",
]
