"""The text family's TFLite model takes token ids: TFLite's builtin ops have no string
ops to tokenize with. A run ships the tokenizer beside it (models.text.tokenizer), and
this checks the pair as a client would use it: texts of eval rows through the shipped
tokenizer files, the ids through the TFLite model, against the served SavedModel on
the same tf.Examples (raw text in).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from models.config import ModelConfig
from models.text.preprocessing import TOKEN_IDS_KEY, TOKENS_VOCABULARY, texts_of
from models.text.tokenizer import Tokenizer, TokenizerRule, write_tokenizer


def eval_texts(examples: tf.Tensor, column: str, dtype: tf.dtypes.DType) -> list[str]:
    """The text column of serialized tf.Examples as Transform reads it (texts_of)."""
    parsed = tf.io.parse_example(examples, {column: tf.io.VarLenFeature(dtype)})[column]
    return [text.decode("utf-8") for text in texts_of(parsed).numpy()]


def write_model_tokenizer(
    directory: str, tf_transform_output: tft.TFTransformOutput, model: ModelConfig
) -> TokenizerRule:
    """Writes the model's tokenizer (rule and Transform's vocabulary) to `directory`."""
    rule = TokenizerRule(max_tokens=model.encoder.max_tokens, oov_buckets=model.oov_buckets)
    write_tokenizer(directory, tf_transform_output.vocabulary_file_by_name(TOKENS_VOCABULARY), rule)
    return rule


def check_tokenizer(
    directory: str,
    compressed_tflite: bytes,
    saved_model_dir: str,
    tf_transform_output: tft.TFTransformOutput,
    model: ModelConfig,
    eval_examples: tf.Tensor,
) -> dict[str, Any]:
    """Checks the tokenizer shipped in `directory` with the TFLite model against the
    SavedModel `saved_model_dir` on `eval_examples`: the shipped rule must give
    Transform's ids on every row (ValueError: a leanline bug), and the report's summary
    holds the class agreement of TFLite-on-shipped-ids with the SavedModel."""
    tokenizer = Tokenizer.read(directory)  # the files as shipped
    (column,) = model.features.text
    dtype = tf_transform_output.raw_feature_spec()[column].dtype
    ids = tokenizer(eval_texts(eval_examples, column, dtype))
    saved_model = tf.saved_model.load(saved_model_dir)
    transformed = saved_model.signatures[TRANSFORM_FEATURES_SIGNATURE](examples=eval_examples)
    differ = np.flatnonzero(np.any(ids != transformed[TOKEN_IDS_KEY].numpy(), axis=1))
    if len(differ):
        raise ValueError(
            f"the shipped tokenizer gives other token ids than Transform on {len(differ)} of "
            f"{len(ids)} eval rows (first: row {differ[0]}): a leanline bug, please report it"
        )
    served = saved_model.signatures[SERVING_DEFAULT_SIGNATURE](examples=eval_examples)
    tflite_outputs = predict_in_batches(TfliteModel(compressed_tflite), {TOKEN_IDS_KEY: ids})
    rule = tokenizer.rule
    return {
        "inputs": {TOKEN_IDS_KEY: f"int64 [batch, {rule.max_tokens}]"},
        "tokenizer_files": rule.files,
        "max_tokens": rule.max_tokens,
        "oov_buckets": rule.oov_buckets,
        "separator_ranges": len(rule.separators),
        "vocabulary_size": tf_transform_output.vocabulary_size_by_name(TOKENS_VOCABULARY),
        "eval_rows": len(ids),
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
            "tokenizer gives Transform's ids on every row; TFLite on those ids against the "
            f"compressed SavedModel on the raw text: {agreed}.",
            "",
        ]
    )
