"""Compression: the pure functions on a real digits CNN, the component in a real TFX run.

The digits model is the real `models.digits` network on the real digits images,
transformed by the family's own preprocessing_fn (it has no analyzers, so it runs
eagerly), and trained for a few seconds: enough to learn, so that accuracy losses
show. The Compressor runs in a LocalDagRunner pipeline on the session's tiny taxi run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from fixtures_models import TinyTrainedModel, compressor_pipeline, csv_rows, serialized_example
from pydantic import ValidationError
from sklearn.datasets import load_digits

from components.compressor.component import CompressionReport
from components.compressor.spec import REPORT_JSON, REPORT_MARKDOWN, tflite_model_path
from models.common import compression, compression_report, measurement, pruning, tflite
from models.common import search as search_module
from models.common.data import LabelStats
from models.common.distillation import distill
from models.common.export import OUTPUTS_KEY
from models.common.features import LABEL_KEY, ModelInput
from models.common.fine_tuning import FineTuning
from models.common.train import LABEL_SCALE_LAYER, compile_model, in_label_units
from models.config import (
    CompressionConfig,
    DistillationConfig,
    ModelConfig,
    PruningConfig,
    SearchConfig,
)
from models.digits.features import IMAGE_KEY, PIXEL_COLUMNS
from models.digits.model import build_model
from models.digits.preprocessing import preprocessing_fn
from models.errors import UserError
from models.tabular.model import build_model as build_tabular
from pipeline.config import custom_config, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_ROWS = 1400
EPOCHS = 4
BATCH_SIZE = 32


DIGITS_CONFIG = load_config(REPO_ROOT / "configs" / "digits.yaml")


@pytest.fixture(scope="module")
def digits_config():
    return DIGITS_CONFIG


@pytest.fixture(scope="module")
def digits_rows(digits_config) -> tuple[compression.LabeledRows, compression.LabeledRows]:
    """All 1797 images through digits' preprocessing_fn: (train rows, eval rows)."""
    images = load_digits()
    raw = {
        column: tf.constant(images.data[:, i], tf.int64) for i, column in enumerate(PIXEL_COLUMNS)
    }
    raw["label"] = tf.constant(images.target, tf.int64)
    transformed = preprocessing_fn(raw, custom_config(digits_config))
    features = {IMAGE_KEY: transformed[IMAGE_KEY].numpy()}
    labels = transformed[LABEL_KEY].numpy()

    def rows(part: slice) -> compression.LabeledRows:
        return compression.LabeledRows({IMAGE_KEY: features[IMAGE_KEY][part]}, labels[part])

    return rows(slice(0, TRAIN_ROWS)), rows(slice(TRAIN_ROWS, None))


def _split_for_search(
    train: compression.LabeledRows,
) -> tuple[compression.LabeledRows, compression.LabeledRows]:
    """The first 1,100 train images, which train and fine-tune; the other 300, held out
    as the search's validation rows."""

    def rows(part: slice) -> compression.LabeledRows:
        return compression.LabeledRows(
            {IMAGE_KEY: train.features[IMAGE_KEY][part]}, train.labels[part]
        )

    return rows(slice(0, 1100)), rows(slice(1100, None))


def _build_digits(model: ModelConfig) -> keras.Model:
    return build_model({IMAGE_KEY: ModelInput(IMAGE_KEY, tf.float32, (64,), None)}, model)


