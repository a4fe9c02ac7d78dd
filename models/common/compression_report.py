"""The compression report: float versus compressed sizes, quality on eval rows, and
latencies, measured side by side, of the model part: the model alone, on Transform's
outputs (the end-to-end TFLite, with the Transform inside, is measured in
models.common.end_to_end). The model part is what compression changes; the shipped file
may hold more, so its figures are reported apart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import tf_keras as keras

from models.common.compression import CompressedModel, LabeledRows, config_recipe_words
from models.common.measurement import (
    Latency,
    Size,
    keras_predictor,
    latencies,
    predict_in_batches,
    saved_model_variables_size,
    tflite_size,
)
from models.common.pruning import LayerFigures, layer_figures, sparsity_by_layer
from models.common.quality import (
    HEADLINE_METRIC,
    QUALITY_TITLES,
    Quality,
    format_quality,
    quality,
    quality_change,
    quality_change_words,
)
from models.common.tflite import INTERPRETER, TFLITE_THREADS, TfliteModel, to_tflite
from models.config import CompressionConfig, ModelConfig


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
    # Every layer with weights of the compressed model.
    layers: list[LayerFigures]
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
            "The model part (the model alone, on transformed features, as in "
            f"`transformed_inputs.tflite`): compressed TFLite is "
            f"**{head['tflite_zipped_ratio']:.1f}x smaller zipped** than the float TFLite; "
            f"{quality_change_words(self.quality_metric, head, bold=True)} "
            f"on {self.eval_examples} eval rows. Where the run ships an end-to-end TFLite, "
            "its figures follow under 'End-to-end TFLite'.",
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
            "| layer | kind | weights | zeros (of all its weights) | pruning |",
            "|---|---|---:|---:|---|",
            *(
                f"| {f.layer} | {f.kind} | {f.weights} | {100 * f.zeros:.1f}% | {f.pruning} |"
                for f in self.layers
            ),
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
        layers=layer_figures(compressed.keras_model, compressed.pruned_layers, config.pruning),
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
