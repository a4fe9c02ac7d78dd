"""How text becomes token ids, once in TensorFlow (inside Transform) and once in plain
Python (for clients of the TFLite model, which takes token ids).

The rule: lowercase A-Z (other letters stay as written: TensorFlow's and Python's
Unicode case mappings differ), every Unicode punctuation mark or symbol becomes a
space, split on ASCII whitespace; look each token up in the vocabulary (the
`vocab_size` most frequent tokens of the train split) and truncate or pad to
`max_tokens` ids. Ids: PAD_ID for padding, 1..len(vocabulary) for the vocabulary's
tokens in file order, then `oov_buckets` ids for tokens outside it (a fingerprint of
the token picks one, TFT's rule). TFLite's builtin ops have no string ops, so a run
ships this rule (`tokenizer.json`) and the vocabulary file beside the TFLite model, and
the Compressor checks that `Tokenizer` gives Transform's ids on eval rows.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

# The padding token: reserved first in the vocabulary, so its id is 0. Lowercasing and
# punctuation stripping keep any text from producing it.
PAD_TOKEN = "[PAD]"
PAD_ID = 0
# RE2's Unicode classes: punctuation (P*) and symbols (S*).
PUNCTUATION_PATTERN = r"[\p{P}\p{S}]"
PUNCTUATION_CATEGORIES = ("P", "S")
TOKENIZER_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocabulary.txt"


def tokens(texts: tf.Tensor) -> tf.RaggedTensor:
    """The tokens of each text of a [batch] string tensor, by the rule above."""
    lowered = tf.strings.lower(texts)  # without an encoding: A-Z only
    spaced = tf.strings.regex_replace(lowered, PUNCTUATION_PATTERN, " ")
    return tf.strings.split(spaced)


def python_tokens(text: str) -> list[bytes]:
    """`tokens` of one text, in plain Python: the same bytes, op for op."""
    lowered = text.encode("utf-8").lower().decode("utf-8")  # bytes.lower(): A-Z only
    spaced = "".join(
        " " if unicodedata.category(char).startswith(PUNCTUATION_CATEGORIES) else char
        for char in lowered
    )
    return spaced.encode("utf-8").split()  # bytes.split(): ASCII whitespace only


@dataclass(frozen=True)
class TokenizerRule:
    """What `tokenizer.json` says: enough to turn text into the model's input ids."""

    max_tokens: int
    oov_buckets: int
    vocabulary_file: str = VOCABULARY_FILE
    pad_id: int = PAD_ID
    lowercase: str = "A-Z only"
    punctuation: str = "Unicode categories P* and S* become spaces"
    split: str = "ASCII whitespace"
    # Tokens outside the vocabulary, with more than one OOV bucket.
    out_of_vocabulary: str = (
        "len(vocabulary) + tf.strings.to_hash_bucket_fast(token, oov_buckets) "
        "(FarmHash Fingerprint64 modulo oov_buckets)"
    )


class Tokenizer:
    """Text to the model's input ids, off the graph, from a tokenizer directory."""

    def __init__(self, rule: TokenizerRule, vocabulary: Sequence[bytes]):
        self.rule = rule
        # Line i of the vocabulary file is id i (PAD_TOKEN first).
        self._ids = {token: index for index, token in enumerate(vocabulary)}
        self._size = len(vocabulary)

    @classmethod
    def read(cls, directory: str) -> Tokenizer:
        """The tokenizer a run shipped in `directory` (a local path or a gs:// URI)."""
        with tf.io.gfile.GFile(os.path.join(directory, TOKENIZER_FILE)) as handle:
            rule = TokenizerRule(**json.load(handle))
        with tf.io.gfile.GFile(os.path.join(directory, rule.vocabulary_file), "rb") as handle:
            return cls(rule, handle.read().splitlines())

    def _id(self, token: bytes) -> int:
        found = self._ids.get(token)
        if found is not None:
            return found
        if self.rule.oov_buckets == 1:
            return self._size
        bucket = tf.strings.to_hash_bucket_fast(token, self.rule.oov_buckets).numpy()
        return self._size + int(bucket)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), max_tokens] int64 ids."""
        ids = np.full((len(texts), self.rule.max_tokens), self.rule.pad_id, np.int64)
        for row, text in enumerate(texts):
            found = [self._id(token) for token in python_tokens(text)[: self.rule.max_tokens]]
            ids[row, : len(found)] = found
        return ids


def write_tokenizer(directory: str, vocabulary_file: str, rule: TokenizerRule) -> None:
    """Writes `tokenizer.json` and a copy of Transform's vocabulary file to `directory`."""
    tf.io.gfile.makedirs(directory)
    tf.io.gfile.copy(vocabulary_file, os.path.join(directory, rule.vocabulary_file), overwrite=True)
    with tf.io.gfile.GFile(os.path.join(directory, TOKENIZER_FILE), "w") as handle:
        handle.write(json.dumps(asdict(rule), indent=2) + "\n")
