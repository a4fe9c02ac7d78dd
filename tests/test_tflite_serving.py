"""The end-to-end TFLite as TF Serving and TFMA read it: the signatures in its metadata,
warm-up requests routed by tensor name, missing values, and the examples TFMA feeds it.
Small real models; no pipeline run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from components.compressor.tflite_examples import tflite_input_name, with_tflite_inputs
from models.common.data import raw_rows
from models.common.export import MISSING_VALUES, is_present
from models.common.tflite_format import tf_serving_signatures, with_tf_serving_signatures
from models.errors import UserError
from serving.check import check_servable
from serving.warmup import warmup_records, write_warmup_requests

SPECS = {
    "fare": tf.TensorSpec([None], tf.float32, name="fare"),
    "trips": tf.TensorSpec([None], tf.int64, name="trips"),
    "company": tf.TensorSpec([None], tf.string, name="company"),
}
PARSE_SPEC = {name: tf.io.VarLenFeature(spec.dtype) for name, spec in SPECS.items()}


def _score(fare: tf.Tensor, trips: tf.Tensor, company: tf.Tensor) -> dict[str, tf.Tensor]:
    """A tiny 'model' whose answer depends on every input and on whether it is missing."""
    has_trips, has_company = (tf.cast(is_present(x), tf.float32) for x in (trips, company))
    fare = tf.where(is_present(fare), fare, tf.zeros_like(fare))
    value = 0.1 * fare + 0.2 * has_trips + 0.4 * has_company
    return {"outputs": tf.reshape(tf.sigmoid(value), [-1, 1])}


class TinyModel(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_default(self, examples):
        parsed = tf.io.parse_example(examples, PARSE_SPEC)
        dense = {
            name: tf.sparse.to_dense(
                tf.sparse.reset_shape(parsed[name], [tf.shape(examples, tf.int64)[0], 1]),
                MISSING_VALUES[spec.dtype],
            )[:, 0]
            for name, spec in SPECS.items()
        }
        return _score(**dense)

    @tf.function(input_signature=list(SPECS.values()))
    def serving_raw(self, fare, trips, company):
        return _score(fare, trips, company)


def _example(fare=None, trips=None, company=None) -> bytes:
    feature = {}
    if fare is not None:
        feature["fare"] = tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))
    if trips is not None:
        feature["trips"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[trips]))
    if company is not None:
        feature["company"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[company]))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


EXAMPLES = [
    _example(2.0, 3, b"Flash Cab"),
    _example(None, 3, b"Flash Cab"),
    _example(5.0, None, None),
    _example(),
]


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> tuple[Path, bytes]:
    """A version directory as the pusher writes one: SavedModel, warm-up requests on
    `serving_raw` (with missing values), and the TFLite of `serving_raw` without TF
    Serving's metadata (returned beside it)."""
    directory = tmp_path_factory.mktemp("version")
    module = TinyModel()
    tf.saved_model.save(
        module,
        str(directory),
        signatures={
            "serving_default": module.serving_default,
            "serving_raw": module.serving_raw,
        },
    )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(directory), signature_keys=["serving_raw"]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    plain = converter.convert()
    write_warmup_requests(directory, warmup_records(EXAMPLES, "tiny", SPECS))
    return directory, plain


def test_tf_servings_signatures_name_the_input_tensors_of_the_flatbuffer(version):
    _, plain = version
    assert (
        tf_serving_signatures(plain) == {}
    )  # the converter's own table is not what TF Serving reads

    content = with_tf_serving_signatures(plain)
    (key,) = tf_serving_signatures(content)
    signature = tf_serving_signatures(content)[key]
    assert key == "serving_raw" and signature.method_name == "tensorflow/serving/predict"
    assert set(signature.inputs) == set(SPECS) and set(signature.outputs) == {"outputs"}
    interpreter = Interpreter(model_content=content)
    tensor_names = {d["name"] for d in interpreter.get_input_details()}
    for name, spec in SPECS.items():
        assert signature.inputs[name].name in tensor_names
        assert signature.inputs[name].dtype == spec.dtype.as_datatype_enum
    # Written again, the entry is replaced, not added.
    assert len(with_tf_serving_signatures(content)) == len(content)
    # The interpreter's own signature runner is untouched.
    assert interpreter.get_signature_list()["serving_raw"]["outputs"] == ["outputs"]


def test_check_servable_replays_warmup_requests_on_the_tflite_as_tf_serving_routes_them(
    version, tmp_path
):
    import shutil

    directory, plain = version
    with_metadata = tmp_path / "with"
    shutil.copytree(directory, with_metadata)
    (with_metadata / "model.tflite").write_bytes(with_tf_serving_signatures(plain))
    report = check_servable(with_metadata)
    assert report.tflite and report.warmup_requests == len(EXAMPLES)

    without = tmp_path / "without"
    shutil.copytree(directory, without)
    (without / "model.tflite").write_bytes(plain)
    with pytest.raises(UserError, match="no `signature_defs` metadata: TF Serving would serve"):
        check_servable(without)


def test_missing_values_answer_as_empty_cells_of_a_tf_example(version):
    directory, plain = version
    rows, servable = raw_rows(tf.constant(EXAMPLES), SPECS)
    assert servable.all()
    assert math.isnan(rows["fare"][1]) and rows["trips"][2] == np.iinfo(np.int64).min
    assert rows["company"][3] == b""
    model = tf.saved_model.load(str(directory))
    served = model.signatures["serving_default"](examples=tf.constant(EXAMPLES))["outputs"]
    runner = Interpreter(model_content=with_tf_serving_signatures(plain)).get_signature_runner()
    np.testing.assert_allclose(runner(**rows)["outputs"], served.numpy(), atol=1e-6)
    # The four rows differ only in what is missing, and so answer differently.
    assert len(np.unique(np.round(served.numpy(), 5))) == len(EXAMPLES)


def test_a_row_with_several_values_of_a_feature_cannot_be_sent_to_serving_raw():
    two_fares = tf.train.Example()
    two_fares.features.feature["fare"].float_list.value.extend([1.0, 2.0])
    rows, servable = raw_rows(
        tf.constant([two_fares.SerializeToString(), EXAMPLES[0]]), {"fare": SPECS["fare"]}
    )
    assert servable.tolist() == [False, True] and rows["fare"].tolist() == [2.0]


def test_tflite_examples_add_each_input_and_keep_the_raw_features():
    dtypes = {name: spec.dtype for name, spec in SPECS.items()}
    added = tf.train.Example.FromString(with_tflite_inputs(EXAMPLES[2], dtypes))
    features = added.features.feature
    assert tflite_input_name("fare") == "serving_raw_fare"
    assert features["fare"].float_list.value == [5.0]
    assert "trips" not in features and "company" not in features
    assert features["serving_raw_fare"].float_list.value == [5.0]
    assert features["serving_raw_trips"].int64_list.value == [np.iinfo(np.int64).min]
    assert features["serving_raw_company"].bytes_list.value == [b""]
    empty = tf.train.Example.FromString(with_tflite_inputs(EXAMPLES[3], dtypes))
    assert math.isnan(empty.features.feature["serving_raw_fare"].float_list.value[0])
