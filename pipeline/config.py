"""leanline's one typed configuration, loaded from YAML and validated on load.

Every error names the file and the dotted key, so a person can fix the YAML
without reading this module. Relative paths are resolved against the YAML
file's directory; `package:<dist>/<path>` names a file shipped inside an
installed Python package (the taxi CSV in the tfx wheel, for instance).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import UserError

PACKAGE_PREFIX = "package:"
MODEL_FAMILIES = ("tabular", "taxi", "digits", "text")
# Families that train a regressor as well as a classifier (`model.task: regression`).
REGRESSION_FAMILIES = ("tabular", "text")
BUNDLED_DATASETS = ("taxi", "penguins", "digits", "reviews")
# Families whose Transform is rebuilt in builtin TFLite ops for the end-to-end TFLite
# (models/<family>/builtin_transform.py).
BUILTIN_TRANSFORM_FAMILIES = ("tabular", "taxi", "digits")
# The sizes a student (compression.distillation, search.students) sets, by family; a
# module's build_model reads whichever it likes.
STUDENT_SIZES = {
    "tabular": ("hidden_units", "max_embedding_dim"),
    "taxi": ("hidden_units", "max_embedding_dim"),
    "digits": ("hidden_units", "conv_filters"),
    "text": ("hidden_units", "encoder"),
}
# tf_keras metrics (TFMA names) for which a lower value is the better model; every other
# metric is gated as higher-is-better.
LOWER_IS_BETTER_METRICS = frozenset(
    {
        "mean_squared_error",
        "root_mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "log_cosh_error",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "hinge",
        "squared_hinge",
        "poisson",
    }
)
# Words in the names of metrics that judge class predictions, not numbers.
CLASSIFICATION_WORDS = ("accuracy", "auc", "precision", "recall", "crossentropy", "hinge")
# `evaluation.metrics` and the gated metric when a config names none, by kind of model.
DEFAULT_METRICS = {
    "binary": (["BinaryAccuracy", "AUC", "ExampleCount"], "binary_accuracy"),
    "multiclass": (["SparseCategoricalAccuracy", "ExampleCount"], "sparse_categorical_accuracy"),
    "regression": (
        ["MeanSquaredError", "MeanAbsoluteError", "ExampleCount"],
        "mean_absolute_error",
    ),
}
# A Python file (`models/churn.py`, relative to the config) or a dotted module name.
MODULE_FILE_SUFFIX = ".py"
_DOTTED_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def metric_name(class_name: str) -> str:
    """TFMA's name for a tf_keras metric class: BinaryAccuracy -> binary_accuracy."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower().replace("a_u_c", "auc")


# Unset accuracy gates' bounds on large eval splits (absolute drops, fractions), and the
# TFLite/SavedModel agreement; on few rows they grow to GATE_RESOLUTION_ROWS rows' worth.
DEFAULT_MAX_DROP = {"max_drop_vs_uncompressed": 0.005, "max_drop_vs_blessed": 0.01}
DEFAULT_MIN_TFLITE_AGREEMENT = 0.99
GATE_RESOLUTION_ROWS = 1.5
# The share of the train split a search holds out where training sets none.
DEFAULT_VALIDATION_FRACTION = 0.2
# The search's quality budget where neither it nor the gate sets one that fits.
DEFAULT_SEARCH_BUDGET = {"classification": 0.005, "regression": 0.05}


