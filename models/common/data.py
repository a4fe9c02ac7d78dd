"""tf.data input over TFX's transformed examples, usable with or without a Trainer.

Transform writes gzipped TFRecord files of tf.Example; their feature spec comes from
the transform graph. The Trainer passes file patterns (`fn_args.train_files`); the
Compressor passes its own patterns and row limits, so nothing here needs a
`data_accessor`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.common.export import MISSING_VALUES
from models.common.features import LABEL_KEY
from models.errors import UserError

SHUFFLE_BUFFER_SIZE = 10_000
SHUFFLE_SEED = 42
COUNT_BATCH_SIZE = 4096

FilePatterns = str | Sequence[str]
EVAL_SPLIT = "eval"


def matching_files(file_pattern: FilePatterns) -> list[str]:
    """The files matching one pattern or a list of them, sorted so reads are repeatable."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def _records(file_pattern: FilePatterns) -> tf.data.Dataset:
    return tf.data.TFRecordDataset(matching_files(file_pattern), compression_type="GZIP")


def count_examples(file_pattern: FilePatterns) -> int:
    """Number of records, counted without parsing them (one cheap pass over the files)."""
    return int(_records(file_pattern).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def _label_batches(file_pattern: FilePatterns, dtype: tf.dtypes.DType) -> Iterator[np.ndarray]:
    """The transformed label in batches, parsing nothing else."""
    spec = {LABEL_KEY: tf.io.FixedLenFeature([], dtype)}
    labels = (
        _records(file_pattern)
        .batch(COUNT_BATCH_SIZE)
        .map(lambda serialized: tf.io.parse_example(serialized, spec)[LABEL_KEY])
    )
    return labels.as_numpy_iterator()


def label_counts(file_pattern: FilePatterns) -> dict[int, int]:
    """Rows per class id of the transformed label, in one pass that parses only the label."""
    counts: dict[int, int] = {}
    for batch in _label_batches(file_pattern, tf.int64):
        values, batch_counts = np.unique(batch, return_counts=True)
        for value, count in zip(values.tolist(), batch_counts.tolist(), strict=True):
            counts[value] = counts.get(value, 0) + count
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class LabelStats:
    """A numeric label over one split: its finite values' moments, and what is not finite."""

    rows: int
    non_finite: int
    mean: float
    std: float
    min: float
    max: float

    def describe(self) -> str:
        return (
            f"{self.rows} rows, mean {self.mean:.4g}, std {self.std:.4g}, "
            f"range [{self.min:.4g}, {self.max:.4g}], {self.non_finite} not finite"
        )


def label_stats(file_pattern: FilePatterns, dtype: tf.dtypes.DType) -> LabelStats:
    """Moments of a numeric transformed label, in one pass that parses only the label."""
    rows = non_finite = 0
    total = squares = 0.0
    low, high = math.inf, -math.inf
    for batch in _label_batches(file_pattern, dtype):
        values = batch.astype(np.float64)
        finite = values[np.isfinite(values)]
        rows += len(values)
        non_finite += len(values) - len(finite)
        if len(finite):
            total += float(finite.sum())
            squares += float(np.square(finite).sum())
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    count = rows - non_finite
    mean = total / count if count else math.nan
    variance = max(squares / count - mean * mean, 0.0) if count else math.nan
    return LabelStats(rows, non_finite, mean, math.sqrt(variance), low, high)


def read_split_examples(examples_uri: str, count: int, split: str = EVAL_SPLIT) -> list[bytes]:
    """Up to `count` serialized tf.Examples from one split of an Examples artifact."""
    pattern = f"{examples_uri.rstrip('/')}/Split-{split}/*"
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise UserError(
            f"no {split} examples to build warm-up requests from: nothing matches {pattern}"
        )
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return [bytes(record) for record in records.as_numpy_iterator()]


def raw_rows(
    serialized: tf.Tensor, specs: Mapping[str, tf.TensorSpec]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The features `specs` names, one array per feature, from a [n] string tensor of
    serialized tf.Examples, as `serving_raw` takes them: a missing value as
    MISSING_VALUES says. A row with several values of one feature cannot be sent that
    way and is left out; returns the rows and, per example, whether it is among them."""
    parsed = tf.io.parse_example(
        serialized, {name: tf.io.VarLenFeature(spec.dtype) for name, spec in specs.items()}
    )
    count = int(tf.shape(serialized)[0])
    rows, values_per_row = {}, {}
    for name, value in parsed.items():
        row_of = value.indices.numpy()[:, 0]
        values_per_row[name] = np.bincount(row_of, minlength=count)
        column = np.full(count, MISSING_VALUES[specs[name].dtype], specs[name].dtype.as_numpy_dtype)
        column[row_of] = value.values.numpy()
        rows[name] = column
    servable = np.all([n <= 1 for n in values_per_row.values()], axis=0)
    return {name: column[servable] for name, column in rows.items()}, servable


@dataclass(frozen=True)
class Holdout:
    """Part of a split by record position: every `every`-th record (`held_out`), or
    all the others. The same files give the same parts on every read."""

    every: int
    held_out: bool

    def of(self, records: tf.data.Dataset) -> tf.data.Dataset:
        every, held_out = self.every, self.held_out
        return (
            records.enumerate()
            .filter(lambda index, _: tf.equal(index % every == 0, held_out))
            .map(lambda _, record: record)
        )

    def count(self, total: int) -> int:
        """How many of `total` records this part holds."""
        held_out = math.ceil(total / self.every)
        return held_out if self.held_out else total - held_out


def transformed_dataset(
    file_pattern: FilePatterns,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    *,
    shuffle: bool,
    repeat: bool,
    limit: int | None = None,
    part: Holdout | None = None,
) -> tf.data.Dataset:
    """Batches of `(features, label)`: transformed features without the label, and the label.

    `part` keeps one part of the records, and `limit` the first `limit` of those (before
    shuffling). A repeated dataset drops the last partial batch, so every step sees
    `batch_size` rows (TPUs need static shapes).
    """
    feature_spec = tf_transform_output.transformed_feature_spec()
    if LABEL_KEY not in feature_spec:
        raise ValueError(f"the transform graph outputs no {LABEL_KEY!r} feature")

    def parse(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        features = tf.io.parse_example(serialized, feature_spec)
        label = features.pop(LABEL_KEY)
        return features, label

    dataset = _records(file_pattern)
    if part is not None:
        dataset = part.of(dataset)
    if limit is not None:
        dataset = dataset.take(limit)
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER_SIZE, seed=SHUFFLE_SEED)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
