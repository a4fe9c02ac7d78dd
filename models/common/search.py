"""Accuracy-aware compression search: the smallest model that loses at most a budget.

A candidate is a starting model (the trained model, or a student distilled from it), a
sparsity and a quantization. Size is the zipped TFLite of the model alone, which
compression shrinks; quality is the headline metric (accuracy, or MAE for a regressor)
of that TFLite on validation rows held out of the train split, against the trained
model's on the same rows. The eval split is not an input here: the gates judge on it,
and choosing on the gates' own rows would overfit them.

Candidates are sorted by an estimated size, read off a cheap copy of each (its starting
model with the smallest weights zeroed, converted as it would be, no training): the
graph, the inputs and the non-zero weights set most of the bytes. They are bisected,
taking quality to grow with size: a candidate within budget rules out every larger one
(it cannot win), one over budget every smaller one. Distilled students and pruned
models are trained once and shared by the candidates that start from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import tf_keras as keras

from models.common.compression import (
    CompressedModel,
    CompressionInputs,
    LabeledRows,
    quantize,
    recipe_words,
)
from models.common.distillation import distill
from models.common.end_to_end import agreement
from models.common.measurement import keras_predictor, predict_in_batches, tflite_size
from models.common.pruning import is_pruned_weight, prune, pruning_targets
from models.common.quality import (
    HEADLINE_METRIC,
    QUALITY_TITLES,
    budget_words,
    format_quality,
    quality,
    quality_change,
    row_losses,
)
from models.common.quantization import QatUnsupported, fake_quantized
from models.common.schedule import fine_tune_epochs
from models.common.tflite import TfliteModel, take_rows, to_tflite
from models.config import (
    CompressionConfig,
    DistillationConfig,
    ModelConfig,
    Quantization,
    SearchConfig,
)

# Rows the size estimates calibrate their int8 ranges on (the ranges barely move the size).
ESTIMATE_CALIBRATION_ROWS = 32
# Among candidates of one estimated size, the cheaper to train runs first.
_TRAINING_COST = {"none": 0, "dynamic": 0, "int8_ptq": 0, "qat": 1, "pqat": 1}


@dataclass(frozen=True)
class Candidate:
    student: DistillationConfig | None
    sparsity: float
    quantization: Quantization

    def recipe(self, base: CompressionConfig) -> CompressionConfig:
        """The fixed compression config that builds this candidate: `base` (pruning's
        schedule and layers, fine_tune_epochs) with this sparsity, quantization and
        student."""
        pruning = base.pruning.model_copy(
            update={"enabled": self.sparsity > 0}
            | ({"target_sparsity": self.sparsity} if self.sparsity > 0 else {})
        )
        return CompressionConfig.model_validate(
            base.model_copy(
                update={
                    "pruning": pruning,
                    "quantization": self.quantization,
                    "distillation": self.student,
                    "search": None,
                }
            ).model_dump()
        )

    def words(self) -> str:
        return recipe_words(self.student, self.sparsity, self.quantization)


def candidates(search: SearchConfig) -> list[Candidate]:
    """Every student (the trained model first) at every sparsity, quantized each way;
    qat and pqat are one choice, pqat for a pruned model and qat for a dense one."""
    found: dict[tuple[Any, ...], Candidate] = {}
    for student in [None, *search.students]:
        for sparsity in sorted(set(search.sparsities)):
            for quantization in search.quantizations:
                if quantization in ("qat", "pqat"):
                    quantization = "pqat" if sparsity > 0 else "qat"
                candidate = Candidate(student, sparsity, quantization)
                key = (student and student.model_dump_json(), sparsity, quantization)
                found.setdefault(key, candidate)
    return list(found.values())


@dataclass
class Trial:
    """One candidate, as report.json records it."""

    recipe: str
    student: dict[str, Any] | None
    sparsity: float
    quantization: str
    estimated_zipped_bytes: int
    # Unset for a skipped candidate.
    zipped_bytes: int | None = None
    weights: int | None = None
    quality: float | None = None
    quality_change: float | None = None
    # Of the paired per-row loss differences' mean, in the units of quality_change.
    standard_error: float | None = None
    # A classifier's: the share of validation rows where its TFLite and its Keras model
    # (the served SavedModel) predict the same class.
    agreement: float | None = None
    # Whether the loss plus `margin_standard_errors` standard errors is within budget (and
    # the agreement at least `min_agreement`).
    within_budget: bool | None = None
    # Training and measuring this candidate, models shared with earlier trials not included.
    seconds: float = 0.0
    # "within budget", "over budget", or why it was skipped.
    outcome: str = ""
    # When it ran: 1 for the first trial; None when skipped.
    order: int | None = None
    chosen: bool = False

    @classmethod
    def of(cls, candidate: Candidate, estimate: int, outcome: str = "") -> Trial:
        return cls(
            recipe=candidate.words(),
            student=candidate.student.sizes() if candidate.student else None,
            sparsity=candidate.sparsity,
            quantization=candidate.quantization,
            estimated_zipped_bytes=estimate,
            outcome=outcome,
        )


@dataclass
class SearchResult:
    metric: str
    # "absolute" (accuracy points) or "relative" (growth of an error).
    budget_kind: str
    budget: float
    margin_standard_errors: float
    float_quality: float
    float_zipped_bytes: int
    validation_examples: int
    # The transformed train files the search read; 1 record in `validation_every` of
    # them was held out of training for validation.
    files: list[str]
    validation_every: int | None
    trials: list[Trial]
    stopped: str
    seconds: float
    # A classifier's least TFLite/SavedModel class agreement (SearchConfig.min_agreement).
    min_agreement: float | None = None
    chosen: CompressedModel | None = field(default=None, repr=False)
    chosen_recipe: CompressionConfig | None = field(default=None, repr=False)

    @property
    def chosen_trial(self) -> Trial | None:
        return next((trial for trial in self.trials if trial.chosen), None)

    def to_json(self) -> dict[str, Any]:
        # Not asdict(self): it would deep-copy the chosen Keras model.
        data = {
            name.name: getattr(self, name.name)
            for name in fields(self)
            if name.name not in ("chosen", "trials")
        }
        data["trials"] = [asdict(trial) for trial in self.trials]
        data["chosen_recipe"] = self.chosen_recipe.model_dump() if self.chosen_recipe else None
        chosen = self.chosen_trial
        data["chosen"] = chosen.recipe if chosen else None
        return data

    def budget_words(self) -> str:
        return budget_words(self.metric, self.budget_kind, self.budget)

    def nothing_found(self) -> str:
        """Why no candidate was chosen, and what to change."""
        measured = sorted(
            (trial for trial in self.trials if trial.quality is not None),
            key=lambda trial: -trial.quality if self.budget_kind == "absolute" else trial.quality,
        )
        best = (
            f"; the best was {measured[0].recipe}: {format_quality(self.metric, measured[0].quality)} "
            f"against the trained model's {format_quality(self.metric, self.float_quality)}"
            if measured
            else ""
        )
        agreeing = (
            ""
            if self.min_agreement is None
            else f", TFLite and SavedModel agreeing on {100 * self.min_agreement:.1f}% of rows"
        )
        return (
            f"compression.search found no candidate within its budget ({self.budget_words()} "
            f"with {self.margin_standard_errors:g} standard error(s) of margin{agreeing}, on "
            f"{self.validation_examples} validation rows held out of the train split) in "
            f"{len(measured)} trials ({self.stopped}){best}. Nothing was compressed or "
            "pushed. Raise compression.search.max_quality_loss, add larger candidates (lower "
            "sparsities, wider students), allow more trials or minutes, or set a fixed recipe "
            "(compression.search unset)"
        )

    def markdown(self) -> str:
        title = QUALITY_TITLES[self.metric]
        lines = [
            "## Compression search",
            "",
            f"Budget: {self.budget_words()}, counting {self.margin_standard_errors:g} standard "
            f"error(s) against the candidate, vs the trained model "
            f"({format_quality(self.metric, self.float_quality)}) on "
            f"{self.validation_examples} validation rows (held out of the transformed train "
            "split: no model trained on them; no eval row). "
            f"{len([t for t in self.trials if t.zipped_bytes is not None])} trials in "
            f"{self.seconds:.0f} s; {self.stopped}.",
            "",
            f"| candidate | estimated zipped | zipped (bytes) | ratio | weights | {title} | change "
            "| seconds | outcome |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for trial in self.trials:
            measured = trial.zipped_bytes is not None
            change = "-"
            if trial.quality_change is not None:
                unit, digits = ("pt", 2) if self.budget_kind == "absolute" else ("%", 1)
                change = (
                    f"{100 * trial.quality_change:+.{digits}f} "
                    f"± {100 * (trial.standard_error or 0):.{digits}f} {unit}"
                )
            lines.append(
                f"| {'**' + trial.recipe + '**' if trial.chosen else trial.recipe} "
                f"| {trial.estimated_zipped_bytes} "
                f"| {trial.zipped_bytes if measured else '-'} "
                f"| {f'{self.float_zipped_bytes / trial.zipped_bytes:.1f}x' if measured else '-'} "
                f"| {trial.weights if trial.weights is not None else '-'} "
                f"| {format_quality(self.metric, trial.quality)} | {change} "
                f"| {trial.seconds:.1f} | {trial.outcome} |"
            )
        return "\n".join(lines) + "\n"


def _masked(model: keras.Model, sparsity: float, layers: str) -> keras.Model:
    """A copy of `model` with the smallest `sparsity` of each pruned layer's weights
    zeroed, as magnitude pruning leaves them (no fine-tuning)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    if sparsity <= 0:
        return copy
    for name in pruning_targets(copy, layers):
        layer = copy.get_layer(name)
        weights = layer.get_weights()
        for index, weight in enumerate(layer.weights):
            if is_pruned_weight(weight):
                values = weights[index]
                cut = np.quantile(np.abs(values), sparsity)
                weights[index] = np.where(np.abs(values) <= cut, 0, values)
        layer.set_weights(weights)
    return copy