class ConfigError(UserError, ValueError):
    """A configuration file is unreadable or invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class SplitConfig(_Strict):
    """Hash-bucket split of the ingested rows: `train` and `eval` buckets out of their sum."""

    train: PositiveInt = 4
    eval: PositiveInt = 1


class DataConfig(_Strict):
    # A bundled dataset (materialized on demand, see pipeline/datasets.py) or a path.
    bundled: Literal["taxi", "penguins", "digits", "reviews"] | None = None
    # A CSV/TFRecord file, or a directory of them; `package:<dist>/<path>` allowed.
    path: str | None = None
    format: Literal["csv", "tfrecord"] = "csv"
    split: SplitConfig = SplitConfig()
    # Curated schema kept in the repo (ImportSchemaGen); when absent SchemaGen infers one.
    schema_path: str | None = Field(default=None, alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.bundled is None) == (self.path is None):
            raise ValueError(
                f"set exactly one of `bundled` ({', '.join(BUNDLED_DATASETS)}) or `path`"
            )
        if self.bundled and self.format != "csv":
            raise ValueError("bundled datasets are CSV; drop `format` or use `path`")
        return self


class LabelConfig(_Strict):
    # The raw column the label comes from (family taxi derives "big tipper" from it).
    column: str
    # Classification only: the class names in id order, served beside the probabilities
    # (`classes`); the pusher refuses a version whose list differs from the last pushed
    # one's. A label of strings has the ids of its values' positions here (another value
    # is refused); a label of integers has its values as ids, named here. Unset, a local
    # run on CSV lists a label's strings sorted (pipeline/classes.py).
    classes: Annotated[list[str], Field(min_length=2)] | None = None
    # Classification only: number of classes; 2 means one sigmoid output, more a softmax.
    # Unset: the classes' count; else, on a local CSV run, an integer label's largest
    # id + 1 (pipeline/classes.py); else 2.
    num_classes: Annotated[int, Field(ge=2)] = 2

    @model_validator(mode="before")
    @classmethod
    def _count_of_the_classes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        classes = data.get("classes")
        if isinstance(classes, list) and any(isinstance(name, bool) for name in classes):
            raise ValueError(
                f"classes {classes}: YAML reads unquoted yes, no, true, false, on and off as "
                "booleans; quote class names, e.g. ['no', 'yes']"
            )
        if data.get("num_classes") is None:
            data = {key: value for key, value in data.items() if key != "num_classes"}
            if isinstance(classes, list):
                data["num_classes"] = len(classes)
        return data

    @model_validator(mode="after")
    def _classes_are_distinct_names(self) -> LabelConfig:
        if self.classes is None:
            return self
        repeated = sorted({name for name in self.classes if self.classes.count(name) > 1})
        if repeated or "" in self.classes:
            raise ValueError(
                f"classes {self.classes}: each class needs a name of its own "
                f"({'repeated: ' + ', '.join(map(repr, repeated)) if repeated else 'an empty one'})"
            )
        if self.num_classes != len(self.classes):
            raise ValueError(
                f"num_classes is {self.num_classes} but classes names {len(self.classes)}: "
                "set one of them, or both alike"
            )
        return self


class FeaturesConfig(_Strict):
    # Floats, z-scored; missing values imputed with the mean (0 after scaling).
    numeric: list[str] = []
    # Numbers bucketized into N quantile buckets: {column: N}.
    bucketized: dict[str, PositiveInt] = {}
    # Strings (or ids), mapped through a vocabulary of the most frequent values.
    categorical: list[str] = []
    # Integers in [0, N), used as they are: {column: N}.
    categorical_int: dict[str, PositiveInt] = {}
    # Free text, tokenized (family text; `model.encoder` says how).
    text: list[str] = []

    def all_columns(self) -> list[str]:
        return [
            *self.numeric,
            *self.bucketized,
            *self.categorical,
            *self.categorical_int,
            *self.text,
        ]

    @field_validator("bucketized", "categorical_int")
    @classmethod
    def _by_name(cls, columns: dict[str, int]) -> dict[str, int]:
        # Components receive the config as JSON with sorted keys: in name order here too,
        # every process builds a block's columns in one order.
        return dict(sorted(columns.items()))

    @model_validator(mode="after")
    def _disjoint(self) -> FeaturesConfig:
        columns = self.all_columns()
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"columns listed under more than one feature kind: {repeated}")
        # Each kind but categorical becomes one block named after the kind (`numeric_xf`),
        # each categorical column its own `<column>_xf`.
        block_kinds = set(FeaturesConfig.model_fields) - {"categorical", "text"}
        clashing = sorted(set(self.categorical) & block_kinds)
        if clashing:
            raise ValueError(
                f"categorical columns {clashing} are named like a feature kind, whose block "
                "of transformed features has that name; rename the column"
            )
        return self


class EncoderConfig(_Strict):
    """Family text: how text becomes token ids, and the Transformer encoder's sizes."""

    # The most frequent tokens of the train split get ids; others share `oov_buckets`.
    vocab_size: PositiveInt = 20000
    # Tokens per text: longer texts are truncated, shorter ones padded.
    max_tokens: PositiveInt = 64
    embedding_dim: PositiveInt = 64
    blocks: PositiveInt = 2
    heads: PositiveInt = 4
    feed_forward_dim: PositiveInt = 128
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1

    @model_validator(mode="after")
    def _heads_divide_width(self) -> EncoderConfig:
        if self.embedding_dim % self.heads:
            raise ValueError(
                f"embedding_dim {self.embedding_dim} is not a multiple of heads {self.heads}: "
                "each attention head takes embedding_dim / heads of the width"
            )
        return self


