"""The eval split as TFMA must read it to judge the end-to-end TFLite: each raw feature
also under the name of the TFLite input that takes it, one value per row, a missing
value as `models.common.export.MISSING_VALUES` says.

TFMA's TFLite extractor looks each model input up among an example's features by its
tensor name (the converter names them `serving_raw_<feature>:0`, and TFMA drops the
`:0`), and fills an input it does not find with -1 or "": neither how a client sends a
gap to TF Serving nor what TFT's Transform makes of one. The raw features stay as they
are, so slices and the SavedModel's `transform_features` (the label) read the data
unchanged. A Beam pipeline: the split scales out on the pipeline's runner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from models.common.data import EVAL_SPLIT
from models.common.export import MISSING_VALUES, SERVING_RAW_SIGNATURE

# The converter names a signature's input tensors `<signature>_<argument>`.
TFLITE_INPUT_PREFIX = f"{SERVING_RAW_SIGNATURE}_"
# tf.train.Feature's value lists by the dtype of the raw feature.
_VALUE_LIST = {tf.float32: "float_list", tf.int64: "int64_list", tf.string: "bytes_list"}
# What ExampleGen writes, and so what the Evaluator's TFXIO reads.
_FILE_FORMAT = "tfrecords_gzip"


def tflite_input_name(feature: str) -> str:
    return TFLITE_INPUT_PREFIX + feature


def with_tflite_inputs(record: bytes, dtypes: Mapping[str, tf.dtypes.DType]) -> bytes:
    """One serialized tf.Example with `tflite_input_name(f)` added for each raw feature
    `f`: its value, or the missing value where it has none (or several, which
    `serving_raw` cannot take and no CSV row holds)."""
    example = tf.train.Example.FromString(record)
    features = example.features.feature
    for name, dtype in dtypes.items():
        value_list = _VALUE_LIST[dtype]
        values = getattr(features[name], value_list).value if name in features else []
        value = values[0] if len(values) == 1 else MISSING_VALUES[dtype]
        getattr(features[tflite_input_name(name)], value_list).value.append(value)
    return example.SerializeToString()


def write_tflite_examples(
    pipeline: beam.Pipeline,
    raw_examples: types.Artifact,
    output: types.Artifact,
    dtypes: Mapping[str, tf.dtypes.DType],
) -> None:
    """Adds to `pipeline` the steps that write `raw_examples`' eval split, with the
    TFLite's inputs added, as the Examples artifact `output` (split `eval`)."""
    source = os.path.join(artifact_utils.get_split_uri([raw_examples], EVAL_SPLIT), "*")
    target = os.path.join(output.uri, f"Split-{EVAL_SPLIT}", "data_tfrecord")
    _ = (
        pipeline
        | "ReadEvalSplit" >> beam.io.ReadFromTFRecord(source)
        | "AddTFLiteInputs" >> beam.Map(with_tflite_inputs, dict(dtypes))
        | "WriteEvalSplit" >> beam.io.WriteToTFRecord(target, file_name_suffix=".gz")
    )
    output.split_names = artifact_utils.encode_split_names([EVAL_SPLIT])
    examples_utils.set_payload_format(output, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(output, _FILE_FORMAT)
