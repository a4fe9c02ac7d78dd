"""The model, training and compression sections of a leanline config, the quality
thresholds the gates and the compression search judge by, and the family tables.

Floor 1 (models/): model code and the Compressor read these types, so they live here,
importing no other leanline package; pipeline.config composes them into LeanlineConfig
and adds the data, evaluation, YAML and path loading.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_FAMILIES = ("tabular", "taxi", "digits", "text")
# Families that train a regressor as well as a classifier (`model.task: regression`).
REGRESSION_FAMILIES = ("tabular", "text")
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
# A Python file (`models/churn.py`, relative to the config) or a dotted module name.
MODULE_FILE_SUFFIX = ".py"
_DOTTED_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# Unset accuracy gates' bounds on large eval splits (absolute drops, fractions), and the
# TFLite/SavedModel agreement; on few rows they grow to GATE_RESOLUTION_ROWS rows' worth.
DEFAULT_MAX_DROP = {"max_drop_vs_uncompressed": 0.005, "max_drop_vs_blessed": 0.01}
DEFAULT_MIN_TFLITE_AGREEMENT = 0.99
GATE_RESOLUTION_ROWS = 1.5
# The share of the train split a search holds out where training sets none.
DEFAULT_VALIDATION_FRACTION = 0.2


class StrictSection(BaseModel):
    """A config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class LabelConfig(StrictSection):
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


class FeaturesConfig(StrictSection):
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


class EncoderConfig(StrictSection):
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


class ModelConfig(StrictSection):
    # A bundled family, models.<family> (preprocessing.preprocessing_fn, model.build_model),
    # or the user's own module defining preprocessing_fn(inputs, custom_config) and
    # build_model(inputs, model_config): a .py file (relative to the config) or a dotted
    # module name. Exactly one of the two.
    family: Literal["tabular", "taxi", "digits", "text"] | None = None
    module: str | None = None
    # The sha256 of a module file's content. A pod loads the module only with this
    # content: a gs:// module is read by every pod, so whoever can overwrite the object
    # could otherwise run code there. `leanline compile` sets it from the object.
    module_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
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
        if self.module_sha256 is not None and not self.module_is_file:
            raise ValueError(
                "module_sha256 is the hash of a module file: set `module` to a .py file"
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


class StrategyConfig(StrictSection):
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


class TrainingConfig(StrictSection):
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


class PruningConfig(StrictSection):
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


class StudentEncoderConfig(StrictSection):
    """A text student's encoder sizes that differ from the model's. Its tokens
    (vocab_size, max_tokens) are the Transform's, which it shares with the model."""

    embedding_dim: PositiveInt | None = None
    blocks: PositiveInt | None = None
    heads: PositiveInt | None = None
    feed_forward_dim: PositiveInt | None = None


class StudentConfig(StrictSection):
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


class SearchConfig(StrictSection):
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


class CompressionConfig(StrictSection):
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


class ThresholdsConfig(StrictSection):
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
