"""The end-to-end TFLite model: raw features in, the model's output out, the Transform
inside, TFLite builtin ops only; and the check that it answers as the SavedModel does.

TF Serving's TFLite runtime (`--prefer_tflite_model`) resolves builtin ops only, and a
client on a device has nothing but the flatbuffer: so the TFLite model a run ships must
hold the whole Transform. A family provides `builtin_transform(tf_transform_output,
model_config)` in `models/<family>/builtin_transform.py`: its Transform rebuilt from
dense raw inputs and the values Transform's analyzers computed
(`models.common.features.analyzed`), in ops
TFLite has. Before anything ships, `check_same_features` runs it beside TFT's own graph
on eval rows: every id equal, every float within FLOAT_TOLERANCE.

The model's signature is `serving_raw`, as the SavedModel's: one [batch] tensor per raw
feature the model uses, a missing value as `models.common.export.MISSING_VALUES` says
(NaN, -2**63, ""); the builtin Transform treats it as TFT treats a missing cell, so both
formats answer alike on every row. The flatbuffer also carries the signature where TF
Serving reads it, and a classifier's class names, those of the SavedModel's `classes`
output (models.common.tflite_format).
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models.common.compression import CompressedModel
from models.common.data import raw_rows
from models.common.export import (
    OUTPUTS_KEY,
    SERVING_DEFAULT_SIGNATURE,
    SERVING_RAW_SIGNATURE,
    TRANSFORM_FEATURES_SIGNATURE,
    as_parsed,
    is_present,
    raw_specs,
    saved_classes,
)
from models.common.features import LABEL_KEY
from models.common.measurement import latency, predict_in_batches, tflite_size
from models.common.quality import (
    HEADLINE_METRIC,
    QUALITY_TITLES,
    format_quality,
    quality,
    quality_change,
    quality_change_words,
)
from models.common.tflite import TfliteModel, TfliteOptimization
from models.common.tflite_format import (
    with_classes,
    with_tf_serving_signatures,
    without_debug_strings,
)
from models.config import ModelConfig
from models.errors import UserError

RawTransform = Callable[[Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]
# How far a float feature of the builtin Transform may be from TFT's (float32 rounding).
FLOAT_TOLERANCE = 1e-4


def float_block(raw: Mapping[str, tf.Tensor], columns: list[str]) -> tf.Tensor:
    """The columns as one [batch, len(columns)] float32 block, NaN where a value is
    missing, as TFT's Transform stacks them from parsed examples."""
    block = []
    for column in columns:
        values = raw[column]
        if values.dtype == tf.int64:
            values = tf.where(is_present(values), tf.cast(values, tf.float32), np.nan)
        block.append(tf.cast(values, tf.float32))
    return tf.stack(block, axis=1)


def vocabulary_ids(x: tf.Tensor, vocabulary: np.ndarray, missing: Any) -> tf.Tensor:
    """Each value's index in `vocabulary`, len(vocabulary) for a value not in it: a
    comparison with the vocabulary as a constant (TFT looks it up in a hash table read
    from an asset file). A missing value is looked up as `missing`, the value TFT's
    Transform fills a missing cell with."""
    if x.dtype == tf.int64:
        x = tf.where(is_present(x), x, tf.constant(missing, tf.int64))
    unseen = tf.constant(len(vocabulary), tf.int64)
    if not len(vocabulary):
        return tf.fill(tf.shape(x, out_type=tf.int64), unseen)
    matches = tf.equal(x[:, tf.newaxis], tf.constant(vocabulary)[tf.newaxis, :])
    first = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int64)
    return tf.where(tf.reduce_any(matches, axis=1), first, unseen)


def builtin_transform_for(
    model: ModelConfig, tf_transform_output: tft.TFTransformOutput
) -> RawTransform | None:
    """The family's builtin Transform; None where the config has none
    (`ModelConfig.end_to_end_tflite`)."""
    if not model.end_to_end_tflite:
        return None
    family = importlib.import_module(f"models.{model.package}.builtin_transform")
    return family.builtin_transform(tf_transform_output, model)


def check_same_features(
    transform: RawTransform,
    tf_transform_output: tft.TFTransformOutput,
    rows: Mapping[str, np.ndarray],
    names: list[str],
) -> None:
    """Raises ValueError unless `transform` gives the features `names` as TFT's graph
    does on `rows`: ids equal, floats within FLOAT_TOLERANCE."""
    raw_spec = tf_transform_output.raw_feature_spec()
    tensors = {name: tf.constant(values, raw_spec[name].dtype) for name, values in rows.items()}
    expected = tf_transform_output.transform_features_layer()(
        as_parsed(tensors, {name: raw_spec[name] for name in rows})
    )
    actual = transform(tensors)
    for name in names:
        want, got = np.asarray(expected[name]), np.asarray(actual[name])
        if want.dtype.kind == "f":
            differ = ~np.isclose(got, want, rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE)
        else:
            differ = got != want
        if got.shape != want.shape or differ.any():
            where = np.argwhere(differ)[:3].tolist() if got.shape == want.shape else "shape"
            raise ValueError(
                f"the builtin Transform disagrees with TFT's on {name!r} (rows {where}; "
                f"shapes {got.shape} vs {want.shape}): a leanline bug, please report it"
            )