class ModelConfig(_Strict):
    # A bundled family, models.<family> (preprocessing.preprocessing_fn, model.build_model),
    # or the user's own module defining preprocessing_fn(inputs, custom_config) and
    # build_model(inputs, model_config): a .py file (relative to the config) or a dotted
    # module name. Exactly one of the two.
    family: Literal["tabular", "taxi", "digits", "text"] | None = None
    module: str | None = None
    # classification: class probabilities out; regression: one number, MSE loss.
    task: Literal["classification", "regression"] = "classification"
    features: FeaturesConfig = FeaturesConfig()
    label: LabelConfig
    hidden_units: list[PositiveInt] = [64, 32]
    # tabular and taxi: the widest embedding of an id block (narrower for few ids).
    max_embedding_dim: PositiveInt = 8
    # digits: the filters of each 3x3 convolution, in order.
    conv_filters: Annotated[list[PositiveInt], Field(min_length=1)] = [16, 32]
    # text: tokens and the Transformer encoder (`hidden_units` size the classifier head).
    encoder: EncoderConfig = EncoderConfig()
    # Categorical columns' vocabularies (text: `encoder.vocab_size`).
    vocab_size: PositiveInt = 1000
    # Ids for values outside a vocabulary. More than 1 hashes such values into buckets,
    # which TFLite's builtin ops cannot: the run then ships no end-to-end TFLite.
    oov_buckets: PositiveInt = 1
    # Free-form settings for a model module (read from model_config.params).
    params: dict[str, Any] = {}

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def kind(self) -> Literal["binary", "multiclass", "regression"]:
        if self.is_regression:
            return "regression"
        return "binary" if self.label.num_classes == 2 else "multiclass"

    @property
    def name(self) -> str:
        """The family, or the module's name (its file name without `.py`)."""
        if self.family:
            return self.family
        return Path(self.module).stem if self.module_is_file else self.module.rpartition(".")[2]

    @property
    def end_to_end_tflite(self) -> bool:
        """Whether runs ship a TFLite model that takes raw features (the Transform inside,
        builtin ops only): the family's Transform has a builtin twin, and no vocabulary
        hashes unseen values into buckets (TFT's FarmHash has no builtin op)."""
        hashes = bool(self.features.categorical) and self.oov_buckets > 1
        return self.family in BUILTIN_TRANSFORM_FAMILIES and not hashes

    @property
    def tflite_takes_token_ids(self) -> bool:
        """Whether runs ship a TFLite model on token ids, with the tokenizer beside it
        (family text: TFLite's builtin ops cannot tokenize)."""
        return self.family == "text"

    @property
    def package(self) -> str:
        """The package under models/ whose preprocessing_fn and run_fn the pipeline names."""
        return self.family or "custom"

    @property
    def module_is_file(self) -> bool:
        return self.module is not None and self.module.endswith(MODULE_FILE_SUFFIX)

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if (self.family is None) == (self.module is None):
            raise ValueError(
                f"set exactly one of `family` ({', '.join(MODEL_FAMILIES)}) or `module` (your own "
                "preprocessing_fn and build_model: a .py file or a dotted module name)"
            )
        if self.module is not None and not (
            self.module_is_file or _DOTTED_MODULE.match(self.module)
        ):
            raise ValueError(
                f"module {self.module!r} is neither a .py file nor a dotted module name "
                "(e.g. models/churn.py or my_models.churn)"
            )
        if self.family in ("tabular", "taxi") and not self.features.all_columns():
            raise ValueError(
                f"model family {self.family!r} needs at least one feature in `features`"
            )
        if self.family == "text" and (
            len(self.features.text) != 1 or self.features.all_columns() != self.features.text
        ):
            raise ValueError(
                "model family 'text' reads one text column: set features.text to it (e.g. "
                f"[review]) and no other features; got {self.features.model_dump()}"
            )
        if self.features.text and self.family not in ("text", None):
            raise ValueError(
                f"features.text {self.features.text}: only model family 'text' (or your own "
                f"module) reads text columns, not {self.family!r}"
            )
        if self.label.column in self.features.all_columns():
            raise ValueError(f"label column {self.label.column!r} is also listed as a feature")
        if self.is_regression:
            if self.family is not None and self.family not in REGRESSION_FAMILIES:
                raise ValueError(
                    f"task regression: model family {self.family!r} is a classifier; use "
                    f"family {' or '.join(REGRESSION_FAMILIES)}, or your own module"
                )
            # 2 is the default, which a saved run config spells out.
            for key, unset in (("num_classes", 2), ("classes", None)):
                if getattr(self.label, key) != unset:
                    raise ValueError(
                        f"label.{key} is for classification; a regression label is a number"
                    )
        return self


class StrategyConfig(_Strict):
    # default: one device (CPU or one GPU); mirrored: all local GPUs; tpu; multi_worker (TF_CONFIG).
    kind: Literal["default", "mirrored", "tpu", "multi_worker"] = "default"
    tpu_address: str | None = None

    @model_validator(mode="after")
    def _tpu_address(self) -> StrategyConfig:
        if self.kind == "tpu" and not self.tpu_address:
            raise ValueError(
                "strategy `tpu` needs `tpu_address` (e.g. grpc://10.0.0.2:8470 or a TPU name)"
            )
        return self


