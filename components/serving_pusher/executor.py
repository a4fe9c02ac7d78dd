"""ServingPusher executor: check the blessings, then stage, check and publish one version.

The Model artifact is read, and push.json written, through TensorFlow's file system
(`tf.io.gfile`): on Kubeflow their URIs are gs://..., which the local file system cannot
open. Only the staging directory, which serving.versions makes on the pod's own disk, is
a local path.

A push writes `<serving_model_dir>/<version>/` (the SavedModel plus
`assets.extra/tf_serving_warmup_requests`) and `<tflite_model_dir>/<version>/model.tflite`
(with `tokenizer.json` and `vocabulary.txt` beside a TFLite on token ids) with one
version number, through `serving.versions.publish_version`: nothing is
visible to TF Serving until the staged version loaded and answered its warm-up
requests in-process. The PushedModel artifact records the outcome in custom
properties (`pushed`, `pushed_destination`, `pushed_version`, `not_pushed_reason`)
and a `push.json` summary.

A classifier whose class names (the SavedModel's `classes`) differ from the last pushed
version's is not published (`class_list_refusal`): clients read its probabilities by
position, and the Evaluator against the last pushed model compares metrics, not what
each position means.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2, validation_result_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.compressor.spec import (
    END_TO_END_AGREEMENT_PROPERTY,
    TFLITE_FILE,
    TFMA_TFLITE_FILE,
    tflite_model_path,
    tflite_takes_raw_features,
)
from components.serving_pusher.spec import (
    ALREADY_PUSHED_PROPERTY,
    COMPRESSION_BLESSING_KEY,
    COMPRESSION_EVALUATION_KEY,
    EXAMPLES_KEY,
    MIN_TFLITE_AGREEMENT_KEY,
    MODEL_BLESSING_KEY,
    MODEL_EVALUATION_KEY,
    MODEL_KEY,
    MODEL_NAME_KEY,
    NOT_PUSHED_REASON_PROPERTY,
    PUSH_SUMMARY_FILE,
    PUSHED_DESTINATION_PROPERTY,
    PUSHED_MODEL_KEY,
    PUSHED_PROPERTY,
    PUSHED_VERSION_PROPERTY,
    SERVING_MODEL_DIR_KEY,
    TFLITE_MODEL_DIR_KEY,
    WARMUP_REQUESTS_KEY,
)
from components.slice_gate.spec import SLICE_FAILURES_PROPERTY, slice_name
from models.common.data import read_split_examples
from models.common.export import raw_specs, saved_classes
from models.errors import UserError
from models.file_names import plain_file_name
from models.text.tokenizer import tokenizer_files
from serving.check import ServableReport, check_servable
from serving.versions import existing_versions, is_remote, publish_version
from serving.warmup import warmup_records, write_warmup_requests

# How a change threshold reads: how far the metric may move vs the baseline.
_CHANGE_BOUND = {
    config_pb2.MetricDirection.HIGHER_IS_BETTER: "down to ",
    config_pb2.MetricDirection.LOWER_IS_BETTER: "up to ",
}

# Each blessing input with the Evaluator evaluation that explains it, and the gate's name.
_GATES = (
    (COMPRESSION_BLESSING_KEY, COMPRESSION_EVALUATION_KEY, "EvaluateCompression"),
    (MODEL_BLESSING_KEY, MODEL_EVALUATION_KEY, "EvaluateVsBlessed"),
)


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        pushed_model = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        refusals = blessing_refusals(input_dict)
        if refusals:
            reason = "; ".join(refusals)
            logging.info("Not pushing: %s", reason)
            _record(pushed_model, pushed=False, not_pushed_reason=reason)
            return

        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        if _already_pushed(input_dict, model):
            reason = "this model is already the last pushed one (a rerun with nothing changed)"
            logging.info("Not pushing: %s", reason)
            _record(pushed_model, pushed=False, not_pushed_reason=reason, already_pushed=True)
            return
        other_classes = class_list_refusal(model.uri, exec_properties[SERVING_MODEL_DIR_KEY])
        if other_classes:
            logging.info("Not pushing: %s", other_classes)
            _record(pushed_model, pushed=False, not_pushed_reason=other_classes)
            return
        disagreement = format_disagreement(model, exec_properties.get(MIN_TFLITE_AGREEMENT_KEY))
        if disagreement:
            logging.info("Not pushing: %s", disagreement)
            _record(pushed_model, pushed=False, not_pushed_reason=disagreement)
            return
        warmup_count = exec_properties.get(WARMUP_REQUESTS_KEY) or 0
        examples = []
        if warmup_count:
            if not input_dict.get(EXAMPLES_KEY):
                raise UserError(f"{WARMUP_REQUESTS_KEY}={warmup_count} needs the `examples` input")
            examples_uri = artifact_utils.get_single_uri(input_dict[EXAMPLES_KEY])
            examples = read_split_examples(examples_uri, warmup_count)
        # An end-to-end TFLite is served beside the SavedModel, so the warm-up requests
        # use the signature both have.
        tflite_served = tflite_takes_raw_features(model)
        specs = raw_specs(path_utils.serving_model_path(model.uri)) if tflite_served else None
        push = push_model(
            model.uri,
            serving_model_dir=exec_properties[SERVING_MODEL_DIR_KEY],
            tflite_model_dir=exec_properties.get(TFLITE_MODEL_DIR_KEY) or None,
            warmup=warmup_records(examples, exec_properties[MODEL_NAME_KEY], specs),
            tflite_beside_saved_model=tflite_served,
        )
        logging.info("Pushed version %d to %s", push.version, push.serving_version_dir)
        _record(
            pushed_model,
            pushed=True,
            destination=push.serving_version_dir,
            version=push.version,
        )
        write_push_summary(pushed_model.uri, push)


def write_push_summary(pushed_model_uri: str, push: Push) -> None:
    with tf.io.gfile.GFile(os.path.join(pushed_model_uri, PUSH_SUMMARY_FILE), "w") as handle:
        handle.write(json.dumps(push.summary(), indent=2))


def format_disagreement(model: types.Artifact, min_agreement: float | None) -> str | None:
    """Why a version whose two formats answer differently must not be published: TF
    Serving may serve either (--prefer_tflite_model), and a client of a TFLite on token
    ids (with its tokenizer) must get the answer the served SavedModel gives."""
    if min_agreement is None:
        return None
    properties = model.mlmd_artifact.custom_properties
    if END_TO_END_AGREEMENT_PROPERTY not in properties:
        return None  # a regressor, or a TFLite on transformed features: nothing measured
    agreement = model.get_float_custom_property(END_TO_END_AGREEMENT_PROPERTY)
    if agreement >= min_agreement:
        return None
    tflite = (
        "the end-to-end TFLite"
        if tflite_takes_raw_features(model)
        else "the TFLite on its tokenizer's token ids"
    )
    return (
        f"{tflite} and the SavedModel of this model predict different classes "
        f"on {100 * (1 - agreement):.2f}% of the compression report's eval rows (allowed "
        f"{100 * (1 - min_agreement):.2f}%, evaluation.thresholds.min_tflite_agreement)"
    )


def class_list_refusal(model_uri: str, serving_model_dir: str) -> str | None:
    """Why a Model artifact must not be published under `serving_model_dir`: its class
    names differ from the last pushed version's. None when they are the same, or either
    names none (a regressor, a version pushed before versions recorded them)."""
    classes = saved_classes(path_utils.serving_model_path(model_uri))
    versions = existing_versions(serving_model_dir)
    if classes is None or not versions:
        return None
    last = saved_classes(_join(serving_model_dir, str(versions[-1])))
    if last is None or last == classes:
        return None
    return (
        f"this model's classes {classes} differ from {last}, those of the last pushed "
        f"version {versions[-1]}, whose clients read the probabilities by position; list "
        "the classes as before in model.label.classes, or serve the new list under another "
        "name (the config's `name`)"
    )


def _already_pushed(input_dict: dict[str, list[types.Artifact]], model: types.Artifact) -> bool:
    """EvaluateVsBlessed compared the model with itself: the last blessed model is this one."""
    blessing = (input_dict.get(MODEL_BLESSING_KEY) or [None])[0]
    baseline_key = evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    if blessing is None or baseline_key not in blessing.mlmd_artifact.custom_properties:
        return False
    return blessing.get_int_custom_property(baseline_key) == model.id


@dataclass(frozen=True)
class Push:
    version: int
    serving_version_dir: str
    tflite_model: str | None
    report: ServableReport

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "serving_version_dir": self.serving_version_dir,
            "tflite_model": self.tflite_model,
            "warmup_requests": self.report.warmup_requests,
            "latency_p50_ms": self.report.latency_p50_ms,
            "latency_p95_ms": self.report.latency_p95_ms,
        }


def push_model(
    model_uri: str,
    *,
    serving_model_dir: str,
    tflite_model_dir: str | None,
    warmup: Sequence[prediction_log_pb2.PredictionLog],
    tflite_beside_saved_model: bool = False,
) -> Push:
    """Publishes a Model artifact's SavedModel (and TFLite model) as one new version.

    With `tflite_beside_saved_model` (an end-to-end TFLite), the version directory also
    holds `model.tflite`, which TF Serving serves instead of `saved_model.pb` when started
    with --prefer_tflite_model=true. The Model artifact and the model directories are
    local paths or URIs that TensorFlow's file system opens (serving/versions.py)."""
    reports: list[ServableReport] = []
    tflite_source_uri = tflite_model_path(model_uri)

    def populate_serving(staging: Path) -> None:
        serving_source_uri = path_utils.serving_model_path(model_uri)
        if tflite_beside_saved_model:
            stage_tflite(tflite_source_uri, staging)
        reports.append(stage_saved_model(serving_source_uri, staging, warmup))

    def populate_tflite(staging: Path) -> None:
        stage_tflite(tflite_source_uri, staging)

    # TFLite first: TF Serving only watches the serving directory, which goes last.
    populators = {tflite_model_dir: populate_tflite} if tflite_model_dir else {}
    populators[serving_model_dir] = populate_serving
    version = publish_version(populators)
    return Push(
        version=version,
        serving_version_dir=_join(serving_model_dir, str(version)),
        tflite_model=_join(tflite_model_dir, str(version), TFLITE_FILE)
        if tflite_model_dir
        else None,
        report=reports[0],
    )


