"""leanline's one typed configuration, loaded from YAML and validated on load.

Every error names the file and the dotted key, so a person can fix the YAML
without reading this module. Relative paths are resolved against the YAML
file's directory; `package:<dist>/<path>` names a file shipped inside an
installed Python package (the taxi CSV in the tfx wheel, for instance).

The sections model code reads (model, training, compression, the thresholds) are
models.config's and the serving one is serving.config's, so that the floors below read
their own types; this module adds the data, evaluation and Kubeflow sections, composes
them into LeanlineConfig, and holds the YAML, path and run-directory loading.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from models.config import (
    DEFAULT_VALIDATION_FRACTION,
    STUDENT_SIZES,
    CompressionConfig,
    ModelConfig,
    PositiveInt,
    StrictSection,
    ThresholdsConfig,
    TrainingConfig,
)
from models.custom_config import to_custom_config
from models.errors import UserError
from pipeline.layout import RUN_CONFIG_FILE, SERVING_DIR, TFLITE_DIR
from serving.config import ServingConfig

PACKAGE_PREFIX = "package:"
BUNDLED_DATASETS = ("taxi", "penguins", "digits", "reviews")
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


def metric_name(class_name: str) -> str:
    """TFMA's name for a tf_keras metric class: BinaryAccuracy -> binary_accuracy."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower().replace("a_u_c", "auc")


# The search's quality budget where neither it nor the gate sets one that fits.
DEFAULT_SEARCH_BUDGET = {"classification": 0.005, "regression": 0.05}


class ConfigError(UserError, ValueError):
    """A configuration file is unreadable or invalid; the message says where and why."""


class SplitConfig(StrictSection):
    """Hash-bucket split of the ingested rows: `train` and `eval` buckets out of their sum."""

    train: PositiveInt = 4
    eval: PositiveInt = 1


class DataConfig(StrictSection):
    # A bundled dataset (materialized on demand, see pipeline/inputs/datasets.py) or a path.
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


class EvaluationConfig(StrictSection):
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


# A Kubernetes object name (DNS-1123 subdomain), as a PersistentVolumeClaim's must be.
KUBERNETES_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class VolumeConfig(StrictSection):
    """A PersistentVolumeClaim that every step's pod mounts at `mount_path`."""

    claim_name: str
    mount_path: str

    @model_validator(mode="after")
    def _kubernetes_accepts_it(self) -> VolumeConfig:
        if not KUBERNETES_NAME.fullmatch(self.claim_name):
            raise ValueError(
                f"claim_name {self.claim_name!r}: a PersistentVolumeClaim's name holds only "
                "lowercase letters, digits, '-' and '.', and starts and ends with a letter or digit"
            )
        path = self.mount_path
        if not path.startswith("/") or path == "/" or os.path.normpath(path) != path:
            raise ValueError(
                f"mount_path {path!r}: give an absolute directory without a trailing '/', "
                "'.' or '..', e.g. /mnt/leanline"
            )
        return self


class KubeflowConfig(StrictSection):
    image: str = "leanline:latest"
    pipeline_root: str = "gs://your-bucket/leanline"
    # Beam args for data components on the cluster (Dataflow, Flink, Spark runner options).
    beam_pipeline_args: list[str] = []
    # Claims mounted into every step: where data, schema, module and pushed models live
    # when the pipeline root is s3:// or minio:// (kubeflow/README.md, self-hosted clusters).
    volumes: list[VolumeConfig] = []

    @model_validator(mode="after")
    def _one_volume_a_mount_path(self) -> KubeflowConfig:
        paths = [volume.mount_path for volume in self.volumes]
        for path in paths:
            if paths.count(path) > 1:
                raise ValueError(f"volumes: two volumes are mounted at {path}; give each its own")
        return self

    def volume_holding(self, path: str) -> VolumeConfig | None:
        """The volume whose mount path `path` is at or under, if any."""
        for volume in self.volumes:
            if path == volume.mount_path or path.startswith(volume.mount_path + "/"):
                return volume
        return None


class LeanlineConfig(StrictSection):
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
        return self.output_path / SERVING_DIR / self.name

    @property
    def tflite_model_dir(self) -> Path:
        return self.output_path / TFLITE_DIR / self.name

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


def custom_config(
    config: LeanlineConfig, sections: tuple[str, ...] = ("model", "training", "compression")
) -> dict[str, Any]:
    """The JSON-able config sections a component receives (models.custom_config), resolved
    for it: the model's module path made absolute, and the search's budget in the
    compression section (the Compressor sees no thresholds). Each component gets only the
    sections it reads, so changing, say, compression settings leaves Transform cached."""
    resolved = {
        "model": lambda: resolved_model(config),
        "compression": lambda: config.resolved_compression.model_dump(),
    }
    return to_custom_config(
        {
            section: resolved[section]()
            if section in resolved
            else getattr(config, section).model_dump()
            for section in sections
        }
    )
