"""Wide tables: the tabular Transform handles each feature kind as one block.

The block tests run the real preprocessing through TFT's Beam implementation on rows
held in memory and compare numbers with numpy (and with TFT's own per-column mappers);
the slow test runs the whole pipeline on a 50-column table.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from models.config import ModelConfig
from models.tabular.preprocessing import (
    BUCKETIZED_KEY,
    CATEGORICAL_INT_KEY,
    NUMERIC_KEY,
    transform_features,
)

ROWS = 300


def _model(**features) -> ModelConfig:
    return ModelConfig.model_validate(
        {"family": "tabular", "label": {"column": "y"}, "features": features}
    )


def _analyze_and_transform(preprocessing_fn, rows, feature_spec, output_dir: Path | None = None):
    """TFT's AnalyzeAndTransformDataset on in-memory rows, in small batches so analyzers
    combine many partial results; optionally writes the transform graph."""
    metadata = tft.DatasetMetadata.from_feature_spec(feature_spec)
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), desired_batch_size=16):
        (transformed, _), transform_fn = (
            rows,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=False)
        if output_dir is not None:
            _ = transform_fn | tft_beam.WriteTransformFn(str(output_dir))
    return transformed


def _cell(value: float) -> list[float]:
    """A CSV cell as ExampleGen parses it: no value when missing."""
    return [] if np.isnan(value) else [float(value)]


def test_numeric_block_equals_per_column_z_scores_with_missing_values_at_zero():
    rng = np.random.default_rng(0)
    columns = {
        "wide": rng.normal(1000, 300, ROWS),
        # Missing in whole runs of rows, so some batches hold none of its values.
        "patchy": np.where((np.arange(ROWS) // 40) % 2 == 0, rng.normal(-5, 2, ROWS), np.nan),
        "constant": np.full(ROWS, 7.0),
        "with_nan": rng.normal(0, 1, ROWS),
    }
    columns["with_nan"][[3, 10]] = [np.nan, np.inf]  # present but not finite
    count = np.arange(ROWS, dtype=np.int64) % 13  # an integer column, always present
    rows = []
    for index in range(ROWS):
        row = {name: _cell(values[index]) for name, values in columns.items() if name != "with_nan"}
        row["with_nan"] = [float(columns["with_nan"][index])]
        row["count"] = int(count[index])
        rows.append(row)
    spec = {name: tf.io.VarLenFeature(tf.float32) for name in columns}
    spec["count"] = tf.io.FixedLenFeature([], tf.int64)  # a dense column among sparse ones
    # Config order is not the order of sparse and dense inputs: the block keeps it.
    order = ["wide", "count", "patchy", "constant", "with_nan"]
    model = _model(numeric=order)

    transformed = _analyze_and_transform(lambda x: transform_features(x, model), rows, spec)
    block = np.stack([row[NUMERIC_KEY] for row in transformed])
    assert block.shape == (ROWS, len(order))

    raw = {**columns, "count": count.astype(float)}
    for position, name in enumerate(order):
        values = raw[name]
        finite = np.isfinite(values)
        mean, std = values[finite].mean(), values[finite].std()
        scaled = (values - mean) / std if std > 0 else values - mean
        expected = np.where(finite, scaled, 0.0)
        np.testing.assert_allclose(block[:, position], expected, atol=1e-4, err_msg=name)
    assert np.all(block[~np.isfinite(raw["patchy"]), order.index("patchy")] == 0)
    assert block[3, order.index("with_nan")] == 0 and block[10, order.index("with_nan")] == 0


def test_id_blocks_match_tft_per_column_and_record_one_id_range(tmp_path):
    rng = np.random.default_rng(1)
    lat, speed = rng.normal(41.9, 0.05, ROWS), rng.exponential(10, ROWS)
    hour = rng.integers(-2, 30, ROWS)  # out of [0, 24) on both sides
    rows = [
        {"lat": [lat[i]], "speed": [speed[i]], "hour": [int(hour[i])], "day": [] if i % 9 else [3]}
        for i in range(ROWS)
    ]
    spec = {
        "lat": tf.io.VarLenFeature(tf.float32),
        "speed": tf.io.VarLenFeature(tf.float32),
        "hour": tf.io.VarLenFeature(tf.int64),
        "day": tf.io.VarLenFeature(tf.int64),
    }
    model = _model(bucketized={"lat": 10, "speed": 4}, categorical_int={"hour": 24, "day": 8})

    def preprocessing_fn(inputs):
        outputs = transform_features(inputs, model)
        # TFT's own per-column bucketize: the reference for the block.
        for name, buckets in (("lat", 10), ("speed", 4)):
            values = tf.sparse.to_dense(inputs[name])[:, 0]
            outputs[f"reference_{name}"] = tft.bucketize(values, buckets)
        return outputs

    transformed = _analyze_and_transform(preprocessing_fn, rows, spec, tmp_path)
    buckets = np.stack([row[BUCKETIZED_KEY] for row in transformed])
    np.testing.assert_array_equal(buckets[:, 0], [row["reference_lat"] for row in transformed])
    # speed's ids start after lat's 10.
    np.testing.assert_array_equal(
        buckets[:, 1], [10 + row["reference_speed"] for row in transformed]
    )
    assert buckets[:, 0].min() == 0 and buckets[:, 0].max() == 9
    ids = np.stack([row[CATEGORICAL_INT_KEY] for row in transformed])
    # Columns in name order (pipeline.config): day's 8 ids, then hour's.
    np.testing.assert_array_equal(ids[:, 0], [0 if i % 9 else 3 for i in range(ROWS)])
    np.testing.assert_array_equal(ids[:, 1], 8 + np.clip(hour, 0, 23))

    output = tft.TFTransformOutput(str(tmp_path))
    assert output.num_buckets_for_transformed_feature(BUCKETIZED_KEY) == 14
    assert output.num_buckets_for_transformed_feature(CATEGORICAL_INT_KEY) == 32
    assert output.transformed_feature_spec()[BUCKETIZED_KEY].shape == [2]


def test_a_categorical_column_may_not_take_a_block_name():
    with pytest.raises(ValueError, match="named like a feature kind"):
        _model(numeric=["x"], categorical=["numeric"])


@pytest.mark.slow
def test_a_50_column_table_pushes_a_model_serving_50_named_raw_inputs(tmp_path):
    from benchmarks.transform import feature_columns, wide_config, wide_frame
    from pipeline.config import LeanlineConfig
    from pipeline.local_runner import run_local

    # Written as many exporters write: every field quoted, CRLF line ends.
    csv_path = tmp_path / "data" / "wide.csv"
    csv_path.parent.mkdir()
    frame = wide_frame(50, 600).astype(object)
    # What exports write for undefined numbers: read as missing, noted, never trained on.
    frame.loc[3, "f001"], frame.loc[5, "f002"], frame.loc[8, "f002"] = "nan", "inf", "-inf"
    frame.to_csv(csv_path, index=False, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    raw = wide_config(50, csv_path, steps_per_epoch=None)
    config = LeanlineConfig.model_validate(
        {
            **raw,
            "output_dir": str(tmp_path / "output"),
            "training": {"epochs": 3, "batch_size": 32},
            "compression": {**raw["compression"], "fine_tune_epochs": 1},
            "evaluation": {"thresholds": {"min_value": 0.5, "max_drop_vs_uncompressed": 0.1}},
        }
    )
    summary = run_local(config)
    assert summary.pushed, summary.not_pushed_reason
    assert [note.split(": ", 1)[1] for note in summary.input_notes] == [
        "column 'f001' holds 1 value that is not finite (first: line 5, 'nan'), read as missing",
        "column 'f002' holds 2 values that are not finite (first: line 7, 'inf'), read as missing",
    ]

    (version,) = [p for p in config.serving_model_dir.iterdir() if p.name.isdigit()]
    served = tf.saved_model.load(str(version))
    _, raw_inputs = served.signatures["serving_raw"].structured_input_signature
    assert sorted(raw_inputs) == feature_columns(50)

    frame = pd.read_csv(csv_path).head(20).replace([np.inf, -np.inf], np.nan)
    complete = frame.dropna()
    from_raw = served.signatures["serving_raw"](
        **{c: tf.constant(complete[c].to_numpy(np.float32)) for c in raw_inputs}
    )["outputs"].numpy()
    # serving_default takes tf.Examples; a missing cell is a feature left out.
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    c: tf.train.Feature(float_list=tf.train.FloatList(value=[row[c]]))
                    for c in raw_inputs
                    if not np.isnan(row[c])
                }
            )
        ).SerializeToString()
        for _, row in frame.iterrows()
    ]
    from_examples = served.signatures["serving_default"](examples=tf.constant(examples))[
        "outputs"
    ].numpy()
    assert frame.isna().any(axis=1).any(), "the slice should hold rows with missing cells"
    assert np.all(np.isfinite(from_examples)) and np.all(
        (0 <= from_examples) & (from_examples <= 1)
    )
    np.testing.assert_allclose(from_raw, from_examples[complete.index.to_numpy()], rtol=1e-5)
