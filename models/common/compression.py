"""Model compression, and the measurements that show a compressed model is still good.

Pure functions over tf_keras models and numpy feature dicts (no TFX): the Compressor
component and benchmarks/compression.py both build on them.

- Pruning: magnitude pruning (tfmot) of the layers `pruning.layers` picks (all: Dense,
  Conv2D and Embedding; dense; conv), fine-tuned along the pruning schedule, then
  stripped. The output layer stays dense: it is tiny, and pruning it costs the most
  accuracy. Stripped models keep their architecture with zeroed weights, which zip away
  in the model files.
- Quantization: `dynamic` (int8 weights, float activations), `int8_ptq` (int8 weights
  and activations, ranges calibrated on train rows), `qat` and `pqat` (int8 learned with
  fake-quant ops while fine-tuning; pqat keeps the pruned zeros at zero).
- TFLite models take and return what the Keras model does (float features, int64 ids,
  float probabilities or predictions); the ops inside are int8. So both run on the same feature dict.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tensorflow_transform as tft
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from models.common.data import (
    FilePatterns,
    Holdout,
    count_examples,
    matching_files,
    transformed_dataset,
)
from models.common.quality import (
    HEADLINE_METRIC,
    QUALITY_TITLES,
    Quality,
    format_quality,
    quality,
    quality_change,
    quality_change_words,
)
from models.common.tflite_format import without_debug_strings
from models.common.train import compile_model, steps_per_epoch
from pipeline.config import (
    CompressionConfig,
    ModelConfig,
    PruningConfig,
    Quantization,
    StudentConfig,
    TrainingConfig,
)
from pipeline.errors import UserError

# LiteRT is TFLite's successor; tf.lite.Interpreter is deprecated since TF 2.20.
INTERPRETER = "ai_edge_litert"

Features = Mapping[str, np.ndarray]
TfliteOptimization = Literal["none", "dynamic", "int8"]

PRUNABLE_LAYERS: dict[str, tuple[type[keras.layers.Layer], ...]] = {
    "all": (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Embedding),
    "dense": (keras.layers.Dense,),
    "conv": (keras.layers.Conv2D,),
}
# The weight magnitude pruning zeroes in each of those layers.
PRUNED_WEIGHT_NAMES = ("kernel", "embeddings")
# Masks are recomputed this many times on the way to the target sparsity.
PRUNING_MASK_UPDATES = 20
# One interpreter thread: latencies that hold still on a shared CPU.
TFLITE_THREADS = 1
LATENCY_BATCH_SIZES = (1, 256)
LATENCY_RUNS = {1: 300, 256: 50}
DEFAULT_LATENCY_RUNS = 100
LATENCY_WARMUP_RUNS = 10
PREDICT_BATCH_SIZE = 256


@dataclass(frozen=True)
class FineTuning:
    """What compression fine-tunes on: repeating batches of `(features, label)`."""

    data: tf.data.Dataset
    steps_per_epoch: int
    # Task and label: the loss and metrics fine-tuning compiles with.
    model: ModelConfig
    learning_rate: float


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
    train_batches = transformed_dataset(
        train_files,
        tf_transform_output,
        training.batch_size,
        shuffle=True,
        repeat=True,
        part=fitting,
    )
    total = count_examples(train_files)
    rows = fitting.count(total) if fitting else total
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


# --- pruning ---------------------------------------------------------------------------


def _rebuilt(
    model: keras.Model, replace: Callable[[keras.layers.Layer], keras.layers.Layer | None]
) -> keras.Model:
    """A copy of `model` with its own weights, each layer swapped for `replace(layer)`
    where that is not None. The copy comes first because tfmot's wrappers share the
    weights of the layer they wrap, and the caller's model must stay as it was."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return replace(layer) or layer

    return keras.models.clone_model(copy, clone_function=clone)


def _fine_tune(
    model: keras.Model, fine_tuning: FineTuning, epochs: int, callbacks: list[Any]
) -> None:
    compile_model(model, fine_tuning.model, fine_tuning.learning_rate)
    model.fit(
        fine_tuning.data,
        epochs=epochs,
        steps_per_epoch=fine_tuning.steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    )


