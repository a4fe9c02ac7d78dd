"""Infers a schema from the data for a person to curate and keep in the repo."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import LeanlineConfig
from pipeline.datasets import data_path


def write_inferred_schema(config: LeanlineConfig, output: str, data: str | None = None) -> Path:
    import tensorflow_data_validation as tfdv

    source = data_path(config, config.output_path, data)
    if config.data.format == "csv":
        files = source if Path(source).is_file() else str(Path(source) / "*")
        statistics = tfdv.generate_statistics_from_csv(files)
    else:
        statistics = tfdv.generate_statistics_from_tfrecord(str(Path(source) / "*"))
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tfdv.write_schema_text(schema, str(path))
    return path
