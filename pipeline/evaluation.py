"""TFMA configurations for leanline's two evaluators, built from `config.evaluation`."""

from __future__ import annotations

import math

from tensorflow_model_analysis.proto import config_pb2

from components.slice_gate.spec import BASELINE, CANDIDATE
from models.common.features import LABEL_KEY
from models.config import ChangeBound, ThresholdsConfig
from pipeline.config import EvaluationConfig, metric_name

# The serving model's signature that maps raw examples to transformed ones,
# so TFMA reads the label exactly as training saw it.
TRANSFORM_SIGNATURE = "transform_features"
# leanline's serving SavedModels are signatures over a tf.Module, not Keras models
# (tensorflow_model_analysis.constants.TF_GENERIC). Named, TFMA skips trying to load each
# model as Keras just to find that out.
MODEL_TYPE = "tf_generic"
# The end-to-end TFLite (constants.TF_LITE): TFMA reads `<serving dir>/tflite` and, for
# the label, runs the SavedModel beside it.
TFLITE_MODEL_TYPE = "tf_lite"
SLICE_SIZE_METRIC = "ExampleCount"


def _model_spec(name: str, is_baseline: bool, tflite: bool) -> config_pb2.ModelSpec:
    return config_pb2.ModelSpec(
        name=name,
        is_baseline=is_baseline,
        model_type=TFLITE_MODEL_TYPE if tflite else MODEL_TYPE,
        signature_name="" if tflite else "serving_default",
        label_key=LABEL_KEY,
        preprocessing_function_names=[TRANSFORM_SIGNATURE],
    )


def _change_threshold(
    thresholds: ThresholdsConfig, change: ChangeBound
) -> config_pb2.GenericChangeThreshold:
    """How far the metric may move against the baseline: down by an absolute amount when
    higher is better, up by a fraction of the baseline's value when lower is better
    (TFMA's relative change is (candidate - baseline) / baseline)."""
    kind, amount = change
    if thresholds.lower_is_better:
        direction, bound = config_pb2.MetricDirection.LOWER_IS_BETTER, amount
    else:
        direction, bound = config_pb2.MetricDirection.HIGHER_IS_BETTER, -amount
    change_threshold = config_pb2.GenericChangeThreshold(direction=direction)
    getattr(change_threshold, kind).value = bound
    return change_threshold


def _metric_threshold(
    thresholds: ThresholdsConfig, change: ChangeBound
) -> config_pb2.MetricThreshold:
    """The gated metric's absolute bound, and how far it may move against the baseline."""
    # Always some value bound: with no baseline yet (a first run) TFMA drops the change
    # threshold, and a threshold left with no bound at all fails as "missing".
    value_threshold = config_pb2.GenericValueThreshold()
    if thresholds.floor is not None:
        value_threshold.lower_bound.value = thresholds.floor
    if thresholds.ceiling is not None or thresholds.floor is None:
        value_threshold.upper_bound.value = (
            math.inf if thresholds.ceiling is None else thresholds.ceiling
        )
    return config_pb2.MetricThreshold(
        value_threshold=value_threshold, change_threshold=_change_threshold(thresholds, change)
    )


def gate_words(thresholds: ThresholdsConfig, change: ChangeBound, baseline: str) -> str:
    """The gate in words: `binary_accuracy must be >= 0.6 and drop by at most 0.005 vs the
    uncompressed model`."""
    bounds = []
    if thresholds.floor is not None:
        bounds.append(f"be >= {thresholds.floor}")
    if thresholds.ceiling is not None:
        bounds.append(f"be <= {thresholds.ceiling}")
    kind, amount = change
    if thresholds.lower_is_better:
        bounds.append(f"grow by at most {100 * amount:g}% vs {baseline}")
    else:
        bounds.append(f"drop by at most {amount:g} vs {baseline}")
    return f"{thresholds.metric} must {' and '.join(bounds)}"


def eval_config(
    evaluation: EvaluationConfig, change: ChangeBound, *, tflite: bool = False
) -> config_pb2.EvalConfig:
    """Candidate vs baseline: an absolute bound on the overall slice and a bounded change;
    with `tflite`, of the models' end-to-end TFLite files (pipeline.pipeline). Slices
    are computed, not gated here: the slice gate (components/slice_gate) reads them."""
    thresholds = evaluation.thresholds
    gated = [
        config_pb2.PerSliceMetricThreshold(
            slicing_specs=[config_pb2.SlicingSpec()],
            threshold=_metric_threshold(thresholds, change),
        )
    ]
    class_names = list(evaluation.metrics)
    if thresholds.vs_slices is not None and SLICE_SIZE_METRIC not in class_names:
        class_names.append(SLICE_SIZE_METRIC)  # the slice gate reads each slice's size
    metrics = [
        config_pb2.MetricConfig(
            class_name=class_name,
            per_slice_thresholds=gated if metric_name(class_name) == thresholds.metric else None,
        )
        for class_name in class_names
    ]
    slices = [config_pb2.SlicingSpec()] + [
        config_pb2.SlicingSpec(feature_keys=keys) for keys in evaluation.slices
    ]
    return config_pb2.EvalConfig(
        model_specs=[_model_spec(CANDIDATE, False, tflite), _model_spec(BASELINE, True, tflite)],
        metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)],
        slicing_specs=slices,
    )
