"""The body of every family's `run_fn`: read the config, train under a strategy, export.

A family only supplies `build_model(inputs, model_config) -> keras.Model`; label checks,
compiling, input data, distribution, history and both exports are the same for all of
them, classifiers and regressors.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from models.common.data import (
    Holdout,
    LabelStats,
    count_examples,
    label_counts,
    label_stats,
    transformed_dataset,
)
from models.common.export import export_serving_model, keras_model_path
from models.common.features import LABEL_KEY, ModelInput, model_inputs
from models.common.schedule import fitted_training
from models.common.strategy import is_chief, make_strategy, strategy_devices
from models.config import ModelConfig, TrainingConfig
from models.custom_config import model_config, training_config
from models.errors import UserError

BuildModel = Callable[[Mapping[str, ModelInput], ModelConfig], keras.Model]

RANDOM_SEED = 42
HISTORY_FILE = "history.json"
# The fixed layer that puts a regressor's output in the label's units.
LABEL_SCALE_LAYER = "label_units"


def compile_model(model: keras.Model, model_cfg: ModelConfig, learning_rate: float) -> None:
    """Adam with the loss and metrics of the task: mean squared error for a regressor,
    cross-entropy for a sigmoid (2 classes) or softmax classifier."""
    if model_cfg.is_regression:
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.MeanAbsoluteError(), keras.metrics.RootMeanSquaredError()]
    elif model_cfg.label.num_classes == 2:
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.BinaryAccuracy(), keras.metrics.AUC(name="auc")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy()]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=metrics
    )


def _counts(counts: Mapping[int, int]) -> str:
    return ", ".join(f"{label}: {count}" for label, count in counts.items()) or "no rows"


def check_labels(
    train_counts: Mapping[int, int], eval_counts: Mapping[int, int], model: ModelConfig
) -> list[str]:
    """Refuses labels a classifier cannot learn from or be judged on, before training.

    Raises UserError when a class id lies outside [0, num_classes) or the train split
    holds fewer than two classes (a model that always answers the same would pass any
    accuracy gate on such data). Returns warnings for classes missing from one split.
    """
    column, num_classes = model.label.column, model.label.num_classes
    found = f"rows per class id: train {{{_counts(train_counts)}}}, eval {{{_counts(eval_counts)}}}"
    outside = sorted(c for c in {*train_counts, *eval_counts} if not 0 <= c < num_classes)
    if -1 in outside and model.label.classes is not None:
        # Transform's lookup gives -1 to a value model.label.classes does not list.
        raise UserError(
            f"label column {column!r} holds values that model.label.classes "
            f"{model.label.classes} does not list (class id -1); {found}. Add them to the "
            "list, or fix or drop those rows"
        )
    if outside:
        raise UserError(
            f"label column {column!r} holds class ids {outside} outside [0, {num_classes}) "
            f"(model.label.num_classes is {num_classes}); {found}. Set num_classes to the "
            "number of classes, or map the label to ids 0..num_classes-1"
        )
    if len(train_counts) < 2:
        raise UserError(
            f"label column {column!r} has fewer than two classes in the train split; a model "
            f"trained on it would answer the same for every row. {found}"
        )
    warnings = []
    for label in range(num_classes):
        in_train, in_eval = label in train_counts, label in eval_counts
        if not in_train or not in_eval:
            where = "the train split only" if in_train else "the eval split only"
            if not in_train and not in_eval:
                where = "neither split"
            warnings.append(f"label class {label} of {column!r} is in {where}; {found}")
    return warnings


def check_regression_label(train: LabelStats, eval_: LabelStats, model: ModelConfig) -> None:
    """Refuses a numeric label a regressor cannot learn from: values that are not finite
    (they would make every weight NaN) or one value for every train row."""
    column = model.label.column
    found = f"train: {train.describe()}; eval: {eval_.describe()}"
    if train.non_finite or eval_.non_finite:
        raise UserError(
            f"label column {column!r} holds values that are not finite (NaN, inf); drop or "
            f"fix those rows. {found}"
        )
    if not train.std > 0:
        raise UserError(
            f"label column {column!r} has one value for every train row; a model trained on "
            f"it would answer the same for every row. {found}"
        )


def _checked_label_spec(
    tf_transform_output: tft.TFTransformOutput, model: ModelConfig
) -> tf.dtypes.DType:
    """The transformed label's dtype, refused when it does not fit the task."""
    spec = tf_transform_output.transformed_feature_spec().get(LABEL_KEY)
    source = (
        f"model.module {model.module}: preprocessing_fn" if model.module else "the preprocessing_fn"
    )
    if not isinstance(spec, tf.io.FixedLenFeature) or spec.shape not in ([], (), [1], (1,)):
        raise UserError(
            f"{source} must output {LABEL_KEY!r} as one value per row (a dense [batch] "
            f"tensor), got {spec}"
        )
    if model.is_regression and not (spec.dtype.is_floating or spec.dtype.is_integer):
        raise UserError(
            f"{source} outputs {LABEL_KEY!r} as {spec.dtype.name}; a regression label is a number"
        )
    if not model.is_regression and not spec.dtype.is_integer:
        raise UserError(
            f"{source} outputs {LABEL_KEY!r} as {spec.dtype.name}; a classifier needs integer "
            "class ids 0..num_classes-1 (or set model.task: regression)"
        )
    return spec.dtype


