"""Checks that a version directory will load and answer in TF Serving, before it is published.

`check_servable` does in-process what TF Serving does when a version appears: it
reads the SavedModel, restores its variables, looks up the `serving_default`
signature, and replays the warm-up requests; a `model.tflite` beside it must hold
builtin ops only and answer the same requests the way TF Serving's TFLite runtime
routes them (signatures from the `signature_defs` metadata, tensors by name). Each
failure is reported as a `UserError` that names the file at fault.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.lite.tools import flatbuffer_utils
from tensorflow_serving.apis import predict_pb2

from models.common.export import EXAMPLES_INPUT, SERVING_DEFAULT_SIGNATURE
from models.common.tflite_format import tf_serving_signatures
from models.errors import UserError
from serving.warmup import read_warmup_requests

SAVED_MODEL_FILE = "saved_model.pb"
# What TF Serving serves instead of the SavedModel with --prefer_tflite_model=true.
TFLITE_FILE = "model.tflite"
# The TFLite schema's BuiltinOperator CUSTOM: an op resolved by name, not a builtin.
CUSTOM_OPERATOR = 32
VARIABLES_PREFIX = Path("variables") / "variables"
# A loaded SavedModel's `signatures`: name -> concrete function.
Signatures = Mapping[str, Any]


@dataclass(frozen=True)
class ServableReport:
    path: str
    signatures: tuple[str, ...]
    warmup_requests: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    # Whether the version has a model.tflite (TF Serving's --prefer_tflite_model), and its
    # warm-up latency p50.
    tflite: bool = False
    tflite_latency_p50_ms: float | None = None

    def summary(self) -> str:
        lines = [f"servable: {self.path}", f"signatures: {', '.join(self.signatures)}"]
        if self.warmup_requests:
            lines.append(
                f"warm-up requests replayed: {self.warmup_requests} "
                f"(latency p50 {self.latency_p50_ms:.2f} ms, p95 {self.latency_p95_ms:.2f} ms)"
            )
        else:
            lines.append("warm-up requests: none (the first requests will be slower)")
        if self.tflite:
            answered = (
                f", warm-up requests answered (p50 {self.tflite_latency_p50_ms:.2f} ms)"
                if self.warmup_requests
                else ""
            )
            lines.append(f"{TFLITE_FILE}: builtin ops only{answered}")
        return "\n".join(lines)


def check_servable(version_dir: str | Path) -> ServableReport:
    """Loads the SavedModel in `version_dir` like TF Serving and replays its warm-up requests."""
    path = Path(version_dir)
    _check_saved_model_proto(path)
    _check_variables(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TF raises many unrelated types for a broken model
        raise UserError(f"TF Serving could not load {path}: {_first_line(error)}") from error
    _check_serving_signature(path, loaded.signatures)
    requests = _warmup_requests(path)
    latencies = [_replay(path, loaded.signatures, request) for request in requests]
    has_tflite = (path / TFLITE_FILE).exists()
    tflite_latencies = _check_tflite(path, requests) if has_tflite else []
    return ServableReport(
        path=str(path),
        signatures=tuple(sorted(loaded.signatures)),
        warmup_requests=len(latencies),
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        tflite=has_tflite,
        tflite_latency_p50_ms=_percentile(tflite_latencies, 50),
    )


def flex_or_custom_ops(content: bytes) -> list[str]:
    """The operators of a TFLite flatbuffer that are not builtins (Flex or custom ops),
    which TF Serving's TFLite runtime cannot resolve."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    return sorted(
        {
            (code.customCode or b"custom").decode()
            for code in model.operatorCodes
            if code.customCode is not None
            or max(code.builtinCode, code.deprecatedBuiltinCode) == CUSTOM_OPERATOR
        }
    )


def _check_tflite(path: Path, requests: list[predict_pb2.PredictRequest]) -> list[float]:
    """Loads the version's model.tflite as TF Serving would serve it (builtin ops) and
    replays the warm-up requests on it; returns their latencies in milliseconds."""
    tflite = path / TFLITE_FILE
    content = tflite.read_bytes()
    try:
        foreign = flex_or_custom_ops(content)
    except Exception as error:  # the flatbuffer reader raises whatever a bad buffer trips
        raise UserError(f"{tflite} is not a TFLite flatbuffer: {_first_line(error)}") from error
    if foreign:
        raise UserError(
            f"{tflite} uses ops that are not TFLite builtins, which TF Serving cannot "
            f"resolve: {', '.join(foreign)}"
        )
    try:
        interpreter = Interpreter(model_content=content)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"{tflite} is not a loadable TFLite model: {_first_line(error)}") from error
    signatures = tf_serving_signatures(content)
    if not signatures:
        raise UserError(
            f"{tflite} has no `signature_defs` metadata: TF Serving would serve it under a "
            "made-up `serving_default` keyed by tensor names, and warm-up requests would fail"
        )
    latencies = []
    for request in requests:
        name = request.model_spec.signature_name or SERVING_DEFAULT_SIGNATURE
        if name not in signatures:
            raise UserError(
                f"{tflite}: a warm-up request calls signature {name!r}, which the TFLite model "
                f"lacks (it has {sorted(signatures)}); TF Serving would fail to load it"
            )
        start = time.perf_counter()
        outputs = _run_as_tf_serving(tflite, interpreter, signatures[name], request)
        latencies.append((time.perf_counter() - start) * 1000)
        for key, values in outputs.items():
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                raise UserError(f"{tflite}: a warm-up request gave non-finite {key!r}: {values}")
    return latencies


