"""Query a TF Serving model with raw rows (CSV or JSON lines) over gRPC or REST.

Rows become tf.Examples typed like the model's raw features, which the client
learns from the server itself: the model's `serving_raw` signature has one
input per raw feature with its dtype (models/common/export.py). A curated
`schema.pbtxt` can be given instead. Every row is checked before anything is
sent, and each problem is a `UserError` naming the row and column. A classifier's
answers are shown by class name: the model's `classes` output names the probabilities.

The server is untrusted input too: TLS verifies it (the system's CAs or a given one,
a client certificate if asked), a bearer token from LEANLINE_SERVING_TOKEN goes only
over TLS and is never shown, rows go in requests of at most TF Serving's
max_batch_size, each with a timeout, retried a bounded number of times only while the
server is unavailable, and every reply is read up to a size cap and checked against
the outputs the signature declares before anything is allocated from it. Whatever
the server answers ends in predictions or a `UserError` naming the server, the model
and what was wrong.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import csv
import http.client
import itertools
import json
import math
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow.core.framework import types_pb2
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
from serving.config import ServingConfig
from serving.warmup import predict_request

Transport = Literal["grpc", "rest"]
Row = dict[str, Any]
# Raw feature name -> how its values are stored in a tf.Example.
FeatureKind = Literal["float", "int", "bytes"]
FeatureKinds = dict[str, FeatureKind]
# Output name -> batch-major array, one entry per row.
Predictions = dict[str, np.ndarray]
# Output name -> its dtype and shape, as the server declares them for a signature.
Outputs = Mapping[str, meta_graph_pb2.TensorInfo]

DEFAULT_TIMEOUT_S = 30.0
# TF Serving's batching refuses a request of more rows than its max_batch_size, which
# leanline writes from serving.max_batch_size (serving/configs.py): the client sends
# batches of that setting's default unless told otherwise (--batch-size).
DEFAULT_BATCH_SIZE: int = ServingConfig.model_fields["max_batch_size"].default
TOKEN_ENV = "LEANLINE_SERVING_TOKEN"
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_TOKEN_HINT = f"set {TOKEN_ENV} to a token the server accepts"
_TLS_HINT = (
    "give the CA that signed its certificate (--ca-cert; default: the system's CAs) and, "
    "if it asks for one, a client certificate it accepts (--client-cert, --client-key)"
)
# The most bytes of one reply leanline reads (REST body, gRPC message), and of an
# error body; a reply larger than that is refused, not buffered.
MAX_REPLY_BYTES = 64 * 2**20
MAX_ERROR_BYTES = 64 * 2**10
# The most values one output may hold for one row (a classifier of this many classes),
# checked on a gRPC tensor's stated shape before it is allocated.
MAX_VALUES_PER_ROW = 10_000
# Keyed by the DataType enum of a TensorInfo, which a server may fill with any number.
_KIND_OF_DTYPE: dict[int, FeatureKind] = {
    tf.float32.as_datatype_enum: "float",
    tf.float64.as_datatype_enum: "float",
    tf.int32.as_datatype_enum: "int",
    tf.int64.as_datatype_enum: "int",
    tf.string.as_datatype_enum: "bytes",
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
    kinds: FeatureKinds = {}
    for name, info in signatures[SERVING_RAW_SIGNATURE].inputs.items():
        kind = _KIND_OF_DTYPE.get(info.dtype)
        if kind is None:
            raise UserError(
                f"model {model!r}: its {SERVING_RAW_SIGNATURE!r} input {name!r} has dtype "
                f"{_dtype_name(info.dtype)}, not a float, integer or string; pass the schema (--schema)"
            )
        kinds[name] = kind
    return kinds


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


@dataclass(frozen=True)
class Endpoint:
    """Where TF Serving listens and how to talk to it, from `--server`:

    - `HOST:PORT`: plaintext, over the transport asked for (gRPC unless REST);
    - `grpc://HOST:PORT` plaintext gRPC, `grpcs://HOST[:PORT]` gRPC over TLS;
    - `http://HOST:PORT` plaintext REST, `https://HOST[:PORT]` REST over TLS.

    TLS ports default to 443; a URL names only a server, never a path, so the model's
    path is always leanline's own `/v1/models/<model>`.
    """

    transport: Transport
    host: str
    port: int
    tls: bool

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def api(self) -> str:
        return "gRPC" if self.transport == "grpc" else "REST"

    def __str__(self) -> str:
        return f"{_SCHEME_OF[self.transport, self.tls]}://{self.address}"


_SCHEMES: dict[str, tuple[Transport, bool]] = {
    "grpc": ("grpc", False),
    "grpcs": ("grpc", True),
    "http": ("rest", False),
    "https": ("rest", True),
}
_SCHEME_OF = {value: scheme for scheme, value in _SCHEMES.items()}
_SERVER_FORMS = (
    "HOST:PORT, grpc://HOST:PORT, grpcs://HOST[:PORT], http://HOST:PORT or https://HOST[:PORT]"
)


def parse_endpoint(server: str, transport: Transport | None = None) -> Endpoint:
    """The endpoint `server` names; `transport` (--grpc, --rest) must agree with its scheme."""
    if "://" not in server:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 2**16:
            raise UserError(f"server {server!r} must be {_SERVER_FORMS}, e.g. localhost:8500")
        return Endpoint(transport or "grpc", host, int(port), tls=False)
    url = urllib.parse.urlsplit(server)
    if url.scheme not in _SCHEMES:
        raise UserError(f"server {server!r}: unknown scheme {url.scheme!r}; use {_SERVER_FORMS}")
    scheme_transport, tls = _SCHEMES[url.scheme]
    try:
        port = url.port
    except ValueError:
        raise UserError(f"server {server!r}: the port is not a number from 1 to 65535") from None
    if url.path.strip("/") or url.query or url.fragment or url.username or not url.hostname:
        raise UserError(
            f"server {server!r} must name a host and port only (leanline adds the model's path)"
        )
    if port is None and not tls:
        example = f"{url.scheme}://{url.hostname}:{8500 if scheme_transport == 'grpc' else 8501}"
        raise UserError(f"server {server!r} needs a port, e.g. {example}")
    if transport is not None and transport != scheme_transport:
        raise UserError(
            f"server {server!r} is a {scheme_transport} address but --{transport} was asked for"
        )
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return Endpoint(scheme_transport, host, port or 443, tls)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS endpoint. Without `ca_cert` the server's certificate must
    chain to a CA the system trusts; the client certificate and key go together."""

    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """The files' bytes (None where not given): CA, client key, client certificate."""
        if (self.client_cert is None) != (self.client_key is None):
            raise UserError("--client-cert and --client-key go together: give both or neither")
        return tuple(_read_pem(path) for path in (self.ca_cert, self.client_key, self.client_cert))