def check_labels_before_training(
    fn_args: FnArgs, tf_transform_output: tft.TFTransformOutput, model: ModelConfig
) -> LabelStats | None:
    """The label checks of the task on both splits; a regressor's train label moments."""
    dtype = _checked_label_spec(tf_transform_output, model)
    if model.is_regression:
        train = label_stats(fn_args.train_files, dtype)
        check_regression_label(train, label_stats(fn_args.eval_files, dtype), model)
        return train
    for warning in check_labels(
        label_counts(fn_args.train_files), label_counts(fn_args.eval_files), model
    ):
        tf.get_logger().warning(warning)
    return None


def in_label_units(model: keras.Model, train_label: LabelStats) -> keras.Model:
    """The regressor with its output rescaled from z-scores to the label's units.

    The network learns the standardized label (weights and a learning rate fit for
    values near 0), while serving, TFMA and TFLite see predictions in the label's own
    units: `prediction * std + mean` of the train split, a fixed layer in the model.
    """
    (output,) = model.outputs
    scaled = keras.layers.Rescaling(
        scale=train_label.std, offset=train_label.mean, name=LABEL_SCALE_LAYER
    )(output)
    return keras.Model(inputs=model.inputs, outputs=scaled, name=model.name)


def check_model_output(model: keras.Model, model_cfg: ModelConfig) -> None:
    """Refuses a built model whose output does not fit the task (a module's build_model)."""
    expected = (
        1
        if model_cfg.is_regression or model_cfg.label.num_classes == 2
        else model_cfg.label.num_classes
    )
    shapes = [tuple(output.shape) for output in model.outputs]
    if len(shapes) != 1 or shapes[0][1:] != (expected,):
        source = (
            f"model.module {model_cfg.module}: build_model" if model_cfg.module else "build_model"
        )
        wanted = {
            "regression": "one number per row (one linear unit, the label's z-score)",
            "binary": "one sigmoid probability per row",
            "multiclass": f"{expected} softmax probabilities per row",
        }[model_cfg.kind]
        raise UserError(
            f"{source} returned a model with output shapes {shapes}; model.task "
            f"{model_cfg.task} with this label needs {wanted}: shape (None, {expected})"
        )


def steps_per_epoch(
    train_examples: int, global_batch_size: int, training: TrainingConfig, train_steps: int | None
) -> int:
    """One pass over the train split, bounded by `training.steps_per_epoch` and by the
    Trainer's total `train_steps` (TrainArgs.num_steps) spread over the epochs."""
    steps = math.ceil(train_examples / global_batch_size)
    if training.steps_per_epoch:
        steps = min(steps, training.steps_per_epoch)
    if train_steps:
        steps = min(steps, math.ceil(train_steps / training.epochs))
    return max(steps, 1)


class EpochSeconds(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch, validation included: what a strategy or a
    device changes."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def _write_history(
    history: keras.callbacks.History,
    epoch_seconds: EpochSeconds,
    path: str,
    details: Mapping[str, Any],
) -> None:
    metrics = history.history
    epochs = [
        {
            "epoch": epoch + 1,
            **{name: float(values[epoch]) for name, values in metrics.items()},
            "seconds": epoch_seconds.seconds[epoch],
        }
        for epoch in range(len(history.epoch))
    ]
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump({**details, "epochs": epochs}, handle, indent=2)