def estimated_size(
    model: keras.Model, candidate: Candidate, layers: str, calibration: dict[str, np.ndarray]
) -> int:
    """The zipped TFLite bytes of `model` pruned and quantized as `candidate` says,
    without the training: QAT's int8 model is estimated by calibrated int8."""
    optimization = {"none": "none", "dynamic": "dynamic"}.get(candidate.quantization, "int8")
    rows = take_rows(calibration, ESTIMATE_CALIBRATION_ROWS)
    tflite = to_tflite(
        _masked(model, candidate.sparsity, layers),
        optimization,
        rows if optimization == "int8" else None,
    )
    return tflite_size(tflite).zipped_bytes


@dataclass(frozen=True)
class PairedLoss:
    """How much a candidate loses against the trained model on the same rows: the mean
    of the per-row differences of their losses (accuracy points as a fraction, or the
    MAE's growth relative to the trained model's MAE) and its standard error."""

    loss: float
    standard_error: float

    @classmethod
    def of(cls, candidate: np.ndarray, trained: np.ndarray, relative: bool) -> PairedLoss:
        differences = candidate - trained
        if relative:
            differences = differences / max(float(np.mean(trained)), np.finfo(np.float64).tiny)
        spread = float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0
        return cls(float(np.mean(differences)), spread / np.sqrt(len(differences)))


