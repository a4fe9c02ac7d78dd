"""What a TFLite flatbuffer that leanline ships holds besides its ops: the strings kept,
the signatures TF Serving reads, and a classifier's class names.

TF Serving's TFLite runtime (`--prefer_tflite_model`) does not read the flatbuffer's own
SignatureDef table, which the converter writes and the TFLite interpreter's signature
runners use. It reads TF SignatureDef protos from the model's metadata entry
`signature_defs` (TFLite's tools/signature/signature_def_util: a flexbuffer map from
signature key to the serialized proto, each read back as a C string) and, where there
is none, makes up a `serving_default` keyed by tensor names. So a shipped model carries
that metadata, written from its own SignatureDef table, and each proto is written
without a NUL byte, which that reader would cut it at.

A classifier's class names, which the SavedModel answers as its `classes` output, are
the metadata entry CLASSES_METADATA (a JSON list in id order): builtin ops carry no
string outputs, and a device reads the names once, not per request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

# The metadata name TF Serving reads signatures from (signature_def_util.h).
SIGNATURE_DEFS_METADATA = "signature_defs"
# A classifier's class names in id order, as a UTF-8 JSON list.
CLASSES_METADATA = "leanline_classes"
PREDICT_METHOD = "tensorflow/serving/predict"
_TF_DTYPES = {
    schema.TensorType.FLOAT32: types_pb2.DT_FLOAT,
    schema.TensorType.INT32: types_pb2.DT_INT32,
    schema.TensorType.INT64: types_pb2.DT_INT64,
    schema.TensorType.STRING: types_pb2.DT_STRING,
    schema.TensorType.BOOL: types_pb2.DT_BOOL,
    schema.TensorType.INT8: types_pb2.DT_INT8,
    schema.TensorType.UINT8: types_pb2.DT_UINT8,
}


def _name(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else value or ""


def without_debug_strings(content: bytes) -> bytes:
    """The flatbuffer minus its description, subgraph names and the names of inner
    tensors: debugging strings that make up a tenth of a small model. Signature keys and
    the names of input and output tensors stay: callers address inputs by feature name,
    and TF Serving's TFLite runtime finds a signature's tensors by their names."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    model.description = None
    for subgraph in model.subgraphs:
        subgraph.name = None
        kept = {*subgraph.inputs, *subgraph.outputs}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in kept:
                tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _signature_def(model: schema.ModelT, signature: schema.SignatureDefT) -> bytes:
    tensors = model.subgraphs[signature.subgraphIndex].tensors
    proto = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for maps, entries in ((proto.inputs, signature.inputs), (proto.outputs, signature.outputs)):
        for entry in entries:
            tensor = tensors[entry.tensorIndex]
            # No shape: an unknown dimension would be written with NUL bytes.
            maps[_name(entry.name)].CopyFrom(
                meta_graph_pb2.TensorInfo(name=_name(tensor.name), dtype=_TF_DTYPES[tensor.type])
            )
    serialized = proto.SerializeToString(deterministic=True)
    if b"\0" in serialized:
        raise ValueError(
            f"signature {_name(signature.signatureKey)!r} serializes with a NUL byte, which TF "
            "Serving's reader would cut it at"
        )
    return serialized


def with_tf_serving_signatures(content: bytes) -> bytes:
    """The flatbuffer with its SignatureDef table also written where TF Serving reads
    signatures (the `signature_defs` metadata), replacing what an earlier call wrote."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    if not model.signatureDefs:
        raise ValueError("the TFLite model has no signatures to publish for TF Serving")
    builder = flexbuffers.Builder()
    with builder.Map():
        for signature in model.signatureDefs:
            builder.Key(_name(signature.signatureKey))
            # Written as a flexbuffer string (the reader's AsString); Builder.String
            # would UTF-8-encode text, and a proto is bytes.
            builder._WriteBlob(  # noqa: SLF001
                _signature_def(model, signature), append_zero=True, type_=flexbuffers.Type.STRING
            )
    _set_metadata(model, SIGNATURE_DEFS_METADATA, bytes(builder.Finish()))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_classes(content: bytes, classes: Sequence[str]) -> bytes:
    """The flatbuffer with the class names in its CLASSES_METADATA entry."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    _set_metadata(model, CLASSES_METADATA, json.dumps(list(classes)).encode())
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _set_metadata(model: schema.ModelT, name: str, data: bytes) -> None:
    """Writes the metadata entry `name`, replacing one written before."""
    values = np.frombuffer(data, np.uint8)
    existing = [m for m in model.metadata or [] if _name(m.name) == name]
    if existing:
        model.buffers[existing[0].buffer].data = values
        return
    buffer = schema.BufferT()
    buffer.data = values
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers)
    model.buffers.append(buffer)
    model.metadata = [*(model.metadata or []), entry]


def _metadata(content: bytes, name: str) -> bytes | None:
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    for metadata in model.metadata or []:
        if _name(metadata.name) == name:
            return bytes(np.asarray(model.buffers[metadata.buffer].data, np.uint8))
    return None


def tf_serving_signatures(content: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The signatures TF Serving reads from a TFLite flatbuffer: empty when it has no
    `signature_defs` metadata (TF Serving then makes up `serving_default`). Each value is
    cut at its first NUL byte, as TF Serving's reader does."""
    data = _metadata(content, SIGNATURE_DEFS_METADATA)
    if data is None:
        return {}
    entries = flexbuffers.GetRoot(data).AsMap
    return {
        key.AsKey: meta_graph_pb2.SignatureDef.FromString(value.AsStringBytes.split(b"\0", 1)[0])
        for key, value in zip(entries.Keys, entries.Values, strict=True)
    }


def tflite_classes(content: bytes) -> list[str] | None:
    """The class names of a TFLite flatbuffer (CLASSES_METADATA); None without them."""
    data = _metadata(content, CLASSES_METADATA)
    return None if data is None else json.loads(data)