def _callbacks(model_run_dir: str) -> list[keras.callbacks.Callback]:
    # TF 2.21 no longer depends on TensorBoard; its logs are written when it is installed.
    if importlib.util.find_spec("tensorboard") is None:
        tf.get_logger().warning("TensorBoard is not installed: no training logs for it")
        return []
    return [keras.callbacks.TensorBoard(log_dir=model_run_dir)]


def train_and_export(fn_args: FnArgs, build_model: BuildModel) -> keras.Model:
    """Trains `build_model`'s model on the transformed train split and exports it.

    Writes the Keras model to `<model artifact>/keras_model.keras`, the serving SavedModel to
    `fn_args.serving_model_dir`, and TensorBoard logs and `history.json` to
    `fn_args.model_run_dir`. Returns the trained model.
    """
    training = training_config(fn_args.custom_config)
    # First: a multi-worker strategy must exist before other TF ops run.
    strategy = make_strategy(training.strategy)
    keras.utils.set_random_seed(RANDOM_SEED)
    model_cfg = model_config(fn_args.custom_config)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train_label = check_labels_before_training(fn_args, tf_transform_output, model_cfg)

    # Rows held out for early stopping and the compression search: no model learns from them.
    every = training.validation_every
    fitting = None if every is None else Holdout(every, held_out=False)
    train_rows = count_examples(fn_args.train_files)
    fitting_rows = fitting.count(train_rows) if fitting else train_rows
    fitted = fitted_training(training, fitting_rows, strategy.num_replicas_in_sync)
    training = fitted.training
    global_batch_size = training.batch_size * strategy.num_replicas_in_sync
    train_data = transformed_dataset(
        fn_args.train_files,
        tf_transform_output,
        global_batch_size,
        shuffle=True,
        repeat=True,
        part=fitting,
    )
    # Early stopping watches the held-out train rows; otherwise Keras reports the eval
    # split's loss per epoch, which nothing chooses by.
    validation_data = transformed_dataset(
        fn_args.train_files if fitted.early_stopping else fn_args.eval_files,
        tf_transform_output,
        global_batch_size,
        shuffle=False,
        repeat=False,
        part=Holdout(every, held_out=True) if fitted.early_stopping else None,
    )
    steps = steps_per_epoch(fitting_rows, global_batch_size, training, fn_args.train_steps)

    with strategy.scope():
        model = build_model(model_inputs(tf_transform_output), model_cfg)
        check_model_output(model, model_cfg)
        if train_label is not None:
            model = in_label_units(model, train_label)
        compile_model(model, model_cfg, training.learning_rate)
    model.summary(print_fn=tf.get_logger().info)

    epoch_seconds = EpochSeconds()
    callbacks: list[keras.callbacks.Callback] = [*_callbacks(fn_args.model_run_dir), epoch_seconds]
    stopping = None
    if fitted.early_stopping:
        stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=fitted.patience, restore_best_weights=True
        )
        callbacks.append(stopping)
    history = model.fit(
        train_data,
        epochs=training.epochs,
        steps_per_epoch=steps,
        validation_data=validation_data,
        validation_steps=None if fitted.early_stopping else fn_args.eval_steps,
        callbacks=callbacks,
        verbose=2,
    )

    if is_chief(strategy):
        serving_dir = fn_args.serving_model_dir
        details = {
            **fitted.details(),
            "validation_rows": "held-out train rows" if fitted.early_stopping else "eval split",
            "epochs_run": len(history.epoch),
            "best_epoch": stopping.best_epoch + 1 if stopping else None,
            "steps_per_epoch": steps,
            "global_batch_size": global_batch_size,
            "replicas": strategy.num_replicas_in_sync,
            "strategy": training.strategy.kind,
            "devices": strategy_devices(strategy),
        }
        _write_history(
            history, epoch_seconds, os.path.join(fn_args.model_run_dir, HISTORY_FILE), details
        )
    else:
        # Saving is collective: every multi-worker task saves, only the chief's copy is kept.
        serving_dir = os.path.join(tempfile.mkdtemp(), os.path.basename(fn_args.serving_model_dir))
    model.save(keras_model_path(serving_dir))
    export_serving_model(model, tf_transform_output, serving_dir, model_cfg.label.column)
    return model
