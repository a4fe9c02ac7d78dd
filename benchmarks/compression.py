"""Compression benchmark: the float model against every compression recipe.

For taxi (all 15k rows) and digits (all 1797), trains the float model once with the
real Transform and Trainer (the config's training section), then compresses it in
each mode with models/common/compression.py, exactly as the Compressor does, and
measures float and compressed side by side on the eval split. Writes
benchmarks/results/compression.json and compression_search.json; the compression tables
of benchmarks/README.md are made from them (`benchmarks.readme`).

    .venv/bin/python -m benchmarks.compression [--datasets taxi digits] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tensorflow_transform as tft
import tf_keras as keras

from benchmarks.provenance import load_results, measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes
from models.common import compression, compression_report
from models.common.compress import compress_as_configured
from models.common.data import count_examples
from models.common.export import KERAS_MODEL_FILE
from models.config import CompressionConfig
from pipeline.config import LeanlineConfig, load_config
from pipeline.inputs.datasets import bundled_csv
from pipeline.local_runner import run_components
from pipeline.pipeline import training_stages

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "compression.json"
SEARCH_RESULTS_FILE = BENCHMARKS_DIR / "results" / "compression_search.json"

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


# The fixed recipes the configs shipped before the search (taxi: the config's comment).
SINGLE_RECIPES = {
    "taxi": CompressionConfig(
        pruning={"target_sparsity": 0.8}, quantization="pqat", fine_tune_epochs=4
    ),
    "digits": CompressionConfig(
        pruning={"target_sparsity": 0.85}, quantization="pqat", fine_tune_epochs=6
    ),
}


@dataclass(frozen=True)
class SearchTarget:
    min_zipped_ratio: float
    max_accuracy_loss_pt: float
    # The search's seconds over the single recipe's, measured side by side.
    max_time_ratio: float


SEARCH_TARGETS = {
    "taxi": SearchTarget(min_zipped_ratio=15.0, max_accuracy_loss_pt=0.5, max_time_ratio=4.0),
    "digits": SearchTarget(min_zipped_ratio=15.0, max_accuracy_loss_pt=1.0, max_time_ratio=4.0),
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

    return trained_run(root)


def trained_run(root: Path) -> TrainedRun:
    def only_uri(component: str, output: str) -> str:
        (uri,) = (root / component / output).iterdir()
        return str(uri)

    return TrainedRun(
        only_uri("Trainer", "model"),
        only_uri("Transform", "transform_graph"),
        only_uri("Transform", "transformed_examples"),
    )


@dataclass(frozen=True)
class Trained:
    config: LeanlineConfig
    float_model: keras.Model
    tf_transform_output: tft.TFTransformOutput
    train_files: str
    eval_files: str


def trained(name: str, work_dir: Path) -> Trained:
    """The dataset's float model, trained once per work dir."""
    config = load_config(REPO_ROOT / "configs" / f"{name}.yaml")
    root = work_dir / name / "pipeline"
    run = (
        trained_run(root)
        if (root / "Trainer").is_dir()
        else train_float_model(
            config, bundled_csv(config.data.bundled, work_dir / "bundled"), work_dir / name
        )
    )
    splits = Path(run.transformed_examples_uri)
    return Trained(
        config,
        keras.models.load_model(os.path.join(run.model_uri, KERAS_MODEL_FILE), compile=False),
        tft.TFTransformOutput(run.transform_graph_uri),
        str(splits / "Split-train" / "*"),
        str(splits / "Split-eval" / "*"),
    )


def benchmark_dataset(run: Trained) -> dict[str, Any]:
    """Every mode's report for one dataset, from one trained float model."""
    config = run.config
    base = SINGLE_RECIPES[config.name]
    inputs = compression.compression_inputs(
        run.train_files, run.tf_transform_output, config.model, config.training, base
    )
    eval_rows = compression.report_rows(
        run.eval_files, run.tf_transform_output, base.report_examples
    )
    reports = {}
    for mode, changes in {**MODES, **TUNED_MODES[config.name]}.items():
        settings = base.model_dump()
        settings = {
            **settings,
            **changes,
            "pruning": {**settings["pruning"], **changes.get("pruning", {})},
        }
        mode_config = CompressionConfig.model_validate(settings)
        compressed = compression.compress(
            run.float_model, mode_config, inputs.fine_tuning, inputs.calibration
        )
        report = compression_report.measure(
            run.float_model, compressed, mode_config, eval_rows, config.model
        )
        reports[mode] = report.to_json()
        print(f"{config.name} {mode}: {report.headline}", flush=True)
    return {"config": base.model_dump(), "target": asdict(TARGETS[config.name]), "modes": reports}


