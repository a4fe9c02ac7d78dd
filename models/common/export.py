"""The serving SavedModel: raw tf.Examples in, class probabilities (or a regressor's number) out.

The Trainer exports the uncompressed model with this and the Compressor exports the
compressed one, so both are served, evaluated and pushed the same way. Signatures:

- `serving_default`: `examples` (serialized tf.Example without the label) ->
  `{"outputs": probabilities or predictions}`; what TF Serving and TFMA call. A
  classifier also answers `classes`: [batch, num_classes] strings, the class names in
  id order (`model.label.classes`, or the ids as text, "0", "1", ...), as TF Serving's
  classify API names its scores. (TFMA takes `outputs` as the predictions: it is one of
  the keys it looks for in a dict of outputs.)
- `serving_raw`: one tensor per raw feature, shape [batch] (one value per example) ->
  the same outputs; the easy one for REST `instances`. A missing value is
  sent as MISSING_VALUES says (NaN, -2**63 or ""), and served as a missing cell of a
  tf.Example is: the end-to-end TFLite takes the same requests.
- `transform_features`: serialized tf.Example WITH the raw label -> every transformed
  feature and `label`; TFMA's `preprocessing_function_names` uses it to get labels.

Requests carry only the raw features the model uses (`serving_feature_spec`); other
columns of a tf.Example are ignored. A classifier's class names are also written to
CLASSES_FILE, so that the pusher compares a version's classes with the last pushed
one's without loading either model.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_transform.saved.saved_transform_io_v2 import SavedModelLoader

from models.common.features import LABEL_KEY, class_names
from models.errors import UserError

# The plain Keras model the Compressor starts from, next to Format-Serving.
KERAS_MODEL_FILE = "keras_model.keras"
EXAMPLES_INPUT = "examples"
OUTPUTS_KEY = "outputs"
CLASSES_KEY = "classes"
# A classifier's class names in id order, as a JSON list, in the serving SavedModel
# (TF Serving reads only the warm-up requests from assets.extra).
CLASSES_FILE = os.path.join("assets.extra", "classes.json")
SERVING_DEFAULT_SIGNATURE = "serving_default"
SERVING_RAW_SIGNATURE = "serving_raw"
TRANSFORM_FEATURES_SIGNATURE = "transform_features"

FeatureSpec = dict[str, tf.io.FixedLenFeature | tf.io.VarLenFeature]

# How a `serving_raw` request (and one to the end-to-end TFLite, whose inputs are the
# same) says that a row has no value for a feature: a tensor holds a value in every row,
# so a value no data holds stands for the gap. Strings: "", which TFT's Transform gives
# a missing category anyway.
MISSING_VALUES = {tf.float32: math.nan, tf.int64: np.iinfo(np.int64).min, tf.string: b""}


def is_present(values: tf.Tensor) -> tf.Tensor:
    """Per value of a [batch] `serving_raw` input, whether it is a value (not MISSING_VALUES)."""
    if values.dtype == tf.float32:
        return tf.logical_not(tf.math.is_nan(values))
    return tf.not_equal(values, tf.constant(MISSING_VALUES[values.dtype], values.dtype))


def keras_model_path(serving_model_dir: str) -> str:
    """Where the plain Keras model sits next to a model artifact's serving model."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), KERAS_MODEL_FILE)


def _tensor_names(signature_input: meta_graph_pb2.TensorInfo) -> set[str]:
    """The graph tensors behind one input of the transform signature: the tensor, or the
    indices, values and shape of a sparse input. (leanline's Transform writes TF1-compat
    graphs, whose loader describes inputs by the signature's TensorInfo protos.)"""
    if signature_input.HasField("coo_sparse"):
        sparse = signature_input.coo_sparse
        return {
            sparse.indices_tensor_name,
            sparse.values_tensor_name,
            sparse.dense_shape_tensor_name,
        }
    if signature_input.HasField("composite_tensor"):
        return {c.name for c in signature_input.composite_tensor.components}
    return {signature_input.name}


