"""The Compressor's contract: its input and output keys, what it writes in its
artifacts and the custom properties it records. The executor, the pusher, the run
summary and the report read these names from here; no TensorFlow or TFX import, so the
light commands (`leanline runs`, `report`) can read them too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tfx import types

MODEL_KEY = "model"
TRANSFORM_GRAPH_KEY = "transform_graph"
EXAMPLES_KEY = "examples"
CUSTOM_CONFIG_KEY = "custom_config"
COMPRESSED_MODEL_KEY = "compressed_model"
COMPRESSION_REPORT_KEY = "compression_report"
FLOAT_MODEL_KEY = "float_model"
TFLITE_EXAMPLES_KEY = "tflite_examples"

TFLITE_DIR = "Format-TFLite"
TFLITE_FILE = "model.tflite"
# The model alone, on Transform's outputs: for clients that transform features themselves.
TRANSFORMED_INPUTS_TFLITE_FILE = "transformed_inputs.tflite"
# Where TFMA reads a `tf_lite` model: this file in the model's serving directory.
TFMA_TFLITE_FILE = "tflite"
RAW_EXAMPLES_KEY = "raw_examples"
END_TO_END_KEY = "end_to_end"
# Custom properties of compressed_model: what its TFLite takes (below), and
# a classifier's end-to-end TFLite's class agreement with the SavedModel on eval rows.
TFLITE_INPUTS_PROPERTY = "tflite_inputs"
# What the shipped TFLite takes: raw features (end to end), transformed features (the
# model part alone), or token ids (with its tokenizer beside it).
RAW_INPUTS = "raw"
TRANSFORMED_INPUTS = "transformed"
TOKEN_IDS_INPUTS = "token_ids"
# Each, in words for people (the run summary, the report).
TFLITE_INPUTS_WORDS = {
    RAW_INPUTS: "end to end, raw features in and the Transform inside, as TF Serving serves "
    "it with --prefer_tflite_model and devices run it",
    TRANSFORMED_INPUTS: "the model alone on transformed features; this run ships no "
    "end-to-end TFLite",
    TOKEN_IDS_INPUTS: "on token ids, with tokenizer.json and vocabulary.txt beside it",
}
MODEL_PART_WORDS = "the model alone on transformed features"
TOKENIZED_TFLITE_KEY = "tokenized_tflite"
# The share of eval rows on which the shipped TFLite, fed as a client feeds it (raw
# features, or the shipped tokenizer's ids of the raw text), and the SavedModel predict
# the same class. (Named when only end-to-end TFLite models had it.)
END_TO_END_AGREEMENT_PROPERTY = "end_to_end_class_agreement"
SEARCH_KEY = "search"
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"

# Custom properties of the compression_report artifact. Those without a prefix are the
# model part's (the model alone, on transformed features: `transformed_inputs.tflite`),
# what compression changes: its compressed TFLite against the float TFLite, quality the
# float Keras model's against the compressed TFLite's. They are the shipped file's figures
# too except where the shipped `model.tflite` is the end-to-end one, which holds the
# Transform as well: its figures, against the float end-to-end TFLite, carry the same
# names with END_TO_END_PREFIX.
ENABLED_PROPERTY = "compression_enabled"
FLOAT_PROPERTIES = (
    "tflite_zipped_ratio",
    "saved_model_zipped_ratio",
    "float_quality",
    "compressed_quality",
    "quality_change",
    "quality_relative_change",
)
# Which quality the float properties hold: accuracy, or mean_absolute_error (regression).
QUALITY_METRIC_PROPERTY = "quality_metric"
FLOAT_TFLITE_ZIPPED_PROPERTY = "float_tflite_zipped_bytes"
# The recipe that built the compressed model, in words (the search's choice, or the config's).
RECIPE_PROPERTY = "compression_recipe"
SEARCH_TRIALS_PROPERTY = "search_trials"
COMPRESSED_TFLITE_ZIPPED_PROPERTY = "compressed_tflite_zipped_bytes"
# How many eval rows the quality figures are measured on.
EVAL_ROWS_PROPERTY = "eval_rows"
END_TO_END_PREFIX = "end_to_end_"
# The end-to-end file has no SavedModel of its own to compare sizes with.
END_TO_END_FLOAT_PROPERTIES = tuple(
    name for name in FLOAT_PROPERTIES if name != "saved_model_zipped_ratio"
)
# What the shipped `model.tflite` takes, as compressed_model's TFLITE_INPUTS_PROPERTY says.
SHIPPED_TFLITE_INPUTS_PROPERTY = "shipped_tflite_inputs"


def tflite_model_path(model_uri: str) -> str:
    """Where a compressed Model artifact keeps the TFLite model it ships: the end-to-end
    one (raw features in) where the family has one, else the model alone."""
    return os.path.join(model_uri, TFLITE_DIR, TFLITE_FILE)


def tflite_takes_raw_features(model: types.Artifact) -> bool:
    """Whether a compressed Model's TFLite is the end-to-end one, which TF Serving can
    serve beside the SavedModel (the same `serving_raw` signature)."""
    return model.get_string_custom_property(TFLITE_INPUTS_PROPERTY) == RAW_INPUTS
