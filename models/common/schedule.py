"""How long a model trains when the config leaves it open: from the train split's size.

Invariant: `fitted_training` returns a TrainingConfig with `epochs` and `batch_size`
set, the same for the Trainer and the Compressor (both count the same train rows), and
it never changes a value the config sets. Reason: defaults tuned on one dataset fail
on others: 5 epochs of batch 128 are 5 optimizer steps on a 118-row table (a model at
chance) and 50,000 on 1.2M rows. So an unset batch is a small share of the rows
(about one in `ROWS_PER_BATCH_STEP`, a power of two within `BATCH_SIZE_RANGE`), and unset
epochs give about `TARGET_STEPS` optimizer steps (within `EPOCHS_RANGE`), stopped early
on held-out train rows when they stop improving, the best epoch's weights restored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.config import CompressionConfig, TrainingConfig

# An unset batch holds about one row in this many, so an epoch is many steps.
ROWS_PER_BATCH_STEP = 50
BATCH_SIZE_RANGE = (8, 256)
# Optimizer steps an unset number of epochs aims at, and the epochs it may take.
TARGET_STEPS = 2000
EPOCHS_RANGE = (3, 300)
# Epochs without a better validation loss before training stops: a tenth of the
# epochs, at least this many (small validation sets are noisy).
MIN_PATIENCE = 5
# Fine-tuning steps (pruning, QAT) an unset compression.fine_tune_epochs aims at.
FINE_TUNE_TARGET_STEPS = 500
FINE_TUNE_EPOCHS_RANGE = (3, 50)


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


def fitted_batch_size(rows: int) -> int:
    """A power of two near rows / ROWS_PER_BATCH_STEP, within BATCH_SIZE_RANGE."""
    share = max(rows / ROWS_PER_BATCH_STEP, 1.0)
    return _clamp(2 ** math.floor(math.log2(share)), BATCH_SIZE_RANGE)


def epochs_for(steps_per_epoch: int, target_steps: int, bounds: tuple[int, int]) -> int:
    return _clamp(math.ceil(target_steps / max(steps_per_epoch, 1)), bounds)


@dataclass(frozen=True)
class FittedTraining:
    """The training settings a split of `rows` rows gets, and why, for history.json."""

    training: TrainingConfig
    rows: int
    # Whether training stops when the held-out rows' loss stops falling (epochs unset).
    early_stopping: bool
    patience: int | None
    reason: str

    def details(self) -> dict[str, object]:
        return {
            "fitted_rows": self.rows,
            "max_epochs": self.training.epochs,
            "batch_size": self.training.batch_size,
            "early_stopping": self.early_stopping,
            "patience": self.patience,
            "schedule_reason": self.reason,
        }


def fitted_training(training: TrainingConfig, rows: int, replicas: int = 1) -> FittedTraining:
    """`training` with unset `epochs` and `batch_size` chosen for `rows` fitting rows
    (the batch per replica: `replicas` replicas step through the rows together)."""
    chosen = []
    batch_size = training.batch_size
    if batch_size is None:
        batch_size = max(fitted_batch_size(rows) // replicas, 1)
        chosen.append(
            f"batch_size {batch_size}: about 1 in {ROWS_PER_BATCH_STEP} of the {rows} "
            f"training rows, a power of two in {list(BATCH_SIZE_RANGE)}"
        )
    early_stopping = training.epochs is None
    epochs, patience = training.epochs, None
    if epochs is None:
        steps = math.ceil(rows / (batch_size * replicas))
        if training.steps_per_epoch:
            steps = min(steps, training.steps_per_epoch)
        epochs = epochs_for(steps, TARGET_STEPS, EPOCHS_RANGE)
        patience = max(MIN_PATIENCE, epochs // 10)
        chosen.append(
            f"at most {epochs} epochs of {steps} steps (about {TARGET_STEPS} steps, "
            f"epochs in {list(EPOCHS_RANGE)}), stopped after {patience} epochs without a "
            "lower loss on the held-out train rows, the best epoch's weights kept"
        )
    reason = "; ".join(chosen) or "epochs and batch_size as the config sets them"
    return FittedTraining(
        training.model_copy(update={"epochs": epochs, "batch_size": batch_size}),
        rows,
        early_stopping,
        patience,
        reason,
    )


def fine_tune_epochs(compression: CompressionConfig, steps_per_epoch: int) -> int:
    """`compression.fine_tune_epochs`, or where unset about FINE_TUNE_TARGET_STEPS steps."""
    if compression.fine_tune_epochs is not None:
        return compression.fine_tune_epochs
    return epochs_for(steps_per_epoch, FINE_TUNE_TARGET_STEPS, FINE_TUNE_EPOCHS_RANGE)
