"""A tiny real TFX run up to the Trainer, for tests that need a trained leanline model.

`train_tiny_model` runs the pipeline's own training stages (ExampleGen, StatisticsGen,
SchemaGen or ImportSchemaGen, Transform, Trainer; pipeline.pipeline.training_stages)
in-process on the first rows of a bundled dataset, with the family's real preprocessing_fn
and run_fn, on the config as a local run fits it to the rows (its classes: pipeline.classes).
`trained_taxi_model` and the others are session-scoped fixtures of such runs, shared by
every test file that imports them (tests/conftest.py does), and every test that uses one,
through other fixtures too, is marked slow there (PIPELINE_FIXTURES).
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import LeanlineConfig, load_config
from pipeline.inputs.datasets import bundled_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_TRAINING = {"epochs": 8}
# The fixtures below that run a TFX pipeline.
PIPELINE_FIXTURES = frozenset(
    {"trained_taxi_model", "trained_penguins_model", "trained_reviews_model"}
)


@dataclass(frozen=True)
class TinyTrainedModel:
    config: LeanlineConfig
    # The rows the run ingested (header included), for requests and fine-tuning.
    csv_path: Path
    # Trainer's Model artifact: Format-Serving/ and keras_model.keras.
    model_uri: str
    # Trainer's ModelRun artifact: history.json and TensorBoard logs.
    model_run_uri: str
    transform_graph_uri: str
    # Transform's transformed Examples artifact: Split-train/ and Split-eval/.
    transformed_examples_uri: str


# A whole pipeline run, quick: tests/test_pipeline.py and the Kubeflow harness run.
QUICK_TRAINING = {"epochs": 2, "batch_size": 64}
QUICK_COMPRESSION = {"fine_tune_epochs": 1, "report_examples": 300, "representative_examples": 64}
# Taxi's search, small: a student and the trained model, dense and half pruned.
QUICK_SEARCH = {
    "max_quality_loss": 0.05,
    "sparsities": [0.0, 0.5],
    "quantizations": ["int8_ptq"],
    "students": [{"hidden_units": [16], "max_embedding_dim": 2, "epochs": 2}],
}
# A taxi run on 2,000 rows that passes its gates: quick_config("taxi", ..., **QUICK_TAXI_RUN).
QUICK_TAXI_RUN = {
    "evaluation": {"thresholds": {"min_value": 0.5, "max_drop_vs_uncompressed": 0.05}},
    "compression": {"search": QUICK_SEARCH},
}


def quick_config(name: str, output_dir: Path, **overrides: Any) -> LeanlineConfig:
    """configs/<name>.yaml with quick training and compression, then `overrides`."""
    quick = load_config(REPO_ROOT / "configs" / f"{name}.yaml").with_overrides(
        output_dir=str(output_dir), training=QUICK_TRAINING, compression=QUICK_COMPRESSION
    )
    return quick.with_overrides(**overrides)


def tiny_config(name: str) -> LeanlineConfig:
    """configs/<name>.yaml with training cut to a few quick epochs."""
    config = load_config(REPO_ROOT / "configs" / f"{name}.yaml")
    training = {**config.training.model_dump(), **TINY_TRAINING}
    return config.with_overrides(training=training)


def write_head(source: Path, target: Path, rows: int) -> Path:
    """The header and first `rows` rows of a CSV file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        source.open(newline="", encoding="utf-8") as reader,
        target.open("w", newline="", encoding="utf-8") as writer,
    ):
        csv.writer(writer).writerows(itertools.islice(csv.reader(reader), rows + 1))
    return target


def _only_uri(root: Path, component: str, output: str) -> str:
    (uri,) = (root / component / output).iterdir()
    return str(uri)


def train_tiny_model(config: LeanlineConfig, work_dir: Path, rows: int) -> TinyTrainedModel:
    """Runs the pipeline up to the Trainer on the first `rows` rows of the bundled data."""
    from pipeline.classes import fit_classes
    from pipeline.inputs.checks import check_inputs
    from pipeline.local_runner import run_components
    from pipeline.pipeline import training_stages

    assert config.data.bundled, "tiny runs use bundled datasets"
    csv_path = write_head(
        bundled_csv(config.data.bundled, work_dir / "bundled"), work_dir / "data" / "rows.csv", rows
    )
    config = fit_classes(config, check_inputs(config, str(csv_path)).label_values).config
    stages = training_stages(config, str(csv_path))
    root = run_components(
        f"tiny-{config.name}", work_dir, stages.components, config.beam_pipeline_args
    )
    return TinyTrainedModel(
        config=config,
        csv_path=csv_path,
        model_uri=_only_uri(root, "Trainer", "model"),
        model_run_uri=_only_uri(root, "Trainer", "model_run"),
        transform_graph_uri=_only_uri(root, "Transform", "transform_graph"),
        transformed_examples_uri=_only_uri(root, "Transform", "transformed_examples"),
    )