class TrainingConfig(_Strict):
    # Unset: chosen from the train split's size (models/common/schedule.py): a batch of
    # about 1 row in 50, and up to ~2000 steps stopped early on held-out train rows with
    # the best epoch's weights kept. Set: exactly these, no early stopping.
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    # Upper bound on steps per epoch; None means one pass over the train split.
    steps_per_epoch: PositiveInt | None = None
    strategy: StrategyConfig = StrategyConfig()
    # Share of the train split held out of training and fine-tuning: early stopping (epochs
    # unset) and the compression search judge on rows no model has learned from.
    # Default: none, or 0.2 with unset epochs or a compression.search.
    validation_fraction: Annotated[float, Field(ge=0.05, le=0.5)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _early_stopping_has_rows(cls, data: Any) -> Any:
        """Unset epochs stop early on DEFAULT_VALIDATION_FRACTION of the train split
        where `validation_fraction` is unset."""
        if isinstance(data, dict) and data.get("epochs") is None:
            if data.get("validation_fraction") is None:
                return {**data, "validation_fraction": DEFAULT_VALIDATION_FRACTION}
        return data

    @property
    def validation_every(self) -> int | None:
        """One train record in this many is held out; None: none is."""
        if self.validation_fraction is None:
            return None
        return max(2, round(1 / self.validation_fraction))


class PruningConfig(_Strict):
    enabled: bool = True
    target_sparsity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.8
    schedule: Literal["polynomial", "constant"] = "polynomial"
    begin_step: NonNegativeInt = 0
    # None: end of the fine-tuning epochs.
    end_step: PositiveInt | None = None
    # Which layers to prune: all (Dense, Conv2D and Embedding), only Dense or only Conv2D.
    # The output layer is never pruned.
    layers: Literal["all", "dense", "conv"] = "all"


Quantization = Literal["none", "dynamic", "int8_ptq", "qat", "pqat"]


class StudentEncoderConfig(_Strict):
    """A text student's encoder sizes that differ from the model's. Its tokens
    (vocab_size, max_tokens) are the Transform's, which it shares with the model."""

    embedding_dim: PositiveInt | None = None
    blocks: PositiveInt | None = None
    heads: PositiveInt | None = None
    feed_forward_dim: PositiveInt | None = None


class StudentConfig(_Strict):
    """A smaller network of the model's own family: the sizes that differ from the
    model's (unset ones stay as the model has them)."""

    hidden_units: list[PositiveInt] | None = None
    max_embedding_dim: PositiveInt | None = None
    conv_filters: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    encoder: StudentEncoderConfig | None = None

    def sizes(self) -> dict[str, Any]:
        sizes = self.model_dump(exclude_none=True, include=set(StudentConfig.model_fields))
        return {name: value for name, value in sizes.items() if value}

    def of(self, model: ModelConfig) -> ModelConfig:
        """The student's model config: `model` with this student's sizes (validated: a
        student's encoder width must still split into its heads)."""
        sizes = self.sizes()
        if "encoder" in sizes:
            sizes["encoder"] = {**model.encoder.model_dump(), **sizes["encoder"]}
        return ModelConfig.model_validate({**model.model_dump(), **sizes})

    def words(self) -> str:
        sizes = self.sizes()
        sizes |= sizes.pop("encoder", {})
        return "student " + ", ".join(f"{name} {value}" for name, value in sizes.items())


class DistillationConfig(StudentConfig):
    """Knowledge distillation: the student learns from the trained model's predictions
    over the transformed train split (soft labels, softened by `temperature`) and from
    the labels (hard labels), weighted `soft_label_weight` to 1 - `soft_label_weight`."""

    temperature: Annotated[float, Field(gt=0)] = 2.0
    soft_label_weight: Fraction = 0.7
    epochs: PositiveInt = 10

    @model_validator(mode="after")
    def _smaller(self) -> DistillationConfig:
        if not self.sizes():
            raise ValueError(
                "a student needs at least one size: hidden_units, max_embedding_dim "
                "(tabular, taxi), conv_filters (digits) or encoder (text)"
            )
        return self


class SearchConfig(_Strict):
    """Accuracy-aware compression search: the smallest candidate (zipped int8 TFLite) whose
    headline quality on validation rows carved from the train split (and held out of
    training: `training.validation_fraction`) loses at most `max_quality_loss` against
    the trained model. Never judged on the eval split, which the gates use."""

    # Accuracy points as a fraction (0.005 = 0.5 pt) for a classifier; the relative
    # growth of the mean absolute error (0.05 = 5%) for a regressor. Unset: the
    # compression gate's own bound (evaluation.thresholds, vs the uncompressed model).
    max_quality_loss: Annotated[float, Field(ge=0.0)] | None = None
    # A candidate passes when its loss plus this many standard errors (of the mean of
    # the paired per-row differences) is within budget: the validation rows are few,
    # and the smallest of many lucky candidates would fail the gate on the eval rows.
    margin_standard_errors: Annotated[float, Field(ge=0.0)] = 1.0
    # A classifier's candidate passes only where its TFLite and its Keras model (what the
    # SavedModel serves) predict the same class on at least this share of the validation
    # rows: the pusher refuses a version whose two formats disagree more. Unset:
    # evaluation.thresholds.min_tflite_agreement (resolved_compression fills it in).
    min_agreement: Fraction | None = None
    max_trials: PositiveInt = 10
    max_minutes: Annotated[float, Field(gt=0)] = 10.0
    # The candidate space: every student (and the trained model itself) at every
    # sparsity (0: no pruning), quantized each way (qat and pqat are one choice: pqat
    # on a pruned model, qat on a dense one).
    sparsities: Annotated[list[Annotated[float, Field(ge=0.0, lt=1.0)]], Field(min_length=1)] = [
        0.0,
        0.5,
        0.8,
        0.9,
    ]
    # `dynamic` (int8 weights, float activations) keeps a near-lossless candidate in the
    # space where full int8 loses.
    quantizations: Annotated[list[Quantization], Field(min_length=1)] = [
        "int8_ptq",
        "dynamic",
        "pqat",
    ]
    students: list[DistillationConfig] = []


class CompressionConfig(_Strict):
    enabled: bool = True
    pruning: PruningConfig = PruningConfig()
    quantization: Quantization = "int8_ptq"
    # A smaller student distilled from the trained model, then pruned and quantized.
    distillation: DistillationConfig | None = None
    # Set: the search chooses sparsity, quantization and student (pruning's other
    # settings and fine_tune_epochs still apply); `pruning.target_sparsity`,
    # `quantization` and `distillation` are then not used.
    search: SearchConfig | None = None
    # Epochs of fine-tuning while pruning or QAT; unset: about 500 steps (3 to 50 epochs).
    fine_tune_epochs: PositiveInt | None = None
    # Train-split examples fed to the converter to calibrate int8 ranges.
    representative_examples: PositiveInt = 256
    # Rows of the eval split used for the report's quality (accuracy or errors) and latency figures.
    report_examples: PositiveInt = 2000

    @model_validator(mode="after")
    def _quantization_fits_pruning(self) -> CompressionConfig:
        if self.search is not None and self.distillation is not None:
            raise ValueError(
                "compression.distillation is a fixed student, but compression.search chooses "
                "one: list the student under compression.search.students instead"
            )
        if self.search is not None:
            return self
        if self.quantization == "qat" and self.pruning.enabled:
            raise ValueError(
                "quantization qat would refill the pruned weights; "
                "use pqat to quantize a pruned model, or disable pruning"
            )
        if self.quantization == "pqat" and not self.pruning.enabled:
            raise ValueError(
                "quantization pqat keeps pruned weights at zero, but pruning.enabled is false; "
                "enable pruning or use qat"
            )
        return self


def gates_judge_tflite(model: ModelConfig, compression: CompressionConfig) -> bool:
    """Whether the gates judge the end-to-end TFLite models (TFMA's `tf_lite` models) of a
    run rather than its SavedModels: when compression builds them."""
    return compression.enabled and model.end_to_end_tflite


ChangeBound = tuple[Literal["absolute", "relative"], float]


class ThresholdsConfig(_Strict):
    """The gates on the overall slice. A higher-is-better metric (accuracy, AUC) has a
    floor and may drop by an absolute amount; a lower-is-better one (an error, a loss;
    LOWER_IS_BETTER_METRICS) has an optional ceiling and may grow by a fraction of the
    baseline's value."""

    # The TFMA metric the gate reads (a metric listed in `metrics`); the default depends
    # on the task (DEFAULT_METRICS).
    metric: str = "binary_accuracy"
    # Higher is better: absolute lower bound (default 0.5), and how much the compressed
    # model may lose against the uncompressed one of the same run and against the last
    # blessed model (defaults 0.005 and 0.01, or 1.5 eval rows' worth where that is more:
    # fitted_to_eval_rows).
    min_value: Fraction | None = None
    max_drop_vs_uncompressed: Fraction | None = None
    max_drop_vs_blessed: Fraction | None = None
    # Lower is better: absolute upper bound (default none), and how much it may grow,
    # as a fraction of the baseline's value (defaults 0.05 and 0.05: 5% more error).
    max_value: float | None = None
    # The share of eval rows on which a classifier's shipped TFLite (end to end, or on its
    # tokenizer's token ids) and its SavedModel must predict the same class for the
    # pusher to publish the version (default 0.99, or fewer on few rows: see
    # fitted_to_eval_rows).
    min_tflite_agreement: Fraction | None = None
    max_increase_vs_uncompressed: Annotated[float, Field(ge=0.0)] | None = None
    max_increase_vs_blessed: Annotated[float, Field(ge=0.0)] | None = None
    # The slice gate, part of the compression gate: compression hurts rare slices most
    # (Hooker et al., 2019 and 2020), which the overall slice hides. In every slice of
    # `evaluation.slices` with at least min_slice_examples eval rows, the compressed
    # model may lose at most max_slice_drop (higher is better) or grow the error by at
    # most max_slice_increase of the uncompressed model's (lower is better). Smaller
    # slices are reported without metrics (TFMA's min_slice_size). Unset: no slice gate.
    max_slice_drop: Fraction | None = None
    max_slice_increase: Annotated[float, Field(ge=0.0)] | None = None
    min_slice_examples: PositiveInt = 100

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER_METRICS

    @property
    def tflite_agreement(self) -> float:
        return _given(self.min_tflite_agreement, DEFAULT_MIN_TFLITE_AGREEMENT)

    def fitted_to_eval_rows(
        self, eval_rows: int, agreement_rows: int, classifier: bool = True
    ) -> ThresholdsConfig:
        """These thresholds with the unset row-counted bounds no finer than
        GATE_RESOLUTION_ROWS rows of the split they are judged on: an accuracy drop vs the
        uncompressed and the blessed model (`eval_rows`), the TFLite agreement
        (`agreement_rows`; a `classifier`'s only). A bound below one row's worth refuses
        every compressed model that changes a single prediction; 1.5 rows lets one row
        change, never two. Set bounds and relative ones (errors) stay as they are."""
        update: dict[str, float] = {}
        if not self.lower_is_better:
            row = GATE_RESOLUTION_ROWS / eval_rows
            for key, default in DEFAULT_MAX_DROP.items():
                if getattr(self, key) is None:
                    update[key] = _round_up(max(default, row))
        if self.min_tflite_agreement is None and classifier:
            row = GATE_RESOLUTION_ROWS / agreement_rows
            allowed = _round_up(max(1 - DEFAULT_MIN_TFLITE_AGREEMENT, row))
            update["min_tflite_agreement"] = max(0.0, round(1 - allowed, 4))
        return self.model_copy(update=update)

    @property
    def floor(self) -> float | None:
        return None if self.lower_is_better else _given(self.min_value, 0.5)

    @property
    def ceiling(self) -> float | None:
        return self.max_value

    @property
    def vs_uncompressed(self) -> ChangeBound:
        """How far the metric may move against the run's uncompressed model."""
        if self.lower_is_better:
            return "relative", _given(self.max_increase_vs_uncompressed, 0.05)
        return "absolute", _given(
            self.max_drop_vs_uncompressed, DEFAULT_MAX_DROP["max_drop_vs_uncompressed"]
        )

    @property
    def vs_slices(self) -> ChangeBound | None:
        """How far the metric may move in each large enough slice against the run's
        uncompressed model; None without a slice gate."""
        if self.lower_is_better:
            return (
                None if self.max_slice_increase is None else ("relative", self.max_slice_increase)
            )
        return None if self.max_slice_drop is None else ("absolute", self.max_slice_drop)

    @property
    def vs_blessed(self) -> ChangeBound:
        """How far the metric may move against the last pushed model."""
        if self.lower_is_better:
            return "relative", _given(self.max_increase_vs_blessed, 0.05)
        return "absolute", _given(self.max_drop_vs_blessed, DEFAULT_MAX_DROP["max_drop_vs_blessed"])

    @model_validator(mode="after")
    def _bounds_fit_the_direction(self) -> ThresholdsConfig:
        if self.lower_is_better:
            wrong, direction, use = (
                ("min_value", "max_drop_vs_uncompressed", "max_drop_vs_blessed", "max_slice_drop"),
                "lower",
                "max_value, max_increase_vs_uncompressed, max_increase_vs_blessed and "
                "max_slice_increase",
            )
        else:
            wrong, direction, use = (
                (
                    "max_value",
                    "max_increase_vs_uncompressed",
                    "max_increase_vs_blessed",
                    "max_slice_increase",
                ),
                "higher",
                "min_value, max_drop_vs_uncompressed, max_drop_vs_blessed and max_slice_drop",
            )
        given = [key for key in wrong if getattr(self, key) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot bound {self.metric!r}, for which {direction} is "
                f"better; use {use}"
            )
        return self


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


def _round_up(value: float) -> float:
    """`value` to 4 decimals, up: a bound written into leanline.yaml reads plainly."""
    return math.ceil(value * 10_000 - 1e-9) / 10_000


class EvaluationConfig(_Strict):
    # tf_keras metric class names, computed by TFMA.
    metrics: list[str] = ["BinaryAccuracy", "AUC", "ExampleCount"]
    # Feature columns to slice by; the overall slice is always computed.
    slices: list[list[str]] = []
    thresholds: ThresholdsConfig = ThresholdsConfig()

    @model_validator(mode="after")
    def _gated_metric_is_computed(self) -> EvaluationConfig:
        names = [metric_name(class_name) for class_name in self.metrics]
        if self.thresholds.metric not in names:
            raise ValueError(
                f"thresholds.metric {self.thresholds.metric!r} is not among the computed metrics {names}"
            )
        if self.thresholds.vs_slices is not None and not self.slices:
            raise ValueError(
                "thresholds.max_slice_drop / max_slice_increase gate slices, but `slices` is "
                "empty; list the columns to slice by, e.g. slices: [[payment_type]]"
            )
        return self


class ServingConfig(_Strict):
    # TF Serving's batching parameters (batching.config).
    max_batch_size: PositiveInt = 128
    batch_timeout_micros: NonNegativeInt = 2000
    max_enqueued_batches: PositiveInt = 100
    num_batch_threads: PositiveInt = 4
    # Eval examples written as warm-up requests into assets.extra.
    warmup_requests: NonNegativeInt = 16
    # Serve each version's end-to-end int8 model.tflite instead of its SavedModel
    # (TF Serving's experimental --prefer_tflite_model), with these interpreter pools.
    prefer_tflite: bool = False
    num_tflite_pools: PositiveInt = 1
    num_tflite_interpreters_per_pool: PositiveInt = 1
    # Kubernetes.
    replicas: PositiveInt = 1
    max_replicas: PositiveInt = 4
    cpu: str = "1"
    memory: str = "2Gi"
    model_base_path: str = "/models"


class KubeflowConfig(_Strict):
    image: str = "leanline:latest"
    pipeline_root: str = "gs://your-bucket/leanline"
    # Beam args for data components on the cluster (Dataflow, Flink, Spark runner options).
    beam_pipeline_args: list[str] = []


class LeanlineConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig = TrainingConfig()
    compression: CompressionConfig = CompressionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    serving: ServingConfig = ServingConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()
    # Beam args for local runs; in_memory beats multi_processing on a small machine.
    beam_pipeline_args: list[str] = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    # Where runs write (MLMD, artifacts, serving/, tflite/); relative to the working
    # directory, default output/<name>. Other relative paths resolve against the YAML.
    output_dir: str | None = None
    # Directory of the YAML file; relative paths resolve against it.
    config_dir: str = Field(default=".", exclude=True)
    # Dotted keys that validation filled in from the kind of model (`_task_defaults`)
    # rather than read: a copy with other classes (with_overrides) fills them in anew.
    _filled_in: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _metrics_for_the_task(cls, data: Any, handler: Any) -> LeanlineConfig:
        """Fills `evaluation.metrics` and the gated metric, where the config names none,
        for the kind of model: accuracy for classifiers, errors for regressors; and
        records what it filled in (`written`)."""
        if not isinstance(data, dict):
            return handler(data)
        data, filled = _task_defaults(data)
        config = handler(data)
        config._filled_in = filled
        return config

    @model_validator(mode="before")
    @classmethod
    def _defaults_that_fit_the_data(cls, data: Any) -> Any:
        """Without a `compression` section the run searches (the default search space
        holds near-lossless candidates, so a small table ships its smallest model within
        budget). A search holds out DEFAULT_VALIDATION_FRACTION of the train split where
        `training.validation_fraction` is unset."""
        if not isinstance(data, dict):
            return data
        if data.get("compression") is None:
            data = {**data, "compression": {"search": {}}}
        compression, training = data["compression"], data.get("training") or {}
        if not isinstance(compression, dict) or not isinstance(training, dict):
            return data
        if compression.get("search") is None or training.get("validation_fraction") is not None:
            return data
        return {
            **data,
            "training": {**training, "validation_fraction": DEFAULT_VALIDATION_FRACTION},
        }

    @model_validator(mode="after")
    def _regression_gates_no_class_metric(self) -> LeanlineConfig:
        metric = self.evaluation.thresholds.metric
        if self.model.is_regression and any(word in metric for word in CLASSIFICATION_WORDS):
            raise ValueError(
                f"evaluation.thresholds.metric {metric!r} judges classes; a regression model "
                "is gated on an error such as mean_absolute_error or mean_squared_error "
                "(from MeanAbsoluteError, MeanSquaredError)"
            )
        return self

    @model_validator(mode="after")
    def _students_fit_the_family(self) -> LeanlineConfig:
        compression = self.compression
        students = [compression.distillation] if compression.distillation else []
        if compression.search:
            students += compression.search.students
        taken = STUDENT_SIZES.get(self.model.family)
        for student in students:
            unused = sorted(set(student.sizes()) - set(taken or student.sizes()))
            if unused:
                raise ValueError(
                    f"a student's {' and '.join(unused)} does not size the "
                    f"{self.model.family} model; it takes {' and '.join(taken)}"
                )
            try:
                student.of(self.model)
            except ValidationError as error:
                raise ValueError(f"student {student.words()}: {error.errors()[0]['msg']}") from None
        return self

    @property
    def search_budget(self) -> float | None:
        """The largest quality loss the compression search allows: its own, or the
        compression gate's where the gate measures loss the same way (absolute for
        accuracy-like metrics, relative for errors); None without a search."""
        search = self.compression.search
        if search is None:
            return None
        if search.max_quality_loss is not None:
            return search.max_quality_loss
        kind, bound = self.evaluation.thresholds.vs_uncompressed
        if (kind == "relative") == self.model.is_regression:
            return bound
        return DEFAULT_SEARCH_BUDGET["regression" if self.model.is_regression else "classification"]

    @property
    def resolved_compression(self) -> CompressionConfig:
        """The compression section with the search's budget (`search_budget`) and the
        TFLite agreement it needs (the pusher's, where the pusher checks one) filled in."""
        search = self.compression.search
        if search is None:
            return self.compression
        update: dict[str, float] = {}
        if search.max_quality_loss is None:
            update["max_quality_loss"] = self.search_budget
        # Only where the pusher checks the agreement: a classifier shipping an end-to-end
        # or a token-id TFLite (a model module's or hashed vocabularies' runs ship none).
        checked = self.model.end_to_end_tflite or self.model.tflite_takes_token_ids
        if search.min_agreement is None and not self.model.is_regression and checked:
            update["min_agreement"] = self.evaluation.thresholds.tflite_agreement
        return self.compression.model_copy(update={"search": search.model_copy(update=update)})

    def resolve(self, path: str) -> str:
        """Absolute path for a config path: `package:` URIs, ~, and paths relative to the YAML."""
        return resolve_path(path, Path(self.config_dir))

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir or Path("output") / self.name).expanduser().resolve()

    @property
    def serving_model_dir(self) -> Path:
        """TF Serving's model base path: one numbered version directory per push."""
        return self.output_path / "serving" / self.name  # pipeline.pipeline.SERVING_DIR

    @property
    def tflite_model_dir(self) -> Path:
        return self.output_path / "tflite" / self.name  # pipeline.pipeline.TFLITE_DIR

    @property
    def label_key(self) -> str:
        return self.model.label.column

    def written(self, key: str) -> bool:
        """Whether the dotted key (`model.label.num_classes`) was given, not filled in
        for the kind of model."""
        return key not in self._filled_in

    def with_overrides(self, **changes: Any) -> LeanlineConfig:
        """A copy with fields replaced (nested mappings merge), validated like the original:
        what validation filled in for the kind of model is filled in again for the copy's."""
        data = self.model_dump(by_alias=True)
        for key in self._filled_in:
            *parents, name = key.split(".")
            section = functools.reduce(dict.__getitem__, parents, data)
            del section[name]
        data = _deep_merge(data, changes)
        try:
            return LeanlineConfig.model_validate({**data, "config_dir": self.config_dir})
        except ValidationError as error:
            raise ConfigError(_format_errors(f"{self.name} with {changes}", error)) from None