def _tensor_indices(details: list[dict[str, Any]]) -> dict[str, int]:
    """Tensor name -> index, under the name and under the name without `:0` (TF Serving
    accepts either: older converters dropped the suffix)."""
    indices = {}
    for detail in details:
        indices[detail["name"]] = detail["index"]
        indices.setdefault(detail["name"].split(":", 1)[0], detail["index"])
    return indices


def _run_as_tf_serving(
    tflite: Path,
    interpreter: Interpreter,
    signature: meta_graph_pb2.SignatureDef,
    request: predict_pb2.PredictRequest,
) -> dict[str, np.ndarray]:
    """One Predict request through the interpreter as TF Serving's TfLiteSession runs it:
    each request input to the tensor its signature names, outputs read by name."""
    inputs = _tensor_indices(interpreter.get_input_details())
    outputs = _tensor_indices(interpreter.get_output_details())
    unknown = sorted(set(request.inputs) - set(signature.inputs))
    missing = sorted(set(signature.inputs) - set(request.inputs))
    if unknown or missing:
        raise UserError(
            f"{tflite}: a warm-up request's inputs do not match the signature (unknown "
            f"{unknown}, missing {missing})"
        )
    values = {}
    for key, proto in request.inputs.items():
        tensor = signature.inputs[key].name
        if tensor not in inputs and tensor.split(":", 1)[0] not in inputs:
            raise UserError(f"{tflite}: signature input {key!r} names no input tensor {tensor!r}")
        index = inputs.get(tensor, inputs.get(tensor.split(":", 1)[0]))
        values[index] = tf.make_ndarray(proto)
        interpreter.resize_tensor_input(index, values[index].shape)
    interpreter.allocate_tensors()
    for index, value in values.items():
        interpreter.set_tensor(index, value)
    interpreter.invoke()
    results = {}
    for key, info in signature.outputs.items():
        index = outputs.get(info.name, outputs.get(info.name.split(":", 1)[0]))
        if index is None:
            raise UserError(f"{tflite}: signature output {key!r} names no output tensor")
        results[key] = interpreter.get_tensor(index)
    return results


def _check_saved_model_proto(path: Path) -> None:
    proto_file = path / SAVED_MODEL_FILE
    if not proto_file.is_file():
        raise UserError(f"{path} is not a SavedModel version directory: {proto_file} is missing")
    try:
        saved_model_pb2.SavedModel.FromString(proto_file.read_bytes())
    except DecodeError as error:
        raise UserError(f"{proto_file} is corrupt (not a SavedModel proto): {error}") from error


def _check_variables(path: Path) -> None:
    """Reads every variable once, so a truncated or damaged file is named precisely."""
    prefix = path / VARIABLES_PREFIX
    index_file = prefix.with_name(prefix.name + ".index")
    if not index_file.exists():
        return  # a model without variables
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as error:
        raise UserError(f"{index_file} is corrupt or truncated: {_first_line(error)}") from error
    data_files = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    try:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:
        names = ", ".join(str(f) for f in data_files) or f"{prefix}.data-* (missing)"
        raise UserError(
            f"variables of {path} are unreadable, {names} is truncated or corrupt: {_first_line(error)}"
        ) from error


def _check_serving_signature(path: Path, signatures: Signatures) -> None:
    if SERVING_DEFAULT_SIGNATURE not in signatures:
        raise UserError(
            f"{path} has no {SERVING_DEFAULT_SIGNATURE!r} signature; it has {sorted(signatures)}"
        )
    _, inputs = signatures[SERVING_DEFAULT_SIGNATURE].structured_input_signature
    spec = inputs.get(EXAMPLES_INPUT)
    if spec is None or spec.dtype != tf.string or len(inputs) != 1:
        raise UserError(
            f"{path}: signature {SERVING_DEFAULT_SIGNATURE!r} must take one string input "
            f"{EXAMPLES_INPUT!r} (serialized tf.Examples); it takes {inputs}"
        )


def _warmup_requests(path: Path) -> list[predict_pb2.PredictRequest]:
    requests = []
    for record in read_warmup_requests(path):
        if record.WhichOneof("log_type") != "predict_log":
            raise UserError(f"{path}: only Predict warm-up requests are supported, got {record}")
        requests.append(record.predict_log.request)
    return requests


def _replay(path: Path, signatures: Signatures, request: predict_pb2.PredictRequest) -> float:
    """Runs one request; returns its latency in milliseconds."""
    name = request.model_spec.signature_name or SERVING_DEFAULT_SIGNATURE
    if name not in signatures:
        raise UserError(f"{path}: a warm-up request calls missing signature {name!r}")
    inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
    start = time.perf_counter()
    try:
        outputs = signatures[name](**inputs)
    except Exception as error:
        raise UserError(
            f"{path}: a warm-up request failed on {name!r}: {_first_line(error)}"
        ) from error
    latency_ms = (time.perf_counter() - start) * 1000
    for key, tensor in outputs.items():
        if tensor.dtype.is_floating and not np.all(np.isfinite(tensor.numpy())):
            raise UserError(f"{path}: a warm-up request gave non-finite {key!r}: {tensor.numpy()}")
    return latency_ms


def _percentile(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