def _read_pem(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None


@dataclass(frozen=True)
class Retries:
    """A request the server could not take (gRPC UNAVAILABLE, a refused connection,
    HTTP 503: a pod starting or restarting) is sent again, `attempts` times in all,
    waiting `first_backoff_s` and then twice as long each time. Nothing else is
    retried: another answer would be the same again."""

    attempts: int = 3
    first_backoff_s: float = 0.5


class _Unavailable(Exception):
    """The server could not take the request now; another attempt may succeed."""


def bearer_token() -> str | None:
    """The token of `LEANLINE_SERVING_TOKEN`, sent as `Authorization: Bearer <token>` (an
    HTTP header, gRPC metadata). It is checked to be a bearer token (RFC 6750), so it
    cannot add headers of its own, and it is never shown: a message naming it names the
    variable instead."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return None
    if not _BEARER_TOKEN.fullmatch(token):
        raise UserError(
            f"{TOKEN_ENV} is not a bearer token: only letters, digits, '-._~+/' and "
            "trailing '=' may appear (RFC 6750); set it to the token alone, without 'Bearer '"
        )
    return token


def predict(
    server: str,
    model: str,
    rows: Sequence[Row],
    transport: Transport | None = None,
    signature: str = SERVING_DEFAULT_SIGNATURE,
    schema_path: Path | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tls_files: TlsFiles = TlsFiles(),
    retries: Retries = Retries(),
) -> Predictions:
    """Sends `rows` to `model` on the TF Serving at `server` (see `Endpoint`) in requests
    of at most `batch_size` rows (TF Serving's batching refuses larger ones), each given
    `timeout_s` seconds; returns its outputs, one entry per row.

    With a schema every row is checked before any connection is made. The reply is
    checked against the outputs the server declares for `signature` before it is used,
    so a reply of the wrong size, type or shape is an error naming it, not a crash."""
    if not rows:
        raise UserError("no rows to send")
    if batch_size < 1:
        raise UserError(f"the batch size must be at least 1, not {batch_size}")
    endpoint = parse_endpoint(server, transport)
    token = bearer_token()
    if not endpoint.tls and (token or tls_files != TlsFiles()):
        what = TOKEN_ENV if token else "--ca-cert, --client-cert and --client-key"
        tls_scheme = _SCHEME_OF[endpoint.transport, True]
        raise UserError(
            f"{what} need TLS, but {server!r} is a plaintext address (they would cross the "
            f"network in the clear): name the server {tls_scheme}://HOST[:PORT]"
        )
    examples = None
    if schema_path is not None:
        examples = rows_to_examples(rows, feature_kinds_from_schema(schema_path))
    connection_class = _GrpcModel if endpoint.transport == "grpc" else _RestModel
    try:
        connection = connection_class(endpoint, model, token, tls_files, timeout_s, retries)
        with contextlib.closing(connection):
            signatures = connection.signatures()
            if signature not in signatures:
                raise UserError(
                    f"model {model!r} at {endpoint} has no signature {signature!r}; "
                    f"it has {sorted(signatures)}"
                )
            if examples is None:
                examples = rows_to_examples(rows, feature_kinds_from_signatures(signatures, model))
            declared = signatures[signature].outputs
            batches = [
                connection.predict(examples[start : start + batch_size], signature, declared)
                for start in range(0, len(examples), batch_size)
            ]
    except UserError as error:
        if token and token in str(error):  # a server that echoes the header back
            raise UserError(str(error).replace(token, f"<{TOKEN_ENV}>")) from None
        raise
    return {name: np.concatenate([batch[name] for batch in batches]) for name in declared}


def _retrying(send: Callable[[], Any], retries: Retries, endpoint: Endpoint) -> Any:
    """`send()`'s result, sending again while the server is unavailable (see Retries)."""
    for attempt in itertools.count(1):
        try:
            return send()
        except _Unavailable as error:
            if attempt >= retries.attempts:
                tls_hint = f"; if it is TLS that fails, {_TLS_HINT}" if endpoint.tls else ""
                raise UserError(
                    f"cannot reach TF Serving over {endpoint.api} at {endpoint.address}: {error} "
                    f"({attempt} attempts); check that the server runs and that --server "
                    f"names its {endpoint.api} port{tls_hint}"
                ) from None
            time.sleep(retries.first_backoff_s * 2 ** (attempt - 1))


def _odd_reply(endpoint: Endpoint, model: str, what: str) -> UserError:
    return UserError(
        f"TF Serving at {endpoint} gave model {model!r} a reply leanline cannot use: {what}; "
        f"check that --server names TF Serving's {endpoint.api} port and --signature the signature"
    )


class _ServingModel(abc.ABC):
    """One model on one TF Serving: what the gRPC and REST connections share."""

    def __init__(
        self,
        endpoint: Endpoint,
        model: str,
        token: str | None,
        tls_files: TlsFiles,
        timeout_s: float,
        retries: Retries,
    ):
        self._endpoint = endpoint
        self._model = model
        self._timeout_s = timeout_s
        self._retries = retries
        self._connect(token, tls_files)

    @abc.abstractmethod
    def _connect(self, token: str | None, tls_files: TlsFiles) -> None:
        """Opens what the API needs, sending `token` with every call."""

    def _odd(self, what: str) -> UserError:
        return _odd_reply(self._endpoint, self._model, what)


class _GrpcModel(_ServingModel):
    """TF Serving's gRPC API through one channel. Its replies are read up to
    MAX_REPLY_BYTES (the channel's receive limit), and a tensor is converted only
    once its stated shape is at most MAX_VALUES_PER_ROW values a row and it holds
    values: an empty tensor of a huge shape would otherwise be allocated in full."""

    def _connect(self, token: str | None, tls_files: TlsFiles) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [("grpc.max_receive_message_length", MAX_REPLY_BYTES)]
        if self._endpoint.tls:
            root, key, chain = tls_files.read()
            credentials = grpc.ssl_channel_credentials(root, key, chain)
            self._channel = grpc.secure_channel(self._endpoint.address, credentials, options)
        else:
            self._channel = grpc.insecure_channel(self._endpoint.address, options)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def signatures(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self._model
        response = self._call(self._stub.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata[
            "signature_def"
        ].Unpack(signature_map):
            raise self._odd("its metadata holds no signature_def map")
        return dict(signature_map.signature_def)

    def predict(self, examples: list[bytes], signature: str, declared: Outputs) -> Predictions:
        response = self._call(self._stub.Predict, predict_request(examples, self._model, signature))
        outputs = response.outputs
        if set(outputs) != set(declared):
            raise self._odd(
                f"it answered outputs {sorted(outputs)}; the signature declares {sorted(declared)}",
            )
        return {
            name: self._ndarray(name, outputs[name], declared[name].dtype, len(examples))
            for name in declared
        }

    def _ndarray(self, name: str, proto, dtype: int, rows: int) -> np.ndarray:
        where = f"output {name!r}"
        if proto.dtype != dtype:
            raise self._odd(
                f"{where} is {_dtype_name(proto.dtype)}; the signature declares "
                f"{_dtype_name(dtype)}",
            )
        shape = [dim.size for dim in proto.tensor_shape.dim]
        if not shape or shape[0] != rows or any(size < 0 for size in shape):
            raise self._odd(f"{where} has shape {shape} for {rows} rows")
        if math.prod(shape[1:]) > MAX_VALUES_PER_ROW:
            raise self._odd(
                f"{where} has shape {shape}: more than {MAX_VALUES_PER_ROW} values a row",
            )
        if rows and math.prod(shape[1:]) and not _holds_values(proto):
            raise self._odd(f"{where} of shape {shape} holds no values")
        try:
            return tf.make_ndarray(proto)
        except (TypeError, ValueError) as error:
            raise self._odd(f"{where}: {error}") from None

    def _call(self, method, request):
        def send():
            try:
                return method(request, timeout=self._timeout_s, metadata=self._metadata)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    raise _Unavailable(error.details()) from None
                raise _grpc_error(error, self._endpoint, self._model, self._timeout_s) from None

        return _retrying(send, self._retries, self._endpoint)


def _dtype_name(dtype: int) -> str:
    """`DT_FLOAT` for a DataType enum; a server may send a number that is none."""
    if dtype in types_pb2.DataType.values():
        return types_pb2.DataType.Name(dtype)
    return f"DataType {dtype}"


def _holds_values(proto) -> bool:
    """Whether a TensorProto stores any value: TF fills a tensor stored with none with
    zeros, so a reply of that kind would be answered with made-up numbers."""
    stored = {field.name for field, _ in proto.ListFields()}
    return bool(stored - {"dtype", "tensor_shape", "version_number"})


def _grpc_error(
    error: grpc.RpcError, endpoint: Endpoint, model: str, timeout_s: float
) -> UserError:
    code, details = error.code(), error.details()
    where = f"TF Serving at {endpoint}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UserError(f"{where} gave no answer within {timeout_s:g} s; raise --timeout")
    if code == grpc.StatusCode.NOT_FOUND:
        return UserError(f"{where} has no model {model!r}: {details}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return UserError(f"{where} refused the credentials ({code.name}): {details}; {_TOKEN_HINT}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (details or ""):
        return _odd_reply(endpoint, model, f"more than {MAX_REPLY_BYTES} bytes ({details})")
    return UserError(f"{where} refused the request ({code.name}): {details}{_batch_hint(details)}")


def _batch_hint(details: str | None) -> str:
    """TF Serving's batching refuses a request of more rows than its max_batch_size."""
    if "larger than maximum input batch size" in (details or ""):
        return "; pass --batch-size at most the server's max_batch_size (its batching.config)"
    return ""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """TF Serving never redirects; following one would send the rows and the token to
    an address the user did not give."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _RestModel(_ServingModel):
    """TF Serving's REST API, one HTTP(S) connection a call. A reply is read up to
    MAX_REPLY_BYTES and no further, then parsed as JSON and checked against the
    outputs the signature declares."""

    def _connect(self, token: str | None, tls_files: TlsFiles) -> None:
        self._url = f"{self._endpoint}/v1/models/{urllib.parse.quote(self._model, safe='')}"
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if self._endpoint.tls:
            handlers.append(urllib.request.HTTPSHandler(context=_ssl_context(tls_files)))
        self._opener = urllib.request.build_opener(*handlers)

    def close(self) -> None:
        """Nothing to release: each call opens and closes its own HTTP connection."""

    def signatures(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        metadata = self._call(f"{self._url}/metadata")
        try:
            signature_map = json_format.ParseDict(
                metadata["metadata"]["signature_def"],
                get_model_metadata_pb2.SignatureDefMap(),
                ignore_unknown_fields=True,
            )
        except (KeyError, TypeError, json_format.ParseError) as error:
            raise self._odd(f"its metadata holds no signature_def map ({error})") from None
        return dict(signature_map.signature_def)

    def predict(self, examples: list[bytes], signature: str, declared: Outputs) -> Predictions:
        body = {
            "signature_name": signature,
            "instances": [
                {EXAMPLES_INPUT: {"b64": base64.b64encode(example).decode()}}
                for example in examples
            ],
        }
        predictions = self._call(f"{self._url}:predict", body).get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(examples):
            what = (
                f"{len(predictions)} predictions"
                if isinstance(predictions, list)
                else "no predictions list"
            )
            raise self._odd(f"{what} for {len(examples)} rows")
        # TF Serving's row format lists bare values when the signature has one output.
        if len(declared) == 1:
            columns = {name: predictions for name in declared}
        else:
            if not all(isinstance(row, dict) and set(row) == set(declared) for row in predictions):
                raise self._odd(
                    f"a prediction does not hold exactly the declared outputs {sorted(declared)}",
                )
            columns = {name: [row[name] for row in predictions] for name in declared}
        return {
            name: self._ndarray(name, values, declared[name].dtype)
            for name, values in columns.items()
        }

    def _ndarray(self, name: str, values: list[Any], dtype: int) -> np.ndarray:
        try:
            array = np.asarray(values)
        except ValueError as error:  # rows of unequal lengths
            raise self._odd(f"output {name!r}: {error}") from None
        # JSON has no dtypes: strings must come as strings, numbers as numbers.
        kinds = "U" if dtype == types_pb2.DT_STRING else "biuf"
        if array.dtype.kind not in kinds:
            raise self._odd(
                f"output {name!r} holds {array.dtype} values; the signature declares "
                f"{_dtype_name(dtype)}",
            )
        return array

    def _call(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers=self._headers)
        where = f"TF Serving at {self._endpoint}"

        def send() -> bytes:
            try:
                with self._opener.open(request, timeout=self._timeout_s) as response:
                    return self._read_capped(response)
            except urllib.error.HTTPError as error:
                message = _rest_error_message(error)
                if error.code == 503:
                    raise _Unavailable(f"HTTP 503: {message}") from None
                if 300 <= error.code < 400:
                    raise UserError(
                        f"{where} redirects (HTTP {error.code}) to {error.headers.get('Location')}; "
                        "leanline follows no redirects: give the server's own address as --server"
                    ) from None
                if error.code == 404:
                    raise UserError(f"{where} has no model {self._model!r}: {message}") from None
                if error.code in (401, 403):
                    raise UserError(
                        f"{where} refused the credentials (HTTP {error.code}): {message}; {_TOKEN_HINT}"
                    ) from None
                raise UserError(
                    f"{where} refused the request (HTTP {error.code}): {message}{_batch_hint(message)}"
                ) from None
            except http.client.HTTPException as error:  # e.g. a body cut short
                raise self._odd(f"HTTP: {error!r}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, TimeoutError):
                    raise UserError(
                        f"{where} gave no answer within {self._timeout_s:g} s; raise --timeout"
                    ) from None
                if isinstance(reason, ssl.SSLError):
                    raise UserError(f"TLS with {where} failed: {reason}; {_TLS_HINT}") from None
                if isinstance(reason, ConnectionError):
                    raise _Unavailable(str(reason)) from None
                raise UserError(
                    f"cannot reach TF Serving over REST at {self._endpoint.address}: {reason}"
                ) from None

        reply = _retrying(send, self._retries, self._endpoint)
        try:
            parsed = json.loads(reply)
        except (ValueError, RecursionError) as error:
            raise self._odd(f"not JSON ({error})") from None
        if not isinstance(parsed, dict):
            raise self._odd("a JSON value that is no object")
        return parsed

    def _read_capped(self, response) -> bytes:
        """The body, read no further than MAX_REPLY_BYTES."""
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_REPLY_BYTES:
            raise self._odd(f"a body of {length} bytes, over {MAX_REPLY_BYTES}")
        body = response.read(MAX_REPLY_BYTES + 1)
        if len(body) > MAX_REPLY_BYTES:
            raise self._odd(f"a body of over {MAX_REPLY_BYTES} bytes")
        return body


def _ssl_context(tls_files: TlsFiles) -> ssl.SSLContext:
    """Verifies the server's certificate and host name against the given CA or the
    system's; presents the client certificate if one is given."""
    ca, _, _ = tls_files.read()
    try:
        context = ssl.create_default_context(cadata=None if ca is None else ca.decode("latin-1"))
        if tls_files.client_cert is not None:
            context.load_cert_chain(tls_files.client_cert, tls_files.client_key)
    except ssl.SSLError as error:
        raise UserError(
            f"cannot use the TLS files {_given(tls_files)}: {error.reason or error}; "
            "each must be PEM, the key the client certificate's"
        ) from None
    return context


def _given(tls_files: TlsFiles) -> str:
    paths = (tls_files.ca_cert, tls_files.client_cert, tls_files.client_key)
    return ", ".join(str(path) for path in paths if path is not None)


def _rest_error_message(error: urllib.error.HTTPError) -> str:
    body = error.read(MAX_ERROR_BYTES).decode(errors="replace")
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.strip() or error.reason


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
