"""Quantization-aware training (tfmot's default 8-bit scheme, or its prune-preserving
variant): int8 learned with fake-quant ops while fine-tuning."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from models.common.fine_tuning import FineTuning, fine_tune, rebuilt
from models.errors import UserError

_QUANTIZE_REGISTRY = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()


class QatUnsupported(UserError):
    """tfmot cannot put fake-quant ops into this model (e.g. a TFOpLambda next to a layer
    it quantizes, as in the text family's attention blocks)."""


def quantization_aware(
    model: keras.Model, *, preserve_sparsity: bool, fine_tuning: FineTuning, epochs: int
) -> keras.Model:
    """A copy of `model` with fake-quant int8 ops, fine-tuned `epochs` epochs."""
    quantized = fake_quantized(model, preserve_sparsity=preserve_sparsity)
    fine_tune(quantized, fine_tuning, epochs, callbacks=[])
    return quantized


def fake_quantized(model: keras.Model, *, preserve_sparsity: bool) -> keras.Model:
    """A copy of `model` with fake-quant int8 ops, untrained; raises QatUnsupported where
    tfmot cannot build one.

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
    try:
        with quantize.quantize_scope():
            quantized = quantize.quantize_apply(rebuilt(model, annotate), scheme)
    except (ValueError, RuntimeError) as error:
        raise QatUnsupported(
            f"quantization-aware training cannot be applied to this model: {error} Use "
            "int8_ptq or dynamic instead of qat/pqat"
        ) from error
    if preserve_sparsity:
        for layer in quantized.layers:
            if not isinstance(layer, quantize.QuantizeWrapper) and layer.trainable_weights:
                layer.trainable = False
    return quantized
