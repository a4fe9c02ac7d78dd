"""Inference benchmark: the served models of a finished run, at batch 1 and batch 32.

Takes the run a `leanline run` left in an output directory (default: the config's) and
times, with the compression report's own timing code (`measurement.latency`, one
interpreter thread), on eval rows with a value in every served feature:

- float and compressed SavedModel on `serving_raw` (one tensor per raw feature, the
  Transform inside): what TF Serving runs without --prefer_tflite_model;
- the compressed SavedModel on `serving_default` (serialized tf.Examples, parsing too);
- the compressed end-to-end TFLite (the version's `model.tflite`, same raw tensors):
  what TF Serving runs with --prefer_tflite_model, and what an app runs on a device;
- the compressed TFLite of the model alone (`transformed_inputs.tflite`), on Transform's
  outputs: the model's own share of the time.

Also records the run's `run_summary.json` `result`: the shipped file's size against its
float twin. Writes benchmarks/results/inference.json; the inference table of
benchmarks/README.md is made from it (`benchmarks.readme`).

    make run && .venv/bin/python -m benchmarks.inference --config configs/taxi.yaml
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.proto import metadata_store_pb2

from benchmarks.provenance import load_results, measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes
from components.compressor.spec import (
    COMPRESSED_MODEL_KEY,
    EXAMPLES_KEY,
    MODEL_KEY,
    TFLITE_FILE,
    TRANSFORM_GRAPH_KEY,
    TRANSFORMED_INPUTS_TFLITE_FILE,
    tflite_model_path,
)
from models.common import compression, measurement, tflite
from models.common.data import raw_rows, read_split_examples
from models.common.export import (
    EXAMPLES_INPUT,
    OUTPUTS_KEY,
    SERVING_DEFAULT_SIGNATURE,
    SERVING_RAW_SIGNATURE,
    raw_specs,
)
from pipeline import summary
from pipeline.config import LeanlineConfig, load_config
from pipeline.layout import EVALUATE_COMPRESSION, METADATA_FILE

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "inference.json"
SERVING_DIR = "Format-Serving"
COMPRESSOR = "Compressor"
BATCH_SIZES = (1, 32)
# What each variant is fed, for the table.
INPUTS = {
    "float SavedModel": "raw tensors (serving_raw)",
    "compressed SavedModel": "raw tensors (serving_raw)",
    "compressed SavedModel, serving_default": "serialized tf.Example",
    "compressed end-to-end TFLite": "raw tensors (serving_raw)",
    "compressed TFLite, model alone": "transformed features",
}
# The target: the end-to-end TFLite's batch-1 p50 at least this many times lower than the
# compressed SavedModel's on serving_raw.
TARGET_SPEEDUP = 10.0


def node_artifacts(
    metadata_path: Path, pipeline_name: str, nodes: Sequence[str]
) -> dict[str, dict[str, metadata_store_pb2.Artifact]]:
    """Input and output artifacts of `nodes` in the latest run, by node and key."""
    store = summary.open_store(metadata_path)
    run = summary.latest_run_context(store, pipeline_name)
    found = {}
    for execution in store.get_executions_by_context(run.id) if run else []:
        node = summary.node_id(store, execution.id)
        if node in nodes:
            artifacts = {
                **summary.artifacts_by_key(store, execution.id, summary.INPUT_EVENTS),
                **summary.outputs(store, execution.id),
            }
            found[node] = {key: group[0] for key, group in artifacts.items() if group}
    missing = sorted(set(nodes) - set(found))
    if missing:
        raise SystemExit(
            f"the latest run in {metadata_path} has no {', '.join(missing)}: "
            "run `leanline run --config ...` first"
        )
    return found


def signature_predictor(
    path: str, signature: str, specs: dict[str, tf.TensorSpec]
) -> measurement.Predict:
    serve = tf.saved_model.load(path).signatures[signature]

    def predict(features: tflite.Features) -> np.ndarray:
        inputs = {name: tf.constant(values, specs[name].dtype) for name, values in features.items()}
        return serve(**inputs)[OUTPUTS_KEY].numpy()

    return predict


def measure(config: LeanlineConfig, output_dir: Path) -> dict[str, Any]:
    found = node_artifacts(
        output_dir / METADATA_FILE, config.name, (COMPRESSOR, EVALUATE_COMPRESSION)
    )
    artifacts = found[COMPRESSOR]
    model_uri = artifacts[MODEL_KEY].uri
    compressed_uri = artifacts[COMPRESSED_MODEL_KEY].uri
    transformed_uri = artifacts[EXAMPLES_KEY].uri
    # The Evaluators read the raw examples, as TF Serving's clients send them.
    raw_examples_uri = found[EVALUATE_COMPRESSION][EXAMPLES_KEY].uri
    count = 4 * max(BATCH_SIZES)
    compressed_serving = os.path.join(compressed_uri, SERVING_DIR)
    specs = raw_specs(compressed_serving)
    serialized = tf.constant(read_split_examples(raw_examples_uri, count), tf.string)
    raw, _ = raw_rows(serialized, specs)
    transformed = compression.report_rows(
        os.path.join(transformed_uri, "Split-eval", "*"),
        tft.TFTransformOutput(artifacts[TRANSFORM_GRAPH_KEY].uri),
        count,
    ).features
    examples_spec = {EXAMPLES_INPUT: tf.TensorSpec([None], tf.string)}
    tflite_dir = Path(tflite_model_path(compressed_uri)).parent
    variants = {
        "float SavedModel": (
            signature_predictor(os.path.join(model_uri, SERVING_DIR), SERVING_RAW_SIGNATURE, specs),
            raw,
        ),
        "compressed SavedModel": (
            signature_predictor(compressed_serving, SERVING_RAW_SIGNATURE, specs),
            raw,
        ),
        "compressed SavedModel, serving_default": (
            signature_predictor(compressed_serving, SERVING_DEFAULT_SIGNATURE, examples_spec),
            {EXAMPLES_INPUT: serialized.numpy()},
        ),
        "compressed end-to-end TFLite": (
            tflite.TfliteModel((tflite_dir / TFLITE_FILE).read_bytes()),
            raw,
        ),
        "compressed TFLite, model alone": (
            tflite.TfliteModel((tflite_dir / TRANSFORMED_INPUTS_TFLITE_FILE).read_bytes()),
            transformed,
        ),
    }
    results = {}
    for name, (predict, features) in variants.items():
        timings = {}
        for size in BATCH_SIZES:
            timed = measurement.latency(predict, features, size)
            timings[f"batch_{size}"] = {
                "p50_ms": timed.p50_ms,
                "p95_ms": timed.p95_ms,
                "rows_per_second": size / (timed.p50_ms / 1000),
            }
        results[name] = timings
    speedup = (
        results["compressed SavedModel"]["batch_1"]["p50_ms"]
        / results["compressed end-to-end TFLite"]["batch_1"]["p50_ms"]
    )
    return {
        "dataset": config.name,
        "model_uri": model_uri,
        "compressed_model_uri": compressed_uri,
        "interpreter": tflite.INTERPRETER,
        "tflite_threads": tflite.TFLITE_THREADS,
        "load_average": round(os.getloadavg()[0], 1),
        # The run's own account of the shipped file (sizes, quality), beside its speed.
        "result": json.loads((output_dir / summary.SUMMARY_FILE).read_text())["result"],
        "end_to_end_tflite_speedup_batch_1": speedup,
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
        "variants": results,
    }


SHIPPED = "compressed end-to-end TFLite"
# The served paths the shipped TFLite replaces: TF Serving without --prefer_tflite_model.
SAVED_MODEL_PATHS = (
    "compressed SavedModel",
    "compressed SavedModel, serving_default",
    "float SavedModel",
)


def speedups(run: dict[str, Any], batch: str) -> str:
    """The shipped TFLite's p50 against every SavedModel path, the slowest ratio included."""
    shipped = run["variants"][SHIPPED][batch]["p50_ms"]
    return "; ".join(
        f"{run['variants'][path][batch]['p50_ms'] / shipped:.1f}x vs {path} ({INPUTS[path]})"
        for path in SAVED_MODEL_PATHS
    )


