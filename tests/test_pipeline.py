"""The whole pipeline, end to end, on small slices of the bundled data (real TFX runs)."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import LeanlineConfig, load_config
from pipeline.datasets import bundled_csv
from pipeline.errors import UserError
from pipeline.local_runner import run_local
from serving.client import rows_to_examples

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUICK_TRAINING = {"epochs": 2, "batch_size": 64}
QUICK_COMPRESSION = {"fine_tune_epochs": 1, "report_examples": 300, "representative_examples": 64}
_KIND_OF_DTYPE = {tf.float32: "float", tf.int64: "int", tf.string: "bytes"}


def _csv_head(name: str, rows: int, directory: Path) -> Path:
    """The first `rows` rows of a bundled dataset, as its own CSV file."""
    lines = bundled_csv(name, directory / "bundled").read_text().splitlines(keepends=True)
    path = directory / "input" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines[: rows + 1]))
    return path


def _config(name: str, output_dir: Path, **overrides) -> LeanlineConfig:
    quick = load_config(CONFIGS / f"{name}.yaml").with_overrides(
        output_dir=str(output_dir), training=QUICK_TRAINING, compression=QUICK_COMPRESSION
    )
    return quick.with_overrides(**overrides)


def _versions(config: LeanlineConfig) -> list[str]:
    if not config.serving_model_dir.exists():
        return []
    return sorted(p.name for p in config.serving_model_dir.iterdir() if p.name.isdigit())


def _predict_rows(model_dir: Path, csv_path: Path, count: int) -> np.ndarray:
    """Serves the first `count` CSV rows through `serving_default`, the way TF Serving would:
    serialized tf.Examples of the model's raw features, typed as its `serving_raw` inputs."""
    model = tf.saved_model.load(str(model_dir))
    inputs = model.signatures["serving_raw"].structured_input_signature[1]
    kinds = {name: _KIND_OF_DTYPE[spec.dtype] for name, spec in inputs.items()}
    with csv_path.open(newline="") as handle:
        rows = [
            {column: row[column] for column in kinds}
            for row in itertools.islice(csv.DictReader(handle), count)
        ]
    outputs = model.signatures["serving_default"](
        examples=tf.constant(rows_to_examples(rows, kinds))
    )
    return next(iter(outputs.values())).numpy()


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    """One full taxi run on 2,000 rows; tests below read what it left."""
    directory = tmp_path_factory.mktemp("taxi")
    data = _csv_head("taxi", 2000, directory)
    config = _config(
        "taxi",
        directory / "output",
        evaluation={"thresholds": {"min_value": 0.5, "max_drop_vs_uncompressed": 0.05}},
    )
    summary = run_local(config, data=str(data))
    return config, data, summary


