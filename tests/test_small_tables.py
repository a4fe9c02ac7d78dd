"""Minimal configs on small tables: training, compression and gates fit the data's size."""

from __future__ import annotations

import json

import pytest
import yaml

from models.common.schedule import TARGET_STEPS, fine_tune_epochs, fitted_training
from models.config import CompressionConfig, TrainingConfig
from models.errors import UserError
from pipeline.config import LeanlineConfig
from pipeline.gate_resolution import fit_gates, resolution_words


def _minimal(**changes) -> LeanlineConfig:
    raw = {
        "name": "small",
        "data": {"path": "table.csv"},
        "model": {
            "family": "tabular",
            "label": {"column": "y", "num_classes": 3},
            "features": {"numeric": ["a", "b"]},
        },
        **changes,
    }
    return LeanlineConfig.model_validate(raw)


def test_unset_epochs_and_batch_follow_the_rows_and_set_ones_are_honoured():
    small = fitted_training(TrainingConfig(), rows=97)
    assert small.training.batch_size == 8 and small.early_stopping
    steps = -(-97 // 8)
    # Enough optimizer steps, not 5 epochs of one step.
    assert small.training.epochs * steps >= TARGET_STEPS
    assert small.patience >= 5 and "97 training rows" in small.reason

    large = fitted_training(TrainingConfig(), rows=1_200_000)
    assert large.training.batch_size == 256
    assert large.training.epochs == 3  # thousands of steps an epoch already

    set_ = fitted_training(TrainingConfig(epochs=7, batch_size=64), rows=97)
    assert (set_.training.epochs, set_.training.batch_size) == (7, 64)
    assert not set_.early_stopping and set_.patience is None

    # A cap on steps per epoch counts: more epochs for the same steps.
    capped = fitted_training(TrainingConfig(steps_per_epoch=100), rows=1_200_000)
    assert capped.training.epochs == 20 and "20 epochs of 100 steps" in capped.reason

    # Two replicas share the fitted global batch.
    assert fitted_training(TrainingConfig(), rows=5000, replicas=2).training.batch_size == 32


def test_fine_tuning_fits_the_steps_unless_set():
    assert fine_tune_epochs(CompressionConfig(), steps_per_epoch=13) == 39
    assert fine_tune_epochs(CompressionConfig(), steps_per_epoch=4000) == 3
    assert fine_tune_epochs(CompressionConfig(fine_tune_epochs=2), steps_per_epoch=13) == 2


def test_a_config_without_compression_searches_a_space_with_near_lossless_candidates():
    config = _minimal()
    search = config.compression.search
    assert search is not None
    assert 0.0 in search.sparsities and {"int8_ptq", "dynamic"} <= set(search.quantizations)
    # Early stopping and the search judge on train rows no model learns from.
    assert config.training.validation_fraction == 0.2
    fixed = _minimal(compression={"quantization": "int8_ptq"})
    assert fixed.compression.search is None
    assert fixed.training.validation_fraction == 0.2  # unset epochs stop early
    set_epochs = _minimal(training={"epochs": 5}, compression={"quantization": "int8_ptq"})
    assert set_epochs.training.validation_fraction is None


def test_unset_gate_bounds_follow_the_eval_rows_and_set_ones_are_noted():
    fitted = fit_gates(_minimal(), rows=150)  # about 30 eval rows: one row is 3.3 pt
    thresholds = fitted.config.evaluation.thresholds
    assert thresholds.max_drop_vs_uncompressed == pytest.approx(0.05)
    assert thresholds.max_drop_vs_blessed == pytest.approx(0.05)
    assert thresholds.min_tflite_agreement == pytest.approx(0.95)
    assert fitted.notes == ()
    # Large eval splits keep the defaults.
    large = fit_gates(_minimal(), rows=100_000).config.evaluation.thresholds
    assert (large.max_drop_vs_uncompressed, large.max_drop_vs_blessed) == (0.005, 0.01)
    assert large.min_tflite_agreement == 0.99

    # The search's budget and the agreement it needs follow the fitted gates.
    search = fit_gates(_minimal(), rows=150).config.resolved_compression.search
    assert (search.max_quality_loss, search.min_agreement) == (0.05, 0.95)

    strict = _minimal(evaluation={"thresholds": {"max_drop_vs_uncompressed": 0.005}})
    fitted = fit_gates(strict, rows=150)
    assert fitted.config.evaluation.thresholds.max_drop_vs_uncompressed == 0.005
    (note,) = fitted.notes
    assert "max_drop_vs_uncompressed 0.005 is finer than one of the about 30 eval rows" in note
    assert "(3.33 pt)" in note

    words = resolution_words(fit_gates(_minimal(), rows=150).config, eval_rows=28)
    assert words[0] == (
        "vs uncompressed: a drop of at most 5.00 pt = 1.4 of 28 eval rows (one row 3.57 pt)"
    )
    assert "28 eval rows agree" in words[2]


def test_an_eval_split_too_small_to_tell_is_refused_with_the_numbers():
    with pytest.raises(UserError) as refused:
        fit_gates(_minimal(), rows=60)
    message = str(refused.value)
    assert "60 rows give the eval split about 12 rows" in message
    assert "one row is worth 8.3 pt" in message and "data.split" in message
    # The same rows with a larger eval share pass.
    fit_gates(_minimal(data={"path": "table.csv", "split": {"train": 1, "eval": 1}}), rows=60)


@pytest.mark.slow
def test_a_minimal_config_on_a_small_table_pushes_a_model_better_than_the_majority(tmp_path):
    """Wine (178 rows, 13 numeric columns, 3 classes) with nothing but name, data,
    family, label and features."""
    from sklearn.datasets import load_wine

    from pipeline.cli import main

    frame = load_wine(as_frame=True).frame
    frame.columns = [column.replace("/", "_") for column in frame.columns]
    frame.to_csv(tmp_path / "wine.csv", index=False)
    features = [column for column in frame.columns if column != "target"]
    (tmp_path / "wine.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "wine",
                "data": {"path": "wine.csv"},
                "model": {
                    "family": "tabular",
                    "label": {"column": "target", "num_classes": 3},
                    "features": {"numeric": features},
                },
            }
        )
    )
    output = tmp_path / "output"
    assert main(["run", "--config", str(tmp_path / "wine.yaml"), "--output-dir", str(output)]) == 0

    summary = json.loads((output / "run_summary.json").read_text())
    assert summary["result"]["pushed"], summary["result"]["not_pushed_reason"]
    majority = frame["target"].value_counts(normalize=True).max()
    accuracy = summary["eval_metrics"]["candidate"]["sparse_categorical_accuracy"]
    assert accuracy > majority + 0.3, (accuracy, majority)
    # What training chose and why, and what the gates can resolve, are recorded.
    training = summary["training"]
    assert training["early_stopping"] and training["batch_size"] == 8
    assert 1 <= training["best_epoch"] <= training["epochs_run"] <= training["max_epochs"]
    assert "training rows" in training["schedule_reason"]
    eval_rows = summary["rows"]["eval"]
    assert f"of {eval_rows} eval rows" in summary["gate_resolution"][0]
    assert summary["result"]["compression_recipe"]
