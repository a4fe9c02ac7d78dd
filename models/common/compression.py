"""Model compression: what a recipe is fine-tuned and calibrated on, and the recipe
itself (an optional student from models/common/distillation.py, then pruning from
pruning.py and quantization: `dynamic` int8 weights with float activations, `int8_ptq`
int8 weights and activations calibrated on train rows, `qat` and `pqat` from
quantization.py, pqat keeping the pruned zeros at zero).

Pure functions over tf_keras models and numpy feature dicts (no TFX): the Compressor
component, the compression search and benchmarks/compression.py build on them; the
report that measures a compressed model is compression_report.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models.common.data import (
    FilePatterns,
    Holdout,
    count_examples,
    matching_files,
    transformed_dataset,
)
from models.common.fine_tuning import FineTuning
from models.common.measurement import PREDICT_BATCH_SIZE
from models.common.pruning import prune, pruning_targets
from models.common.quantization import quantization_aware
from models.common.schedule import fine_tune_epochs, fitted_training
from models.common.tflite import Features, TfliteOptimization, num_rows, to_tflite
from models.common.train import steps_per_epoch
from models.config import (
    CompressionConfig,
    ModelConfig,
    Quantization,
    StudentConfig,
    TrainingConfig,
)


@dataclass(frozen=True)
class LabeledRows:
    """Rows held in memory: feature arrays by transformed name, and their labels (class ids or numbers)."""

    features: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_dataset(cls, dataset: tf.data.Dataset) -> LabeledRows:
        """Every batch of a finite `(features, label)` dataset, concatenated."""
        batches = list(dataset.as_numpy_iterator())
        if not batches:
            raise ValueError("no rows to read: the dataset is empty")
        features = {
            name: np.concatenate([batch[name] for batch, _ in batches]) for name in batches[0][0]
        }
        return cls(features, np.concatenate([labels for _, labels in batches]))


@dataclass(frozen=True)
class CompressionInputs:
    fine_tuning: FineTuning
    # Train rows that calibrate int8 ranges (post-training quantization).
    calibration: dict[str, np.ndarray]
    # With a search: the train rows held out from fine-tuning, that candidates are
    # judged on (never eval rows, which the gates judge on).
    validation: LabeledRows | None
    # The files these inputs were read from.
    files: list[str]
    # One train record in this many was held out of training and fine-tuning.
    validation_every: int | None = None


def compression_inputs(
    train_files: FilePatterns,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
    training: TrainingConfig,
    compression: CompressionConfig,
) -> CompressionInputs:
    """Fine-tuning batches and calibration rows from Transform's transformed train split,
    less the validation rows the Trainer held out (`training.validation_fraction`),
    which come back apart for the search.

    Fine-tuning uses the Trainer's batch size and learning rate; calibration rows are
    the first rows fine-tuning sees.
    """
    every = training.validation_every
    fitting = validation = None
    if every is not None:
        fitting = Holdout(every, held_out=False)
        validation = Holdout(every, held_out=True)
    total = count_examples(train_files)
    rows = fitting.count(total) if fitting else total
    training = fitted_training(training, rows).training
    train_batches = transformed_dataset(
        train_files,
        tf_transform_output,
        training.batch_size,
        shuffle=True,
        repeat=True,
        part=fitting,
    )
    steps = steps_per_epoch(rows, training.batch_size, training, None)

    def first_rows(count: int | None, part: Holdout | None) -> LabeledRows:
        dataset = transformed_dataset(
            train_files,
            tf_transform_output,
            PREDICT_BATCH_SIZE,
            shuffle=False,
            repeat=False,
            limit=count,
            part=part,
        )
        return LabeledRows.from_dataset(dataset)

    return CompressionInputs(
        fine_tuning=FineTuning(train_batches, steps, model, training.learning_rate),
        calibration=first_rows(compression.representative_examples, fitting).features,
        validation=None
        if validation is None or compression.search is None
        else first_rows(None, validation),
        files=matching_files(train_files),
        validation_every=every,
    )


def report_rows(
    eval_files: FilePatterns, tf_transform_output: tft.TFTransformOutput, count: int
) -> LabeledRows:
    """The first `count` eval rows, which the report measures quality and latency on."""
    return LabeledRows.from_dataset(
        transformed_dataset(
            eval_files,
            tf_transform_output,
            PREDICT_BATCH_SIZE,
            shuffle=False,
            repeat=False,
            limit=count,
        )
    )


@dataclass(frozen=True)
class CompressedModel:
    # What the compressed serving SavedModel is exported from: float weights with the
    # pruned zeros, plus fake-quant ops after QAT (TF Serving cannot run int8 kernels).
    keras_model: keras.Model
    tflite: bytes
    # What the TFLite flatbuffer holds, in words, for the report.
    tflite_format: str
    # How `tflite` was converted (to_tflite's optimization, and whether with calibration
    # rows), so the end-to-end TFLite is converted the same way.
    optimization: TfliteOptimization = "none"
    calibrated: bool = False
    # The layers pruning reached (none when not pruned).
    pruned_layers: list[str] = field(default_factory=list)


def compress(
    model: keras.Model,
    config: CompressionConfig,
    fine_tuning: FineTuning,
    calibration: Features,
) -> CompressedModel:
    """Prunes and/or quantizes a copy of `model` as `config` says; pruning and QAT each
    fine-tune `config.fine_tune_epochs` epochs (unset: fitted to the steps per epoch)."""
    pruned_layers: list[str] = []
    epochs = fine_tune_epochs(config, fine_tuning.steps_per_epoch)
    if config.pruning.enabled:
        pruned_layers = pruning_targets(model, config.pruning.layers)
        model = prune(model, config.pruning, fine_tuning, epochs)
    return quantize(model, config.quantization, fine_tuning, calibration, epochs, pruned_layers)


def quantize(
    model: keras.Model,
    quantization: Quantization,
    fine_tuning: FineTuning,
    calibration: Features,
    epochs: int,
    pruned_layers: list[str],
) -> CompressedModel:
    """`model` (pruned or not, as `pruned_layers` says) quantized one way; QAT fine-tunes
    a copy `epochs` epochs, pqat keeping the pruned zeros."""
    match quantization:
        case "none":
            return CompressedModel(model, to_tflite(model), "float32", "none", False, pruned_layers)
        case "dynamic":
            return CompressedModel(
                model,
                to_tflite(model, "dynamic"),
                "int8 weights, float32 activations (dynamic range)",
                "dynamic",
                False,
                pruned_layers,
            )
        case "int8_ptq":
            return CompressedModel(
                model,
                to_tflite(model, "int8", calibration),
                "int8 weights and activations, calibrated on "
                f"{num_rows(calibration)} train rows; float32/int64 inputs, float32 output",
                "int8",
                True,
                pruned_layers,
            )
        case "qat" | "pqat":
            quantized = quantization_aware(
                model,
                preserve_sparsity=quantization == "pqat",
                fine_tuning=fine_tuning,
                epochs=epochs,
            )
            return CompressedModel(
                quantized,
                to_tflite(quantized, "int8"),
                "int8 weights and activations from quantization-aware training (layers QAT "
                "does not model, such as Embedding, quantized by the converter); "
                "float32/int64 inputs, float32 output",
                "int8",
                False,
                pruned_layers,
            )
    raise ValueError(f"unknown quantization {quantization!r}")


def recipe_words(student: StudentConfig | None, sparsity: float, quantization: str) -> str:
    """`student hidden_units [16], 80% pruned, pqat`: what builds a compressed model."""
    start = student.words() if student else "trained model"
    pruning = f"{100 * sparsity:.0f}% pruned" if sparsity else "not pruned"
    return f"{start}, {pruning}, {quantization}"


def config_recipe_words(config: CompressionConfig) -> str:
    sparsity = config.pruning.target_sparsity if config.pruning.enabled else 0.0
    return recipe_words(config.distillation, sparsity, config.quantization)
