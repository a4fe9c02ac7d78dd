"""TF Serving warm-up requests: real eval examples replayed when a version loads.

TF Serving reads `assets.extra/tf_serving_warmup_requests` (a TFRecord file of
`PredictionLog`) from a version directory and runs each request before it marks
the version available, so the first user request does not pay for lazy
initialization. The requests are made of serialized eval tf.Examples as
ExampleGen wrote them (gzipped TFRecords under `<examples uri>/Split-eval/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from models.common.data import raw_rows
from models.common.export import EXAMPLES_INPUT, SERVING_DEFAULT_SIGNATURE, SERVING_RAW_SIGNATURE
from models.errors import UserError

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def predict_request(
    serialized_examples: Sequence[bytes],
    model_name: str,
    signature: str = SERVING_DEFAULT_SIGNATURE,
) -> predict_pb2.PredictRequest:
    """A Predict request of a batch of serialized tf.Examples on an `examples` signature."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs[EXAMPLES_INPUT].CopyFrom(
        tf.make_tensor_proto(
            list(serialized_examples), dtype=tf.string, shape=[len(serialized_examples)]
        )
    )
    return request


def raw_predict_request(
    row: Mapping[str, np.ndarray], specs: Mapping[str, tf.TensorSpec], model_name: str
) -> predict_pb2.PredictRequest:
    """A Predict request on `serving_raw`: one tensor per raw feature."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SERVING_RAW_SIGNATURE
    for name, values in row.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=specs[name].dtype))
    return request


def warmup_records(
    serialized_examples: Sequence[bytes],
    model_name: str,
    raw_specs: Mapping[str, tf.TensorSpec] | None = None,
) -> list[prediction_log_pb2.PredictionLog]:
    """One single-example Predict request per example, as TF Serving replays them: on
    `serving_default`, or with `raw_specs` on `serving_raw` (the signature a version's
    SavedModel and its end-to-end TFLite both have; a missing value as MISSING_VALUES)."""
    if raw_specs is None:
        requests = [predict_request([example], model_name) for example in serialized_examples]
    else:
        rows, _ = raw_rows(tf.constant(list(serialized_examples), tf.string), raw_specs)
        count = len(next(iter(rows.values()))) if rows else 0
        requests = [
            raw_predict_request(
                {name: values[index : index + 1] for name, values in rows.items()},
                raw_specs,
                model_name,
            )
            for index in range(count)
        ]
    return [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=r))
        for r in requests
    ]


def write_warmup_requests(
    version_dir: Path, records: Sequence[prediction_log_pb2.PredictionLog]
) -> Path:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup_requests(version_dir: Path) -> list[prediction_log_pb2.PredictionLog]:
    """The warm-up records of a version directory; empty when it has none."""
    path = version_dir / WARMUP_FILE
    if not path.exists():
        return []
    try:
        return [
            prediction_log_pb2.PredictionLog.FromString(record)
            for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
        ]
    except (tf.errors.DataLossError, DecodeError) as error:
        raise UserError(
            f"warm-up file {path} is not a TFRecord file of PredictionLog: {error}"
        ) from error