def shipped_words(result: dict[str, Any]) -> str:
    """The run's own words for the shipped file and, where it holds more, the model part."""
    words = summary.TfliteFigures(**result["shipped_tflite"]).words()
    if result.get("model_part"):
        words += f"; model part: {summary.TfliteFigures(**result['model_part']).words()}"
    return words


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| dataset | model | input | batch 1 p50 ms | batch 1 p95 ms | batch 1 rows/s "
        "| batch 32 p50 ms | batch 32 p95 ms | batch 32 rows/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for dataset, run in sorted(results.items()):
        for name, timings in run["variants"].items():
            one, many = timings["batch_1"], timings["batch_32"]
            lines.append(
                f"| {dataset} | {name} | {INPUTS[name]} | {one['p50_ms']:.3f} "
                f"| {one['p95_ms']:.3f} | {one['rows_per_second']:,.0f} | {many['p50_ms']:.3f} "
                f"| {many['p95_ms']:.3f} | {many['rows_per_second']:,.0f} |"
            )
        notes += [
            f"- {dataset}, shipped ({run['result']['compression_recipe']}): "
            f"{shipped_words(run['result'])}.",
            f"- {dataset}, the shipped TFLite at batch 1 (p50): {speedups(run, 'batch_1')}.",
            f"- {dataset}, at batch 32: {speedups(run, 'batch_32')}.",
            f"- {dataset}: target >= {run['target_speedup']:.0f}x against the compressed "
            f"SavedModel on serving_raw at batch 1: {'met' if run['target_met'] else 'not met'}.",
        ]
    provenance = measured_at(sorted(results.items()))
    return "\n".join([*lines, "", *notes, "", provenance])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/taxi.yaml")
    parser.add_argument("--output-dir", help="the run's output directory (default: the config's)")
    parser.add_argument("--no-readme", action="store_true", help="leave the READMEs' figures")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    output_dir = Path(args.output_dir).resolve() if args.output_dir else config.output_path
    results = load_results(RESULTS_FILE)
    results[config.name] = stamped(measure(config, output_dir))
    save_results(results, RESULTS_FILE)
    print(markdown(results))
    if not args.no_readme:
        refresh_readmes()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
