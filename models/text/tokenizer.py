"""How text becomes token ids, once in TensorFlow (inside Transform) and once in Python
(for clients of the TFLite model, which takes token ids).

The rule: lowercase A-Z (other letters stay as written: TensorFlow's and Python's
Unicode case mappings differ), every separator (Unicode punctuation, symbol or space
character) becomes a space, split on ASCII whitespace; look each token up in the
vocabulary (the `vocab_size` most frequent tokens of the train split) and truncate or
pad to `max_tokens` ids. Ids: PAD_ID for padding, 1..len(vocabulary) for the
vocabulary's tokens in file order, then `oov_buckets` ids for tokens outside it (a
fingerprint of the token picks one, TFT's rule). TFLite's builtin ops have no string
ops, so a run ships this rule (`tokenizer.json`) and the vocabulary file beside the
TFLite model, and the Compressor checks that `Tokenizer` gives Transform's ids on eval
rows. Which code points are separators depends on the Unicode tables of TensorFlow's
regex engine (RE2), not Python's (a Python release may be versions behind): the rule
ships them as code point ranges, read from RE2 itself.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from models.file_names import plain_file_name

# The padding token: reserved first in the vocabulary, so its id is 0. Lowercasing and
# separator stripping keep any text from producing it.
PAD_TOKEN = "[PAD]"
PAD_ID = 0
# RE2's Unicode classes: punctuation (P*), symbols (S*) and space separators (Z*).
SEPARATOR_PATTERN = r"[\p{P}\p{S}\p{Z}]"
TOKENIZER_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocabulary.txt"
_SURROGATES = (0xD800, 0xE000)  # not characters: UTF-8 cannot encode them


def tokens(texts: tf.Tensor) -> tf.RaggedTensor:
    """The tokens of each text of a [batch] string tensor, by the rule above."""
    lowered = tf.strings.lower(texts)  # without an encoding: A-Z only
    spaced = tf.strings.regex_replace(lowered, SEPARATOR_PATTERN, " ")
    return tf.strings.split(spaced)


@functools.cache
def separator_ranges() -> tuple[tuple[int, int], ...]:
    """The code points SEPARATOR_PATTERN matches, as inclusive ranges: every character
    run through RE2 once (a third of a second)."""
    codes = np.concatenate(
        [np.arange(0, _SURROGATES[0]), np.arange(_SURROGATES[1], 0x110000)]
    ).astype(np.int32)
    characters = tf.strings.unicode_encode(tf.constant(codes[:, np.newaxis]), "UTF-8")
    matched = codes[tf.strings.regex_full_match(characters, SEPARATOR_PATTERN).numpy()]
    starts = np.flatnonzero(np.diff(matched, prepend=-2) != 1)
    ends = [*starts[1:], len(matched)]
    return tuple(
        (int(matched[start]), int(matched[end - 1]))
        for start, end in zip(starts, ends, strict=True)
    )


def separators_regex(ranges: Sequence[Sequence[int]]) -> re.Pattern[str]:
    """A Python regex matching the code points of `ranges`."""
    return re.compile("[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges) + "]")


def python_tokens(text: str, separators: re.Pattern[str]) -> list[bytes]:
    """`tokens` of one text in Python: the same bytes, op for op."""
    lowered = text.encode("utf-8").lower().decode("utf-8")  # bytes.lower(): A-Z only
    return separators.sub(" ", lowered).encode("utf-8").split()  # ASCII whitespace only


@dataclass(frozen=True)
class TokenizerRule:
    """What `tokenizer.json` says: enough to turn text into the model's input ids."""

    max_tokens: int
    oov_buckets: int
    # Inclusive code point ranges replaced by a space before splitting.
    separators: list[list[int]] = field(
        default_factory=lambda: [list(pair) for pair in separator_ranges()]
    )
    vocabulary_file: str = VOCABULARY_FILE
    pad_id: int = PAD_ID
    lowercase: str = "A-Z only"
    split: str = "ASCII whitespace, after each separator became a space"
    # Tokens outside the vocabulary, with more than one OOV bucket.
    out_of_vocabulary: str = (
        "len(vocabulary) + tf.strings.to_hash_bucket_fast(token, oov_buckets) "
        "(FarmHash Fingerprint64 modulo oov_buckets)"
    )

    @property
    def files(self) -> list[str]:
        """The files a run ships: this rule and its vocabulary."""
        return [TOKENIZER_FILE, self.vocabulary_file]


class Tokenizer:
    """Text to the model's input ids, off the graph, from a tokenizer directory.

    A missing text (None, NaN) has no tokens, as an empty CSV cell in Transform. A text
    column that held numbers was read by Transform as `tf.strings.as_string` writes them
    ("3.140000"): send them so.
    """

    def __init__(self, rule: TokenizerRule, vocabulary: Sequence[bytes]):
        self.rule = rule
        self._separators = separators_regex(rule.separators)
        # Line i of the vocabulary file is id i (PAD_TOKEN first).
        self._ids = {token: index for index, token in enumerate(vocabulary)}
        self._size = len(vocabulary)

    @classmethod
    def read(cls, directory: str) -> Tokenizer:
        """The tokenizer a run shipped in `directory` (a local path or a gs:// URI)."""
        rule = read_rule(directory)
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

    def __call__(self, texts: Sequence[str | float | None]) -> np.ndarray:
        """[len(texts), max_tokens] int64 ids."""
        ids = np.full((len(texts), self.rule.max_tokens), self.rule.pad_id, np.int64)
        for row, text in enumerate(texts):
            if text is None or (isinstance(text, float) and math.isnan(text)):
                continue
            found = python_tokens(text, self._separators)[: self.rule.max_tokens]
            ids[row, : len(found)] = [self._id(token) for token in found]
        return ids


def write_tokenizer(directory: str, vocabulary_file: str, rule: TokenizerRule) -> None:
    """Writes `tokenizer.json` and a copy of Transform's vocabulary file to `directory`."""
    tf.io.gfile.makedirs(directory)
    tf.io.gfile.copy(vocabulary_file, os.path.join(directory, rule.vocabulary_file), overwrite=True)
    with tf.io.gfile.GFile(os.path.join(directory, TOKENIZER_FILE), "w") as handle:
        handle.write(json.dumps(asdict(rule), indent=2) + "\n")


def read_rule(directory: str) -> TokenizerRule:
    """The rule of `directory`'s `tokenizer.json`. Its `vocabulary_file` is joined to
    `directory` by readers and copied by name by the pusher, so anything but a plain file
    name is refused (a UserError naming the file): `../..` would leave the directory."""
    path = os.path.join(directory, TOKENIZER_FILE)
    with tf.io.gfile.GFile(path) as handle:
        rule = TokenizerRule(**json.load(handle))
    plain_file_name(rule.vocabulary_file, artifact=path, field="vocabulary_file")
    return rule


def tokenizer_files(directory: str) -> list[str]:
    """The files of the tokenizer shipped in `directory` (plain file names, see
    `read_rule`); none where there is none."""
    if not tf.io.gfile.exists(os.path.join(directory, TOKENIZER_FILE)):
        return []
    return read_rule(directory).files
