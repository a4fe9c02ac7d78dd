"""The one place that wires leanline's TFX pipeline: config in, `tfx.dsl.Pipeline` out.

Runners (pipeline/local_runner.py, kubeflow/runner.py) only choose where it runs.

    ExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator -> DataGate
      -> Transform -> Trainer -> Compressor
      -> EvaluateCompression (compressed vs the run's uncompressed model) [-> SliceGate]
      -> [blessed] EvaluateVsBlessed (compressed vs the last pushed model) -> ServingPusher

EvaluateVsBlessed runs only when the compression gate passed, and only its
blessings feed the last-blessed resolver, so "last blessed" always means a model
that passed both gates and was pushed.

Where the run ships an end-to-end TFLite (`gates_judge_tflite`), both gates judge that
TFLite, the file TF Serving serves with --prefer_tflite_model and devices run: against
the float end-to-end TFLite of the same run, then against the last pushed one, on the
Compressor's `tflite_examples`. Otherwise they judge the SavedModels.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from ml_metadata.proto import metadata_store_pb2

# The modules themselves, not `tfx.v1`: that facade also imports every TFX extension
# (the Vertex AI SDK, keras_tuner, the Kubernetes client), ~9 s per process.
from tfx.components import (
    CsvExampleGen,
    Evaluator,
    ExampleValidator,
    ImportExampleGen,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
)
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.experimental.conditionals.conditional import Cond
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from components.compressor.component import Compressor
from components.data_gate.component import DataGate
from components.serving_pusher.component import ServingPusher
from components.slice_gate.component import SliceGate
from models.config import gates_judge_tflite
from pipeline.config import LeanlineConfig, custom_config
from pipeline.evaluation import eval_config
from pipeline.layout import (
    EVALUATE_COMPRESSION,
    EVALUATE_TFLITE_VS_BLESSED,
    EVALUATE_VS_BLESSED,
    LATEST_BLESSED_RESOLVER,
    SERVING_DIR,
    SLICE_GATE,
    TFLITE_DIR,
)


def _input_config(data_path: str) -> tuple[str, example_gen_pb2.Input]:
    """ExampleGen reads a directory; a single file becomes its directory plus a pattern."""
    if data_path.endswith(("/", os.sep)) or os.path.isdir(data_path):
        base, pattern = data_path.rstrip("/"), "*"
    else:
        base, pattern = os.path.dirname(data_path), os.path.basename(data_path)
    return base, example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="all", pattern=pattern)]
    )


def example_gen_component(config: LeanlineConfig, data_path: str) -> base_component.BaseComponent:
    base, input_config = _input_config(data_path)
    split = config.data.split
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=split.train),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=split.eval),
            ]
        )
    )
    example_gen_class = CsvExampleGen if config.data.format == "csv" else ImportExampleGen
    return example_gen_class(
        input_base=base, input_config=input_config, output_config=output_config
    )


@dataclasses.dataclass(frozen=True)
class TrainingStages:
    """The components from the data to a trained model, shared by the pipeline,
    `leanline schema`, the tests and the benchmarks."""

    example_gen: base_component.BaseComponent
    statistics_gen: base_component.BaseComponent
    schema_gen: base_component.BaseComponent
    transform: base_component.BaseComponent
    trainer: base_component.BaseComponent

    @property
    def components(self) -> list[base_component.BaseComponent]:
        return [
            self.example_gen,
            self.statistics_gen,
            self.schema_gen,
            self.transform,
            self.trainer,
        ]


def training_stages(config: LeanlineConfig, data_path: str) -> TrainingStages:
    package = config.model.package
    example_gen = example_gen_component(config, data_path)
    examples = example_gen.outputs["examples"]
    statistics_gen = StatisticsGen(examples=examples)
    if config.data.schema_path:
        schema_gen = ImportSchemaGen(schema_file=config.resolve(config.data.schema_path))
    else:
        schema_gen = SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
        )
    schema = schema_gen.outputs["schema"]
    transform = Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=f"models.{package}.preprocessing.preprocessing_fn",
        custom_config=custom_config(config, ("model",)),
        # StatisticsGen already describes the data; Transform's own pre/post statistics
        # would roughly double its time and nothing reads them.
        disable_statistics=True,
        # TF1-style graph building: Transform traces preprocessing_fn about ten times,
        # and as tf.functions that cost grows with every raw input; on a 300-column table
        # the compat graph takes 0.43x the time (0.65x at 10 columns), with the same
        # outputs. See benchmarks/README.md, wide tables.
        force_tf_compat_v1=True,
    )
    trainer = Trainer(
        run_fn=f"models.{package}.model.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config=custom_config(config, ("model", "training")),
    )
    return TrainingStages(example_gen, statistics_gen, schema_gen, transform, trainer)


def create_pipeline(
    config: LeanlineConfig,
    *,
    data_path: str,
    pipeline_root: str,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    serving_root: str | None = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
) -> Pipeline:
    """The pipeline for `config`; pushes go to `<serving_root>/{serving,tflite}/<name>`
    (default: the config's output directory)."""
    serving_root = serving_root or str(config.output_path)

    stages = training_stages(config, data_path)
    examples = stages.example_gen.outputs["examples"]
    example_validator = ExampleValidator(
        statistics=stages.statistics_gen.outputs["statistics"],
        schema=stages.schema_gen.outputs["schema"],
    )
    data_gate = DataGate(anomalies=example_validator.outputs["anomalies"])
    stages.transform.add_upstream_node(data_gate)
    compressor = Compressor(
        model=stages.trainer.outputs["model"],
        transform_graph=stages.transform.outputs["transform_graph"],
        examples=stages.transform.outputs["transformed_examples"],
        raw_examples=examples,
        custom_config=custom_config(config),
    )
    compressed_model = compressor.outputs["compressed_model"]

    evaluation = config.evaluation
    judge_tflite = gates_judge_tflite(config.model, config.compression)
    if judge_tflite:
        evaluated_examples = compressor.outputs["tflite_examples"]
        uncompressed_model = compressor.outputs["float_model"]
    else:
        evaluated_examples, uncompressed_model = examples, stages.trainer.outputs["model"]
    evaluate_compression = Evaluator(
        examples=evaluated_examples,
        model=compressed_model,
        baseline_model=uncompressed_model,
        eval_config=eval_config(
            evaluation, evaluation.thresholds.vs_uncompressed, tflite=judge_tflite
        ),
    ).with_id(EVALUATE_COMPRESSION)
    compression_blessing = evaluate_compression.outputs["blessing"]
    gates = [evaluate_compression]
    if evaluation.thresholds.vs_slices is not None:
        slice_gate = SliceGate(
            evaluation=evaluate_compression.outputs["evaluation"],
            evaluator_blessing=compression_blessing,
            thresholds=evaluation.thresholds,
        ).with_id(SLICE_GATE)
        compression_blessing = slice_gate.outputs["blessing"]
        gates.append(slice_gate)

    vs_blessed_id = EVALUATE_TFLITE_VS_BLESSED if judge_tflite else EVALUATE_VS_BLESSED
    latest_blessed = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(
            type=standard_artifacts.Model,
            producer_component_id=compressor.id,
            output_key="compressed_model",
        ),
        model_blessing=Channel(
            type=standard_artifacts.ModelBlessing,
            producer_component_id=vs_blessed_id,
            output_key="blessing",
        ),
    ).with_id(LATEST_BLESSED_RESOLVER)

    with Cond(compression_blessing.future()[0].custom_property("blessed") == 1):
        evaluate_vs_blessed = Evaluator(
            examples=evaluated_examples,
            model=compressed_model,
            baseline_model=latest_blessed.outputs["model"],
            eval_config=eval_config(
                evaluation, evaluation.thresholds.vs_blessed, tflite=judge_tflite
            ),
        ).with_id(vs_blessed_id)
        pusher = ServingPusher(
            model=compressed_model,
            compression_blessing=compression_blessing,
            model_blessing=evaluate_vs_blessed.outputs["blessing"],
            # The evaluations let a refusal name the metric that failed.
            compression_evaluation=evaluate_compression.outputs["evaluation"],
            model_evaluation=evaluate_vs_blessed.outputs["evaluation"],
            examples=examples,
            serving_model_dir=os.path.join(serving_root, SERVING_DIR, config.name),
            tflite_model_dir=os.path.join(serving_root, TFLITE_DIR, config.name),
            warmup_requests=config.serving.warmup_requests,
            model_name=config.name,
            min_tflite_agreement=evaluation.thresholds.tflite_agreement,
        )

    return Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=[
            *stages.components,
            example_validator,
            data_gate,
            compressor,
            *gates,
            latest_blessed,
            evaluate_vs_blessed,
            pusher,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