def search(
    teacher: keras.Model,
    build_student: Callable[[ModelConfig], keras.Model],
    model: ModelConfig,
    config: CompressionConfig,
    inputs: CompressionInputs,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Searches `config.search`'s candidates for the smallest within its budget
    (`max_quality_loss`, as LeanlineConfig.resolved_compression fills it in). `inputs` holds the
    validation rows; the chosen model, if any, is in the result."""
    search_config = config.search
    if search_config is None or inputs.validation is None:
        raise ValueError("search needs compression.search and validation rows")
    started = clock()
    budget = search_config.max_quality_loss
    if budget is None:
        raise ValueError("compression.search.max_quality_loss is unresolved")
    metric = HEADLINE_METRIC[model.task]
    budget_kind = "relative" if model.is_regression else "absolute"
    validation: LabeledRows = inputs.validation

    def headline(predictions: np.ndarray) -> float:
        return getattr(quality(predictions, validation.labels, model), metric)

    float_predictions = predict_in_batches(keras_predictor(teacher), validation.features)
    float_quality = headline(float_predictions)
    float_losses = row_losses(float_predictions, validation.labels, model)
    margin = search_config.margin_standard_errors
    fine_tuning = inputs.fine_tuning
    epochs = fine_tune_epochs(config, fine_tuning.steps_per_epoch)
    layers = config.pruning.layers

    # Students as built (for size estimates) and as distilled (for trials), by config.
    built: dict[str, keras.Model] = {}
    distilled: dict[str, keras.Model] = {}
    pruned: dict[tuple[str, float], keras.Model] = {}

    def untrained(student: DistillationConfig | None) -> keras.Model:
        if student is None:
            return teacher
        key = student.model_dump_json()
        if key not in built:
            built[key] = build_student(student.of(model))
        return built[key]

    def trained(student: DistillationConfig | None) -> keras.Model:
        if student is None:
            return teacher
        key = student.model_dump_json()
        if key not in distilled:
            distilled[key] = distill(teacher, build_student, student, fine_tuning)
        return distilled[key]

    qat_refusals: dict[str, str | None] = {}

    def qat_refusal(candidate: Candidate) -> str | None:
        """Why tfmot cannot build this candidate's QAT model (None: it can, or no QAT)."""
        if candidate.quantization not in ("qat", "pqat"):
            return None
        preserve_sparsity = candidate.quantization == "pqat"
        key = (
            f"{candidate.student.model_dump_json() if candidate.student else ''}{preserve_sparsity}"
        )
        if key not in qat_refusals:
            try:
                fake_quantized(untrained(candidate.student), preserve_sparsity=preserve_sparsity)
                qat_refusals[key] = None
            except QatUnsupported as error:
                qat_refusals[key] = str(error.__cause__)
        return qat_refusals[key]

    estimated, unbuildable = [], []
    for candidate in candidates(search_config):
        size = estimated_size(untrained(candidate.student), candidate, layers, inputs.calibration)
        refusal = qat_refusal(candidate)
        (estimated if refusal is None else unbuildable).append((size, candidate, refusal))
    estimated.sort(key=lambda row: (row[0], _TRAINING_COST[row[1].quantization], row[1].sparsity))
    trials = [Trial.of(candidate, estimate) for estimate, candidate, _ in estimated]

    def run_trial(index: int) -> CompressedModel:
        trial, candidate = trials[index], estimated[index][1]
        trial_start = clock()
        start = trained(candidate.student)
        pruned_layers: list[str] = []
        if candidate.sparsity > 0:
            pruned_layers = pruning_targets(start, layers)
            key = (
                candidate.student.model_dump_json() if candidate.student else "",
                candidate.sparsity,
            )
            if key not in pruned:
                pruned[key] = prune(start, candidate.recipe(config).pruning, fine_tuning, epochs)
            start = pruned[key]
        compressed = quantize(
            start, candidate.quantization, fine_tuning, inputs.calibration, epochs, pruned_layers
        )
        trial.zipped_bytes = tflite_size(compressed.tflite).zipped_bytes
        trial.weights = int(compressed.keras_model.count_params())
        predictions = predict_in_batches(TfliteModel(compressed.tflite), validation.features)
        trial.quality = headline(predictions)
        change = quality_change(float_quality, trial.quality)
        trial.quality_change = change[
            "quality_change" if budget_kind == "absolute" else "quality_relative_change"
        ]
        paired = PairedLoss.of(
            row_losses(predictions, validation.labels, model),
            float_losses,
            relative=budget_kind == "relative",
        )
        trial.standard_error = paired.standard_error
        trial.within_budget = bool(paired.loss + margin * paired.standard_error <= budget)
        trial.outcome = "within budget" if trial.within_budget else "over budget"
        if search_config.min_agreement is not None and not model.is_regression:
            served = predict_in_batches(
                keras_predictor(compressed.keras_model), validation.features
            )
            trial.agreement = agreement(predictions, served, model)["class_agreement"]
            if trial.within_budget and trial.agreement < search_config.min_agreement:
                trial.within_budget = False
                trial.outcome = (
                    f"over budget: its TFLite and SavedModel agree on {100 * trial.agreement:.1f}% "
                    f"of rows, under {100 * search_config.min_agreement:.1f}%"
                )
        trial.seconds = clock() - trial_start
        return compressed

    # Bisection over the candidates in estimated-size order, taking quality to grow with
    # size: a candidate within budget rules out every larger one (none can be smaller),
    # one over budget every smaller one (each presumed over too).
    chosen: tuple[int, CompressedModel] | None = None
    low, high, ran = 0, len(trials) - 1, 0
    stopped = "bisection done: no smaller candidate can be within budget"
    while low <= high:
        if ran >= search_config.max_trials:
            stopped = f"stopped at max_trials ({search_config.max_trials})"
            break
        if clock() - started >= 60 * search_config.max_minutes:
            stopped = f"stopped at max_minutes ({search_config.max_minutes:g})"
            break
        middle = (low + high) // 2
        compressed = run_trial(middle)
        ran += 1
        trials[middle].order = ran
        if trials[middle].within_budget:
            if chosen is None or trials[middle].zipped_bytes < trials[chosen[0]].zipped_bytes:
                chosen = (middle, compressed)
            high = middle - 1
        else:
            low = middle + 1
    else:
        if not trials:
            stopped = "no candidate could be built (see the skipped ones)"
        elif chosen is None:
            stopped = "even the largest candidate is over budget"
    for index, trial in enumerate(trials):
        if trial.zipped_bytes is not None:
            continue
        if chosen is not None and trial.estimated_zipped_bytes >= trials[chosen[0]].zipped_bytes:
            trial.outcome = "skipped: its estimate is no smaller than the chosen candidate"
        elif low <= index <= high:
            trial.outcome = f"skipped: {stopped.removeprefix('stopped at ')} reached"
        elif index < low:
            trial.outcome = "skipped: smaller than a candidate over budget"
        else:
            trial.outcome = "skipped: larger than a candidate within budget"
    if chosen is not None:
        trials[chosen[0]].chosen = True
    trials += [
        Trial.of(candidate, estimate, f"skipped: tfmot cannot apply QAT to this model ({refusal})")
        for estimate, candidate, refusal in unbuildable
    ]
    return SearchResult(
        metric=metric,
        budget_kind=budget_kind,
        budget=budget,
        margin_standard_errors=margin,
        float_quality=float_quality,
        float_zipped_bytes=tflite_size(to_tflite(teacher)).zipped_bytes,
        validation_examples=len(validation),
        files=inputs.files,
        validation_every=inputs.validation_every,
        trials=trials,
        stopped=stopped,
        seconds=clock() - started,
        min_agreement=None if model.is_regression else search_config.min_agreement,
        chosen=chosen[1] if chosen else None,
        chosen_recipe=estimated[chosen[0]][1].recipe(config) if chosen else None,
    )
