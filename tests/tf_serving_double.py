"""TEST DOUBLE of TF Serving's gRPC and REST APIs -- for tests only, never for serving.

The real model server is a C++ binary that is not installable here, so the tests
run this stand-in. It implements the slice of the APIs leanline's client uses:

- gRPC `tensorflow.serving.PredictionService`: `Predict` and `GetModelMetadata`
  (signature_def);
- REST: `GET /v1/models/<name>` (status), `GET /v1/models/<name>/metadata` and
  `POST /v1/models/<name>:predict` (row format, `{"b64": ...}` for bytes).

Like TF Serving it serves the highest numeric version under each model's base path,
running the REAL SavedModel's signatures in-process, answers NOT_FOUND / 404 for an
unknown model, and listens on loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2, json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.versions import latest_version_dir

LOOPBACK = "127.0.0.1"


@dataclass
class _Servable:
    version: int
    signatures: Any  # the loaded SavedModel's signature map
    signature_defs: get_model_metadata_pb2.SignatureDefMap


class ServedModels:
    """The latest version of each model, loaded once."""

    def __init__(self, base_paths: Mapping[str, Path]):
        self._servables = {name: self._load(Path(base)) for name, base in base_paths.items()}
        # Predict calls that reached a model, so tests can tell what was never sent.
        self.predict_calls = 0

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

    def run(
        self, name: str, signature: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        self.predict_calls += 1
        function = self._servables[name].signatures[signature or "serving_default"]
        outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        return {key: tensor.numpy() for key, tensor in outputs.items()}


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: ServedModels):
        self._models = models

    def _servable(self, name: str, context: grpc.ServicerContext) -> _Servable:
        servable = self._models.get(name)
        if servable is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
            )
        return servable

    def Predict(self, request, context):
        servable = self._servable(request.model_spec.name, context)
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        try:
            outputs = self._models.run(
                request.model_spec.name, request.model_spec.signature_name, inputs
            )
        except Exception as error:  # TF Serving reports any bad input as INVALID_ARGUMENT
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
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


def _rest_handler(models: ServedModels) -> type[BaseHTTPRequestHandler]:
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
            route = self._route("POST")
            if route is None:
                return
            name = _MODEL_PATH.match(self.path)["name"]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                inputs = _instances_to_inputs(body["instances"])
                outputs = models.run(name, body.get("signature_name", ""), inputs)
            except Exception as error:
                self._reply(400, {"error": str(error)})
                return
            self._reply(200, {"predictions": _outputs_to_predictions(outputs)})

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


@contextlib.contextmanager
def serve_models(base_paths: Mapping[str, Path]) -> Iterator[ServingDouble]:
    """Runs the double's gRPC and REST servers on free loopback ports until the block ends."""
    models = ServedModels(base_paths)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(models), grpc_server
    )
    grpc_port = grpc_server.add_insecure_port(f"{LOOPBACK}:0")
    grpc_server.start()
    http_server = ThreadingHTTPServer((LOOPBACK, 0), _rest_handler(models))
    http_thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    http_thread.start()
    try:
        yield ServingDouble(
            grpc=f"{LOOPBACK}:{grpc_port}",
            rest=f"{LOOPBACK}:{http_server.server_port}",
            models=models,
        )
    finally:
        http_server.shutdown()
        http_server.server_close()
        grpc_server.stop(grace=None)
