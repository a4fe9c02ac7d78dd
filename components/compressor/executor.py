"""Compressor executor: compresses the Trainer's model and proves what it cost.

Reads the plain Keras model from the Trainer's Model artifact (`keras_model.keras`),
fine-tunes it on Transform's train split while pruning and/or quantizing it
(models/common/compression.py), after distilling a smaller student from it where the
config asks (models/common/distillation.py), or lets the compression search choose all
of that (models/common/search.py) on train rows held out of training. Only then does it
read the eval split, for the report. It writes:

- compressed_model: `Format-Serving/` (the compressed model behind the same transform
  graph and signatures as the Trainer's, so TF Serving and TFMA treat both alike),
  `Format-TFLite/model.tflite` (the end-to-end TFLite of models.common.end_to_end: raw
  features in, where the family has a builtin Transform; else the model alone) and
  `Format-TFLite/transformed_inputs.tflite` (the model alone, on Transform's outputs);
  for text, whose TFLite takes token ids, `Format-TFLite/tokenizer.json` and
  `vocabulary.txt` beside it (models/text/tokenized_tflite.py);
  with an end-to-end TFLite, a copy of it as `Format-Serving/tflite`, where TFMA reads a
  `tf_lite` model (beside the SavedModel, whose `transform_features` gives TFMA labels);
- float_model and tflite_examples, with an end-to-end TFLite: the Trainer's SavedModel
  with the float end-to-end TFLite laid out the same way (the compression gate's
  baseline), and the eval split with the TFLite's inputs added (tflite_examples.py);
- compression_report: `report.json` and `report.md` (float vs compressed sizes,
  sparsity, quality and latency on eval rows, of the model part and of the end-to-end
  TFLite; the search's trials), with the headline numbers of both, what the shipped
  `model.tflite` takes, and the recipe also set as the artifact's custom properties so a
  run summary can read them from MLMD.

With `compression.enabled: false` the Trainer's serving model is copied unchanged,
next to its float TFLite conversion, and the report says so.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifact_utils
from tfx.utils import io_utils, json_utils, path_utils

from components.compressor.spec import (
    COMPRESSED_MODEL_KEY,
    COMPRESSED_TFLITE_ZIPPED_PROPERTY,
    COMPRESSION_REPORT_KEY,
    CUSTOM_CONFIG_KEY,
    ENABLED_PROPERTY,
    END_TO_END_AGREEMENT_PROPERTY,
    END_TO_END_FLOAT_PROPERTIES,
    END_TO_END_KEY,
    END_TO_END_PREFIX,
    EVAL_ROWS_PROPERTY,
    EXAMPLES_KEY,
    FLOAT_MODEL_KEY,
    FLOAT_PROPERTIES,
    FLOAT_TFLITE_ZIPPED_PROPERTY,
    MODEL_KEY,
    QUALITY_METRIC_PROPERTY,
    RAW_EXAMPLES_KEY,
    RAW_INPUTS,
    RECIPE_PROPERTY,
    REPORT_JSON,
    REPORT_MARKDOWN,
    SEARCH_KEY,
    SEARCH_TRIALS_PROPERTY,
    SHIPPED_TFLITE_INPUTS_PROPERTY,
    TFLITE_DIR,
    TFLITE_EXAMPLES_KEY,
    TFLITE_INPUTS_PROPERTY,
    TFMA_TFLITE_FILE,
    TOKEN_IDS_INPUTS,
    TOKENIZED_TFLITE_KEY,
    TRANSFORM_GRAPH_KEY,
    TRANSFORMED_INPUTS,
    TRANSFORMED_INPUTS_TFLITE_FILE,
    tflite_model_path,
)
from components.compressor.tflite_examples import write_tflite_examples
from models.common import compression, compression_report, measurement, tflite
from models.common.compress import compress_as_configured
from models.common.data import read_split_examples
from models.common.end_to_end import EndToEnd, build_end_to_end, end_to_end_markdown
from models.common.export import export_serving_model, keras_model_path
from models.common.search import SearchResult
from models.config import CompressionConfig, ModelConfig, gates_judge_tflite
from models.custom.loader import load_module
from models.custom_config import compression_config, model_config, training_config
from models.text.tokenized_tflite import (
    check_tokenizer,
    tokenized_markdown,
    write_model_tokenizer,
)


def _write_tflite(model_uri: str, model_only: bytes, end_to_end: EndToEnd | None) -> None:
    io_utils.write_bytes_file(
        os.path.join(model_uri, TFLITE_DIR, TRANSFORMED_INPUTS_TFLITE_FILE), model_only
    )
    shipped = model_only if end_to_end is None else end_to_end.compressed_tflite
    io_utils.write_bytes_file(tflite_model_path(model_uri), shipped)
    if end_to_end is not None:
        io_utils.write_bytes_file(tfma_tflite_path(model_uri), shipped)


def tfma_tflite_path(model_uri: str) -> str:
    """Where TFMA reads a Model artifact's `tf_lite` model."""
    return os.path.join(path_utils.serving_model_path(model_uri), TFMA_TFLITE_FILE)


