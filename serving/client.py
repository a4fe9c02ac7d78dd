"""Query a TF Serving model with raw rows (CSV or JSON lines) over gRPC or REST.

Rows become tf.Examples typed like the model's raw features, which the client
learns from the server itself: the model's `serving_raw` signature has one
input per raw feature with its dtype (models/common/export.py). A curated
`schema.pbtxt` can be given instead. Every row is checked before anything is
sent, and each problem is a `UserError` naming the row and column. A classifier's
answers are shown by class name: the model's `classes` output names the probabilities.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import math
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    prediction_service_pb2_grpc,
)

from models.common.export import (
    CLASSES_KEY,
    EXAMPLES_INPUT,
    OUTPUTS_KEY,
    SERVING_DEFAULT_SIGNATURE,
    SERVING_RAW_SIGNATURE,
)
from models.errors import UserError
from serving.warmup import predict_request

Transport = Literal["grpc", "rest"]
Row = dict[str, Any]
# Raw feature name -> how its values are stored in a tf.Example.
FeatureKind = Literal["float", "int", "bytes"]
FeatureKinds = dict[str, FeatureKind]
# Output name -> batch-major array, one entry per row.
Predictions = dict[str, np.ndarray]

DEFAULT_TIMEOUT_S = 30.0
_KIND_OF_DTYPE: dict[tf.dtypes.DType, FeatureKind] = {
    tf.float32: "float",
    tf.float64: "float",
    tf.int32: "int",
    tf.int64: "int",
    tf.string: "bytes",
}
_KIND_OF_SCHEMA_TYPE: dict[int, FeatureKind] = {
    schema_pb2.FLOAT: "float",
    schema_pb2.INT: "int",
    schema_pb2.BYTES: "bytes",
}


def read_rows(path: Path) -> list[Row]:
    """Rows of a `.csv` file (with a header) or a `.jsonl` file (one JSON object a line)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from error
    if path.suffix == ".csv":
        rows: list[Row] = list(csv.DictReader(text.splitlines()))
    elif path.suffix in (".jsonl", ".json"):
        rows = [_json_row(path, number, line) for number, line in _numbered_lines(text)]
    else:
        raise UserError(f"{path}: expected a .csv or .jsonl file")
    if not rows:
        raise UserError(f"{path} holds no rows")
    return rows


def _numbered_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _json_row(path: Path, number: int, line: str) -> Row:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}, line {number}: not valid JSON: {error.msg}") from error
    if not isinstance(row, dict):
        raise UserError(f"{path}, line {number}: expected a JSON object of column: value")
    return row


def feature_kinds_from_schema(schema_path: Path) -> FeatureKinds:
    """Feature kinds from a TFMD `schema.pbtxt` (SchemaGen's output or a curated schema)."""
    try:
        schema = text_format.Parse(schema_path.read_text(), schema_pb2.Schema())
    except (OSError, text_format.ParseError) as error:
        raise UserError(f"cannot read schema {schema_path}: {error}") from error
    return {feature.name: _KIND_OF_SCHEMA_TYPE[feature.type] for feature in schema.feature}


def feature_kinds_from_signatures(
    signatures: Mapping[str, meta_graph_pb2.SignatureDef], model: str
) -> FeatureKinds:
    """Feature kinds from the inputs of the model's `serving_raw` signature."""
    if SERVING_RAW_SIGNATURE not in signatures:
        raise UserError(
            f"model {model!r} has no {SERVING_RAW_SIGNATURE!r} signature to learn its features "
            "from; pass the schema (--schema schema.pbtxt)"
        )
    inputs = signatures[SERVING_RAW_SIGNATURE].inputs
    return {name: _KIND_OF_DTYPE[tf.dtypes.as_dtype(info.dtype)] for name, info in inputs.items()}


