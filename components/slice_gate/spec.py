"""The SliceGate's contract: its keys, the names of the models in the evaluation it
judges, and how it names and orders slices in the `slice_failures` it records.

Slices in the order a person reads them: by column, then by value, where values that
are numbers sort as numbers (hours 0, 1, 2, ..., 10, 11; not 0, 1, 10, 11) ahead of
other values, which sort as text. TFMA hands slices over in no order, their values as
ints, floats or bytes; the report's tables, the SliceGate's refusals and the run
summary, which lists those, all use this order, so a slice is found where one looks.

No TensorFlow or TFX import: the pusher, the run summary and the report read these
without loading either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# A slice as (column, value) pairs; the overall slice has none.
SlicePairs = Iterable[tuple[str, Any]]


def value_order(value: Any) -> tuple[int, float, str]:
    """A sort key for one slice value: a number, or text that reads as one (b"10", as
    TFMA gives a string column's values), by its value; other text after every number."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        number = float(text)
    except ValueError:
        return (1, 0.0, text)
    if math.isnan(number):
        return (1, 0.0, text)
    # The text breaks ties ("1" and "1.0"; integers beyond float precision).
    return (0, number, text)


def slice_order(pairs: SlicePairs) -> tuple[tuple[str, tuple[int, float, str]], ...]:
    """A sort key for a slice: the overall slice first, then by column and value."""
    return tuple((column, value_order(value)) for column, value in pairs)


def proto_slice_pairs(slice_key: Any) -> list[tuple[str, Any]]:
    """The (column, value) pairs of a TFMA `SliceKey` proto."""
    pairs = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        pairs.append((single.column, getattr(single, kind) if kind else ""))
    return pairs


EVALUATION_KEY = "evaluation"
EVALUATOR_BLESSING_KEY = "evaluator_blessing"
BLESSING_KEY = "blessing"
THRESHOLDS_KEY = "thresholds"
# The blessing's custom property listing the slices that failed, one per line.
SLICE_FAILURES_PROPERTY = "slice_failures"
EXAMPLE_COUNT = "example_count"
# TFMA's model names in leanline's eval configs (pipeline.evaluation).
CANDIDATE, BASELINE = "candidate", "baseline"


def slice_name(slice_key: Any) -> str:
    """`column=value, ...`, values as they read in the data."""
    return ", ".join(
        f"{column}={value.decode() if isinstance(value, bytes) else value}"
        for column, value in proto_slice_pairs(slice_key)
    )
