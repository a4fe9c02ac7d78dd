"""What a run did, read back from MLMD: `<output>/run_summary.json` and a table for people.

Both open with the result, and its headline is the file that ships: the pushed
model.tflite against its float twin (end to end where the run has one), with the model
part's figures beside it, labelled, since a person takes the first figure for what the
run delivered."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.compressor.spec import (
    COMPRESSED_TFLITE_ZIPPED_PROPERTY,
    ENABLED_PROPERTY,
    END_TO_END_PREFIX,
    EVAL_ROWS_PROPERTY,
    FLOAT_TFLITE_ZIPPED_PROPERTY,
    MODEL_PART_WORDS,
    QUALITY_METRIC_PROPERTY,
    RAW_INPUTS,
    SHIPPED_TFLITE_INPUTS_PROPERTY,
    TFLITE_FILE,
    TFLITE_INPUTS_WORDS,
    TRANSFORMED_INPUTS_TFLITE_FILE,
)
from components.serving_pusher.spec import (
    ALREADY_PUSHED_PROPERTY,
    NOT_PUSHED_REASON_PROPERTY,
    PUSHED_DESTINATION_PROPERTY,
    PUSHED_PROPERTY,
    PUSHED_VERSION_PROPERTY,
)
from components.slice_gate.spec import BASELINE, CANDIDATE, SLICE_FAILURES_PROPERTY
from models.common.quality import quality_change_words
from models.config import gates_judge_tflite
from pipeline.config import LeanlineConfig
from pipeline.gate_resolution import resolution_words
from pipeline.layout import (
    COMPRESSOR,
    EVALUATE_COMPRESSION,
    EVALUATE_TFLITE_VS_BLESSED,
    EVALUATE_VS_BLESSED,
    SERVING_PUSHER,
    SLICE_GATE,
    STATISTICS_GEN,
    SUMMARY_FILE,
    TRAINER,
)

SAVED_MODEL_FORMAT = "SavedModel"
TFLITE_FORMAT = "end-to-end TFLite"
# Who the evaluations' two models are, by TFMA name (pipeline.evaluation).
_MODEL_ROLES = {"candidate": "compressed", "baseline": "uncompressed"}
STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
    metadata_store_pb2.Execution.NEW: "new",
}


@dataclasses.dataclass(frozen=True)
class TfliteFigures:
    """A TFLite file of the run against its float twin, as the Compressor measured both:
    zipped sizes (one zip for every file), and the headline metric on eval rows."""

    file: str
    # What the file takes and holds, in words.
    what: str
    float_twin: str
    compressed: bool
    zipped_ratio: float | None
    zipped_bytes: int | None
    float_zipped_bytes: int | None
    quality_metric: str | None
    float_quality: float | None
    compressed_quality: float | None
    quality_change: float | None
    quality_relative_change: float | None
    eval_rows: int | None

    def words(self) -> str:
        """`model.tflite (end to end, ...) 4.6x smaller zipped than the float end-to-end
        TFLite (7,899 against 36,251 bytes), accuracy 85.10% -> 84.80% (-0.30 pt) on 1,000
        eval rows`."""
        named = f"{self.file} ({self.what})"
        if not self.compressed:
            return (
                f"{named} not compressed (compression.enabled is false), "
                f"{self.zipped_bytes:,} bytes zipped"
            )
        words = (
            f"{named} {self.zipped_ratio:.1f}x smaller zipped than {self.float_twin} "
            f"({self.zipped_bytes:,} against {self.float_zipped_bytes:,} bytes)"
        )
        if self.quality_metric and self.compressed_quality is not None:
            words += f", {quality_change_words(self.quality_metric, dataclasses.asdict(self))}"
            words += f" on {self.eval_rows:,} eval rows" if self.eval_rows else ""
        return words


def tflite_figures(
    compression: Mapping[str, Any],
) -> tuple[TfliteFigures | None, TfliteFigures | None]:
    """From the Compressor's report properties: the shipped model.tflite's figures, and the
    model part's beside them where the shipped file holds more (the end-to-end TFLite,
    with the Transform inside); None for what the run did not measure."""
    if ENABLED_PROPERTY not in compression:
        return None, None

    def figures(prefix: str, file: str, what: str, float_twin: str) -> TfliteFigures:
        return TfliteFigures(
            file=file,
            what=what,
            float_twin=float_twin,
            compressed=compression[ENABLED_PROPERTY] == 1,
            zipped_ratio=compression.get(f"{prefix}tflite_zipped_ratio"),
            zipped_bytes=compression.get(prefix + COMPRESSED_TFLITE_ZIPPED_PROPERTY),
            float_zipped_bytes=compression.get(prefix + FLOAT_TFLITE_ZIPPED_PROPERTY),
            quality_metric=compression.get(QUALITY_METRIC_PROPERTY),
            float_quality=compression.get(f"{prefix}float_quality"),
            compressed_quality=compression.get(f"{prefix}compressed_quality"),
            quality_change=compression.get(f"{prefix}quality_change"),
            quality_relative_change=compression.get(f"{prefix}quality_relative_change"),
            eval_rows=compression.get(prefix + EVAL_ROWS_PROPERTY),
        )

    model_part = figures("", TRANSFORMED_INPUTS_TFLITE_FILE, MODEL_PART_WORDS, "its float TFLite")
    inputs = compression.get(SHIPPED_TFLITE_INPUTS_PROPERTY)
    if inputs is None:  # a Compressor that did not record what it shipped
        return None, model_part
    if inputs == RAW_INPUTS:
        shipped = figures(
            END_TO_END_PREFIX,
            TFLITE_FILE,
            TFLITE_INPUTS_WORDS[inputs],
            "the float end-to-end TFLite",
        )
        return shipped, model_part
    # The shipped file is the model part.
    return figures("", TFLITE_FILE, TFLITE_INPUTS_WORDS[inputs], "the float TFLite"), None


def blessings_words(blessings: Mapping[str, bool]) -> str:
    """`EvaluateCompression passed, SliceGate FAILED`."""
    return ", ".join(
        f"{gate} {'passed' if blessed else 'FAILED'}" for gate, blessed in blessings.items()
    )


@dataclasses.dataclass
class ComponentRun:
    id: str
    status: str
    seconds: float


@dataclasses.dataclass
class RunSummary:
    pipeline: str
    run_id: str | None
    wall_seconds: float
    components: list[ComponentRun]
    # Gate decisions: {"EvaluateCompression": True, "EvaluateVsBlessed": False}.
    blessings: dict[str, bool]
    pushed: bool
    pushed_version: str | None
    pushed_path: str | None
    not_pushed_reason: str | None
    eval_metrics: dict[str, dict[str, float]]
    rows: dict[str, int]
    compression: dict[str, Any]
    error: str | None = None
    # Not pushed because the model already is the last pushed one (a rerun with nothing
    # changed): nothing was refused.
    already_pushed: bool = False
    # What the pre-flight check noted about the input that stopped nothing.
    input_notes: list[str] = dataclasses.field(default_factory=list)
    # What the gates judged: the end-to-end TFLite files, or the SavedModels.
    gated_format: str = SAVED_MODEL_FORMAT
    # The slices the slice gate refused, in words.
    slice_failures: list[str] = dataclasses.field(default_factory=list)
    # What training ran and why (history.json without its epochs): epochs and batch size
    # set by the config or fitted to the train split, early stopping's best epoch.
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Each row-counted gate's bound in eval rows (pipeline.gate_resolution).
    gate_resolution: list[str] = dataclasses.field(default_factory=list)

    def result(self) -> dict[str, Any]:
        """What the run is for, first in the summary: how much smaller the shipped
        model.tflite is than its float twin, what it lost (accuracy, or the mean absolute
        error of a regressor), the model part's figures beside them where the shipped
        file holds more than the model, and whether it was pushed."""
        shipped, model_part = tflite_figures(self.compression)
        return {
            "shipped_tflite": None if shipped is None else dataclasses.asdict(shipped),
            "model_part": None if model_part is None else dataclasses.asdict(model_part),
            # What built the compressed model: the search's choice, or the config's recipe.
            "compression_recipe": self.compression.get("compression_recipe"),
            "search_trials": self.compression.get("search_trials"),
            "pushed": self.pushed,
            "pushed_version": self.pushed_version,
            "not_pushed_reason": None if self.pushed else self.error or self.not_pushed_reason,
        }

    def refusal(self) -> str | None:
        """Why a run that completed pushed nothing new: a gate or the pusher refused its
        model. None when it pushed, when its model already is the last pushed one, or
        when it failed (`error`)."""
        if self.pushed or self.already_pushed or self.error:
            return None
        return self.not_pushed_reason

    def to_json(self) -> str:
        details = dict(sorted(dataclasses.asdict(self).items()))
        return json.dumps({"result": self.result(), **details}, indent=2)


def open_store(metadata_path: Path) -> mlmd.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata_path)
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(connection)


def property_value(properties: Any, key: str) -> Any:
    if key not in properties:
        return None
    value = properties[key]
    return getattr(value, value.WhichOneof("value"))


def custom_properties(artifact: metadata_store_pb2.Artifact) -> dict[str, Any]:
    return {
        key: property_value(artifact.custom_properties, key) for key in artifact.custom_properties
    }


def node_id(store: mlmd.MetadataStore, execution_id: int) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == "node":
            return context.name.split(".", 1)[1]
    return "?"


def latest_run_context(
    store: mlmd.MetadataStore, pipeline: str
) -> metadata_store_pb2.Context | None:
    runs = [
        context
        for context in store.get_contexts_by_type("pipeline_run")
        if any(
            parent.name == pipeline for parent in store.get_parent_contexts_by_context(context.id)
        )
    ] or store.get_contexts_by_type("pipeline_run")
    return max(runs, key=lambda context: context.create_time_since_epoch, default=None)


INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def artifacts_by_key(
    store: mlmd.MetadataStore, execution_id: int, event_types: Sequence[int]
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's artifacts linked by events of `event_types`, by input/output key."""
    by_key: dict[str, list[int]] = {}
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type in event_types:
            key = event.path.steps[0].key if event.path.steps else ""
            by_key.setdefault(key, []).append(event.artifact_id)
    ids = sorted({i for group in by_key.values() for i in group})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(ids)}
    return {key: [artifacts[i] for i in group if i in artifacts] for key, group in by_key.items()}


