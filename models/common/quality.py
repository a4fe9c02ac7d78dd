"""How good a model is on labelled rows, and how a compressed model's quality compares.

numpy only, so the run summary can word the compression result without TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from models.config import ModelConfig


@dataclass(frozen=True)
class Quality:
    """How good a model is on eval rows: accuracy (and AUC with two classes) for a
    classifier, mean absolute and root mean squared error for a regressor."""

    accuracy: float | None = None
    auc: float | None = None
    mean_absolute_error: float | None = None
    root_mean_squared_error: float | None = None

    def shown(self) -> dict[str, float]:
        return {name: value for name, value in asdict(self).items() if value is not None}


# The Quality field the headline compares, by task; errors are lower-is-better.
HEADLINE_METRIC = {"classification": "accuracy", "regression": "mean_absolute_error"}


def classification_quality(probabilities: np.ndarray, labels: np.ndarray) -> Quality:
    """Accuracy, and AUC for one sigmoid output; multiclass outputs are softmax rows."""
    labels = labels.reshape(-1)
    auc = None
    if probabilities.shape[-1] == 1 and len(np.unique(labels)) == 2:
        from sklearn.metrics import roc_auc_score  # 0.5 s to import; classifiers only

        auc = float(roc_auc_score(labels, probabilities.reshape(-1)))
    return Quality(accuracy=float(np.mean(predicted_classes(probabilities) == labels)), auc=auc)


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """Class ids: above 0.5 for one sigmoid output, else the most probable class."""
    if probabilities.shape[-1] == 1:
        return (probabilities.reshape(-1) > 0.5).astype(np.int64)
    return probabilities.argmax(axis=-1)


def row_losses(predictions: np.ndarray, labels: np.ndarray, model: ModelConfig) -> np.ndarray:
    """What each row costs the headline metric: 1 for a wrong class (0 for a right one),
    or a regressor's absolute error. Their mean is 1 - accuracy, or the MAE."""
    labels = labels.reshape(-1)
    if model.is_regression:
        return np.abs(predictions.reshape(-1).astype(np.float64) - labels)
    return (predicted_classes(predictions) != labels).astype(np.float64)


def regression_quality(predictions: np.ndarray, labels: np.ndarray) -> Quality:
    errors = predictions.reshape(-1).astype(np.float64) - labels.reshape(-1)
    return Quality(
        mean_absolute_error=float(np.mean(np.abs(errors))),
        root_mean_squared_error=float(np.sqrt(np.mean(np.square(errors)))),
    )


def quality(predictions: np.ndarray, labels: np.ndarray, model: ModelConfig) -> Quality:
    if model.is_regression:
        return regression_quality(predictions, labels)
    return classification_quality(predictions, labels)


QUALITY_TITLES = {
    "accuracy": "accuracy",
    "auc": "AUC",
    "mean_absolute_error": "MAE",
    "root_mean_squared_error": "RMSE",
}


def format_quality(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if name == "accuracy" else f"{value:.4f}"


def quality_change(float_value: float, compressed_value: float) -> dict[str, float]:
    """The headline's quality figures: both values, the change and the relative change."""
    change = compressed_value - float_value
    return {
        "float_quality": float_value,
        "compressed_quality": compressed_value,
        "quality_change": change,
        "quality_relative_change": change / float_value if float_value else math.nan,
    }


def quality_change_words(metric: str, head: Mapping[str, float], bold: bool = False) -> str:
    """`accuracy 85.10% -> 84.80% (-0.30 pt)` or `MAE 2.1000 -> 2.1500 (+2.4%)`."""
    before = format_quality(metric, head["float_quality"])
    after = format_quality(metric, head["compressed_quality"])
    if metric == "accuracy":
        change = f"{100 * head['quality_change']:+.2f} pt"
    else:
        change = f"{100 * head['quality_relative_change']:+.1f}%"
    change = f"**{change}**" if bold else change
    return f"{QUALITY_TITLES[metric]} {before} -> {after} ({change})"


def budget_words(metric: str, kind: str, budget: float) -> str:
    """How much a model may lose: `accuracy down at most 0.50 pt` (absolute) or
    `MAE up at most 5.0%` (relative)."""
    if kind == "absolute":
        return f"{QUALITY_TITLES[metric]} down at most {100 * budget:.2f} pt"
    return f"{QUALITY_TITLES[metric]} up at most {100 * budget:.1f}%"
