"""Magnitude pruning (tfmot) of the layers `pruning.layers` picks (all: Dense, Conv2D and
Embedding; dense; conv), fine-tuned along the pruning schedule, then stripped.

The output layer stays dense: it is tiny, and pruning it costs the most accuracy.
Stripped models keep their architecture with zeroed weights, which zip away in the
model files. Layers tfmot cannot wrap (MultiHeadAttention, say) are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from models.common.fine_tuning import FineTuning, fine_tune, rebuilt
from models.config import PruningConfig
from models.errors import UserError

PRUNABLE_LAYERS: dict[str, tuple[type[keras.layers.Layer], ...]] = {
    "all": (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Embedding),
    "dense": (keras.layers.Dense,),
    "conv": (keras.layers.Conv2D,),
}
# The weight magnitude pruning zeroes in each of those layers.
PRUNED_WEIGHT_NAMES = ("kernel", "embeddings")
# Masks are recomputed this many times on the way to the target sparsity.
PRUNING_MASK_UPDATES = 20


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

    pruned = rebuilt(model, wrap)
    fine_tune(pruned, fine_tuning, epochs, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def is_pruned_weight(weight: tf.Variable) -> bool:
    """Whether `weight` is the kernel or embedding table that pruning zeroes."""
    return weight.name.rpartition("/")[2].removesuffix(":0") in PRUNED_WEIGHT_NAMES


def _pruned_weights(model: keras.Model) -> Iterator[tuple[str, np.ndarray]]:
    """The kernel or embedding table of every prunable layer, by layer name, looking
    inside pruning and quantization wrappers (which track the wrapped variable
    themselves; after QAT, `layer.kernel` is a fake-quantized tensor)."""
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, PRUNABLE_LAYERS["all"]):
            (weight,) = (w for w in layer.weights if is_pruned_weight(w))
            yield inner.name, weight.numpy()


def sparsity_by_layer(model: keras.Model) -> dict[str, float]:
    """The fraction of exact zeros in each prunable layer's kernel or embeddings."""
    return {name: float(np.mean(weight == 0)) for name, weight in _pruned_weights(model)}


@dataclass(frozen=True)
class LayerFigures:
    """One layer with weights of a compressed model, for the report."""

    layer: str
    kind: str
    weights: int
    # The share of its weights that are exactly zero.
    zeros: float
    # "pruned", or why not.
    pruning: str


def _why_not_pruned(layer: keras.layers.Layer, outputs: set[str], config: PruningConfig) -> str:
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return (
            "not prunable: tfmot cannot wrap MultiHeadAttention, so its query, key, value "
            "and output projections stay dense (int8 by quantization)"
        )
    if not isinstance(layer, PRUNABLE_LAYERS["all"]):
        return (
            f"not pruned: {type(layer).__name__} is not among the kinds leanline prunes "
            "(Dense, Conv2D, Embedding)"
        )
    if not config.enabled:
        return "pruning is off"
    if layer.name in outputs:
        return "output layer, kept dense"
    return f"not among pruning.layers {config.layers!r}"


def layer_figures(
    model: keras.Model, pruned_layers: list[str], config: PruningConfig
) -> list[LayerFigures]:
    """Every layer with weights: its kind, weights, share of zeros, and whether it was
    pruned (else why not), looking inside quantization wrappers."""
    outputs = output_layers(model)
    figures = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        values = [w.numpy() for w in inner.weights]
        if not values:
            continue
        weights = sum(v.size for v in values)
        figures.append(
            LayerFigures(
                layer=inner.name,
                kind=type(inner).__name__,
                weights=int(weights),
                zeros=float(sum(np.count_nonzero(v == 0) for v in values) / weights),
                pruning="pruned"
                if inner.name in pruned_layers
                else _why_not_pruned(inner, outputs, config),
            )
        )
    return figures