def _join(base: str, *parts: str) -> str:
    """Joins with "/" so gs:// URIs stay intact."""
    return "/".join([base.rstrip("/"), *parts])


def stage_saved_model(
    source_uri: str, staging: Path, warmup: Sequence[prediction_log_pb2.PredictionLog]
) -> ServableReport:
    """Copies the SavedModel, adds the warm-up requests, and checks that it serves. The
    copy of the TFLite model that TFMA read stays behind: the version holds it as
    `model.tflite`."""
    if not _is_file(os.path.join(source_uri, "saved_model.pb")):
        raise UserError(f"the model artifact has no serving SavedModel at {source_uri}")
    copy_to_local(source_uri, staging, skip_top_level=(TFMA_TFLITE_FILE,))
    if warmup:
        write_warmup_requests(staging, warmup)
    return check_servable(staging)


def stage_tflite(source_uri: str, staging: Path) -> None:
    """Copies the TFLite model, and the tokenizer files a token-id TFLite ships with,
    after checking that the interpreter accepts it. The tokenizer's file names come
    from its `tokenizer.json`, so they are plain file names (`tokenizer_files`) and
    stay inside `staging`."""
    if not _is_file(source_uri):
        raise UserError(f"the model artifact has no TFLite model at {source_uri}")
    source_dir_uri, name = os.path.split(source_uri)
    target = staging / name
    copy_artifact_file(source_uri, target)
    for tokenizer_file in tokenizer_files(source_dir_uri):
        copy_artifact_file(os.path.join(source_dir_uri, tokenizer_file), staging / tokenizer_file)
    try:
        with warnings.catch_warnings():
            # tf.lite.Interpreter warns that it moves to ai_edge_litert, which is not a dependency.
            warnings.simplefilter("ignore", UserWarning)
            tf.lite.Interpreter(model_path=str(target)).allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise UserError(f"{source_uri} is not a loadable TFLite model: {error}") from error


