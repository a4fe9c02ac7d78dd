"""TEST DOUBLE of TF Serving's gRPC and REST APIs -- for tests only, never for serving.

The real model server is a C++ binary that is not installable here, so the tests
run this stand-in. It implements the slice of the APIs leanline's client uses:

- gRPC `tensorflow.serving.PredictionService`: `Predict` and `GetModelMetadata`
  (signature_def);
- REST: `GET /v1/models/<name>` (status), `GET /v1/models/<name>/metadata` and
  `POST /v1/models/<name>:predict` (row format, `{"b64": ...}` for bytes).

Like TF Serving it serves the highest numeric version under each model's base path,
running the REAL SavedModel's signatures in-process, answers NOT_FOUND / 404 for an
unknown model, and listens on loopback only. Like TF Serving with `--enable_batching`
it refuses a request of more rows than `max_batch_size`, with TF Serving's message.

For the client's own defences it can also stand for what sits around a model server:
TLS on both ports (`LoopbackPki`: a throwaway CA, server and client certificates, made
here; mutual TLS), a proxy that wants a bearer token (and, carelessly, echoes a wrong
one in its refusal), and on demand it misbehaves (`Faults`): unavailable for the next
N calls, slow, or with odd replies no real TF Serving gives.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np
import tensorflow as tf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import any_pb2, json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.versions import latest_version_dir

LOOPBACK = "127.0.0.1"
# TF Serving's batching (shared_batch_scheduler.h) refuses a larger request with this.
BATCH_TOO_LARGE = "Task size {rows} is larger than maximum input batch size {max_batch_size}"

OddReply = Literal[
    "huge_empty_tensor", "wrong_dtype", "missing_output", "oversize", "not_json", "redirect"
]


@dataclass
class Faults:
    """What the double does wrong on purpose; a test sets these and `reset()`s them.

    - `unavailable_calls`: the next so many calls answer UNAVAILABLE / HTTP 503, as a
      server that is starting does;
    - `delay_s`: Predict answers only after so many seconds;
    - `reply`: Predict answers oddly: an empty tensor of shape [rows, 2**40]
      (gRPC), a string tensor where the signature declares floats, no `outputs`
      output, a reply of `oversize_bytes` bytes (REST: streamed without a length),
      or (REST) an HTML page, as a proxy in front of the server answers, or a
      redirect to another port.
    """

    unavailable_calls: int = 0
    delay_s: float = 0.0
    reply: OddReply | None = None
    oversize_bytes: int = 0
    # Predict requests received, refused ones included.
    predict_requests: int = 0

    def reset(self) -> None:
        self.__init__()

    def unavailable(self) -> bool:
        """Whether this call is one of the unavailable ones (and counts it)."""
        if self.unavailable_calls <= 0:
            return False
        self.unavailable_calls -= 1
        return True


@dataclass(frozen=True)
class LoopbackPki:
    """Throwaway PEM files under one directory: a CA, a server certificate for
    127.0.0.1 and localhost and a client certificate, both signed by it, and a second
    CA that signed neither."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path


def make_loopback_pki(directory: Path) -> LoopbackPki:
    ca_key, ca_cert = _certificate("leanline test CA")
    server_key, server_cert = _certificate(LOOPBACK, issuer=(ca_key, ca_cert), server=True)
    client_key, client_cert = _certificate("leanline test client", issuer=(ca_key, ca_cert))
    _, other_ca_cert = _certificate("another CA")
    files = {
        "ca_cert": ca_cert,
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
        "other_ca_cert": other_ca_cert,
    }
    paths = {}
    for name, item in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(_pem(item))
    return LoopbackPki(**paths)


