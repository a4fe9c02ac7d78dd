"""models/: strategies and label logic directly; each family through a real tiny TFX run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydantic
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from fixtures_models import (
    TinyTrainedModel,
    csv_rows,
    serialized_example,
    tiny_config,
    train_tiny_model,
    typed_value,
)

from models.common.data import count_examples, transformed_dataset
from models.common.export import CLASSES_KEY, KERAS_MODEL_FILE, OUTPUTS_KEY, saved_classes
from models.common.features import LABEL_KEY, ModelInput
from models.common.strategy import is_chief, make_strategy
from models.common.train import HISTORY_FILE, compile_model, steps_per_epoch
from models.config import ModelConfig, StrategyConfig, TrainingConfig
from models.digits.features import PIXEL_COLUMNS
from models.tabular import model as tabular_model
from models.tabular.preprocessing import (
    BUCKETIZED_KEY,
    CATEGORICAL_INT_KEY,
    NUMERIC_KEY,
    dense,
)
from models.taxi.preprocessing import big_tipper

SIGNATURES = {"serving_default", "serving_raw", "transform_features"}
REQUEST_ROWS = 16
# What a couple of seconds of training must reach on the eval split (chance: 0.33, 0.1).
MIN_EVAL_ACCURACY = {"penguins": 0.8, "digits": 0.8}


def _tiny_model_config(num_classes: int = 2) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "family": "tabular",
            "features": {"numeric": ["x"], "categorical": ["colour"]},
            "label": {"column": "y", "num_classes": num_classes},
        }
    )


def _tiny_tabular_model(num_classes: int = 2) -> keras.Model:
    inputs = {
        "x_xf": ModelInput("x_xf", tf.float32, (), None),
        "colour_xf": ModelInput("colour_xf", tf.int64, (), 5),
    }
    return tabular_model.build_model(inputs, _tiny_model_config(num_classes))


def _toy_data() -> tf.data.Dataset:
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    features = {"x_xf": x, "colour_xf": np.arange(64) % 5}
    return tf.data.Dataset.from_tensor_slices((features, (x > 0).astype(np.int64))).batch(16)


def test_default_strategy_is_tf_default_one_replica():
    strategy = make_strategy(StrategyConfig())
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)


def test_mirrored_strategy_trains_on_a_cpu_only_host():
    strategy = make_strategy(StrategyConfig(kind="mirrored"))
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == max(1, len(tf.config.list_physical_devices("GPU")))
    with strategy.scope():
        model = _tiny_tabular_model()
        compile_model(model, _tiny_model_config(), learning_rate=0.05)
    assert all(strategy.extended.variable_created_in_scope(v) for v in model.weights)
    history = model.fit(_toy_data(), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert is_chief(strategy)


def test_tpu_strategy_needs_an_address():
    with pytest.raises(pydantic.ValidationError, match="tpu_address"):
        StrategyConfig(kind="tpu")


def test_tabular_model_outputs_one_sigmoid_or_a_softmax():
    model = _tiny_tabular_model()
    batch = next(iter(_toy_data()))[0]
    assert model(batch).shape == (16, 1)
    probabilities = _tiny_tabular_model(num_classes=3)(batch).numpy()
    assert probabilities.shape == (16, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert sorted(model.input_names) == ["colour_xf", "x_xf"]
    # Categorical ids go through an embedding, never a one-hot (TFLite-friendly).
    assert any(isinstance(layer, keras.layers.Embedding) for layer in model.layers)


@pytest.mark.parametrize(
    ("examples", "batch", "config_steps", "train_steps", "expected"),
    [
        (1000, 128, None, None, 8),  # one pass, rounded up
        (1000, 128, 5, None, 5),  # bounded by the config
        (1000, 128, None, 12, 3),  # the Trainer's total steps over 5 epochs
        (10, 128, None, None, 1),
    ],
)
def test_steps_per_epoch(examples, batch, config_steps, train_steps, expected):
    training = TrainingConfig(epochs=5, steps_per_epoch=config_steps)
    assert steps_per_epoch(examples, batch, training, train_steps) == expected


def test_big_tipper_label():
    fare = tf.constant([10.0, 10.0, 0.0, 10.0, 20.0])
    tips = tf.constant([2.5, 2.0, 5.0, 0.0, 4.5])
    assert big_tipper(tips, fare).numpy().tolist() == [1, 0, 0, 0, 1]
    # Missing fare (a sparse column): no label 1 for it.
    sparse_fare = tf.SparseTensor([[0, 0], [2, 0]], [10.0, 10.0], [3, 1])
    assert big_tipper(tf.constant([5.0, 5.0, 1.0]), sparse_fare).numpy().tolist() == [1, 0, 0]


def test_dense_fills_missing_values():
    sparse = tf.SparseTensor([[1, 0]], tf.constant(["a"]), [3, 1])
    assert dense(sparse, "?").numpy().tolist() == [b"?", b"a", b"?"]
    assert dense(tf.constant([[1], [2]]), 0).numpy().tolist() == [1, 2]


# --- each family through a real TFX run ---


@pytest.fixture(scope="module", params=["taxi", "penguins", "digits"])
def trained(request, tmp_path_factory) -> TinyTrainedModel:
    if request.param in ("taxi", "penguins"):
        return request.getfixturevalue(f"trained_{request.param}_model")
    config = tiny_config(request.param)
    return train_tiny_model(config, tmp_path_factory.mktemp(request.param), rows=500)


def _expected_labels(trained: TinyTrainedModel, rows: list[dict[str, str]]) -> list[int]:
    column = trained.config.model.label.column
    if trained.config.name == "taxi":
        return [int(float(r["tips"]) > 0.2 * float(r["fare"] or 0)) for r in rows]
    if trained.config.name == "penguins":  # ids in sorted order, whatever the frequencies
        assert trained.config.model.label.classes == ["Adelie", "Chinstrap", "Gentoo"]
        return [trained.config.model.label.classes.index(r[column]) for r in rows]
    return [int(r[column]) for r in rows]


# The classes each family's model serves, in id order.
SERVED_CLASSES = {
    "taxi": ["0", "1"],
    "penguins": ["Adelie", "Chinstrap", "Gentoo"],
    "digits": [str(digit) for digit in range(10)],
}


@pytest.mark.slow
def test_serving_model_predicts_probabilities_from_raw_examples(trained: TinyTrainedModel):
    config = trained.config
    raw_spec = tft.TFTransformOutput(trained.transform_graph_uri).raw_feature_spec()
    label_column = config.model.label.column
    rows = csv_rows(trained.csv_path, REQUEST_ROWS)
    serving = tf.saved_model.load(os.path.join(trained.model_uri, "Format-Serving"))
    assert set(serving.signatures) == SIGNATURES

    requests = [serialized_example(r, raw_spec, drop=(label_column,)) for r in rows]
    served = serving.signatures["serving_default"](examples=tf.constant(requests))
    probabilities = served[OUTPUTS_KEY].numpy()
    # Each row names the classes in id order, beside its probabilities.
    expected_classes = [SERVED_CLASSES[config.name]] * len(rows)
    assert served[CLASSES_KEY].numpy().astype(str).tolist() == expected_classes
    assert saved_classes(os.path.join(trained.model_uri, "Format-Serving")) == expected_classes[0]
    num_classes = config.model.label.num_classes
    assert probabilities.shape == (len(rows), 1 if num_classes == 2 else num_classes)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    if num_classes > 2:
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    labelled = [serialized_example(r, raw_spec) for r in rows]
    transformed = serving.signatures["transform_features"](examples=tf.constant(labelled))
    assert transformed[LABEL_KEY].numpy().tolist() == _expected_labels(trained, rows)

    # The SavedModel carries its own copy of every vocabulary (TF Serving has no other).
    if trained.config.name != "digits":  # digits has no vocabulary
        vocabularies = Path(trained.transform_graph_uri, "transform_fn", "assets").iterdir()
        served_assets = Path(trained.model_uri, "Format-Serving", "assets").iterdir()
        assert {p.name for p in vocabularies} <= {p.name for p in served_assets}

    # The plain Keras model on the transformed features gives the same probabilities.
    keras_model = keras.models.load_model(os.path.join(trained.model_uri, KERAS_MODEL_FILE))
    model_inputs = {name: transformed[name] for name in keras_model.input_names}
    np.testing.assert_allclose(keras_model(model_inputs).numpy(), probabilities, rtol=1e-5)


def _model_columns(config) -> set[str]:
    if config.model.family == "digits":
        return set(PIXEL_COLUMNS)
    return set(config.model.features.all_columns())


@pytest.mark.slow
def test_serving_raw_takes_the_model_columns_and_matches_serving_default(
    trained: TinyTrainedModel,
):
    serving = tf.saved_model.load(os.path.join(trained.model_uri, "Format-Serving"))
    _, raw_inputs = serving.signatures["serving_raw"].structured_input_signature
    assert set(raw_inputs) == _model_columns(trained.config)

    complete = [r for r in csv_rows(trained.csv_path) if all(r[c] != "" for c in raw_inputs)]
    rows = complete[:REQUEST_ROWS]
    assert rows, "the slice has no row with every model column present"
    columns = {
        name: tf.constant([typed_value(r[name], spec.dtype) for r in rows], spec.dtype)
        for name, spec in raw_inputs.items()
    }
    raw = serving.signatures["serving_raw"](**columns)
    from_raw = raw[OUTPUTS_KEY].numpy()
    raw_spec = tft.TFTransformOutput(trained.transform_graph_uri).raw_feature_spec()
    label_column = trained.config.model.label.column
    requests = [serialized_example(r, raw_spec, drop=(label_column,)) for r in rows]
    from_examples = serving.signatures["serving_default"](examples=tf.constant(requests))
    np.testing.assert_allclose(from_raw, from_examples[OUTPUTS_KEY].numpy(), rtol=1e-5)
    assert raw[CLASSES_KEY].numpy().astype(str).tolist() == [
        SERVED_CLASSES[trained.config.name]
    ] * len(rows)


@pytest.mark.slow
def test_training_history_shows_learning(trained: TinyTrainedModel):
    history = json.loads(Path(trained.model_run_uri, HISTORY_FILE).read_text())
    epochs = history["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, trained.config.training.epochs + 1))
    assert history["global_batch_size"] == trained.config.training.batch_size
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    if trained.config.name in MIN_EVAL_ACCURACY:
        accuracy = epochs[-1]["val_sparse_categorical_accuracy"]
        assert accuracy >= MIN_EVAL_ACCURACY[trained.config.name]


@pytest.mark.slow
def test_transformed_dataset_reads_batches_without_trainer(trained_taxi_model: TinyTrainedModel):
    tf_transform_output = tft.TFTransformOutput(trained_taxi_model.transform_graph_uri)
    pattern = os.path.join(trained_taxi_model.transformed_examples_uri, "Split-eval", "*")
    dataset = transformed_dataset(
        pattern, tf_transform_output, batch_size=4, shuffle=False, repeat=False, limit=10
    )
    batches = list(dataset)
    assert [len(label) for _, label in batches] == [4, 4, 2]
    features, label = batches[0]
    assert LABEL_KEY not in features
    categorical = trained_taxi_model.config.model.features.categorical
    assert set(features) == {
        NUMERIC_KEY,
        BUCKETIZED_KEY,
        CATEGORICAL_INT_KEY,
        *(f"{column}_xf" for column in categorical),
    }
    assert label.dtype == tf.int64
    assert set(label.numpy().tolist()) <= {0, 1}
    total = count_examples(pattern)
    assert total == sum(
        len(label)
        for _, label in transformed_dataset(
            pattern, tf_transform_output, batch_size=64, shuffle=False, repeat=False
        )
    )
    assert 0 < total < 500
