"""Compression benchmark: the float model against every compression recipe.

For taxi (all 15k rows) and digits (all 1797), trains the float model once with the
real Transform and Trainer (the config's training section), then compresses it in
each mode with models/common/compression.py, exactly as the Compressor does, and
measures float and compressed side by side on the eval split. Writes
benchmarks/results/compression.json and the compression section of
benchmarks/README.md.

    .venv/bin/python -m benchmarks.compression [--datasets taxi digits] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tensorflow_transform as tft
import tf_keras as keras

from benchmarks.pipeline import replace_readme_block
from models.common import compression
from models.common.export import KERAS_MODEL_FILE
from pipeline.config import CompressionConfig, LeanlineConfig, load_config
from pipeline.datasets import bundled_csv
from pipeline.local_runner import run_components
from pipeline.pipeline import training_stages

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "compression.json"

PRUNING_OFF = {"enabled": False}
# Each mode's changes to the dataset config's `compression` section.
MODES: dict[str, dict[str, Any]] = {
    "pruning": {"quantization": "none"},
    "dynamic": {"quantization": "dynamic", "pruning": PRUNING_OFF},
    "int8_ptq": {"quantization": "int8_ptq", "pruning": PRUNING_OFF},
    "pruning+int8_ptq": {"quantization": "int8_ptq"},
    "qat": {"quantization": "qat", "pruning": PRUNING_OFF},
    "pqat": {"quantization": "pqat"},
}
# Past the shipped configs: the most sparsity found within each dataset's accuracy
# budget, with longer fine-tuning to recover from it.
TUNED_MODES: dict[str, dict[str, dict[str, Any]]] = {
    "taxi": {
        "pqat 95%, 8 epochs": {
            "quantization": "pqat",
            "pruning": {"target_sparsity": 0.95},
            "fine_tune_epochs": 8,
        }
    },
    "digits": {
        "pqat 85%, 6 epochs": {
            "quantization": "pqat",
            "pruning": {"target_sparsity": 0.85},
            "fine_tune_epochs": 6,
        }
    },
}


@dataclass(frozen=True)
class Target:
    min_zipped_ratio: float
    max_accuracy_loss_pt: float
    # Whether the int8 TFLite model must be as fast as the float one at batch 1.
    int8_no_slower: bool


TARGETS = {
    "taxi": Target(min_zipped_ratio=12.0, max_accuracy_loss_pt=0.5, int8_no_slower=True),
    "digits": Target(min_zipped_ratio=8.0, max_accuracy_loss_pt=1.0, int8_no_slower=False),
}


@dataclass(frozen=True)
class TrainedRun:
    model_uri: str
    transform_graph_uri: str
    transformed_examples_uri: str


def train_float_model(config: LeanlineConfig, csv_path: Path, work_dir: Path) -> TrainedRun:
    """The pipeline's own training stages (ExampleGen ... Trainer) on `csv_path`."""
    stages = training_stages(config, str(csv_path))
    root = run_components(
        f"benchmark-{config.name}", work_dir, stages.components, config.beam_pipeline_args
    )

    def only_uri(component: str, output: str) -> str:
        (uri,) = (root / component / output).iterdir()
        return str(uri)

    return TrainedRun(
        only_uri("Trainer", "model"),
        only_uri("Transform", "transform_graph"),
        only_uri("Transform", "transformed_examples"),
    )


def benchmark_dataset(name: str, work_dir: Path) -> dict[str, Any]:
    """Every mode's report for one dataset, from one trained float model."""
    config = load_config(REPO_ROOT / "configs" / f"{name}.yaml")
    csv_path = bundled_csv(config.data.bundled, work_dir / "bundled")
    run = train_float_model(config, csv_path, work_dir / name)
    float_model = keras.models.load_model(
        os.path.join(run.model_uri, KERAS_MODEL_FILE), compile=False
    )
    splits = Path(run.transformed_examples_uri)
    inputs = compression.compression_inputs(
        str(splits / "Split-train" / "*"),
        str(splits / "Split-eval" / "*"),
        tft.TFTransformOutput(run.transform_graph_uri),
        config.model,
        config.training,
        config.compression,
    )
    base = config.compression.model_dump()
    reports = {}
    for mode, changes in {**MODES, **TUNED_MODES[name]}.items():
        settings = {**base, **changes, "pruning": {**base["pruning"], **changes.get("pruning", {})}}
        mode_config = CompressionConfig.model_validate(settings)
        compressed = compression.compress(
            float_model, mode_config, inputs.fine_tuning, inputs.calibration
        )
        report = compression.measure(
            float_model, compressed, mode_config, inputs.eval_rows, config.model
        )
        reports[mode] = report.to_json()
        print(f"{name} {mode}: {report.headline}", flush=True)
    return {"config": base, "target": asdict(TARGETS[name]), "modes": reports}


def _target_met(target: Target, report: dict[str, Any]) -> bool:
    head = report["headline"]
    latency = report["latency_ms"]
    int8 = report["config"]["quantization"] in ("int8_ptq", "qat", "pqat")
    faster = (
        not (target.int8_no_slower and int8)
        or latency["compressed_tflite"]["batch_1"]["p50_ms"]
        <= latency["float_tflite"]["batch_1"]["p50_ms"]
    )
    return (
        head["tflite_zipped_ratio"] >= target.min_zipped_ratio
        and -100 * head["quality_change"] <= target.max_accuracy_loss_pt
        and faster
    )


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| dataset | mode | TFLite zipped bytes (float -> compressed) | zipped ratio "
        "| accuracy (float -> compressed TFLite) | delta pt | batch 1 p50 ms (float / compressed "
        "TFLite) | batch 256 p50 ms | target met |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for dataset, result in results.items():
        target = Target(**result["target"])
        for mode, report in result["modes"].items():
            head, sizes, latency = report["headline"], report["sizes"], report["latency_ms"]
            lines.append(
                f"| {dataset} | {mode} "
                f"| {sizes['float_tflite']['zipped_bytes']} -> "
                f"{sizes['compressed_tflite']['zipped_bytes']} "
                f"| {head['tflite_zipped_ratio']:.1f}x "
                f"| {100 * head['float_quality']:.2f}% -> {100 * head['compressed_quality']:.2f}% "
                f"| {100 * head['quality_change']:+.2f} "
                f"| {latency['float_tflite']['batch_1']['p50_ms']:.3f} / "
                f"{latency['compressed_tflite']['batch_1']['p50_ms']:.3f} "
                f"| {latency['float_tflite']['batch_256']['p50_ms']:.3f} / "
                f"{latency['compressed_tflite']['batch_256']['p50_ms']:.3f} "
                f"| {'yes' if _target_met(target, report) else 'no'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument(
        "--work-dir", type=Path, help="where pipeline runs go (default: a temp dir)"
    )
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-compression-"))
    # Datasets not benchmarked this time keep their last results.
    results = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
    results.update({name: benchmark_dataset(name, work_dir) for name in args.datasets})
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    replace_readme_block("compression", "## Compression", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