def copy_to_local(source_uri: str, target: Path, skip_top_level: tuple[str, ...] = ()) -> None:
    """Copies every file under `source_uri` into the local directory `target` through
    TensorFlow's file system, leaving out the entries of `source_uri` named in
    `skip_top_level`. Every listed name must be a plain file name (an object store can
    list `..`), and no entry may be a symlink (`refuse_symlink`): the copy holds only
    what is inside the artifact, and writes only inside `target`."""
    refuse_symlink(source_uri)
    for entry in tf.io.gfile.listdir(source_uri):
        name = plain_file_name(entry.rstrip("/"), artifact=source_uri, field="an entry's name")
        if name in skip_top_level:
            continue
        source_entry_uri = os.path.join(source_uri, name)
        if tf.io.gfile.isdir(source_entry_uri):
            (target / name).mkdir(exist_ok=True)
            copy_to_local(source_entry_uri, target / name)
        else:
            copy_artifact_file(source_entry_uri, target / name)


def copy_artifact_file(source_uri: str, target: Path) -> None:
    """Copies one file of an artifact to the local `target`, refusing a symlink."""
    refuse_symlink(source_uri)
    tf.io.gfile.copy(source_uri, str(target), overwrite=True)


def refuse_symlink(entry_uri: str) -> None:
    """A UserError when `entry_uri`, in an artifact on the local file system, is a
    symlink: TensorFlow's file system follows it, so a copy would take whatever it
    points at (any file the pusher can read) into the served version. Object stores
    (`gs://`) have no symlinks."""
    if not is_remote(entry_uri) and os.path.islink(entry_uri):
        raise UserError(
            f"{entry_uri} is a symlink (to {os.readlink(entry_uri)}): a model artifact's files "
            "must be in it, not linked from elsewhere; copy the file into the artifact"
        )


