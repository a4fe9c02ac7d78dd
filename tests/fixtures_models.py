"""A tiny real TFX run up to the Trainer, for tests that need a trained leanline model.

`train_tiny_model` runs CsvExampleGen -> StatisticsGen -> SchemaGen (or ImportSchemaGen
of the config's curated schema) -> Transform -> Trainer in-process (LocalDagRunner, Beam in memory) on the first rows of a bundled
dataset, with the family's real preprocessing_fn and run_fn. `trained_taxi_model` is
a session-scoped fixture of one such run, shared by every test file that imports it
(tests/conftest.py does).
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import LeanlineConfig, custom_config, load_config
from pipeline.datasets import bundled_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_TRAINING = {"epochs": 8}


@dataclass(frozen=True)
class TinyTrainedModel:
    config: LeanlineConfig
    # The rows the run ingested (header included), for requests and fine-tuning.
    csv_path: Path
    # Trainer's Model artifact: Format-Serving/ and keras_model/.
    model_uri: str
    # Trainer's ModelRun artifact: history.json and TensorBoard logs.
    model_run_uri: str
    transform_graph_uri: str
    # Transform's transformed Examples artifact: Split-train/ and Split-eval/.
    transformed_examples_uri: str


def tiny_config(name: str) -> LeanlineConfig:
    """configs/<name>.yaml with training cut to a few quick epochs."""
    config = load_config(REPO_ROOT / "configs" / f"{name}.yaml")
    training = {**config.training.model_dump(), **TINY_TRAINING}
    return config.with_overrides(training=training)


def write_head(source: Path, target: Path, rows: int) -> Path:
    """The header and first `rows` rows of a CSV file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(newline="") as reader, target.open("w", newline="") as writer:
        csv.writer(writer).writerows(itertools.islice(csv.reader(reader), rows + 1))
    return target


def _only_uri(root: Path, component: str, output: str) -> str:
    (uri,) = (root / component / output).iterdir()
    return str(uri)


def train_tiny_model(config: LeanlineConfig, work_dir: Path, rows: int) -> TinyTrainedModel:
    """Runs the pipeline up to the Trainer on the first `rows` rows of the bundled data."""
    from tfx import v1 as tfx

    assert config.data.bundled, "tiny runs use bundled datasets"
    csv_path = write_head(
        bundled_csv(config.data.bundled, work_dir / "bundled"), work_dir / "data" / "rows.csv", rows
    )
    splits = [
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=config.data.split.train),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.data.split.eval),
    ]
    example_gen = tfx.components.CsvExampleGen(
        input_base=str(csv_path.parent),
        output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=splits)),
    )
    if config.data.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(
            schema_file=config.resolve(config.data.schema_path)
        )
        schema_components = [schema_gen]
    else:
        statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
        schema_components = [statistics_gen, schema_gen]
    family = config.model.family
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=f"models.{family}.preprocessing.preprocessing_fn",
        custom_config=custom_config(config),
        disable_statistics=True,  # saves half of Transform's time; nothing here reads them
    )
    trainer = tfx.components.Trainer(
        run_fn=f"models.{family}.model.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config=custom_config(config),
    )
    root = work_dir / "pipeline_root"
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=f"tiny-{config.name}",
        pipeline_root=str(root),
        components=[example_gen, *schema_components, transform, trainer],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(work_dir / "metadata.sqlite")
        ),
        beam_pipeline_args=config.beam_pipeline_args,
        enable_cache=False,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return TinyTrainedModel(
        config=config,
        csv_path=csv_path,
        model_uri=_only_uri(root, "Trainer", "model"),
        model_run_uri=_only_uri(root, "Trainer", "model_run"),
        transform_graph_uri=_only_uri(root, "Transform", "transform_graph"),
        transformed_examples_uri=_only_uri(root, "Transform", "transformed_examples"),
    )


def csv_rows(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
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