def test_taxi_run_pushes_a_servable_compressed_model(taxi_run):
    config, data, summary = taxi_run
    assert summary.error is None
    assert summary.blessings == {"EvaluateCompression": True, "EvaluateVsBlessed": True}
    assert summary.pushed
    (version,) = _versions(config)
    version_dir = config.serving_model_dir / version
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert (config.tflite_model_dir / version / "model.tflite").stat().st_size > 0

    probabilities = _predict_rows(version_dir, data, 8)
    assert probabilities.shape == (8, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_serving_commands_take_the_run_directory_alone(taxi_run, tmp_path, capsys):
    from pipeline import cli

    config, _, _ = taxi_run
    run_dir = str(config.output_path)
    configs = tmp_path / "configs"
    assert (
        cli.main(
            ["--verbose", "serving-config", "--run-dir", run_dir, "--output-dir", str(configs)]
        )
        == 0
    )
    models_config = (configs / "models.config").read_text()
    assert f'base_path: "{config.serving_model_dir}"' in models_config
    assert f"{config.name} ({config.serving_model_dir})" in capsys.readouterr().out
    manifests = tmp_path / "manifests"
    assert (
        cli.main(
            ["--verbose", "serving-manifests", "--run-dir", run_dir, "--output-dir", str(manifests)]
        )
        == 0
    )
    assert config.name in next(manifests.iterdir()).read_text()


def test_taxi_run_summary_records_every_component(taxi_run):
    config, _, summary = taxi_run
    written = json.loads((config.output_path / "run_summary.json").read_text())
    ids = [component["id"] for component in written["components"]]
    for expected in (
        "CsvExampleGen",
        "DataGate",
        "Transform",
        "Trainer",
        "Compressor",
        "ServingPusher",
    ):
        assert expected in ids
    assert all(component["status"] == "complete" for component in written["components"])
    assert written["rows"]["train"] + written["rows"]["eval"] == 2000
    # The compression result leads, in the file and in the printed table.
    assert next(iter(written)) == "result"
    result = written["result"]
    assert result["tflite_zipped_ratio"] > 1 and result["pushed"] is True
    assert result["accuracy_delta"] == pytest.approx(
        result["compressed_accuracy"] - result["float_accuracy"]
    )
    from pipeline.summary import format_table

    second_line = format_table(summary).splitlines()[1]
    assert second_line.startswith("  compressed: TFLite ")
    assert f"pushed as version {result['pushed_version']}" in second_line
    assert 0.5 <= written["eval_metrics"]["candidate"]["binary_accuracy"] <= 1
    assert written["pushed_path"].startswith(str(config.serving_model_dir))


def test_rerun_with_nothing_changed_is_cached_and_pushes_nothing_new(taxi_run):
    config, data, _ = taxi_run
    pushed_before = _versions(config)

    summary = run_local(config, data=str(data))

    statuses = {component.id: component.status for component in summary.components}
    for cached in ("CsvExampleGen", "Transform", "Trainer", "Compressor", "EvaluateCompression"):
        assert statuses[cached] == "cached", statuses
    assert not summary.pushed
    assert "already the last pushed" in summary.not_pushed_reason
    assert _versions(config) == pushed_before


def test_a_failed_gate_keeps_the_pushed_model(taxi_run):
    config, data, _ = taxi_run
    pushed_before = _versions(config)

    unmeetable = config.with_overrides(evaluation={"thresholds": {"min_value": 0.99}})
    summary = run_local(unmeetable, data=str(data))

    statuses = {component.id: component.status for component in summary.components}
    for cached in ("CsvExampleGen", "Transform", "Trainer", "Compressor"):
        assert statuses[cached] == "cached", statuses
    assert summary.blessings["EvaluateCompression"] is False
    assert not summary.pushed
    assert "did not bless" in summary.not_pushed_reason
    assert _versions(config) == pushed_before


def test_anomalies_stop_the_run_before_transform(tmp_path):
    data = _csv_head("taxi", 600, tmp_path)
    lines = data.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("trip_start_hour")
    corrupted = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[column] = "99"  # outside the curated 0..23 domain
        corrupted.append(",".join(cells))
    data.write_text("\n".join(corrupted) + "\n")
    config = _config("taxi", tmp_path / "output")

    with pytest.raises(UserError) as error:
        run_local(config, data=str(data))

    message = str(error.value)
    assert "trip_start_hour" in message
    assert "nothing downstream ran" in message
    assert "full trace:" in message
    summary = json.loads((config.output_path / "run_summary.json").read_text())
    ids = {component["id"] for component in summary["components"]}
    assert "Transform" not in ids and "Trainer" not in ids
    assert not config.serving_model_dir.exists()


def test_penguins_multiclass_run_pushes(tmp_path):
    # 66 eval rows: one example is 1.5 points, so the drop bound allows a few of them.
    config = _config(
        "penguins",
        tmp_path / "output",
        training={"epochs": 10, "batch_size": 16},
        compression={"fine_tune_epochs": 5},
        evaluation={"thresholds": {"max_drop_vs_uncompressed": 0.05}},
    )
    summary = run_local(config)
    assert summary.pushed, summary.not_pushed_reason
    assert summary.eval_metrics["candidate"]["sparse_categorical_accuracy"] >= 0.8
    (version,) = _versions(config)
    penguins = bundled_csv("penguins", config.output_path / "data")
    probabilities = _predict_rows(config.serving_model_dir / version, penguins, 4)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