def rows_to_examples(rows: Sequence[Row], kinds: FeatureKinds) -> list[bytes]:
    """Serialized tf.Examples; empty cells and nulls are left out (missing values)."""
    return [_example(number, row, kinds) for number, row in enumerate(rows, start=1)]


def _example(number: int, row: Row, kinds: FeatureKinds) -> bytes:
    features = {}
    for column, value in row.items():
        if column is None:  # csv.DictReader's key for cells beyond the header
            raise UserError(f"row {number} has more cells than the header has columns")
        if column not in kinds:
            raise UserError(
                f"row {number}: unknown column {column!r}; the model's features are {sorted(kinds)}"
            )
        if value is None or value == "":
            continue
        features[column] = _feature(number, column, value, kinds[column])
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _feature(number: int, column: str, value: Any, kind: FeatureKind) -> tf.train.Feature:
    where = f"row {number}, column {column!r}"
    if isinstance(value, (list, dict, bool)):
        raise UserError(f"{where}: expected one value, got {value!r}")
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
    try:
        number_value = float(value)
    except ValueError:
        raise UserError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number_value):
        raise UserError(f"{where}: {value!r} is not a finite number")
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=[number_value]))
    if not number_value.is_integer():
        raise UserError(f"{where}: {value!r} is not an integer")
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(number_value)]))