def end_to_end_module(
    keras_model: keras.Model, transform: RawTransform, specs: Mapping[str, tf.TensorSpec]
) -> tuple[tf.Module, Any]:
    """A tf.Module and its `serving_raw` concrete function: raw features -> outputs."""
    input_names = list(keras_model.input_names)

    @tf.function(autograph=False)
    def serve(**raw: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = transform(raw)
        inputs = {name: transformed[name] for name in input_names}
        return {OUTPUTS_KEY: keras_model(inputs, training=False)}

    module = tf.Module()
    module.model_variables = list(keras_model.variables)
    return module, serve.get_concrete_function(**specs)


def to_end_to_end_tflite(
    keras_model: keras.Model,
    transform: RawTransform,
    specs: Mapping[str, tf.TensorSpec],
    optimization: TfliteOptimization = "none",
    classes: Sequence[str] | None = None,
) -> bytes:
    """The end-to-end TFLite flatbuffer, builtin ops only: float32 (`none`), int8 weights
    (`dynamic`), or int8 from a QAT model's fake-quant ranges (`int8`, no calibration);
    a classifier's `classes` named in its metadata (models.common.tflite_format).

    There is no calibrated (post-training) int8 here: calibration would quantize every
    op with an int8 kernel, the Transform's too, putting raw values of different scales
    through one int8 range; and TFLite's selective quantization, which could keep them
    float, crashed the process on a 50-column table. QAT quantizes only what its
    fake-quant ops cover: from the model's inputs on.
    """
    module, function = end_to_end_module(keras_model, transform, specs)
    with tempfile.TemporaryDirectory() as directory:
        tf.saved_model.save(module, directory, signatures={SERVING_RAW_SIGNATURE: function})
        converter = tf.lite.TFLiteConverter.from_saved_model(
            directory, signature_keys=[SERVING_RAW_SIGNATURE]
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if optimization != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        content = with_tf_serving_signatures(without_debug_strings(converter.convert()))
    return content if classes is None else with_classes(content, classes)


# What the compressed end-to-end TFLite holds, by the model-only TFLite's recipe.
END_TO_END_FORMATS = {
    ("none", False): "float32",
    ("dynamic", False): "int8 weights, float32 activations (dynamic range)",
    # Post-training int8 (calibrated): see to_end_to_end_tflite.
    ("int8", True): "int8 weights, float32 activations (dynamic range; the model-only "
    "TFLite is full int8 from calibration)",
    ("int8", False): "int8 weights and activations from quantization-aware training, "
    "the Transform float",
}


@dataclass(frozen=True)
class EndToEnd:
    """The end-to-end TFLite models of a run and what they were measured at."""

    float_tflite: bytes
    compressed_tflite: bytes
    # For report.json: rows used, sizes, quality of both, agreement with the SavedModel,
    # and the headline: the compressed file (the one that ships) against the float one.
    summary: dict[str, Any]


def agreement(
    tflite_outputs: np.ndarray, saved_model_outputs: np.ndarray, model: ModelConfig
) -> dict[str, float]:
    """How alike two formats of one model answer: the share of rows with the same class
    (a classifier), or the mean and largest absolute difference (a regressor)."""
    if model.is_regression:
        difference = np.abs(tflite_outputs.reshape(-1) - saved_model_outputs.reshape(-1))
        return {
            "mean_abs_difference": float(difference.mean()),
            "max_abs_difference": float(difference.max()),
        }
    if tflite_outputs.shape[-1] == 1:
        same = (tflite_outputs.reshape(-1) > 0.5) == (saved_model_outputs.reshape(-1) > 0.5)
    else:
        same = tflite_outputs.argmax(axis=-1) == saved_model_outputs.argmax(axis=-1)
    return {"class_agreement": float(np.mean(same))}


def build_end_to_end(
    float_model: keras.Model,
    compressed: CompressedModel,
    saved_model_dir: str,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
    eval_examples: tf.Tensor,
) -> EndToEnd | None:
    """Both end-to-end TFLite models (float, and compressed like `compressed.tflite`, see
    to_end_to_end_tflite), checked and measured on the eval examples, missing values
    included; None when the family has no builtin Transform. `saved_model_dir` is the
    compressed serving SavedModel, whose `serving_raw` signature the models copy and
    whose `serving_default` (tf.Examples) they are compared with."""
    transform = builtin_transform_for(model, tf_transform_output)
    if transform is None:
        return None
    specs = raw_specs(saved_model_dir)
    classes = saved_classes(saved_model_dir)
    rows, servable = raw_rows(eval_examples, specs)
    if not servable.any():
        raise UserError(
            "no eval row has at most one value in each feature the model serves, so the "
            f"end-to-end TFLite cannot be checked: features {sorted(specs)}"
        )
    check_same_features(transform, tf_transform_output, rows, list(float_model.input_names))
    float_tflite = to_end_to_end_tflite(float_model, transform, specs, classes=classes)
    optimization = "dynamic" if compressed.calibrated else compressed.optimization
    compressed_tflite = to_end_to_end_tflite(
        compressed.keras_model, transform, specs, optimization, classes
    )
    saved_model = tf.saved_model.load(saved_model_dir)
    examples = tf.boolean_mask(eval_examples, servable)
    labels = saved_model.signatures[TRANSFORM_FEATURES_SIGNATURE](examples=examples)[
        LABEL_KEY
    ].numpy()
    served = saved_model.signatures[SERVING_DEFAULT_SIGNATURE](examples=examples)[
        OUTPUTS_KEY
    ].numpy()
    outputs = {
        name: predict_in_batches(TfliteModel(content), rows)
        for name, content in (("float", float_tflite), ("compressed", compressed_tflite))
    }
    sizes = {
        "float_tflite": tflite_size(float_tflite),
        "compressed_tflite": tflite_size(compressed_tflite),
    }
    qualities = {
        f"{name}_tflite": quality(values, labels, model) for name, values in outputs.items()
    }
    metric = HEADLINE_METRIC[model.task]
    with_gaps = np.any(
        [
            ~is_present(tf.constant(values, specs[name].dtype)).numpy()
            for name, values in rows.items()
        ],
        axis=0,
    )
    summary = {
        "format": END_TO_END_FORMATS[compressed.optimization, compressed.calibrated],
        "signature": SERVING_RAW_SIGNATURE,
        "inputs": {name: spec.dtype.name for name, spec in specs.items()},
        "eval_rows": int(servable.sum()),
        "eval_rows_with_missing_values": int(with_gaps.sum()),
        "eval_rows_skipped_for_several_values": int((~servable).sum()),
        "sizes": {name: asdict(size) for name, size in sizes.items()},
        "quality": {name: asdict(value) for name, value in qualities.items()},
        # The Quality field the headline compares, as the model part's report has it.
        "quality_metric": metric,
        "headline": {
            "tflite_zipped_ratio": sizes["float_tflite"].zipped_bytes
            / sizes["compressed_tflite"].zipped_bytes,
            **quality_change(
                getattr(qualities["float_tflite"], metric),
                getattr(qualities["compressed_tflite"], metric),
            ),
        },
        "agreement_with_saved_model": agreement(outputs["compressed"], served, model),
        "latency_ms": {
            "compressed_tflite": asdict(latency(TfliteModel(compressed_tflite), rows, 1)),
        },
    }
    return EndToEnd(float_tflite, compressed_tflite, summary)


def end_to_end_markdown(summary: Mapping[str, Any]) -> str:
    """The compression report's section on the end-to-end TFLite."""
    sizes, qualities = summary["sizes"], summary["quality"]
    metrics = [name for name in QUALITY_TITLES if qualities["float_tflite"].get(name) is not None]
    agreement = ", ".join(
        f"{name} {value:.4f}" for name, value in summary["agreement_with_saved_model"].items()
    )
    head, metric = summary["headline"], summary["quality_metric"]
    lines = [
        "",
        "## End-to-end TFLite (what TF Serving serves with --prefer_tflite_model)",
        "",
        f"The shipped `model.tflite` is **{head['tflite_zipped_ratio']:.1f}x smaller zipped** "
        f"than the float end-to-end TFLite; {quality_change_words(metric, head, bold=True)} "
        f"on {summary['eval_rows']} eval rows.",
        "",
        f"{summary['format']}. Raw features in (signature `{summary['signature']}`: "
        f"{', '.join(f'{n} {d}' for n, d in summary['inputs'].items())}), the Transform inside, "
        f"builtin ops only. Measured on {summary['eval_rows']} eval rows, "
        f"{summary['eval_rows_with_missing_values']} of them with missing values (sent as NaN, "
        f'-2**63 or ""); against the compressed SavedModel on the same tf.Examples: '
        f"{agreement}.",
        "",
        "| model | size (bytes) | zipped (bytes) | "
        + " | ".join(QUALITY_TITLES[name] for name in metrics)
        + " |",
        "|---|---:|---:|" + "---:|" * len(metrics),
    ]
    for variant in ("float_tflite", "compressed_tflite"):
        size, shown = sizes[variant], qualities[variant]
        lines.append(
            f"| {variant.replace('_', ' ')} | {size['bytes']} | {size['zipped_bytes']} | "
            + " | ".join(format_quality(name, shown.get(name)) for name in metrics)
            + " |"
        )
    p50 = summary["latency_ms"]["compressed_tflite"]["p50_ms"]
    lines += ["", f"Compressed end-to-end TFLite, batch 1: p50 {p50:.3f} ms.", ""]
    return "\n".join(lines)
