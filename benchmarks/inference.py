"""Inference benchmark: the models of a finished run, at batch 1 and batch 256.

Takes the run a `leanline run` left in an output directory (default: the config's) and
times, with the compression report's own timing code (`compression.latency`):

- float SavedModel and compressed SavedModel: the `serving_default` signature on
  serialized raw tf.Examples, parsing and Transform included: what TF Serving runs;
- float TFLite (converted here from the Trainer's Keras model, as the Compressor does)
  and compressed TFLite (the Compressor's `model.tflite`): transformed features in, as an
  app calling the interpreter sends them.

Writes benchmarks/results/inference.json and the inference table of benchmarks/README.md.

    make run && .venv/bin/python -m benchmarks.inference --config configs/taxi.yaml
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from ml_metadata.proto import metadata_store_pb2

from benchmarks.pipeline import machine, replace_readme_block
from components.compressor.executor import (
    COMPRESSED_MODEL_KEY,
    EXAMPLES_KEY,
    MODEL_KEY,
    TRANSFORM_GRAPH_KEY,
    tflite_model_path,
)
from models.common import compression
from models.common.export import (
    EXAMPLES_INPUT,
    KERAS_MODEL_FILE,
    OUTPUTS_KEY,
    SERVING_DEFAULT_SIGNATURE,
)
from pipeline import summary
from pipeline.config import LeanlineConfig, load_config
from pipeline.local_runner import METADATA_FILE
from pipeline.pipeline import EVALUATE_COMPRESSION

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "inference.json"
SERVING_DIR = "Format-Serving"
COMPRESSOR = "Compressor"
# What each variant is fed, for the table.
INPUTS = {
    "float SavedModel": "serialized tf.Example",
    "compressed SavedModel": "serialized tf.Example",
    "float TFLite": "transformed features",
    "compressed TFLite": "transformed features",
}


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


def serialized_eval_examples(examples_uri: str, count: int) -> np.ndarray:
    files = sorted(glob.glob(os.path.join(examples_uri, "Split-eval", "*")))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return np.array([record.numpy() for record in records], dtype=object)


def saved_model_predictor(path: str) -> compression.Predict:
    serve = tf.saved_model.load(path).signatures[SERVING_DEFAULT_SIGNATURE]

    def predict(features: compression.Features) -> np.ndarray:
        examples = tf.constant(features[EXAMPLES_INPUT], tf.string)
        return serve(**{EXAMPLES_INPUT: examples})[OUTPUTS_KEY].numpy()

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
    batch = max(compression.LATENCY_BATCH_SIZES)
    tf_transform_output = tft.TFTransformOutput(artifacts[TRANSFORM_GRAPH_KEY].uri)
    transformed = compression.compression_inputs(
        os.path.join(transformed_uri, "Split-train", "*"),
        os.path.join(transformed_uri, "Split-eval", "*"),
        tf_transform_output,
        config.model,
        config.training,
        config.compression.model_copy(update={"report_examples": batch}),
    ).eval_rows.features
    serialized = {EXAMPLES_INPUT: serialized_eval_examples(raw_examples_uri, batch)}
    float_model = keras.models.load_model(os.path.join(model_uri, KERAS_MODEL_FILE), compile=False)
    variants = {
        "float SavedModel": (
            saved_model_predictor(os.path.join(model_uri, SERVING_DIR)),
            serialized,
        ),
        "compressed SavedModel": (
            saved_model_predictor(os.path.join(compressed_uri, SERVING_DIR)),
            serialized,
        ),
        "float TFLite": (
            compression.TfliteModel(compression.to_tflite(float_model)),
            transformed,
        ),
        "compressed TFLite": (
            compression.TfliteModel(Path(tflite_model_path(compressed_uri)).read_bytes()),
            transformed,
        ),
    }
    results = {}
    for name, (predict, features) in variants.items():
        timings = {}
        for size, timed in compression.latencies(predict, features).items():
            rows = int(size.removeprefix("batch_"))
            timings[size] = {
                "p50_ms": timed.p50_ms,
                "p95_ms": timed.p95_ms,
                "rows_per_second": rows / (timed.p50_ms / 1000),
            }
        results[name] = timings
    return {
        "dataset": config.name,
        "model_uri": model_uri,
        "compressed_model_uri": compressed_uri,
        "interpreter": compression.INTERPRETER,
        "tflite_threads": compression.TFLITE_THREADS,
        "load_average": round(os.getloadavg()[0], 1),
        "machine": machine(),
        "variants": results,
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| dataset | model | input | batch 1 p50 ms | batch 1 p95 ms | batch 1 rows/s "
        "| batch 256 p50 ms | batch 256 p95 ms | batch 256 rows/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset, run in sorted(results.items()):
        for name, timings in run["variants"].items():
            one, many = timings["batch_1"], timings["batch_256"]
            lines.append(
                f"| {dataset} | {name} | {INPUTS[name]} | {one['p50_ms']:.3f} "
                f"| {one['p95_ms']:.3f} | {one['rows_per_second']:,.0f} | {many['p50_ms']:.3f} "
                f"| {many['p95_ms']:.3f} | {many['rows_per_second']:,.0f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/taxi.yaml")
    parser.add_argument("--output-dir", help="the run's output directory (default: the config's)")
    parser.add_argument("--no-readme", action="store_true", help="leave benchmarks/README.md")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    output_dir = Path(args.output_dir).resolve() if args.output_dir else config.output_path
    results = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
    results[config.name] = measure(config, output_dir)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    if not args.no_readme:
        replace_readme_block("inference", "## Inference", markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
