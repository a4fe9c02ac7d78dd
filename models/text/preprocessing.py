"""Text's Transform: the text column as `max_tokens` token ids (models.text.tokenizer),
and the label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.schema_inference import set_tensor_schema_override

from models.common.features import LABEL_KEY, transformed_name
from models.config import ModelConfig
from models.custom_config import model_config
from models.tabular.preprocessing import Tensor, dense, label
from models.text.tokenizer import PAD_ID, PAD_TOKEN, tokens

# The vocabulary's name among Transform's assets (tft_output.vocabulary_file_by_name).
TOKENS_VOCABULARY = "tokens"
TOKEN_IDS_KEY = transformed_name("tokens")


def texts_of(column: Tensor) -> tf.Tensor:
    """A text column as [batch] strings: "" where a row has none, numbers (a column
    that held only numbers is read as such) as `tf.strings.as_string` writes them."""
    if column.dtype != tf.string:
        as_text = tf.strings.as_string
        column = (
            tf.SparseTensor(column.indices, as_text(column.values), column.dense_shape)
            if isinstance(column, tf.SparseTensor)
            else as_text(column)
        )
    return dense(column, "")


def token_ids(column: Tensor, model: ModelConfig) -> tf.Tensor:
    """[batch, max_tokens] int64 ids of a text column (a missing text has none: all
    padding), with the id range recorded in the transformed schema for the model."""
    texts = texts_of(column)
    encoder = model.encoder
    ids = tft.compute_and_apply_vocabulary(
        tokens(texts),
        top_k=encoder.vocab_size,
        num_oov_buckets=model.oov_buckets,
        vocab_filename=TOKENS_VOCABULARY,
        reserved_tokens=[PAD_TOKEN],
    )
    padded = ids.to_tensor(default_value=PAD_ID, shape=[None, encoder.max_tokens])
    # Padding loses the range compute_and_apply_vocabulary recorded: record it again.
    vocabulary = tf.cast(tft.experimental.get_vocabulary_size_by_name(TOKENS_VOCABULARY), tf.int64)
    set_tensor_schema_override(padded, tf.constant(0, tf.int64), vocabulary + model.oov_buckets - 1)
    return padded


def preprocessing_fn(
    inputs: Mapping[str, Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """Transform's entry point: `tokens_xf` [batch, max_tokens] ids, and the label."""
    model = model_config(custom_config)
    (column,) = model.features.text
    return {
        TOKEN_IDS_KEY: token_ids(inputs[column], model),
        LABEL_KEY: label(inputs[model.label.column], model),
    }