def _raw_eval_examples(
    input_dict: dict[str, list[types.Artifact]], model: ModelConfig, config: CompressionConfig
) -> tf.Tensor | None:
    """The raw eval examples the shipped TFLite is checked on, where it takes raw
    features or token ids and the raw examples are wired in."""
    if not input_dict.get(RAW_EXAMPLES_KEY):
        return None
    if not (gates_judge_tflite(model, config) or model.tflite_takes_token_ids):
        return None
    uri = input_dict[RAW_EXAMPLES_KEY][0].uri
    return tf.constant(read_split_examples(uri, config.report_examples), tf.string)


def _record_agreement(artifact: types.Artifact, summary: dict[str, Any]) -> None:
    """The class agreement of the shipped TFLite with the SavedModel, which the pusher
    gates on (a regressor has none)."""
    agreed = summary["agreement_with_saved_model"].get("class_agreement")
    if agreed is not None:
        artifact.set_float_custom_property(END_TO_END_AGREEMENT_PROPERTY, agreed)


def _end_to_end(
    raw_eval_examples: tf.Tensor | None,
    float_model: keras.Model,
    compressed: compression.CompressedModel,
    compressed_artifact: types.Artifact,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
    config: CompressionConfig,
) -> EndToEnd | None:
    """The end-to-end TFLite models, where the config has them (`gates_judge_tflite`) and
    the raw examples are wired in; records which TFLite the artifact ships."""
    end_to_end = None
    if gates_judge_tflite(model, config) and raw_eval_examples is not None:
        end_to_end = build_end_to_end(
            float_model,
            compressed,
            path_utils.serving_model_path(compressed_artifact.uri),
            tf_transform_output,
            model,
            raw_eval_examples,
        )
    compressed_artifact.set_string_custom_property(
        TFLITE_INPUTS_PROPERTY, TRANSFORMED_INPUTS if end_to_end is None else RAW_INPUTS
    )
    if end_to_end is not None:
        _record_agreement(compressed_artifact, end_to_end.summary)
    return end_to_end


def _write_tokenizer(
    compressed_artifact: types.Artifact,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
) -> str | None:
    """Beside a TFLite on token ids (family text), its tokenizer; the directory, None
    for other families."""
    if not model.tflite_takes_token_ids:
        return None
    directory = os.path.join(compressed_artifact.uri, TFLITE_DIR)
    write_model_tokenizer(directory, tf_transform_output, model)
    compressed_artifact.set_string_custom_property(TFLITE_INPUTS_PROPERTY, TOKEN_IDS_INPUTS)
    return directory


def _write_float_model(model_uri: str, float_artifact: types.Artifact, float_tflite: bytes) -> None:
    """The compression gate's baseline: the Trainer's SavedModel (for TFMA's labels) with
    the float end-to-end TFLite where TFMA reads it."""
    io_utils.copy_dir(
        path_utils.serving_model_path(model_uri),
        path_utils.serving_model_path(float_artifact.uri),
    )
    io_utils.write_bytes_file(tfma_tflite_path(float_artifact.uri), float_tflite)
    float_artifact.set_string_custom_property(TFLITE_INPUTS_PROPERTY, RAW_INPUTS)


def _write_report(report_uri: str, report: dict[str, Any], markdown: str) -> None:
    io_utils.write_string_file(
        os.path.join(report_uri, REPORT_JSON), json.dumps(report, indent=2) + "\n"
    )
    io_utils.write_string_file(os.path.join(report_uri, REPORT_MARKDOWN), markdown)