def csv_rows(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(itertools.islice(csv.DictReader(handle), limit))


# TF is imported inside functions: conftest imports this module for every test session.


def typed_value(cell: str, dtype) -> bytes | int | float:
    """A CSV cell as the Python value of a tf.Example feature of `dtype`."""
    if dtype.name == "string":
        return cell.encode()
    return int(float(cell)) if dtype.is_integer else float(cell)


def _feature(cell: str, dtype):
    import tensorflow as tf

    value = typed_value(cell, dtype)
    if dtype == tf.string:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if dtype.is_integer:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def serialized_example(
    row: dict[str, str], raw_feature_spec: dict, drop: tuple[str, ...] = ()
) -> bytes:
    """A CSV row as a serialized tf.Example typed like `raw_feature_spec`; empty cells and
    `drop`ped columns are left out, as ExampleGen leaves out missing values."""
    import tensorflow as tf

    features = {
        column: _feature(value, raw_feature_spec[column].dtype)
        for column, value in row.items()
        if value != "" and column not in drop
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


@pytest.fixture(scope="session")
def trained_taxi_model(tmp_path_factory: pytest.TempPathFactory) -> TinyTrainedModel:
    """The taxi model trained for 2 epochs on 500 rows (about a minute, once per session)."""
    return train_tiny_model(tiny_config("taxi"), tmp_path_factory.mktemp("taxi"), rows=500)


@pytest.fixture(scope="session")
def trained_penguins_model(tmp_path_factory: pytest.TempPathFactory) -> TinyTrainedModel:
    """The tabular model on the 344 penguins, three species named by strings (about 40 s,
    once per session)."""
    return train_tiny_model(tiny_config("penguins"), tmp_path_factory.mktemp("penguins"), rows=500)


@pytest.fixture(scope="session")
def trained_reviews_model(tmp_path_factory: pytest.TempPathFactory) -> TinyTrainedModel:
    """The text encoder trained for 4 epochs on 600 reviews (about 30 s, once per session;
    on so few rows it overfits after that)."""
    config = tiny_config("reviews")
    config = config.with_overrides(training={**config.training.model_dump(), "epochs": 4})
    return train_tiny_model(config, tmp_path_factory.mktemp("reviews"), rows=600)


def compressor_pipeline(
    trained: TinyTrainedModel, root: Path, compressors: dict[str, dict[str, Any]]
):
    """A pipeline of the trained run's artifacts (imported) and one Compressor per entry
    of `compressors`: its id, and its changes to the config's fixed compression recipe."""
    from tfx import v1 as tfx

    from components.compressor.component import Compressor
    from pipeline.config import custom_config
    from pipeline.local_runner import local_beam_args

    def imported(name: str, uri: str, artifact_type, **properties):
        return tfx.dsl.Importer(
            source_uri=uri, artifact_type=artifact_type, properties=properties
        ).with_id(name)

    model = imported("import_model", trained.model_uri, tfx.types.standard_artifacts.Model)
    graph = imported(
        "import_graph", trained.transform_graph_uri, tfx.types.standard_artifacts.TransformGraph
    )
    examples = imported(
        "import_examples",
        trained.transformed_examples_uri,
        tfx.types.standard_artifacts.Examples,
        split_names='["train", "eval"]',
    )
    config = trained.config

    def compressor(name: str, changes: dict[str, Any]) -> Compressor:
        settings = {
            **config.compression.model_dump(),
            "search": None,  # one fixed recipe here; the search has its own tests
            "fine_tune_epochs": 2,
            **changes,
        }
        return Compressor(
            model=model.outputs["result"],
            transform_graph=graph.outputs["result"],
            examples=examples.outputs["result"],
            custom_config={**custom_config(config), "compression": settings},
        ).with_id(name)

    return tfx.dsl.Pipeline(
        pipeline_name="compressor-test",
        pipeline_root=str(root / "pipeline_root"),
        components=[
            model,
            graph,
            examples,
            *(compressor(name, changes) for name, changes in compressors.items()),
        ],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
        beam_pipeline_args=local_beam_args(config.beam_pipeline_args),
        enable_cache=False,
    )
