"""The text family's TFLite model takes token ids: TFLite's builtin ops have no string
ops to tokenize with. A run ships the tokenizer beside it (models.text.tokenizer), and
this checks the pair as a client would use it: texts of eval rows through the shipped
tokenizer files, the ids through the TFLite model, against the served SavedModel on
the same tf.Examples (raw text in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.common.end_to_end import agreement
from models.common.export import (
    OUTPUTS_KEY,
    SERVING_DEFAULT_SIGNATURE,
    TRANSFORM_FEATURES_SIGNATURE,
)
from models.common.measurement import predict_in_batches
from models.common.tflite import TfliteModel
from models.text.preprocessing import TOKEN_IDS_KEY, TOKENS_VOCABULARY
from models.text.tokenizer import (
    TOKENIZER_FILE,
    Tokenizer,
    TokenizerRule,
    write_tokenizer,
)
from pipeline.config import ModelConfig


def eval_texts(
    examples: tf.Tensor, tf_transform_output: tft.TFTransformOutput, column: str
) -> list[str]:
    """The text column of serialized tf.Examples, "" where a row has none."""
    feature = tf_transform_output.raw_feature_spec()[column]
    parsed = tf.io.parse_example(examples, {column: tf.io.VarLenFeature(feature.dtype)})[column]
    values = parsed.values if feature.dtype == tf.string else tf.strings.as_string(parsed.values)
    texts = tf.sparse.to_dense(
        tf.SparseTensor(parsed.indices, values, parsed.dense_shape), default_value=""
    )
    return [row[0].decode("utf-8") if len(row) else "" for row in texts.numpy()]


def ship_tokenizer(
    directory: str,
    compressed_tflite: bytes,
    saved_model_dir: str,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
    eval_examples: tf.Tensor,
) -> dict[str, Any]:
    """Writes the tokenizer to `directory` (beside the TFLite model) and checks it with
    the TFLite model against the SavedModel `saved_model_dir` on `eval_examples`.

    Returns the report's summary: the rule, the share of rows whose ids equal
    Transform's, and the class agreement of TFLite-on-shipped-ids with the SavedModel.
    """
    rule = TokenizerRule(max_tokens=model.encoder.max_tokens, oov_buckets=model.oov_buckets)
    write_tokenizer(directory, tf_transform_output.vocabulary_file_by_name(TOKENS_VOCABULARY), rule)
    tokenizer = Tokenizer.read(directory)  # the files as shipped
    (column,) = model.features.text
    ids = tokenizer(eval_texts(eval_examples, tf_transform_output, column))
    saved_model = tf.saved_model.load(saved_model_dir)
    transformed = saved_model.signatures[TRANSFORM_FEATURES_SIGNATURE](examples=eval_examples)
    served = saved_model.signatures[SERVING_DEFAULT_SIGNATURE](examples=eval_examples)
    tflite_outputs = predict_in_batches(TfliteModel(compressed_tflite), {TOKEN_IDS_KEY: ids})
    same_ids = np.all(ids == transformed[TOKEN_IDS_KEY].numpy(), axis=1)
    return {
        "inputs": {TOKEN_IDS_KEY: f"int64 [batch, {rule.max_tokens}]"},
        "tokenizer_files": [TOKENIZER_FILE, rule.vocabulary_file],
        "rule": asdict(rule),
        "vocabulary_size": tf_transform_output.vocabulary_size_by_name(TOKENS_VOCABULARY),
        "eval_rows": len(ids),
        "rows_with_transform_ids": float(same_ids.mean()),
        "agreement_with_saved_model": agreement(tflite_outputs, served[OUTPUTS_KEY].numpy(), model),
    }


def tokenized_markdown(summary: Mapping[str, Any]) -> str:
    """The compression report's section on the token-id TFLite and its tokenizer."""
    agreed = ", ".join(
        f"{name} {value:.4f}" for name, value in summary["agreement_with_saved_model"].items()
    )
    return "\n".join(
        [
            "",
            "## TFLite on token ids, with its tokenizer",
            "",
            f"The compressed TFLite takes token ids ({', '.join(summary['inputs'])}: "
            f"{', '.join(summary['inputs'].values())}); TFLite's builtin ops cannot tokenize. "
            f"Shipped beside it: {' and '.join(summary['tokenizer_files'])} (the rule, "
            f"{summary['vocabulary_size']} vocabulary entries). Checked on "
            f"{summary['eval_rows']} eval rows as a client would use them: the shipped "
            f"tokenizer gives Transform's ids on {100 * summary['rows_with_transform_ids']:.2f}% "
            f"of rows; TFLite on those ids against the compressed SavedModel on the raw text: "
            f"{agreed}.",
            "",
        ]
    )