def _fine_tuning(train: compression.LabeledRows) -> FineTuning:
    data = (
        tf.data.Dataset.from_tensor_slices((train.features, train.labels))
        .shuffle(len(train), seed=0)
        .repeat()
        .batch(BATCH_SIZE, drop_remainder=True)
    )
    return FineTuning(data, len(train) // BATCH_SIZE, DIGITS_CONFIG.model, 1e-3)


@pytest.fixture(scope="module")
def digits_model(digits_config, digits_rows) -> keras.Model:
    keras.utils.set_random_seed(0)
    # The search tests' validation rows stay unseen.
    train, _ = _split_for_search(digits_rows[0])
    model = _build_digits(digits_config.model)
    compile_model(model, digits_config.model, 1e-3)
    fine_tuning = _fine_tuning(train)
    model.fit(fine_tuning.data, epochs=EPOCHS, steps_per_epoch=fine_tuning.steps_per_epoch)
    return model


def _config(**changes) -> CompressionConfig:
    return CompressionConfig.model_validate({"fine_tune_epochs": 2, **changes})


def _compress_and_measure(model, rows, config: CompressionConfig) -> compression_report.Report:
    train, eval_rows = rows
    compressed = compression.compress(model, config, _fine_tuning(train), train.features)
    return compression_report.measure(model, compressed, config, eval_rows, DIGITS_CONFIG.model)


def test_pruning_reaches_the_target_and_leaves_the_float_model_alone(digits_model, digits_rows):
    train, _ = digits_rows
    weights_before = [w.copy() for w in digits_model.get_weights()]
    config = PruningConfig(target_sparsity=0.8)

    pruned = pruning.prune(digits_model, config, _fine_tuning(train), epochs=2)

    sparsity = pruning.sparsity_by_layer(pruned)
    assert pruning.pruning_targets(digits_model, "all") == ["conv_0", "conv_1", "hidden_0"]
    for layer in ("conv_0", "conv_1", "hidden_0"):
        assert sparsity[layer] == pytest.approx(0.8, abs=0.01)
    assert sparsity["probabilities"] == 0.0  # the output layer is never pruned
    for before, after in zip(weights_before, digits_model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert pruning.sparsity_by_layer(digits_model)["hidden_0"] < 0.01


def test_pruning_only_the_layers_asked_for(digits_model):
    assert pruning.pruning_targets(digits_model, "conv") == ["conv_0", "conv_1"]
    assert pruning.pruning_targets(digits_model, "dense") == ["hidden_0"]


def test_int8_tflite_holds_int8_tensors_and_agrees_with_keras(digits_model, digits_rows):
    train, eval_rows = digits_rows
    float_model = tflite.TfliteModel(tflite.to_tflite(digits_model))
    int8_model = tflite.TfliteModel(
        tflite.to_tflite(digits_model, "int8", tflite.take_rows(train.features, 128))
    )

    assert "int8" not in float_model.tensor_dtype_counts()
    # Every conv/dense kernel and the activations between them: well over 5 int8 tensors.
    assert int8_model.tensor_dtype_counts()["int8"] >= 10
    assert [i["key"] for i in int8_model.inputs()] == [IMAGE_KEY]
    keras_classes = digits_model.predict(eval_rows.features, verbose=0).argmax(axis=1)
    int8_classes = measurement.predict_in_batches(int8_model, eval_rows.features).argmax(axis=1)
    assert np.mean(keras_classes == int8_classes) > 0.95


def test_report_is_consistent_and_pqat_keeps_the_zeros(digits_model, digits_rows):
    config = _config(pruning={"target_sparsity": 0.75}, quantization="pqat")
    report = _compress_and_measure(digits_model, digits_rows, config)

    sizes, head = report.sizes, report.headline
    assert sizes["compressed_tflite"].zipped_bytes < sizes["float_tflite"].zipped_bytes
    assert head["tflite_zipped_ratio"] == pytest.approx(
        sizes["float_tflite"].zipped_bytes / sizes["compressed_tflite"].zipped_bytes
    )
    assert head["tflite_zipped_ratio"] > 4  # int8 alone gives about 4x
    assert report.quality_metric == "accuracy"
    assert head["quality_change"] == pytest.approx(
        report.quality["compressed_tflite"].accuracy - report.quality["float_keras"].accuracy
    )
    assert head["quality_change"] > -0.05
    assert report.eval_examples == len(digits_rows[1])
    for layer in report.pruned_layers:
        assert report.sparsity_by_layer[layer] >= 0.74
    assert report.tflite_tensor_dtypes["int8"] >= 10
    assert set(report.latency_ms["compressed_tflite"]) == {"batch_1", "batch_256"}
    assert report.latency_ms["float_tflite"]["batch_1"].p50_ms > 0

    document = json.loads(json.dumps(report.to_json()))
    assert document["headline"]["tflite_zipped_ratio"] == head["tflite_zipped_ratio"]
    assert f"{head['tflite_zipped_ratio']:.1f}x smaller zipped" in report.to_markdown()


def test_over_pruning_shows_in_the_reported_accuracy(digits_model, digits_rows):
    config = _config(pruning={"target_sparsity": 0.99}, quantization="none", fine_tune_epochs=1)
    report = _compress_and_measure(digits_model, digits_rows, config)

    assert report.quality["float_keras"].accuracy > 0.85
    assert report.headline["quality_change"] < -0.3
    assert report.quality["compressed_keras"].accuracy == pytest.approx(
        report.quality["compressed_tflite"].accuracy, abs=0.01
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantization": "qat"}, "use pqat"),
        ({"quantization": "pqat", "pruning": {"enabled": False}}, "enable pruning"),
    ],
)
def test_plans_that_undo_themselves_are_rejected(changes, message):
    with pytest.raises(ValidationError, match=message):
        _config(**changes)


def test_pruning_must_end_within_fine_tuning():
    with pytest.raises(UserError, match="past the last fine-tuning step"):
        pruning.pruning_schedule(PruningConfig(end_step=500), total_steps=100)
    schedule = pruning.pruning_schedule(PruningConfig(begin_step=10), total_steps=100)
    # Mask updates fall on begin + k * frequency; the last one at or before step 99.
    end, frequency = schedule.get_config()["config"]["end_step"], schedule.frequency
    assert (end - 10) % frequency == 0 and 99 - frequency < end <= 99


# --- the component in a real pipeline ---


def _only_uri(root: Path, component: str, output: str) -> Path:
    (uri,) = (root / "pipeline_root" / component / output).iterdir()
    return uri


def _report_properties(root: Path) -> dict[str, dict[str, float]]:
    """Custom properties of every CompressionReport in MLMD, by producer uri."""
    from ml_metadata import metadata_store
    from tfx import v1 as tfx

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    )
    properties = {}
    for artifact in store.get_artifacts_by_type(CompressionReport.TYPE_NAME):
        values = artifact.custom_properties
        properties[artifact.uri] = {
            key: value.double_value or value.int_value for key, value in values.items()
        }
    return properties