def _columns_computing(
    loader: SavedModelLoader, spec: FeatureSpec, outputs: set[str]
) -> FeatureSpec:
    """The part of `spec` that the transformed `outputs` are computed from.

    A raw feature is needed exactly when one of `outputs` depends on it. TFT's loader
    finds each output's graph inputs in one walk when it loads the transform graph (it
    decides with them what a subset of inputs can compute); reading that map, rather
    than running the graph once per left-out column, keeps the cost linear in the graph
    instead of growing with columns times graph size.
    """
    # Private to TFT's loader; pinned with TFT, and every family's serving tests cover it.
    output_inputs = loader._output_to_inputs_map  # noqa: SLF001
    raw_inputs = loader._structured_inputs  # noqa: SLF001
    missing = outputs - set(output_inputs)
    if missing:
        raise ValueError(f"the transform graph does not output {sorted(missing)}")
    sources = {tensor.name for name in outputs for tensor in output_inputs[name]}
    return {c: f for c, f in spec.items() if _tensor_names(raw_inputs[c]) & sources}


def serving_feature_spec(
    keras_model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    loader: SavedModelLoader,
    raw_label_column: str,
) -> FeatureSpec:
    """The raw features a request carries: those the model's inputs are computed from.

    Raw columns the model ignores, and the label, are not part of any request.
    """
    spec = tf_transform_output.raw_feature_spec()
    if raw_label_column not in spec:
        raise ValueError(f"raw label column {raw_label_column!r} is not in the raw feature spec")
    del spec[raw_label_column]
    return _columns_computing(loader, spec, set(keras_model.input_names))


def labelled_feature_spec(
    keras_model: keras.Model, tf_transform_output: tft.TFTransformOutput, loader: SavedModelLoader
) -> FeatureSpec:
    """The raw features `transform_features` parses: those of the model inputs and the label."""
    outputs = {*keras_model.input_names, LABEL_KEY}
    return _columns_computing(loader, tf_transform_output.raw_feature_spec(), outputs)


def _is_scalar(feature: tf.io.FixedLenFeature | tf.io.VarLenFeature) -> bool:
    """One value per example: every VarLen CSV column, and FixedLen of shape [] or [1]."""
    return isinstance(feature, tf.io.VarLenFeature) or math.prod(feature.shape) == 1


def _raw_tensor_spec(name: str, feature: tf.io.FixedLenFeature | tf.io.VarLenFeature):
    shape = [None] if _is_scalar(feature) else [None, *feature.shape]
    return tf.TensorSpec(shape, feature.dtype, name=name)


def as_parsed(tensors: dict[str, tf.Tensor], spec: FeatureSpec) -> dict[str, tf.Tensor]:
    """`serving_raw`'s inputs shaped the way `tf.io.parse_example` returns the features:
    a VarLen feature is a [batch, 1] SparseTensor without the missing values."""
    parsed = {}
    rows = tf.shape(next(iter(tensors.values())), out_type=tf.int64)[0]
    one_per_row = tf.stack([tf.range(rows), tf.zeros([rows], tf.int64)], axis=1)
    shape = tf.stack([rows, tf.constant(1, tf.int64)])
    for name, feature in spec.items():
        value = tensors[name]
        if isinstance(feature, tf.io.VarLenFeature):
            present = is_present(value)
            value = tf.SparseTensor(
                tf.boolean_mask(one_per_row, present), tf.boolean_mask(value, present), shape
            )
        elif _is_scalar(feature):
            value = tf.reshape(value, [-1, *feature.shape])
        parsed[name] = value
    return parsed


def served_classes(
    keras_model: keras.Model, tf_transform_output: tft.TFTransformOutput
) -> list[str] | None:
    """A classifier's class names in id order: those its Transform recorded
    (`models.common.features.class_names`), else its ids as text; None for a regressor
    (a float label)."""
    if tf_transform_output.transformed_feature_spec()[LABEL_KEY].dtype.is_floating:
        return None
    width = keras_model.output_shape[-1]
    count = 2 if width == 1 else width  # one sigmoid unit: the probability of class 1
    names = class_names(tf_transform_output)
    if names is None:
        return [str(class_id) for class_id in range(count)]
    if len(names) != count:  # a model module's build_model can size its output otherwise
        raise UserError(
            f"model.label.classes names {len(names)} classes {names}, but the model answers "
            f"{width} probabilities, for {count} classes"
        )
    return names


