"""Knowledge distillation in tf_keras (Hinton et al., 2015): a smaller student learns
from the trained model's predictions as well as from the labels.

`keras.distillation` is Keras 3 only, and TFMOT needs Keras 2, so the training step is
written here: each batch runs the frozen teacher, and the student's loss mixes the
cross-entropy to the teacher's probabilities softened by a temperature (scaled by T²
so its gradients keep their size) with the cross-entropy to the labels. A regressor
mixes the squared error to the teacher's predictions with the one to the labels.

Models output probabilities (sigmoid or softmax), not logits; softening takes the
logits back from them (log-odds, or log-probabilities for a softmax, which a softmax
reads the same up to a constant).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
import tf_keras as keras

from models.common.fine_tuning import FineTuning
from models.common.train import LABEL_SCALE_LAYER, RANDOM_SEED
from models.config import DistillationConfig, ModelConfig

# Probabilities are clipped this far from 0 and 1 before their logits are taken.
_EPSILON = 1e-6


def _logits(probabilities: tf.Tensor, binary: bool) -> tf.Tensor:
    p = tf.clip_by_value(tf.cast(probabilities, tf.float32), _EPSILON, 1 - _EPSILON)
    return tf.math.log(p) - tf.math.log(1 - p) if binary else tf.math.log(p)


def _softened(probabilities: tf.Tensor, temperature: float, binary: bool) -> tf.Tensor:
    logits = _logits(probabilities, binary) / temperature
    return tf.sigmoid(logits) if binary else tf.nn.softmax(logits)


class Distiller(keras.Model):
    """Trains `student` (in place) against a frozen `teacher` with the mixed loss."""

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        model: ModelConfig,
        config: DistillationConfig,
    ):
        super().__init__(name="distiller")
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.kind = model.kind
        self.temperature = config.temperature
        self.soft_weight = config.soft_label_weight
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def call(self, features, training=False):
        return self.student(features, training=training)

    def _loss(self, labels: tf.Tensor, teacher: tf.Tensor, student: tf.Tensor) -> tf.Tensor:
        if self.kind == "regression":
            labels = tf.reshape(tf.cast(labels, tf.float32), tf.shape(student))
            hard = keras.losses.mean_squared_error(labels, student)
            soft = keras.losses.mean_squared_error(teacher, student)
            return tf.reduce_mean(self.soft_weight * soft + (1 - self.soft_weight) * hard)
        binary = self.kind == "binary"
        if binary:
            labels = tf.reshape(tf.cast(labels, tf.float32), tf.shape(student))
            hard = keras.losses.binary_crossentropy(labels, student)
            soft = keras.losses.binary_crossentropy(
                _softened(teacher, self.temperature, binary),
                _softened(student, self.temperature, binary),
            )
        else:
            hard = keras.losses.sparse_categorical_crossentropy(labels, student)
            soft = keras.losses.categorical_crossentropy(
                _softened(teacher, self.temperature, binary),
                _softened(student, self.temperature, binary),
            )
        soft = soft * self.temperature**2
        return tf.reduce_mean(self.soft_weight * soft + (1 - self.soft_weight) * hard)

    def train_step(self, data):
        features, labels = data
        teacher = self.teacher(features, training=False)
        with tf.GradientTape() as tape:
            student = self.student(features, training=True)
            loss = self._loss(labels, teacher, student)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def in_teacher_units(student: keras.Model, teacher: keras.Model) -> keras.Model:
    """A regressor student with the teacher's fixed rescaling to the label's units (the
    Trainer adds it; see models.common.train.in_label_units); other students as they are."""
    try:
        scale = teacher.get_layer(LABEL_SCALE_LAYER)
    except ValueError:
        return student
    (output,) = student.outputs
    rescaled = keras.layers.Rescaling.from_config(scale.get_config())(output)
    return keras.Model(inputs=student.inputs, outputs=rescaled, name=student.name)


def distill(
    teacher: keras.Model,
    build_student: Callable[[ModelConfig], keras.Model],
    config: DistillationConfig,
    fine_tuning: FineTuning,
) -> keras.Model:
    """A student of `config`'s sizes, built by `build_student` and trained
    `config.epochs` epochs on the fine-tuning batches against `teacher`'s predictions;
    `teacher` is left as it was."""
    keras.utils.set_random_seed(RANDOM_SEED)
    model = fine_tuning.model
    student = in_teacher_units(build_student(config.of(model)), teacher)
    distiller = Distiller(student, teacher, model, config)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate=fine_tuning.learning_rate))
    distiller.fit(
        fine_tuning.data,
        epochs=config.epochs,
        steps_per_epoch=fine_tuning.steps_per_epoch,
        verbose=2,
    )
    teacher.trainable = True
    return student