@pytest.mark.slow
def test_compressor_component_in_a_pipeline(trained_taxi_model: TinyTrainedModel, tmp_path: Path):
    from tfx import v1 as tfx

    # pqat: the path with the most moving parts (QAT wrappers through the export).
    compressors = {"Compressor": {"quantization": "pqat"}, "PassThrough": {"enabled": False}}
    tfx.orchestration.LocalDagRunner().run(
        compressor_pipeline(trained_taxi_model, tmp_path, compressors)
    )

    compressed_uri = _only_uri(tmp_path, "Compressor", "compressed_model")
    report_uri = _only_uri(tmp_path, "Compressor", "compression_report")
    report = json.loads((report_uri / REPORT_JSON).read_text())
    assert report["enabled"] is True
    assert "| compressed TFLite |" in (report_uri / REPORT_MARKDOWN).read_text()
    sizes = report["sizes"]
    assert sizes["compressed_tflite"]["zipped_bytes"] < sizes["float_tflite"]["zipped_bytes"]
    sparsity = report["sparsity_by_layer"]
    target = trained_taxi_model.config.compression.pruning.target_sparsity
    for layer in ("hidden_0", "hidden_1"):
        assert sparsity[layer] == pytest.approx(target, abs=0.01)
    # Embedding tables too, kept sparse through QAT; small ones round to whole weights.
    assert len(report["pruned_layers"]) > 2
    assert all(sparsity[layer] > target - 0.05 for layer in report["pruned_layers"])

    # The TFLite file is the int8 model the report measured.
    shipped = Path(tflite_model_path(str(compressed_uri))).read_bytes()
    assert len(shipped) == sizes["compressed_tflite"]["bytes"]
    assert tflite.TfliteModel(shipped).tensor_dtype_counts()["int8"] >= 5

    # Format-Serving serves raw tf.Examples like the Trainer's model.
    raw_spec = tft.TFTransformOutput(trained_taxi_model.transform_graph_uri).raw_feature_spec()
    rows = csv_rows(trained_taxi_model.csv_path, 8)
    requests = [serialized_example(r, raw_spec, drop=("tips",)) for r in rows]
    serving = tf.saved_model.load(str(compressed_uri / "Format-Serving"))
    outputs = serving.signatures["serving_default"](examples=tf.constant(requests))
    probabilities = outputs[OUTPUTS_KEY].numpy()
    assert probabilities.shape == (8, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))

    properties = _report_properties(tmp_path)
    headline = properties[str(report_uri)]
    assert headline["compression_enabled"] == 1
    assert headline["tflite_zipped_ratio"] == pytest.approx(
        report["headline"]["tflite_zipped_ratio"]
    )
    assert headline["quality_change"] == pytest.approx(report["headline"]["quality_change"])

    # Disabled: the Trainer's serving model, copied unchanged.
    passed_uri = _only_uri(tmp_path, "PassThrough", "compressed_model")
    original = Path(trained_taxi_model.model_uri) / "Format-Serving" / "saved_model.pb"
    copied = passed_uri / "Format-Serving" / "saved_model.pb"
    assert copied.read_bytes() == original.read_bytes()
    assert Path(tflite_model_path(str(passed_uri))).stat().st_size > 0
    passed_report_uri = _only_uri(tmp_path, "PassThrough", "compression_report")
    assert json.loads((passed_report_uri / REPORT_JSON).read_text())["enabled"] is False
    assert properties[str(passed_report_uri)]["compression_enabled"] == 0
    assert os.path.getsize(passed_report_uri / REPORT_MARKDOWN) > 0


