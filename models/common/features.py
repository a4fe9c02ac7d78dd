"""Names shared by every model family, and the values a Transform records in its graph
for what follows it (the typed config behind `custom_config` is models.custom_config's).

Values that only the Transform knows (analyzers' results; the class names of the label's ids) are named in
the transform graph (`analyzed`) and read back from it, so that the graph that computes
the features stays their one record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

# Every preprocessing_fn outputs the label under this key: the class id (int64,
# 0..num_classes-1), or for regression the number (float32).
LABEL_KEY = "label"
TRANSFORMED_SUFFIX = "_xf"
# Names of analyzer results the end-to-end TFLite reads back (see `analyzed`).
ANALYZED_PREFIX = "leanline_analyzed_"
# The `analyzed` key of a classifier's class names (with_class_names).
CLASS_NAMES = "class_names"
# The signature of TFT's TF1-compat transform SavedModel.
TRANSFORM_SIGNATURE = "transform_signature"


def transformed_name(column: str) -> str:
    """The transformed feature name of a raw column."""
    return f"{column}{TRANSFORMED_SUFFIX}"


def analyzed(tensor: tf.Tensor, key: str) -> tf.Tensor:
    """An analyzer's result (or a constant) inside a preprocessing_fn, named so that
    `analyzed_constants` can read its value back from the transform graph, where TFT has
    made it a constant."""
    return tf.identity(tensor, name=f"{ANALYZED_PREFIX}{key}")


def with_class_names(ids: tf.Tensor, classes: list[str] | None) -> tf.Tensor:
    """The label's class ids, with the names of the classes (in id order) recorded in
    the transform graph, where the serving export reads them (`class_names`): the graph
    that maps labels to ids is the one record of what each id means. The names are a
    control input of the label, so that the loaded transform signature, which keeps only
    what its outputs depend on, keeps them."""
    if classes is None:
        return ids
    with tf.control_dependencies([analyzed(tf.constant(classes), CLASS_NAMES)]):
        return tf.identity(ids)


def recorded_constants(
    tf_transform_output: tft.TFTransformOutput, keys: list[str]
) -> dict[str, np.ndarray]:
    """The values of those `analyzed` tensors `keys` that the saved transform graph holds."""
    if not keys:
        return {}
    loaded = tf.compat.v1.saved_model.load_v2(tf_transform_output.transform_savedmodel_dir)
    graph = loaded.signatures[TRANSFORM_SIGNATURE].graph
    wanted = {f"{ANALYZED_PREFIX}{key}": key for key in keys}
    found = {
        wanted[op.name.rpartition("/")[2]]: op.name
        for op in graph.get_operations()
        if op.name.rpartition("/")[2] in wanted
    }
    if not found:
        return {}
    subgraph = tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), list(found.values()))
    with tf.Graph().as_default() as constants_graph:
        tf.import_graph_def(subgraph, name="")
        with tf.compat.v1.Session(graph=constants_graph) as session:
            return session.run({key: f"{name}:0" for key, name in found.items()})


def analyzed_constants(
    tf_transform_output: tft.TFTransformOutput, keys: list[str]
) -> dict[str, np.ndarray]:
    """The values of the `analyzed` tensors `keys`, read from the saved transform graph,
    where TFT has replaced each analyzer's result with a constant."""
    found = recorded_constants(tf_transform_output, keys)
    missing = sorted(set(keys) - set(found))
    if missing:
        raise ValueError(f"the transform graph has no analyzed values {missing}")
    return found


def class_names(tf_transform_output: tft.TFTransformOutput) -> list[str] | None:
    """The class names the Transform recorded beside the label (with_class_names), in id
    order; None where it named none."""
    names = recorded_constants(tf_transform_output, [CLASS_NAMES]).get(CLASS_NAMES)
    return None if names is None else [name.decode() for name in names.tolist()]


@dataclass(frozen=True)
class ModelInput:
    """One transformed feature as the Keras model sees it."""

    name: str
    dtype: tf.dtypes.DType
    # Per-example shape: () for a scalar, (64,) for the digits image.
    shape: tuple[int, ...]
    # Number of ids of an integerized feature (vocabulary, buckets); None for floats.
    num_categories: int | None


def model_inputs(tf_transform_output: tft.TFTransformOutput) -> dict[str, ModelInput]:
    """The Keras model's inputs: every transformed feature except the label, by name.

    Integer features carry the id range Transform recorded in the transformed schema
    (vocabularies and buckets record theirs), so models size one-hots and embeddings
    from what the data holds rather than from config upper bounds.
    """
    inputs = {}
    for name, spec in sorted(tf_transform_output.transformed_feature_spec().items()):
        if name == LABEL_KEY:
            continue
        if not isinstance(spec, tf.io.FixedLenFeature):
            raise ValueError(f"transformed feature {name!r} must be dense, got {spec}")
        num_categories = None
        if spec.dtype.is_integer:
            num_categories = tf_transform_output.num_buckets_for_transformed_feature(name)
        inputs[name] = ModelInput(name, spec.dtype, tuple(spec.shape), num_categories)
    return inputs