def _certificate(
    common_name: str, issuer: tuple[Any, x509.Certificate] | None = None, server: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and its certificate, self-signed (a CA) without an issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_key, issuer_name = (key, name) if issuer is None else (issuer[0], issuer[1].subject)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        names = [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(signing_key, hashes.SHA256())


def _pem(item: ec.EllipticCurvePrivateKey | x509.Certificate) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class _Servable:
    version: int
    signatures: Any  # the loaded SavedModel's signature map
    signature_defs: get_model_metadata_pb2.SignatureDefMap


class ServedModels:
    """The latest version of each model, loaded once."""

    def __init__(self, base_paths: Mapping[str, Path], max_batch_size: int | None = None):
        self._servables = {name: self._load(Path(base)) for name, base in base_paths.items()}
        self.max_batch_size = max_batch_size
        # The rows of each Predict call that reached a model, so tests can tell what
        # was sent and what never was.
        self.predict_batches: list[int] = []

    @staticmethod
    def _load(base_path: Path) -> _Servable:
        version_dir = latest_version_dir(base_path)
        if version_dir is None:
            raise FileNotFoundError(f"no version under {base_path}")
        proto = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in proto.meta_graphs[0].signature_def.items():
            if not name.startswith("__"):
                signature_defs.signature_def[name].CopyFrom(signature)
        loaded = tf.saved_model.load(str(version_dir))
        return _Servable(int(version_dir.name), loaded.signatures, signature_defs)

    def get(self, name: str) -> _Servable | None:
        return self._servables.get(name)

    def batch_refusal(self, inputs: Mapping[str, np.ndarray]) -> str | None:
        """TF Serving's batching error for a request of too many rows, else None."""
        rows = max(len(value) for value in inputs.values())
        if self.max_batch_size is None or rows <= self.max_batch_size:
            return None
        return BATCH_TOO_LARGE.format(rows=rows, max_batch_size=self.max_batch_size)

    def run(
        self, name: str, signature: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        self.predict_batches.append(max(len(value) for value in inputs.values()))
        function = self._servables[name].signatures[signature or "serving_default"]
        outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        return {key: tensor.numpy() for key, tensor in outputs.items()}


class _Gate:
    """What every call meets before the model: the token proxy and the faults."""

    def __init__(self, faults: Faults, token: str | None):
        self.faults = faults
        self._token = token

    def refusal(self, authorization: str | None) -> tuple[str, str] | None:
        """("unavailable" | "unauthenticated", message) for a call to refuse, else None."""
        if self.faults.unavailable():
            return "unavailable", "the model server is starting (a double's fault)"
        if self._token is not None and authorization != f"Bearer {self._token}":
            # A careless proxy: it echoes what it was sent.
            return "unauthenticated", f"bad credentials: Authorization: {authorization}"
        return None

    def odd_outputs(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs as the fault asks, before they are encoded."""
        reply = self.faults.reply
        if reply == "missing_output":
            return {key: value for key, value in outputs.items() if key != "outputs"}
        if reply == "wrong_dtype":
            as_bytes = np.vectorize(lambda value: str(value).encode(), otypes=[object])
            return {**outputs, "outputs": as_bytes(outputs["outputs"])}
        if reply == "oversize":
            rows = len(outputs["outputs"])
            padding = np.full((rows, 1), b"x" * (self.faults.oversize_bytes // rows), dtype=object)
            return {**outputs, "classes": padding}
        return outputs


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: ServedModels, gate: _Gate):
        self._models = models
        self._gate = gate

    def _servable(self, name: str, context: grpc.ServicerContext) -> _Servable:
        metadata = dict(context.invocation_metadata())
        refusal = self._gate.refusal(metadata.get("authorization"))
        if refusal is not None:
            kind, message = refusal
            code = {"unavailable": grpc.StatusCode.UNAVAILABLE}
            context.abort(code.get(kind, grpc.StatusCode.UNAUTHENTICATED), message)
        servable = self._models.get(name)
        if servable is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
            )
        return servable

    def Predict(self, request, context):
        self._gate.faults.predict_requests += 1
        servable = self._servable(request.model_spec.name, context)
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        refusal = self._models.batch_refusal(inputs)
        if refusal is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal)
        try:
            outputs = self._models.run(
                request.model_spec.name, request.model_spec.signature_name, inputs
            )
        except Exception as error:  # TF Serving reports any bad input as INVALID_ARGUMENT
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        time.sleep(self._gate.faults.delay_s)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        for key, value in self._gate.odd_outputs(outputs).items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        if self._gate.faults.reply == "huge_empty_tensor":
            huge = response.outputs["outputs"]
            huge.ClearField("float_val")
            huge.ClearField("tensor_content")
            huge.tensor_shape.dim[1].size = 2**40
        return response

    def GetModelMetadata(self, request, context):
        servable = self._servable(request.model_spec.name, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        packed = any_pb2.Any()
        packed.Pack(servable.signature_defs)
        response.metadata["signature_def"].CopyFrom(packed)
        return response


_MODEL_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?P<rest>/metadata|:predict)?$")


def _rest_handler(models: ServedModels, gate: _Gate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> tuple[str, _Servable] | None:
            refusal = gate.refusal(self.headers.get("Authorization"))
            if refusal is not None:
                kind, message = refusal
                self._reply({"unavailable": 503}.get(kind, 401), {"error": message})
                return None
            match = _MODEL_PATH.match(self.path)
            expected = {"GET": (None, "/metadata"), "POST": (":predict",)}[method]
            if match is None or match["rest"] not in expected:
                self._reply(404, {"error": f"Malformed request: {method} {self.path}"})
                return None
            servable = models.get(match["name"])
            if servable is None:
                self._reply(
                    404, {"error": f"Servable not found for request: Latest({match['name']})"}
                )
                return None
            return match["rest"], servable

        def do_GET(self) -> None:
            route = self._route("GET")
            if route is None:
                return
            rest, servable = route
            if rest == "/metadata":
                signature_def = json_format.MessageToDict(
                    servable.signature_defs, preserving_proto_field_name=True
                )
                self._reply(200, {"metadata": {"signature_def": signature_def}})
                return
            status = {"version": str(servable.version), "state": "AVAILABLE"}
            status["status"] = {"error_code": "OK", "error_message": ""}
            self._reply(200, {"model_version_status": [status]})

        def do_POST(self) -> None:
            gate.faults.predict_requests += 1
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            route = self._route("POST")
            if route is None:
                return
            name = _MODEL_PATH.match(self.path)["name"]
            try:
                inputs = _instances_to_inputs(body["instances"])
                refusal = models.batch_refusal(inputs)
                if refusal is not None:
                    self._reply(400, {"error": refusal})
                    return
                outputs = models.run(name, body.get("signature_name", ""), inputs)
            except Exception as error:
                self._reply(400, {"error": str(error)})
                return
            time.sleep(gate.faults.delay_s)
            if gate.faults.reply == "redirect":
                self.send_response(307)
                self.send_header("Location", f"http://{LOOPBACK}:9/v1/models/{name}:predict")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif gate.faults.reply == "oversize":
                self._stream_oversize()
            elif gate.faults.reply == "not_json":
                page = b"<html><body>502 Bad Gateway</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            else:
                predictions = _outputs_to_predictions(gate.odd_outputs(outputs))
                self._reply(200, {"predictions": predictions})

        def _stream_oversize(self) -> None:
            """A body of `oversize_bytes` with no Content-Length, so only reading it
            tells its size; the client hangs up early."""
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            chunk = b" " * 2**20
            with contextlib.suppress(OSError):
                self.wfile.write(b'{"predictions": [')
                for _ in range(gate.faults.oversize_bytes // len(chunk) + 1):
                    self.wfile.write(chunk)

    return Handler


def _instances_to_inputs(instances: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    inputs = {}
    for key in instances[0]:
        values = [_decode(row[key]) for row in instances]
        # Fixed-width numpy bytes ("S") would drop trailing NUL bytes of serialized protos.
        dtype = object if isinstance(values[0], bytes) else None
        inputs[key] = np.array(values, dtype=dtype)
    return inputs


def _decode(value: Any) -> Any:
    """REST sends bytes as `{"b64": ...}`."""
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value


def _outputs_to_predictions(outputs: dict[str, np.ndarray]) -> list[Any]:
    # TF Serving's REST API writes string tensors as JSON strings (base64 only for outputs
    # named *_bytes, which leanline's models have none of).
    outputs = {key: _as_text(value) for key, value in outputs.items()}
    if len(outputs) == 1:
        return next(iter(outputs.values())).tolist()
    rows = len(next(iter(outputs.values())))
    return [{key: value[i].tolist() for key, value in outputs.items()} for i in range(rows)]


def _as_text(value: np.ndarray) -> np.ndarray:
    if value.dtype != object:
        return value
    return np.array([item.decode() for item in value.ravel()]).reshape(value.shape)


@dataclass(frozen=True)
class ServingDouble:
    grpc: str  # HOST:PORT of the gRPC API
    rest: str  # HOST:PORT of the REST API
    models: ServedModels
    tls: bool = False
    faults: Faults = field(default_factory=Faults)

    @property
    def grpc_url(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.grpc}"

    @property
    def rest_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.rest}"


@contextlib.contextmanager
def serve_models(
    base_paths: Mapping[str, Path],
    *,
    max_batch_size: int | None = None,
    pki: LoopbackPki | None = None,
    token: str | None = None,
) -> Iterator[ServingDouble]:
    """Runs the double's gRPC and REST servers on free loopback ports until the block
    ends; with `pki` both speak TLS only and want the client certificate, with
    `token` both want `Authorization: Bearer <token>`."""
    models = ServedModels(base_paths, max_batch_size)
    gate = _Gate(Faults(), token)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(models, gate), grpc_server
    )
    http_server = ThreadingHTTPServer((LOOPBACK, 0), _rest_handler(models, gate))
    if pki is None:
        grpc_port = grpc_server.add_insecure_port(f"{LOOPBACK}:0")
    else:
        key_and_chain = (pki.server_key.read_bytes(), pki.server_cert.read_bytes())
        credentials = grpc.ssl_server_credentials(
            [key_and_chain], root_certificates=pki.ca_cert.read_bytes(), require_client_auth=True
        )
        grpc_port = grpc_server.add_secure_port(f"{LOOPBACK}:0", credentials)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        context.load_verify_locations(pki.ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED
        http_server.socket = context.wrap_socket(http_server.socket, server_side=True)
    grpc_server.start()
    http_thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    http_thread.start()
    try:
        yield ServingDouble(
            grpc=f"{LOOPBACK}:{grpc_port}",
            rest=f"{LOOPBACK}:{http_server.server_port}",
            models=models,
            tls=pki is not None,
            faults=gate.faults,
        )
    finally:
        http_server.shutdown()
        http_server.server_close()
        grpc_server.stop(grace=None)