def _pass_through(
    float_model: keras.Model,
    model_uri: str,
    compressed: types.Artifact,
    report: types.Artifact,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
) -> None:
    """Compression disabled: the Trainer's serving model as it is, plus its float TFLite
    (and the tokenizer a TFLite on token ids needs)."""
    io_utils.copy_dir(
        path_utils.serving_model_path(model_uri), path_utils.serving_model_path(compressed.uri)
    )
    float_tflite = tflite.to_tflite(float_model)
    _write_tflite(compressed.uri, float_tflite, end_to_end=None)
    compressed.set_string_custom_property(TFLITE_INPUTS_PROPERTY, TRANSFORMED_INPUTS)
    _write_tokenizer(compressed, tf_transform_output, model)
    size = measurement.tflite_size(float_tflite)
    message = "compression.enabled is false: the Trainer's model is passed on unchanged"
    _write_report(
        report.uri,
        {"enabled": False, "message": message, "float_tflite": size.__dict__},
        f"# Compression report\n\n{message}; its float TFLite is {size.bytes} bytes "
        f"({size.zipped_bytes} zipped).\n",
    )
    report.set_int_custom_property(ENABLED_PROPERTY, 0)
    report.set_float_custom_property("tflite_zipped_ratio", 1.0)
    report.set_float_custom_property("quality_change", 0.0)
    report.set_int_custom_property(FLOAT_TFLITE_ZIPPED_PROPERTY, size.zipped_bytes)
    report.set_int_custom_property(COMPRESSED_TFLITE_ZIPPED_PROPERTY, size.zipped_bytes)
    _record_shipped_inputs(report, compressed)


def _record_shipped_inputs(report_artifact: types.Artifact, compressed: types.Artifact) -> None:
    """What the shipped `model.tflite` takes, so that a reader of the report's properties
    knows which figures are the shipped file's."""
    report_artifact.set_string_custom_property(
        SHIPPED_TFLITE_INPUTS_PROPERTY,
        compressed.get_string_custom_property(TFLITE_INPUTS_PROPERTY),
    )


def _record_headline(report_artifact: types.Artifact, report: compression_report.Report) -> None:
    """The model part's figures."""
    report_artifact.set_int_custom_property(ENABLED_PROPERTY, 1)
    report_artifact.set_string_custom_property(QUALITY_METRIC_PROPERTY, report.quality_metric)
    for name in FLOAT_PROPERTIES:
        report_artifact.set_float_custom_property(name, report.headline[name])
    report_artifact.set_int_custom_property(
        FLOAT_TFLITE_ZIPPED_PROPERTY, report.sizes["float_tflite"].zipped_bytes
    )
    report_artifact.set_int_custom_property(
        COMPRESSED_TFLITE_ZIPPED_PROPERTY, report.sizes["compressed_tflite"].zipped_bytes
    )
    report_artifact.set_int_custom_property(EVAL_ROWS_PROPERTY, report.eval_examples)


def _record_end_to_end(report_artifact: types.Artifact, summary: dict[str, Any]) -> None:
    """The end-to-end TFLite's figures (models.common.end_to_end's summary): the shipped
    file against the float end-to-end TFLite, zipped as the model part's are."""
    for name in END_TO_END_FLOAT_PROPERTIES:
        report_artifact.set_float_custom_property(
            END_TO_END_PREFIX + name, summary["headline"][name]
        )
    for name, variant in (
        (FLOAT_TFLITE_ZIPPED_PROPERTY, "float_tflite"),
        (COMPRESSED_TFLITE_ZIPPED_PROPERTY, "compressed_tflite"),
    ):
        report_artifact.set_int_custom_property(
            END_TO_END_PREFIX + name, summary["sizes"][variant]["zipped_bytes"]
        )
    report_artifact.set_int_custom_property(
        END_TO_END_PREFIX + EVAL_ROWS_PROPERTY, summary["eval_rows"]
    )


def _write_full_report(
    report_uri: str,
    report: compression_report.Report,
    searched: SearchResult | None,
    end_to_end: EndToEnd | None,
    tokenized: dict[str, Any] | None,
) -> None:
    """report.json and report.md: the measured report, then the search's trials, the
    end-to-end TFLite's figures and the tokenizer's check, where the run has them."""
    report_json = report.to_json()
    markdown = report.to_markdown()
    if searched is not None:
        report_json[SEARCH_KEY] = searched.to_json()
        markdown += "\n" + searched.markdown()
    if end_to_end is not None:
        report_json[END_TO_END_KEY] = end_to_end.summary
        markdown += end_to_end_markdown(end_to_end.summary)
    if tokenized is not None:
        report_json[TOKENIZED_TFLITE_KEY] = tokenized
        markdown += tokenized_markdown(tokenized)
    _write_report(report_uri, report_json, markdown)