def _is_file(uri: str) -> bool:
    return tf.io.gfile.exists(uri) and not tf.io.gfile.isdir(uri)


def blessing_refusals(input_dict: dict[str, list[types.Artifact]]) -> list[str]:
    """Why each present blessing refused the model (empty: push)."""
    refusals = []
    for blessing_key, evaluation_key, gate in _GATES:
        if not input_dict.get(blessing_key):
            continue
        blessing = artifact_utils.get_single_instance(input_dict[blessing_key])
        if blessing.get_int_custom_property("blessed") == 1:
            continue
        name = blessing.get_string_custom_property("component_id") or gate
        failures = []
        if input_dict.get(evaluation_key):
            evaluation = artifact_utils.get_single_instance(input_dict[evaluation_key])
            failures = validation_failures(evaluation.uri)
        # A SliceGate's blessing lists the slices it refused.
        if SLICE_FAILURES_PROPERTY in blessing.mlmd_artifact.custom_properties:
            failures += blessing.get_string_custom_property(SLICE_FAILURES_PROPERTY).splitlines()
        detail = ": " + ", ".join(failures) if failures else ""
        refusals.append(f"{name} did not bless the model{detail}")
    return refusals


def validation_failures(evaluation_uri: str) -> list[str]:
    """Each failed threshold of an Evaluator run, e.g. `binary_accuracy change -0.012 < -0.005`."""
    if not tf.io.gfile.glob(os.path.join(evaluation_uri, "validations*")):
        return []
    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        where = _slice_name(per_slice.slice_key)
        for failure in per_slice.failures:
            failures.append(f"{_threshold_failure(failure)} on {where}")
    return failures


def _threshold_failure(failure: validation_result_pb2.ValidationFailure) -> str:
    metric = failure.metric_key.name
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        bound = _CHANGE_BOUND.get(change.direction, "")
        limits = []
        if change.HasField("absolute"):
            limits.append(f"{change.absolute.value:+.4f}")
        if change.HasField("relative"):
            limits.append(f"{change.relative.value:+.2%} of the baseline's value")
        return f"{metric} changed by {value:+.4f} vs the baseline (allowed {bound}{' and '.join(limits)})"
    bounds = threshold.value_threshold
    if bounds.HasField("lower_bound") and value < bounds.lower_bound.value:
        return f"{metric} = {value:.4f} is below the minimum {bounds.lower_bound.value:.4f}"
    if bounds.HasField("upper_bound") and value > bounds.upper_bound.value:
        return f"{metric} = {value:.4f} is above the maximum {bounds.upper_bound.value:.4f}"
    return f"{metric}: {failure.message.strip() or 'failed its threshold'}"


def _slice_name(slice_key: metrics_for_slice_pb2.SliceKey) -> str:
    columns = slice_name(slice_key)
    return f"slice {columns}" if columns else "the overall slice"


def _record(
    pushed_model: types.Artifact,
    *,
    pushed: bool,
    destination: str | None = None,
    version: int | None = None,
    not_pushed_reason: str | None = None,
    already_pushed: bool = False,
) -> None:
    pushed_model.set_int_custom_property(PUSHED_PROPERTY, int(pushed))
    # Nothing refused: the model already is the last pushed one (the run summary's exit 0).
    pushed_model.set_int_custom_property(ALREADY_PUSHED_PROPERTY, int(already_pushed))
    if destination is not None:
        pushed_model.set_string_custom_property(PUSHED_DESTINATION_PROPERTY, destination)
    if version is not None:
        pushed_model.set_string_custom_property(PUSHED_VERSION_PROPERTY, str(version))
    if not_pushed_reason is not None:
        pushed_model.set_string_custom_property(NOT_PUSHED_REASON_PROPERTY, not_pushed_reason)