def _class_count(label: Any) -> int:
    """The number of classes a raw `model.label` mapping gives, as LabelConfig reads it."""
    if not isinstance(label, dict):
        return 2
    classes = label.get("classes")
    return label.get("num_classes") or (len(classes) if isinstance(classes, list) else 2)


def _task_defaults(data: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """The raw config with `evaluation.metrics` and `evaluation.thresholds.metric` filled
    in where unset, for the kind of model (DEFAULT_METRICS), and the dotted keys that
    were unset: those two and `model.label.num_classes`."""
    model = data.get("model")
    evaluation = data.get("evaluation") or {}
    thresholds = evaluation.get("thresholds") or {} if isinstance(evaluation, dict) else None
    if not isinstance(model, dict) or not isinstance(thresholds, dict):
        return data, frozenset()
    label = model.get("label")
    filled = set()
    if isinstance(label, dict) and label.get("num_classes") is None:
        filled.add("model.label.num_classes")
    if model.get("task") == "regression":
        kind = "regression"
    else:
        kind = "binary" if _class_count(label) == 2 else "multiclass"
    metrics, gated = DEFAULT_METRICS[kind]
    if "metrics" not in evaluation:
        evaluation = {"metrics": metrics, **evaluation}
        filled.add("evaluation.metrics")
    elif kind != "regression" and "model.label.num_classes" in filled and not label.get("classes"):
        # No class count yet (a local run takes it from the data): gate on a metric that
        # the config's metrics compute, whichever kind it is for.
        written = {metric_name(m) for m in evaluation["metrics"] or () if isinstance(m, str)}
        kinds = ("binary", "multiclass")
        gated = next(
            (DEFAULT_METRICS[k][1] for k in kinds if DEFAULT_METRICS[k][1] in written), gated
        )
    if "metric" not in thresholds:
        evaluation = {**evaluation, "thresholds": {"metric": gated, **thresholds}}
        filled.add("evaluation.thresholds.metric")
    return {**data, "evaluation": evaluation}, frozenset(filled)


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_path(path: str, base: Path) -> str:
    if "://" in path:  # gs:// and other remote URIs are read where the pipeline runs
        return path
    if path.startswith(PACKAGE_PREFIX):
        dist, _, inner = path[len(PACKAGE_PREFIX) :].partition("/")
        spec = importlib.util.find_spec(dist)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"package {dist!r} in {path!r} is not installed")
        return str(Path(next(iter(spec.submodule_search_locations))) / inner)
    expanded = Path(os.path.expanduser(path))
    return str(expanded if expanded.is_absolute() else (base / expanded).resolve())


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and nesting)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif "input" in item and item["type"] not in ("value_error",):
            message = f"{message} (got {item['input']!r})"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _check_paths(config: LeanlineConfig, source: str) -> None:
    checks = [("data.path", config.data.path), ("data.schema", config.data.schema_path)]
    if config.model.module_is_file:
        checks.append(("model.module", config.model.module))
    for key, value in checks:
        if value is None or "://" in value:
            continue
        resolved = config.resolve(value)
        if not os.path.exists(resolved):
            raise ConfigError(
                f"{source}: invalid configuration\n  {key}: path does not exist: {resolved}"
            )