def outputs(
    store: mlmd.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """Output artifacts of an execution by output key."""
    return artifacts_by_key(store, execution_id, OUTPUT_EVENTS)


def _row_counts(statistics_uri: str) -> dict[str, int]:
    import tensorflow as tf
    from tensorflow_data_validation.utils import stats_util  # TFDV: not for `leanline runs`

    rows = {}
    # Object stores list directories as `name/`.
    for entry in sorted(name.rstrip("/") for name in tf.io.gfile.listdir(statistics_uri)):
        if entry.startswith("Split-"):
            stats = stats_util.load_stats_binary(
                os.path.join(statistics_uri, entry, "FeatureStats.pb")
            )
            rows[entry.removeprefix("Split-")] = sum(d.num_examples for d in stats.datasets)
    return rows


def _overall_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """Overall-slice metrics of the candidate and the baseline model from a TFMA result."""
    import tensorflow_model_analysis as tfma  # all of TFMA (Beam): not for `leanline runs`

    metrics: dict[str, dict[str, float]] = {}
    for model in (CANDIDATE, BASELINE):
        result = tfma.load_eval_result(evaluation_uri, model_name=model)
        for slice_key, by_output in result.slicing_metrics:
            if slice_key:
                continue
            for by_sub_key in by_output.values():
                for values in by_sub_key.values():
                    metrics[model] = {
                        name: value["doubleValue"]
                        for name, value in values.items()
                        if "doubleValue" in value
                    }
    return metrics


def summarize(config: LeanlineConfig, metadata_path: Path, wall_seconds: float) -> RunSummary:
    """The summary of the latest run recorded in `metadata_path`."""
    run = RunSummary(
        pipeline=config.name,
        run_id=None,
        wall_seconds=round(wall_seconds, 1),
        components=[],
        blessings={},
        pushed=False,
        pushed_version=None,
        pushed_path=None,
        not_pushed_reason=None,
        eval_metrics={},
        rows={},
        compression={},
        gated_format=TFLITE_FORMAT
        if gates_judge_tflite(config.model, config.compression)
        else SAVED_MODEL_FORMAT,
    )
    if not metadata_path.exists():
        return run
    store = open_store(metadata_path)
    context = latest_run_context(store, config.name)
    if context is None:
        return run
    run.run_id = context.name
    executions = sorted(
        store.get_executions_by_context(context.id), key=lambda e: e.create_time_since_epoch
    )
    for execution in executions:
        node = node_id(store, execution.id)
        seconds = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000
        run.components.append(
            ComponentRun(
                node, STATE_NAMES.get(execution.last_known_state, "unknown"), round(seconds, 1)
            )
        )
        produced = outputs(store, execution.id)
        if node == STATISTICS_GEN and produced.get("statistics"):
            run.rows = _row_counts(produced["statistics"][0].uri)
        elif node in (
            EVALUATE_COMPRESSION,
            SLICE_GATE,
            EVALUATE_VS_BLESSED,
            EVALUATE_TFLITE_VS_BLESSED,
        ):
            blessing = (produced.get("blessing") or [None])[0]
            if blessing is not None:
                run.blessings[node] = property_value(blessing.custom_properties, "blessed") == 1
                failures = property_value(blessing.custom_properties, SLICE_FAILURES_PROPERTY)
                run.slice_failures += (failures or "").splitlines()
            evaluation = (produced.get("evaluation") or [None])[0]
            if evaluation is not None and node == EVALUATE_COMPRESSION:
                run.eval_metrics = _overall_metrics(evaluation.uri)
        elif node == TRAINER and produced.get("model_run"):
            run.training = _training(produced["model_run"][0].uri)
        elif node == COMPRESSOR and produced.get("compression_report"):
            run.compression = custom_properties(produced["compression_report"][0])
        elif node == SERVING_PUSHER and produced.get("pushed_model"):
            pushed = produced["pushed_model"][0].custom_properties
            run.pushed = property_value(pushed, PUSHED_PROPERTY) == 1
            run.pushed_version = property_value(pushed, PUSHED_VERSION_PROPERTY)
            run.pushed_path = property_value(pushed, PUSHED_DESTINATION_PROPERTY)
            run.not_pushed_reason = property_value(pushed, NOT_PUSHED_REASON_PROPERTY)
            run.already_pushed = property_value(pushed, ALREADY_PUSHED_PROPERTY) == 1
    if not run.pushed and run.not_pushed_reason is None:
        run.not_pushed_reason = _why_not_pushed(run, config)
    run.gate_resolution = resolution_words(config, run.rows.get("eval", 0))
    return run


def artifact_json(artifact_uri: str, file_name: str) -> Any | None:
    """The JSON file `file_name` of an artifact, parsed; None when it has none. Read
    through TensorFlow's file system: on Kubeflow the artifact is in a bucket."""
    # TensorFlow's file systems: not for `leanline runs`, which reads MLMD only.
    import tensorflow as tf

    path = os.path.join(artifact_uri, file_name)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _training(model_run_uri: str) -> dict[str, Any]:
    """history.json's settings (the Trainer's ModelRun artifact), without the epochs."""
    from models.common.train import HISTORY_FILE  # TFX: not for `leanline runs`

    history = artifact_json(model_run_uri, HISTORY_FILE) or {}
    return {key: value for key, value in history.items() if key != "epochs"}


def _why_not_pushed(run: RunSummary, config: LeanlineConfig) -> str:
    from pipeline.evaluation import gate_words  # TFMA protos: not for `leanline runs`

    thresholds = config.evaluation.thresholds
    if run.blessings.get(EVALUATE_COMPRESSION) is False:
        gate = gate_words(thresholds, thresholds.vs_uncompressed, "the uncompressed model")
        return f"{EVALUATE_COMPRESSION} did not bless the compressed model: {gate}"
    if run.slice_failures:
        return "the slice gate refused the compressed model: " + "; ".join(run.slice_failures)
    return "the pipeline did not reach the pusher"


def write(run: RunSummary, output_dir: Path) -> Path:
    path = output_dir / SUMMARY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(run.to_json() + "\n")
    os.replace(tmp, path)
    return path


def format_table(run: RunSummary) -> str:
    lines = [f"leanline run {run.run_id} of {run.pipeline!r}: {run.wall_seconds:.1f} s"]
    result = run.result()
    shipped, model_part = tflite_figures(run.compression)
    pushed = f"pushed as version {run.pushed_version}" if run.pushed else "not pushed"
    if shipped is not None:
        lines.append(f"  shipped: {shipped.words()}; {pushed}")
    if model_part is not None:
        lines.append(f"  model part: {model_part.words()}")
    if result["compression_recipe"]:
        searched = (
            f", chosen by the search in {result['search_trials']} trials"
            if result["search_trials"]
            else ""
        )
        lines.append(f"  recipe: {result['compression_recipe']}{searched}")
    width = max((len(c.id) for c in run.components), default=10)
    for component in run.components:
        lines.append(f"  {component.id:<{width}}  {component.status:<9} {component.seconds:7.1f} s")
    if run.rows:
        lines.append(
            "  rows: " + ", ".join(f"{split} {count}" for split, count in run.rows.items())
        )
    for model, metrics in run.eval_metrics.items():
        shown = ", ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items()))
        role = _MODEL_ROLES.get(model, model)
        lines.append(f"  {role} {run.gated_format}: {shown}")
    if run.blessings:
        lines.append(f"  gates: {blessings_words(run.blessings)}")
    lines += [f"  slice gate: {failure}" for failure in run.slice_failures]
    if run.training.get("schedule_reason"):
        best = run.training.get("best_epoch")
        lines.append(
            f"  training: {run.training['schedule_reason']}"
            + (f"; ran {run.training['epochs_run']}, kept epoch {best}" if best else "")
        )
    lines += [f"  gate resolution: {words}" for words in run.gate_resolution]
    lines += [f"  note: {note}" for note in run.input_notes]
    if run.pushed:
        lines.append(f"  pushed version {run.pushed_version} to {run.pushed_path}")
    else:
        lines.append(f"  not pushed: {run.error or run.not_pushed_reason}")
    return "\n".join(lines)