def _record_report(
    report_artifact: types.Artifact,
    report: compression_report.Report,
    compressed_artifact: types.Artifact,
    searched: SearchResult | None,
    end_to_end: EndToEnd | None,
) -> None:
    """The compression report's custom properties, which the run summary reads."""
    _record_headline(report_artifact, report)
    _record_shipped_inputs(report_artifact, compressed_artifact)
    if end_to_end is not None:
        _record_end_to_end(report_artifact, end_to_end.summary)
    report_artifact.set_string_custom_property(RECIPE_PROPERTY, report.recipe)
    if searched is not None:
        report_artifact.set_int_custom_property(
            SEARCH_TRIALS_PROPERTY,
            sum(trial.zipped_bytes is not None for trial in searched.trials),
        )


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        custom_config = json_utils.loads(exec_properties.get(CUSTOM_CONFIG_KEY) or "null")
        config = compression_config(custom_config)
        model_uri = artifact_utils.get_single_uri(input_dict[MODEL_KEY])
        compressed_artifact = artifact_utils.get_single_instance(output_dict[COMPRESSED_MODEL_KEY])
        report_artifact = artifact_utils.get_single_instance(output_dict[COMPRESSION_REPORT_KEY])
        model = model_config(custom_config)
        if model.module:
            # Registers the module's custom Keras objects, which loading the model needs.
            load_module(model.module, model.module_sha256)
        float_model = keras.models.load_model(
            keras_model_path(path_utils.serving_model_path(model_uri)), compile=False
        )
        tf_transform_output = tft.TFTransformOutput(
            artifact_utils.get_single_uri(input_dict[TRANSFORM_GRAPH_KEY])
        )
        if not config.enabled:
            _pass_through(
                float_model,
                model_uri,
                compressed_artifact,
                report_artifact,
                tf_transform_output,
                model,
            )
            return

        examples = input_dict[EXAMPLES_KEY]
        # The eval split is read only once the model is chosen: the search never sees it.
        inputs = compression.compression_inputs(
            os.path.join(standard_artifact_utils.get_split_uri(examples, "train"), "*"),
            tf_transform_output,
            model,
            training_config(custom_config),
            config,
        )
        compressed, recipe, searched = compress_as_configured(
            float_model, model, config, inputs, tf_transform_output
        )
        report = compression_report.measure(
            float_model,
            compressed,
            recipe,
            compression.report_rows(
                os.path.join(standard_artifact_utils.get_split_uri(examples, "eval"), "*"),
                tf_transform_output,
                config.report_examples,
            ),
            model,
        )
        export_serving_model(
            compressed.keras_model,
            tf_transform_output,
            path_utils.serving_model_path(compressed_artifact.uri),
            model.label.column,
        )
        raw_eval_examples = _raw_eval_examples(input_dict, model, config)
        end_to_end = _end_to_end(
            raw_eval_examples,
            float_model,
            compressed,
            compressed_artifact,
            tf_transform_output,
            model,
            config,
        )
        _write_tflite(compressed_artifact.uri, compressed.tflite, end_to_end)
        tokenizer_dir = _write_tokenizer(compressed_artifact, tf_transform_output, model)
        tokenized = None
        if tokenizer_dir is not None and raw_eval_examples is not None:
            tokenized = check_tokenizer(
                tokenizer_dir,
                compressed.tflite,
                path_utils.serving_model_path(compressed_artifact.uri),
                tf_transform_output,
                model,
                raw_eval_examples,
            )
            _record_agreement(compressed_artifact, tokenized)
        if end_to_end is not None:
            _write_float_model(
                model_uri,
                artifact_utils.get_single_instance(output_dict[FLOAT_MODEL_KEY]),
                end_to_end.float_tflite,
            )
            with self._make_beam_pipeline() as pipeline:
                write_tflite_examples(
                    pipeline,
                    artifact_utils.get_single_instance(input_dict[RAW_EXAMPLES_KEY]),
                    artifact_utils.get_single_instance(output_dict[TFLITE_EXAMPLES_KEY]),
                    {
                        name: spec.dtype
                        for name, spec in tf_transform_output.raw_feature_spec().items()
                    },
                )
        _write_full_report(report_artifact.uri, report, searched, end_to_end, tokenized)
        _record_report(report_artifact, report, compressed_artifact, searched, end_to_end)
