"""Slices in natural order: numbers as numbers, then text, in every list a person reads."""

from __future__ import annotations

import tensorflow as tf
from tensorflow_model_analysis.proto import metrics_for_slice_pb2

from components.slice_gate.executor import slice_failures
from components.slice_gate.spec import slice_order, value_order
from models.config import ThresholdsConfig


def test_numbers_sort_as_numbers_and_text_after_them():
    assert sorted([0, 1, 10, 2, "Cash"], key=value_order) == [0, 1, 2, 10, "Cash"]
    # TFMA gives a string column's values as bytes; ones that read as numbers are numbers.
    assert sorted([b"10", b"Cash", b"2", 2.5, b"Card"], key=value_order) == [
        b"2",
        2.5,
        b"10",
        b"Card",
        b"Cash",
    ]
    assert sorted([b"nan", 3], key=value_order) == [3, b"nan"]


def test_slices_sort_overall_first_then_by_column_and_value():
    slices = [
        (("trip_start_hour", 10),),
        (("payment_type", b"Cash"),),
        (),
        (("trip_start_hour", 2),),
        (("trip_start_hour", 0), ("payment_type", b"Cash")),
        (("trip_start_hour", 0),),
    ]
    assert sorted(slices, key=slice_order) == [
        (),
        (("payment_type", b"Cash"),),
        (("trip_start_hour", 0),),
        (("trip_start_hour", 0), ("payment_type", b"Cash")),
        (("trip_start_hour", 2),),
        (("trip_start_hour", 10),),
    ]


def _metrics(column: str | None, value: int | bytes, candidate: float) -> bytes:
    """One slice's metrics as TFMA's Evaluator writes them: row count and the gated
    metric of both models."""
    metrics = metrics_for_slice_pb2.MetricsForSlice()
    if column is not None:
        key = metrics.slice_key.single_slice_keys.add(column=column)
        if isinstance(value, bytes):
            key.bytes_value = value
        else:
            key.int64_value = value
    for name, model, number in (
        ("example_count", "candidate", 300.0),
        ("binary_accuracy", "candidate", candidate),
        ("binary_accuracy", "baseline", 0.9),
    ):
        entry = metrics.metric_keys_and_values.add()
        entry.key.name, entry.key.model_name = name, model
        entry.value.double_value.value = number
    return metrics.SerializeToString()


def test_the_slice_gate_lists_refused_slices_in_natural_order(tmp_path):
    """Slices that each lose 10 pt, written in TFMA's order-less way: the refusals list
    payment types, then hours 0, 1, 2, 10 (not 0, 1, 10, 2)."""
    slices = [
        ("trip_start_hour", 0),
        ("trip_start_hour", 1),
        ("trip_start_hour", 10),
        (None, 0),
        ("trip_start_hour", 2),
        ("payment_type", b"Cash"),
    ]
    with tf.io.TFRecordWriter(str(tmp_path / "metrics-00000-of-00001.tfrecord")) as writer:
        for column, value in slices:
            writer.write(_metrics(column, value, candidate=0.8))
    thresholds = ThresholdsConfig(
        metric="binary_accuracy", max_slice_drop=0.02, min_slice_examples=100
    )

    failures = slice_failures(str(tmp_path), thresholds)
    assert [failure.split(" (")[0] for failure in failures] == [
        "slice payment_type=Cash",
        "slice trip_start_hour=0",
        "slice trip_start_hour=1",
        "slice trip_start_hour=2",
        "slice trip_start_hour=10",
    ]
    assert failures[-1] == (
        "slice trip_start_hour=10 (300 eval rows): binary_accuracy 0.9000 uncompressed -> "
        "0.8000 compressed (-0.1000; allowed down to -0.0200)"
    )