def predict(
    server: str,
    model: str,
    rows: Sequence[Row],
    transport: Transport = "grpc",
    signature: str = SERVING_DEFAULT_SIGNATURE,
    schema_path: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Predictions:
    """Sends `rows` to `model` on the TF Serving at `server` (HOST:PORT); returns its outputs."""
    connection_class = _GrpcModel if transport == "grpc" else _RestModel
    with contextlib.closing(connection_class(server, model, timeout_s)) as connection:
        if schema_path is not None:
            kinds = feature_kinds_from_schema(schema_path)
        else:
            kinds = feature_kinds_from_signatures(connection.signatures(), model)
        examples = rows_to_examples(rows, kinds)
        return connection.predict(examples, signature)


class _GrpcModel:
    def __init__(self, server: str, model: str, timeout_s: float):
        self._address = _host_port(server)
        self._model = model
        self._timeout_s = timeout_s
        self._channel = grpc.insecure_channel(self._address)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def signatures(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self._model
        response = self._call(self._stub.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def predict(self, examples: list[bytes], signature: str) -> Predictions:
        response = self._call(self._stub.Predict, predict_request(examples, self._model, signature))
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout_s)
        except grpc.RpcError as error:
            raise _grpc_error(error, self._address, self._model) from None


def _grpc_error(error: grpc.RpcError, address: str, model: str) -> UserError:
    code, details = error.code(), error.details()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return UserError(f"cannot reach TF Serving over gRPC at {address}: {details}")
    if code == grpc.StatusCode.NOT_FOUND:
        return UserError(f"TF Serving at {address} has no model {model!r}: {details}")
    return UserError(f"TF Serving at {address} refused the request ({code.name}): {details}")


class _RestModel:
    def __init__(self, server: str, model: str, timeout_s: float):
        self._address = _host_port(server)
        self._model = model
        self._timeout_s = timeout_s
        self._url = f"http://{self._address}/v1/models/{model}"

    def close(self) -> None:
        """Nothing to release: each call opens and closes its own HTTP connection."""

    def signatures(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        metadata = self._call(f"{self._url}/metadata")
        signature_map = json_format.ParseDict(
            metadata["metadata"]["signature_def"],
            get_model_metadata_pb2.SignatureDefMap(),
            ignore_unknown_fields=True,
        )
        return dict(signature_map.signature_def)

    def predict(self, examples: list[bytes], signature: str) -> Predictions:
        body = {
            "signature_name": signature,
            "instances": [
                {EXAMPLES_INPUT: {"b64": base64.b64encode(example).decode()}}
                for example in examples
            ],
        }
        predictions = self._call(f"{self._url}:predict", body)["predictions"]
        # TF Serving's row format lists bare values when the signature has one output.
        if predictions and not isinstance(predictions[0], dict):
            return {OUTPUTS_KEY: np.asarray(predictions)}
        return {name: np.asarray([row[name] for row in predictions]) for name in predictions[0]}

    def _call(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            message = _rest_error_message(error)
            if error.code == 404:
                raise UserError(
                    f"TF Serving at {self._address} has no model {self._model!r}: {message}"
                ) from None
            raise UserError(
                f"TF Serving at {self._address} refused the request (HTTP {error.code}): {message}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise UserError(
                f"cannot reach TF Serving over REST at {self._address}: {reason}"
            ) from None


def _rest_error_message(error: urllib.error.HTTPError) -> str:
    body = error.read().decode(errors="replace")
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.strip() or error.reason


def _host_port(server: str) -> str:
    address = server.removeprefix("http://").rstrip("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"server {server!r} must be HOST:PORT, e.g. localhost:8500 (gRPC) or localhost:8501 (REST)"
        )
    return address


def class_probabilities(predictions: Predictions) -> tuple[list[str], np.ndarray] | None:
    """The class names a classifier answers (its `classes` output) and each row's
    probability of each, [rows, classes]; None for a model that names no classes. One
    sigmoid output is the probability of the second class."""
    if CLASSES_KEY not in predictions or OUTPUTS_KEY not in predictions:
        return None
    names = [_text(name) for name in np.asarray(predictions[CLASSES_KEY])[0]]
    outputs = np.asarray(predictions[OUTPUTS_KEY], np.float64)
    probabilities = outputs.reshape(len(outputs), -1)
    if probabilities.shape[1] == 1 and len(names) == 2:
        probabilities = np.concatenate([1 - probabilities, probabilities], axis=1)
    return names, probabilities


def _text(name: Any) -> str:
    """A string tensor's value as text: gRPC answers bytes, REST JSON strings."""
    return name.decode() if isinstance(name, bytes) else str(name)


def prediction_records(predictions: Predictions) -> list[dict[str, Any]]:
    """One JSON-able record per row: `{"row": n, "class": name, "probabilities": {name:
    p}}` for a classifier that names its classes, else `{"row": n, <output>: value or
    list}`."""
    named = class_probabilities(predictions)
    if named is not None:
        names, probabilities = named
        return [
            {
                "row": i + 1,
                "class": names[int(np.argmax(row))],
                "probabilities": dict(zip(names, row.tolist(), strict=True)),
            }
            for i, row in enumerate(probabilities)
        ]
    rows = len(next(iter(predictions.values())))
    return [
        {"row": i + 1, **{name: values[i].tolist() for name, values in sorted(predictions.items())}}
        for i in range(rows)
    ]


def format_table(predictions: Predictions) -> str:
    """A plain-text table, one line per row: a classifier that names its classes shows
    the most likely class and `p(<class>)` of each; other models one column per output
    value."""
    columns: dict[str, np.ndarray] = {}
    named = class_probabilities(predictions)
    if named is not None:
        names, probabilities = named
        columns["class"] = np.asarray([names[j] for j in probabilities.argmax(axis=1)])
        columns.update({f"p({name})": probabilities[:, j] for j, name in enumerate(names)})
    else:
        for name, values in sorted(predictions.items()):
            flat = values.reshape(len(values), -1)
            if flat.shape[1] == 1:
                columns[name] = flat[:, 0]
            else:
                columns.update({f"{name}[{j}]": flat[:, j] for j in range(flat.shape[1])})
    rows = len(next(iter(columns.values())))
    table = [["row", *columns]]
    table += [[str(i + 1), *(_cell(values[i]) for values in columns.values())] for i in range(rows)]
    widths = [max(len(line[k]) for line in table) for k in range(len(table[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in table
    )


def _cell(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, (float, np.floating)) else str(value)
