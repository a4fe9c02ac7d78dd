"""TFMA configurations for leanline's two evaluators, built from `config.evaluation`."""

from __future__ import annotations

from tensorflow_model_analysis.proto import config_pb2

from models.common.features import LABEL_KEY
from pipeline.config import EvaluationConfig, metric_name

CANDIDATE = "candidate"
BASELINE = "baseline"
# The serving model's signature that maps raw examples to transformed ones,
# so TFMA reads the label exactly as training saw it.
TRANSFORM_SIGNATURE = "transform_features"
# leanline's serving SavedModels are signatures over a tf.Module, not Keras models
# (tensorflow_model_analysis.constants.TF_GENERIC). Named, TFMA skips trying to load each
# model as Keras just to find that out.
MODEL_TYPE = "tf_generic"


def _model_spec(name: str, is_baseline: bool) -> config_pb2.ModelSpec:
    return config_pb2.ModelSpec(
        name=name,
        is_baseline=is_baseline,
        model_type=MODEL_TYPE,
        signature_name="serving_default",
        label_key=LABEL_KEY,
        preprocessing_function_names=[TRANSFORM_SIGNATURE],
    )


def eval_config(evaluation: EvaluationConfig, max_drop_vs_baseline: float) -> config_pb2.EvalConfig:
    """Candidate vs baseline: an absolute floor on the overall slice and a bounded drop."""
    thresholds = evaluation.thresholds
    gated = config_pb2.MetricThreshold(
        value_threshold=config_pb2.GenericValueThreshold(
            lower_bound={"value": thresholds.min_value}
        ),
        change_threshold=config_pb2.GenericChangeThreshold(
            direction=config_pb2.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_drop_vs_baseline},
        ),
    )
    # Gate on the overall slice only: small slices are reported, not allowed to block a push.
    overall_only = [
        config_pb2.PerSliceMetricThreshold(
            slicing_specs=[config_pb2.SlicingSpec()], threshold=gated
        )
    ]
    metrics = [
        config_pb2.MetricConfig(
            class_name=class_name,
            per_slice_thresholds=overall_only
            if metric_name(class_name) == thresholds.metric
            else None,
        )
        for class_name in evaluation.metrics
    ]
    slices = [config_pb2.SlicingSpec()] + [
        config_pb2.SlicingSpec(feature_keys=keys) for keys in evaluation.slices
    ]
    return config_pb2.EvalConfig(
        model_specs=[_model_spec(CANDIDATE, False), _model_spec(BASELINE, True)],
        metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)],
        slicing_specs=slices,
    )