def load_config(path: str | os.PathLike[str], check_paths: bool = True) -> LeanlineConfig:
    """Reads and validates a leanline YAML config; raises ConfigError naming file and key."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"{source}: cannot read config file: {error.strerror}") from error
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    if "config_dir" in raw:
        raise ConfigError(
            f"{source}: invalid configuration\n  config_dir: unknown key (check its spelling and nesting)"
        )
    raw["config_dir"] = str(Path(path).resolve().parent)
    try:
        config = LeanlineConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None
    if check_paths:
        _check_paths(config, source)
    return config


RUN_CONFIG_FILE = "leanline.yaml"


def write_run_config(config: LeanlineConfig, output_dir: Path) -> Path:
    """Saves `config` in a run's output directory with every path made absolute, so the
    directory alone tells later commands (`report`, `serving-config`, ...) what ran."""
    data = config.model_dump(by_alias=True)
    for key in ("path", "schema"):
        if data["data"].get(key):
            data["data"][key] = config.resolve(data["data"][key])
    data["model"] = resolved_model(config)
    data["output_dir"] = str(output_dir)
    path = output_dir / RUN_CONFIG_FILE
    partial = path.with_name(f".{RUN_CONFIG_FILE}.partial")
    partial.write_text(
        f"# The configuration of the latest run in this directory, paths resolved.\n"
        f"{yaml.safe_dump(data, sort_keys=False)}"
    )
    os.replace(partial, path)
    return path


def load_run_config(run_dir: str | os.PathLike[str]) -> LeanlineConfig:
    """The configuration a run saved in its output directory (see write_run_config)."""
    path = Path(run_dir) / RUN_CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} holds no {RUN_CONFIG_FILE}: not a leanline run directory, or one "
            "from before runs saved their config; pass --config"
        )
    return load_config(path, check_paths=False)


def resolved_model(config: LeanlineConfig) -> dict[str, Any]:
    """The model section with a module file's path made absolute."""
    model = config.model.model_dump()
    if config.model.module_is_file:
        model["module"] = config.resolve(config.model.module)
    return model