def saved_classes(saved_model_dir: str) -> list[str] | None:
    """The class names a serving SavedModel answers (CLASSES_FILE); None for a regressor
    or a model exported before they were written."""
    path = os.path.join(saved_model_dir, CLASSES_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as file:
        return json.load(file)


def export_serving_model(
    keras_model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    export_dir: str,
    raw_label_column: str,
) -> None:
    """Saves `keras_model` with the transform graph in front of it (signatures above).

    The SavedModel's root is a plain tf.Module holding only what serving needs: the
    model's variables and the transform layer (its vocabularies and variables). Saving
    the Keras model itself would also serialize every layer's traced calls, which nothing
    serving reads: twice the time to save, and to load in TFMA, the pusher and TF Serving.
    """
    transform_layer = tf_transform_output.transform_features_layer()
    # The layer's own loader (private to TFT): loaded once for everything below.
    loader = transform_layer._saved_model_loader  # noqa: SLF001
    serving_spec = serving_feature_spec(keras_model, tf_transform_output, loader, raw_label_column)
    labelled_spec = labelled_feature_spec(keras_model, tf_transform_output, loader)
    served = tf.Module()
    served.model_variables = list(keras_model.variables)
    # What the layer itself tracks to keep the transform graph's tables and vocabulary
    # assets (TFT's TransformFeaturesLayer holds the same dict). Tracking the Keras layer
    # instead would make the save trace its call for every raw input: 8 s at 300 columns.
    served.transform_graph = dict(loader.__dict__)
    input_names = list(keras_model.input_names)
    classes = served_classes(keras_model, tf_transform_output)

    def predict(raw_features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        transformed = transform_layer(raw_features)
        model_inputs = {name: transformed[name] for name in input_names}
        outputs = {OUTPUTS_KEY: keras_model(model_inputs, training=False)}
        if classes is not None:
            rows = tf.shape(outputs[OUTPUTS_KEY])[:1]
            names = tf.constant(classes)[tf.newaxis]
            outputs[CLASSES_KEY] = tf.tile(names, tf.concat([rows, [1]], axis=0))
        return outputs

    examples_spec = tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)

    # Plain Python loops over columns: nothing for autograph to convert, and converting
    # them costs seconds on wide tables.
    @tf.function(input_signature=[examples_spec], autograph=False)
    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(tf.io.parse_example(examples, serving_spec))

    @tf.function(autograph=False)
    def serve_raw(**tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(as_parsed(tensors, serving_spec))

    @tf.function(input_signature=[examples_spec], autograph=False)
    def transform_features(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return transform_layer(tf.io.parse_example(examples, labelled_spec))

    raw_inputs = {name: _raw_tensor_spec(name, f) for name, f in serving_spec.items()}
    signatures = {
        SERVING_DEFAULT_SIGNATURE: serve_examples.get_concrete_function(),
        SERVING_RAW_SIGNATURE: serve_raw.get_concrete_function(**raw_inputs),
        TRANSFORM_FEATURES_SIGNATURE: transform_features.get_concrete_function(),
    }
    tf.saved_model.save(served, export_dir, signatures=signatures)
    if classes is not None:
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(export_dir, CLASSES_FILE)))
        with tf.io.gfile.GFile(os.path.join(export_dir, CLASSES_FILE), "w") as file:
            json.dump(classes, file)


def raw_specs(saved_model_dir: str) -> dict[str, tf.TensorSpec]:
    """The inputs of a serving SavedModel's `serving_raw` signature, by name."""
    signature = tf.saved_model.load(saved_model_dir).signatures[SERVING_RAW_SIGNATURE]
    return dict(signature.structured_input_signature[1])