def output_layers(model: keras.Model) -> set[str]:
    """The layers that compute the outputs: each output layer, or, behind output layers
    without weights (a regressor's `label_units` rescaling, an activation), the layers
    with weights that feed them."""
    found: set[str] = set()
    pending = [model.get_layer(name) for name in model.output_names]
    while pending:
        layer = pending.pop()
        if layer.weights or isinstance(layer, keras.layers.InputLayer):
            found.add(layer.name)
            continue
        for node in layer.inbound_nodes:
            pending.extend(tf.nest.flatten(node.inbound_layers))
    return found


def pruning_targets(model: keras.Model, layers: str) -> list[str]:
    """Names of the layers pruning applies to: the kinds `layers` names, minus the layers
    that compute the outputs."""
    kinds = PRUNABLE_LAYERS[layers]
    outputs = output_layers(model)
    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, kinds) and layer.name not in outputs
    ]


def pruning_schedule(
    config: PruningConfig, total_steps: int
) -> tfmot.sparsity.keras.PruningSchedule:
    """The schedule from `config`, ending on a mask update no later than the last step.

    `end_step` None means the last fine-tuning step. Masks are updated every
    `frequency` steps from `begin_step`, so the end is rounded down onto that grid;
    otherwise the target sparsity would never be applied.
    """
    last_step = total_steps - 1
    end = last_step if config.end_step is None else config.end_step
    if end > last_step:
        raise UserError(
            f"compression.pruning.end_step ({end}) is past the last fine-tuning step "
            f"({last_step}); lower it or raise compression.fine_tune_epochs"
        )
    if config.begin_step >= end:
        raise UserError(
            f"compression.pruning.begin_step ({config.begin_step}) must come before the "
            f"end of pruning (step {end})"
        )
    span = end - config.begin_step
    frequency = max(1, span // PRUNING_MASK_UPDATES)
    end = config.begin_step + frequency * (span // frequency)
    if config.schedule == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(
            config.target_sparsity, config.begin_step, end_step=end, frequency=frequency
        )
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=config.target_sparsity,
        begin_step=config.begin_step,
        end_step=end,
        frequency=frequency,
    )


def prune(
    model: keras.Model, config: PruningConfig, fine_tuning: FineTuning, epochs: int
) -> keras.Model:
    """A copy of `model` pruned while fine-tuning `epochs` epochs, then stripped (plain
    layers, zeroed weights)."""
    targets = set(pruning_targets(model, config.layers))
    if not targets:
        raise UserError(
            f"compression.pruning.layers is {config.layers!r}, but model {model.name!r} has "
            "no such layer besides its output layer; pick other layers or disable pruning"
        )
    schedule = pruning_schedule(config, fine_tuning.steps_per_epoch * epochs)

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer | None:
        if layer.name not in targets:
            return None
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruned = _rebuilt(model, wrap)
    _fine_tune(pruned, fine_tuning, epochs, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def _pruned_weights(model: keras.Model) -> Iterator[tuple[str, np.ndarray]]:
    """The kernel or embedding table of every prunable layer, by layer name, looking
    inside pruning and quantization wrappers (which track the wrapped variable
    themselves; after QAT, `layer.kernel` is a fake-quantized tensor)."""
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, PRUNABLE_LAYERS["all"]):
            (weight,) = (
                w
                for w in layer.weights
                if w.name.rpartition("/")[2].removesuffix(":0") in PRUNED_WEIGHT_NAMES
            )
            yield inner.name, weight.numpy()


def sparsity_by_layer(model: keras.Model) -> dict[str, float]:
    """The fraction of exact zeros in each prunable layer's kernel or embeddings."""
    return {name: float(np.mean(weight == 0)) for name, weight in _pruned_weights(model)}


# --- quantization-aware training ---------------------------------------------------------

_QUANTIZE_REGISTRY = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()


def quantization_aware(
    model: keras.Model, *, preserve_sparsity: bool, fine_tuning: FineTuning, epochs: int
) -> keras.Model:
    """A copy of `model` with fake-quant int8 ops, fine-tuned `epochs` epochs.

    Only layers the default 8-bit scheme supports are annotated (an Embedding, say, is
    left float here; the TFLite converter still stores its table as int8), so models
    with other layers still train. `preserve_sparsity` uses the prune-preserving scheme, which
    keeps zero weights at zero in the layers it quantizes; the other layers with weights
    are frozen, or fine-tuning would refill their pruned zeros.
    """
    quantize = tfmot.quantization.keras

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer | None:
        return (
            quantize.quantize_annotate_layer(layer) if _QUANTIZE_REGISTRY.supports(layer) else None
        )

    scheme = (
        tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        if preserve_sparsity
        else quantize.default_8bit.Default8BitQuantizeScheme()
    )
    with quantize.quantize_scope():
        quantized = quantize.quantize_apply(_rebuilt(model, annotate), scheme)
    if preserve_sparsity:
        for layer in quantized.layers:
            if not isinstance(layer, quantize.QuantizeWrapper) and layer.trainable_weights:
                layer.trainable = False
    _fine_tune(quantized, fine_tuning, epochs, callbacks=[])
    return quantized


# --- TFLite ----------------------------------------------------------------------------


def num_rows(features: Features) -> int:
    return len(next(iter(features.values())))


def take_rows(features: Features, count: int) -> dict[str, np.ndarray]:
    """The first `count` rows, cycling through the rows when there are fewer."""
    indices = np.arange(count) % num_rows(features)
    return {name: values[indices] for name, values in features.items()}


def to_tflite(
    model: keras.Model,
    optimization: TfliteOptimization = "none",
    calibration: Features | None = None,
) -> bytes:
    """A TFLite flatbuffer of `model`, signature `serving_default` keyed by input name,
    without debugging strings.

    - none: float32 throughout.
    - dynamic: int8 weights; activations stay float.
    - int8: int8 weights and activations. With `calibration` rows (post-training
      quantization) every op must have an int8 kernel, or conversion fails; without,
      the ranges come from a QAT model's fake-quant ops.
    Inputs and outputs keep the Keras model's dtypes in every case.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if optimization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if optimization == "int8" and calibration is not None:

        def calibration_rows() -> Iterator[dict[str, np.ndarray]]:
            for index in range(num_rows(calibration)):
                yield {name: values[index : index + 1] for name, values in calibration.items()}

        converter.representative_dataset = calibration_rows
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return without_debug_strings(converter.convert())


class TfliteModel:
    """A TFLite flatbuffer loaded into an interpreter, called like the Keras model."""

    def __init__(self, content: bytes):
        self.interpreter = Interpreter(model_content=content, num_threads=TFLITE_THREADS)
        self._runner = self.interpreter.get_signature_runner()
        (self._output,) = self._runner.get_output_details()

    def __call__(self, features: Features) -> np.ndarray:
        return self._runner(**features)[self._output]

    def inputs(self) -> list[dict[str, Any]]:
        """The input tensors in the interpreter's positional order (for callers that
        set tensors by index), with their signature keys."""
        by_index = {
            detail["index"]: key for key, detail in self._runner.get_input_details().items()
        }
        return [
            {
                "key": by_index[detail["index"]],
                "index": int(detail["index"]),
                "dtype": np.dtype(detail["dtype"]).name,
                "shape": [int(d) for d in detail["shape_signature"]],
            }
            for detail in self.interpreter.get_input_details()
        ]

    def tensor_dtype_counts(self) -> dict[str, int]:
        """How many tensors (weights and activations) the model holds of each dtype."""
        counts: dict[str, int] = {}
        for detail in self.interpreter.get_tensor_details():
            dtype = np.dtype(detail["dtype"]).name
            counts[dtype] = counts.get(dtype, 0) + 1
        return dict(sorted(counts.items()))


# --- measurements ----------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    bytes: int
    # DEFLATE (zip, level 9): what zeros and repeated int8 values save on the wire.
    zipped_bytes: int


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float


def zipped_size(files: Mapping[str, bytes]) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.tell()


def tflite_size(content: bytes) -> Size:
    return Size(len(content), zipped_size({"model.tflite": content}))


def saved_model_variables_size(model: keras.Model) -> Size:
    """Size of the model's weights as a SavedModel's variables/ stores them (a checkpoint)."""
    with tempfile.TemporaryDirectory() as directory:
        tf.train.Checkpoint(weights=model.variables).write(os.path.join(directory, "variables"))
        files = {path.name: path.read_bytes() for path in sorted(Path(directory).iterdir())}
    return Size(sum(len(content) for content in files.values()), zipped_size(files))


Predict = Callable[[Features], np.ndarray]


def keras_predictor(model: keras.Model) -> Predict:
    """`model` in inference mode behind one tf.function, as a SavedModel would run it."""

    @tf.function(reduce_retracing=True)
    def call(features: dict[str, tf.Tensor]) -> tf.Tensor:
        return model(features, training=False)

    def predict(features: Features) -> np.ndarray:
        return call(dict(features)).numpy()

    return predict


def predict_in_batches(predict: Predict, features: Features) -> np.ndarray:
    total = num_rows(features)
    return np.concatenate(
        [
            predict(
                {
                    name: values[start : start + PREDICT_BATCH_SIZE]
                    for name, values in features.items()
                }
            )
            for start in range(0, total, PREDICT_BATCH_SIZE)
        ]
    )


def latency(predict: Predict, features: Features, batch_size: int) -> Latency:
    """Wall-clock p50/p95 of one `predict` call on `batch_size` rows, input copy included."""
    batch = take_rows(features, batch_size)
    for _ in range(LATENCY_WARMUP_RUNS):
        predict(batch)
    seconds = []
    for _ in range(LATENCY_RUNS.get(batch_size, DEFAULT_LATENCY_RUNS)):
        start = time.perf_counter()
        predict(batch)
        seconds.append(time.perf_counter() - start)
    p50, p95 = np.percentile(seconds, [50, 95]) * 1000
    return Latency(p50_ms=float(p50), p95_ms=float(p95))


def latencies(predict: Predict, features: Features) -> dict[str, Latency]:
    return {f"batch_{size}": latency(predict, features, size) for size in LATENCY_BATCH_SIZES}


# --- the whole recipe ------------------------------------------------------------------


def compress(
    model: keras.Model,
    config: CompressionConfig,
    fine_tuning: FineTuning,
    calibration: Features,
) -> CompressedModel:
    """Prunes and/or quantizes a copy of `model` as `config` says; pruning and QAT each
    fine-tune `config.fine_tune_epochs` epochs."""
    pruned_layers: list[str] = []
    if config.pruning.enabled:
        pruned_layers = pruning_targets(model, config.pruning.layers)
        model = prune(model, config.pruning, fine_tuning, config.fine_tune_epochs)
    return quantize(
        model, config.quantization, fine_tuning, calibration, config.fine_tune_epochs, pruned_layers
    )


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


@dataclass(frozen=True)
class Report:
    """Float versus compressed: sizes, quality on eval rows, and latencies.

    Variants: `float_keras` (the uncompressed model, as its SavedModel runs it),
    `float_tflite`, `compressed_keras` (what the compressed serving SavedModel runs)
    and `compressed_tflite`.
    """

    config: dict[str, Any]
    # The config's recipe in words (config_recipe_words).
    recipe: str
    # Weights of the float model and of the compressed one (fewer for a student).
    weights: dict[str, int]
    tflite_format: str
    interpreter: str
    # Positional order of the TFLite inputs, with their signature keys.
    tflite_inputs: list[dict[str, Any]]
    tflite_tensor_dtypes: dict[str, int]
    pruned_layers: list[str]
    sparsity_by_layer: dict[str, float]
    eval_examples: int
    sizes: dict[str, Size]
    # The Quality field the headline compares (HEADLINE_METRIC).
    quality_metric: str
    quality: dict[str, Quality]
    latency_ms: dict[str, dict[str, Latency]]
    headline: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        float_size, compressed_size = self.sizes["float_tflite"], self.sizes["compressed_tflite"]
        float_sm, compressed_sm = (
            self.sizes["float_saved_model_variables"],
            self.sizes["compressed_saved_model_variables"],
        )
        headline = {
            "tflite_zipped_ratio": float_size.zipped_bytes / compressed_size.zipped_bytes,
            "tflite_ratio": float_size.bytes / compressed_size.bytes,
            "saved_model_zipped_ratio": float_sm.zipped_bytes / compressed_sm.zipped_bytes,
            **quality_change(
                getattr(self.quality["float_keras"], self.quality_metric),
                getattr(self.quality["compressed_tflite"], self.quality_metric),
            ),
        }
        object.__setattr__(self, "headline", headline)

    def to_json(self) -> dict[str, Any]:
        return {"enabled": True, **asdict(self)}

    def to_markdown(self) -> str:
        head = self.headline
        metrics = list(self.quality["float_keras"].shown())
        lines = [
            "# Compression report",
            "",
            f"Compressed TFLite is **{head['tflite_zipped_ratio']:.1f}x smaller zipped** than the "
            f"float TFLite; {quality_change_words(self.quality_metric, head, bold=True)} "
            f"on {self.eval_examples} eval rows.",
            "",
            f"- recipe: {self.recipe}; quantization `{self.config['quantization']}`, pruning "
            f"{_pruning_words(self.config['pruning'])}",
            f"- weights: {self.weights['float']} float, {self.weights['compressed']} compressed",
            f"- TFLite: {self.tflite_format}; interpreter `{self.interpreter}` "
            f"({TFLITE_THREADS} thread)",
            f"- TFLite inputs in order: {', '.join(i['key'] for i in self.tflite_inputs)}",
            "",
            "| model | size (bytes) | zipped (bytes) | "
            + " | ".join(QUALITY_TITLES[name] for name in metrics)
            + " | batch 1 p50/p95 ms | batch 256 p50/p95 ms |",
            "|---|---:|---:|" + "---:|" * len(metrics) + "---:|---:|",
        ]
        rows = [
            ("float Keras", "float_keras", "float_saved_model_variables"),
            ("float TFLite", "float_tflite", "float_tflite"),
            ("compressed Keras (served)", "compressed_keras", "compressed_saved_model_variables"),
            ("compressed TFLite", "compressed_tflite", "compressed_tflite"),
        ]
        for title, variant, size_key in rows:
            size, shown = self.sizes[size_key], self.quality[variant].shown()
            timing = [
                f"{t.p50_ms:.3f} / {t.p95_ms:.3f}"
                for t in self.latency_ms.get(variant, {}).values()
            ] or ["-", "-"]
            lines.append(
                f"| {title} | {size.bytes} | {size.zipped_bytes} | "
                + " | ".join(format_quality(name, shown.get(name)) for name in metrics)
                + f" | {' | '.join(timing)} |"
            )
        lines += [
            "",
            "Keras sizes are the SavedModel's variables/ files. The served compressed model "
            "runs float kernels (with fake-quant ops after QAT); the int8 kernels are in TFLite.",
            "",
            "| layer | sparsity |",
            "|---|---:|",
            *(f"| {name} | {100 * value:.1f}% |" for name, value in self.sparsity_by_layer.items()),
        ]
        return "\n".join(lines) + "\n"


def _pruning_words(pruning: Mapping[str, Any]) -> str:
    if not pruning["enabled"]:
        return "off"
    return (
        f"{100 * pruning['target_sparsity']:.0f}% ({pruning['schedule']}) "
        f"of {pruning['layers']} layers"
    )


def measure(
    float_model: keras.Model,
    compressed: CompressedModel,
    config: CompressionConfig,
    eval_rows: LabeledRows,
    model: ModelConfig,
) -> Report:
    """Measures the float and the compressed model side by side on `eval_rows`, with the
    quality figures of `model.task`."""
    float_tflite_bytes = to_tflite(float_model)
    float_tflite, compressed_tflite = (
        TfliteModel(float_tflite_bytes),
        TfliteModel(compressed.tflite),
    )
    predictors = {
        "float_keras": keras_predictor(float_model),
        "float_tflite": float_tflite,
        "compressed_keras": keras_predictor(compressed.keras_model),
        "compressed_tflite": compressed_tflite,
    }
    qualities = {
        name: quality(predict_in_batches(predict, eval_rows.features), eval_rows.labels, model)
        for name, predict in predictors.items()
    }
    timed = ("float_keras", "float_tflite", "compressed_tflite")
    return Report(
        config=config.model_dump(),
        recipe=config_recipe_words(config),
        weights={
            "float": int(float_model.count_params()),
            "compressed": int(compressed.keras_model.count_params()),
        },
        tflite_format=compressed.tflite_format,
        interpreter=INTERPRETER,
        tflite_inputs=compressed_tflite.inputs(),
        tflite_tensor_dtypes=compressed_tflite.tensor_dtype_counts(),
        pruned_layers=compressed.pruned_layers,
        sparsity_by_layer=sparsity_by_layer(compressed.keras_model),
        eval_examples=len(eval_rows),
        sizes={
            "float_tflite": tflite_size(float_tflite_bytes),
            "compressed_tflite": tflite_size(compressed.tflite),
            "float_saved_model_variables": saved_model_variables_size(float_model),
            "compressed_saved_model_variables": saved_model_variables_size(compressed.keras_model),
        },
        quality_metric=HEADLINE_METRIC[model.task],
        quality=qualities,
        latency_ms={name: latencies(predictors[name], eval_rows.features) for name in timed},
    )
