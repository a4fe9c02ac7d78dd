"""Infers a schema from the data for a person to curate and keep in the repo.

It runs the pipeline's own ExampleGen, StatisticsGen and SchemaGen, so the schema
describes tf.Examples exactly as the pipeline will see them (empty CSV cells, for
instance, become features with no values, which plain TFDV on a CSV reads differently).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tfx.components import SchemaGen, StatisticsGen

from pipeline.config import LeanlineConfig
from pipeline.inputs.checks import check_inputs
from pipeline.inputs.copies import example_gen_path
from pipeline.inputs.datasets import data_path
from pipeline.layout import SCHEMA_GEN
from pipeline.local_runner import run_components
from pipeline.pipeline import example_gen_component

SCHEMA_FILE = "schema.pbtxt"


def write_inferred_schema(config: LeanlineConfig, output: str, data: str | None = None) -> Path:
    checked = check_inputs(config, data_path(config, config.output_path, data))
    with tempfile.TemporaryDirectory(prefix="leanline-schema-") as scratch:
        source = example_gen_path(checked, Path(scratch))
        example_gen = example_gen_component(config, source)
        statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
        schema_gen = SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
        )
        root = run_components(
            f"{config.name}-schema",
            Path(scratch),
            [example_gen, statistics_gen, schema_gen],
            config.beam_pipeline_args,
        )
        (inferred,) = (root / SCHEMA_GEN / "schema").glob(f"*/{SCHEMA_FILE}")
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inferred, path)
    return path