# The custom_config key of a module file's content hash (see custom_config).
MODULE_SHA256_KEY = "module_sha256"


def custom_config(
    config: LeanlineConfig, sections: tuple[str, ...] = ("model", "training", "compression")
) -> dict[str, Any]:
    """The JSON-able config sections a component receives. Each component gets only the
    sections it reads, so changing, say, compression settings leaves Transform cached.

    A model module file found here also adds its content hash: components name it by
    path or name, and without the hash an edited module would be answered from TFX's
    cache. (Only the module's own file counts, not what it imports.)
    """
    sections_data = {section: getattr(config, section).model_dump() for section in sections}
    if "compression" in sections:
        # The Compressor sees no thresholds: it gets the search's budget resolved.
        sections_data["compression"] = config.resolved_compression.model_dump()
    if "model" in sections:
        model = sections_data["model"] = resolved_model(config)
        source = _module_source(model["module"]) if model["module"] else None
        if source is not None:
            sections_data[MODULE_SHA256_KEY] = hashlib.sha256(source.read_bytes()).hexdigest()
    return sections_data


def _module_source(module: str) -> Path | None:
    """The local file of a model module, when there is one here: a .py path, or where
    a dotted module is installed (an image path or a bucket URI has none)."""
    if module.endswith(MODULE_FILE_SUFFIX):
        return Path(module) if os.path.isfile(module) else None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec else None
    return Path(origin) if origin and os.path.isfile(origin) else None