# --- distillation and the compression search --------------------------------------------

STUDENT = DistillationConfig(hidden_units=[16], conv_filters=[4, 8], epochs=10)


def test_a_distilled_student_has_fewer_weights_and_stays_close(digits_model, digits_rows):
    train, eval_rows = digits_rows
    fine_tuning = _fine_tuning(train)
    teacher_weights = [w.copy() for w in digits_model.get_weights()]

    student = distill(digits_model, _build_digits, STUDENT, fine_tuning)

    assert [layer.filters for layer in student.layers if hasattr(layer, "filters")] == [4, 8]
    assert student.count_params() < digits_model.count_params() / 10
    teacher = measurement.predict_in_batches(
        measurement.keras_predictor(digits_model), eval_rows.features
    )
    distilled = measurement.predict_in_batches(
        measurement.keras_predictor(student), eval_rows.features
    )
    teacher_accuracy = np.mean(teacher.argmax(axis=1) == eval_rows.labels)
    student_accuracy = np.mean(distilled.argmax(axis=1) == eval_rows.labels)
    # Loose: 10 epochs on 1,100 images; an untrained student scores about 0.1.
    assert student_accuracy > teacher_accuracy - 0.1, (student_accuracy, teacher_accuracy)
    # The teacher is read, never trained.
    for before, after in zip(teacher_weights, digits_model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert digits_model.trainable


def _search_inputs(train: compression.LabeledRows) -> compression.CompressionInputs:
    fitting, held_out = _split_for_search(train)
    return compression.CompressionInputs(
        _fine_tuning(fitting), tflite.take_rows(fitting.features, 64), held_out, []
    )


def _searched(model, rows, **search) -> search_module.SearchResult:
    config = _config(
        fine_tune_epochs=1,
        search={"quantizations": ["int8_ptq"], "max_quality_loss": 0.03, **search},
    )
    train, _ = rows
    return search_module.search(
        model, _build_digits, DIGITS_CONFIG.model, config, _search_inputs(train)
    )


def test_the_search_keeps_the_smallest_candidate_within_budget(digits_model, digits_rows):
    # 98% pruned is built to fail (test_over_pruning_shows...: 99% loses 30+ pt).
    result = _searched(digits_model, digits_rows, sparsities=[0.0, 0.5, 0.98])

    by_sparsity = {trial.sparsity: trial for trial in result.trials}
    assert [trial.sparsity for trial in result.trials] == [0.98, 0.5, 0.0]  # smallest first
    failed, kept, dense = by_sparsity[0.98], by_sparsity[0.5], by_sparsity[0.0]
    assert failed.outcome == "over budget" and failed.quality_change < -0.03
    assert kept.within_budget and kept.chosen and result.chosen_trial is kept
    assert failed.zipped_bytes < kept.zipped_bytes < dense.estimated_zipped_bytes
    # The dense model cannot be smaller than the chosen one: skipped, not trained.
    assert dense.zipped_bytes is None and dense.outcome.startswith("skipped: its estimate")
    # Bisection: the middle candidate first, then the smaller half.
    assert (kept.order, failed.order, dense.order) == (1, 2, None)
    assert result.stopped == "bisection done: no smaller candidate can be within budget"
    assert result.chosen_recipe.pruning.target_sparsity == 0.5
    assert result.chosen_recipe.quantization == "int8_ptq" and result.chosen_recipe.search is None
    assert measurement.tflite_size(result.chosen.tflite).zipped_bytes == kept.zipped_bytes
    assert result.validation_examples == 300
    assert result.float_zipped_bytes > kept.zipped_bytes
    assert "**trained model, 50% pruned, int8_ptq**" in result.markdown()


def test_a_search_with_nothing_within_budget_says_so(digits_model, digits_rows):
    result = _searched(digits_model, digits_rows, sparsities=[0.98], max_quality_loss=0.01)

    assert result.chosen is None and result.chosen_recipe is None
    (trial,) = result.trials
    assert trial.outcome == "over budget" and not trial.chosen
    assert result.stopped == "even the largest candidate is over budget"
    message = result.nothing_found()
    assert message.startswith(
        "compression.search found no candidate within its budget (accuracy down at most "
        "1.00 pt with 1 standard error(s) of margin, on 300 validation rows held out of the "
        "train split) in 1 trials"
    )
    assert "the best was trained model, 98% pruned, int8_ptq" in message
    assert "Nothing was compressed or pushed" in message


def test_a_candidate_whose_tflite_and_saved_model_disagree_is_over_budget(
    digits_model, digits_rows
):
    """The pusher refuses a version whose two formats disagree on more rows than
    min_tflite_agreement allows, so the search does not choose such a candidate."""
    loose = {"sparsities": [0.98], "max_quality_loss": 1.0}
    (agreeing,) = _searched(digits_model, digits_rows, min_agreement=0.5, **loose).trials
    assert agreeing.within_budget and 0.5 <= agreeing.agreement < 1.0

    result = _searched(digits_model, digits_rows, min_agreement=1.0, **loose)
    (trial,) = result.trials
    assert not trial.within_budget and trial.agreement == agreeing.agreement
    assert trial.outcome == (
        f"over budget: its TFLite and SavedModel agree on {100 * trial.agreement:.1f}% of "
        "rows, under 100.0%"
    )
    assert "TFLite and SavedModel agreeing on 100.0% of rows" in result.nothing_found()


def test_a_search_stops_at_its_trial_budget(digits_model, digits_rows):
    result = _searched(digits_model, digits_rows, sparsities=[0.5, 0.98], max_trials=1)

    assert [trial.outcome for trial in result.trials] == [
        "over budget",
        "skipped: max_trials (1) reached",
    ]
    assert result.chosen is None and "max_trials (1)" in result.stopped


def test_search_candidates_pair_qat_with_dense_and_pqat_with_pruned_models():
    config = SearchConfig(
        sparsities=[0.0, 0.5], quantizations=["pqat", "qat", "int8_ptq"], students=[STUDENT]
    )
    words = [candidate.words() for candidate in search_module.candidates(config)]
    assert words == [
        "trained model, not pruned, qat",
        "trained model, not pruned, int8_ptq",
        "trained model, 50% pruned, pqat",
        "trained model, 50% pruned, int8_ptq",
        "student hidden_units [16], conv_filters [4, 8], not pruned, qat",
        "student hidden_units [16], conv_filters [4, 8], not pruned, int8_ptq",
        "student hidden_units [16], conv_filters [4, 8], 50% pruned, pqat",
        "student hidden_units [16], conv_filters [4, 8], 50% pruned, int8_ptq",
    ]


def test_a_candidates_loss_is_paired_row_by_row_with_its_standard_error():
    trained = np.array([0, 0, 1, 0, 0, 0, 0, 0], dtype=np.float64)  # 1 wrong of 8
    candidate = np.array([1, 0, 0, 1, 0, 0, 0, 0], dtype=np.float64)  # 2 wrong, 1 fixed
    paired = search_module.PairedLoss.of(candidate, trained, relative=False)
    differences = candidate - trained
    assert paired.loss == pytest.approx(1 / 8)  # accuracy 87.5% -> 75%
    assert paired.standard_error == pytest.approx(np.std(differences, ddof=1) / np.sqrt(8))
    # An error's growth is relative to the trained model's mean error.
    errors = search_module.PairedLoss.of(np.array([2.0, 4.0]), np.array([2.0, 2.0]), relative=True)
    assert errors.loss == pytest.approx(0.5) and errors.standard_error == pytest.approx(0.5)


def test_a_distilled_regressor_keeps_the_label_units(digits_rows):
    """The digit's value as a number, learned from the 64 pixels by the tabular network."""
    train, eval_rows = digits_rows
    pixels = ModelInput("pixels", tf.float32, (64,), None)
    regression = ModelConfig(
        family="tabular",
        task="regression",
        features={"numeric": ["pixels"]},
        label={"column": "digit"},
        hidden_units=[64, 32],
    )
    labels = train.labels.astype(np.float32)

    def build(model: ModelConfig) -> keras.Model:
        return build_tabular({"pixels": pixels}, model)

    keras.utils.set_random_seed(0)
    stats = LabelStats(len(labels), 0, float(labels.mean()), float(labels.std()), 0.0, 9.0)
    teacher = in_label_units(build(regression), stats)
    compile_model(teacher, regression, 1e-3)
    data = (
        tf.data.Dataset.from_tensor_slices(({"pixels": train.features[IMAGE_KEY]}, labels))
        .shuffle(len(labels), seed=0)
        .repeat()
        .batch(BATCH_SIZE, drop_remainder=True)
    )
    steps = len(labels) // BATCH_SIZE
    teacher.fit(data, epochs=6, steps_per_epoch=steps, verbose=0)

    student = distill(
        teacher,
        build,
        DistillationConfig(hidden_units=[8], epochs=12),
        FineTuning(data, steps, regression, 1e-3),
    )

    assert student.get_layer(LABEL_SCALE_LAYER).get_config() == {
        **teacher.get_layer(LABEL_SCALE_LAYER).get_config(),
        "name": LABEL_SCALE_LAYER,
    }
    assert student.count_params() < teacher.count_params() / 4

    def mae(model: keras.Model) -> float:
        predicted = model.predict({"pixels": eval_rows.features[IMAGE_KEY]}, verbose=0)
        return float(np.mean(np.abs(predicted.reshape(-1) - eval_rows.labels)))

    # In the label's units (0..9), and loosely: better than answering the train mean,
    # within twice the teacher's error.
    mean_answer = float(np.mean(np.abs(stats.mean - eval_rows.labels)))
    assert mae(student) < min(0.85 * mean_answer, 2 * mae(teacher)), (
        mae(student),
        mae(teacher),
        mean_answer,
    )
