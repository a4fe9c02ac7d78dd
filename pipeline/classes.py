"""A classifier's classes, fixed from the data before a local run builds its pipeline.

Invariant: where pre-flight read a classifier's label values (CSV input; a family that
reads the label as class names or ids: tabular, digits, text), the config the run builds
its pipeline from, and saves as leanline.yaml, has `model.label.num_classes` from them
where the config leaves it unset, and a label of strings has `model.label.classes`: the
config's list, else the distinct values sorted (by code point, as Python sorts str).

Reason: clients read the served probabilities by position, so a class keeps its id from
one data version to the next. TFT's vocabulary order (most frequent first) swapped ids
when class frequencies changed; sorted names give one set of classes the same ids on any
data, and a set that changes is refused at push (components/serving_pusher). The count is
needed when the pipeline is built: it sizes the model's output and picks the metrics, so
metrics the config leaves unset are picked again here. Input that pre-flight does not
read (TFRecord, `leanline compile kubeflow`) gets no classes from the data: Transform
refuses a label of strings without `model.label.classes`
(models/tabular/preprocessing.py) rather than number classes from data it reads later,
split by split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import ConfigError, LeanlineConfig
from pipeline.inputs.checks import MAX_LABEL_VALUES, InputDataError, LabelValues

NUM_CLASSES_KEY = "model.label.num_classes"


@dataclass(frozen=True)
class FittedClasses:
    config: LeanlineConfig
    notes: tuple[str, ...]


def fit_classes(config: LeanlineConfig, values: LabelValues | None) -> FittedClasses:
    """`config` with its classes from the label `values` pre-flight read (None: none
    read; the config stands as it is). Raises InputDataError where the values contradict
    a set `num_classes`."""
    if values is None:
        return FittedClasses(config, ())
    label = config.model.label
    count_given = config.written(NUM_CLASSES_KEY)
    if values.names:
        if label.classes is not None:  # pre-flight refused values it does not list
            return FittedClasses(config, ())
        classes = sorted(values.rows)
        if count_given and label.num_classes != len(classes):
            raise InputDataError(
                f"model.label.num_classes is {label.num_classes}, but label column "
                f"{values.column!r} holds {len(classes)} classes: {_rows(values)}; set "
                "num_classes to their count, or list them in model.label.classes to refuse "
                "the others"
            )
        note = (
            f"model.label.classes unset: the classes of {values.column!r} are its values "
            f"sorted, ids {', '.join(f'{i} {name}' for i, name in enumerate(classes))} "
            "(recorded in leanline.yaml; list them in the config to keep these ids when "
            "a class is missing from new data)"
        )
        fitted = _with_label(config, values, {"classes": classes})
        return FittedClasses(fitted, (note,))
    if count_given or label.classes is not None:
        return FittedClasses(config, ())
    highest = max(values.rows, default=0)
    empty = sorted(set(range(highest + 1)) - set(values.rows))
    if highest >= MAX_LABEL_VALUES or empty:
        # A number written as integers (a count, a score, `151.0`) is no set of class ids:
        # ids 0..n-1 with none unused, or the config says how many there are.
        unused = f"; ids {_some(empty)} have no row" if empty else ""
        raise InputDataError(
            f"label column {values.column!r} holds integers up to {highest}{unused}, which "
            "do not read as class ids 0..n-1. A number to predict: set model.task: "
            "regression. Classes: number them from 0, or set model.label.num_classes "
            "(classes without rows are then allowed)"
        )
    count = max(highest + 1, 2)
    # Only a count other than the default of 2 is news worth a note.
    notes = (
        (
            f"model.label.num_classes unset: label column {values.column!r} holds class ids "
            f"0..{highest}, so {count} classes ({_rows(values)})",
        )
        if count > 2
        else ()
    )
    return FittedClasses(_with_label(config, values, {"num_classes": count}), notes)


def _some(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:5]))
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _rows(values: LabelValues) -> str:
    return ", ".join(f"{value!r} ({rows} rows)" for value, rows in sorted(values.rows.items()))


def _with_label(
    config: LeanlineConfig, values: LabelValues, label: dict[str, Any]
) -> LeanlineConfig:
    try:
        return config.with_overrides(model={"label": label})
    except ConfigError as error:
        raise InputDataError(
            f"label column {values.column!r} holds {len(values.rows)} classes "
            f"({_rows(values)}), for which the configuration does not hold: {error}"
        ) from None