def benchmark_search(run: Trained) -> dict[str, Any]:
    """The config's search against the single recipe it replaced, side by side: the
    Compressor's work (inputs, compressing, and for the search its trials), then the
    chosen model measured on the whole eval split."""
    config = run.config
    whole_eval = count_examples(run.eval_files)
    timed: dict[str, Any] = {}
    for label, recipe in (
        ("single recipe", SINGLE_RECIPES[config.name]),
        ("search", config.resolved_compression),
    ):
        recipe = recipe.model_copy(update={"report_examples": whole_eval})
        started = time.monotonic()
        inputs = compression.compression_inputs(
            run.train_files, run.tf_transform_output, config.model, config.training, recipe
        )
        compressed, chosen, searched = compress_as_configured(
            run.float_model, config.model, recipe, inputs, run.tf_transform_output
        )
        seconds = time.monotonic() - started
        report = compression_report.measure(
            run.float_model,
            compressed,
            chosen,
            compression.report_rows(run.eval_files, run.tf_transform_output, whole_eval),
            config.model,
        )
        timed[label] = {
            "seconds": seconds,
            "recipe": report.recipe,
            "headline": report.headline,
            "weights": report.weights,
            "eval_examples": report.eval_examples,
            "search": searched.to_json() if searched else None,
        }
        print(
            f"{config.name} {label}: {seconds:.1f} s, {report.recipe}, {report.headline}",
            flush=True,
        )
    timed["time_ratio"] = timed["search"]["seconds"] / timed["single recipe"]["seconds"]
    timed["target"] = asdict(SEARCH_TARGETS[config.name])
    return timed


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
    return "\n".join([*lines, "", measured_at(list(results.items()))])


def search_markdown(searches: dict[str, Any]) -> str:
    lines = [
        "| dataset | chosen recipe | weights (float -> chosen) | TFLite zipped ratio "
        "| accuracy (float -> chosen TFLite, whole eval split) | delta pt | trials "
        "| search s / single recipe s | target met |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for dataset, result in searches.items():
        target, search, single = (
            SearchTarget(**result["target"]),
            result["search"],
            result["single recipe"],
        )
        head = search["headline"]
        trials = sum(t["zipped_bytes"] is not None for t in search["search"]["trials"])
        met = (
            head["tflite_zipped_ratio"] >= target.min_zipped_ratio
            and -100 * head["quality_change"] <= target.max_accuracy_loss_pt
            and result["time_ratio"] <= target.max_time_ratio
        )
        lines.append(
            f"| {dataset} | {search['recipe']} "
            f"| {search['weights']['float']} -> {search['weights']['compressed']} "
            f"| {head['tflite_zipped_ratio']:.1f}x (single recipe "
            f"{single['headline']['tflite_zipped_ratio']:.1f}x) "
            f"| {100 * head['float_quality']:.2f}% -> {100 * head['compressed_quality']:.2f}% "
            f"| {100 * head['quality_change']:+.2f} (single recipe "
            f"{100 * single['headline']['quality_change']:+.2f}) "
            f"| {trials} | {search['seconds']:.0f} / {single['seconds']:.0f} = "
            f"{result['time_ratio']:.1f}x | {'yes' if met else 'no'} |"
        )
    return "\n".join([*lines, "", measured_at(list(searches.items()))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument(
        "--work-dir", type=Path, help="where pipeline runs go (default: a temp dir)"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["modes", "search"],
        choices=["modes", "search"],
        help="modes: every fixed recipe; search: the config's search vs the single recipe",
    )
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-compression-"))
    # Datasets and parts not benchmarked this time keep their last results.
    results, searches = load_results(RESULTS_FILE), load_results(SEARCH_RESULTS_FILE)
    for name in args.datasets:
        run = trained(name, work_dir)
        if "modes" in args.parts:
            results[name] = stamped(benchmark_dataset(run))
            save_results(results, RESULTS_FILE)
        if "search" in args.parts:
            searches[name] = stamped(benchmark_search(run))
            save_results(searches, SEARCH_RESULTS_FILE)
    refresh_readmes()
    print(markdown(results))
    print(search_markdown(searches))


if __name__ == "__main__":
    main()
