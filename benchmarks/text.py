"""Text benchmark: the whole reviews pipeline, and a TF-IDF baseline on its split.

Runs `configs/reviews.yaml` end to end (all 12,808 bundled reviews; the compression
report measures the whole eval split), timed, once per `training.strategy` asked for
(the later runs reuse ExampleGen and Transform from the cache). Then fits scikit-learn's
TF-IDF (words and word pairs) plus logistic regression on the same train split that
ExampleGen wrote, and scores it on the same eval split, to anchor the Transformer's
accuracy. Writes benchmarks/results/text.json; the text section of benchmarks/README.md
is made from it (`benchmarks.readme`).

    .venv/bin/python -m benchmarks.text [--work-dir DIR] [--strategies default mirrored]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV

from benchmarks.provenance import measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes
from pipeline.config import LeanlineConfig, load_config
from pipeline.local_runner import run_local
from pipeline.summary import RunSummary

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "text.json"
# Issue 18's targets.
MIN_ACCURACY = 0.72
MAX_POINTS_BELOW_BASELINE = 3.0
MIN_ZIPPED_RATIO = 10.0
MAX_POINTS_LOST = 1.0
MAX_INT8_LATENCY_RATIO = 0.6
MAX_PIPELINE_MINUTES = 15.0


def _latest(output_dir: Path, component: str, output: str) -> Path:
    runs = (output_dir / "pipeline" / component / output).iterdir()
    return max(runs, key=lambda path: int(path.name))


def split_texts(
    output_dir: Path, split: str, column: str, label: str
) -> tuple[list[str], np.ndarray]:
    """The texts and labels of one split, as ExampleGen wrote them."""
    files = glob.glob(
        str(_latest(output_dir, "CsvExampleGen", "examples") / f"Split-{split}" / "*")
    )
    texts, labels = [], []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        values = features[column].bytes_list.value
        texts.append(values[0].decode("utf-8") if values else "")
        labels.append(features[label].int64_list.value[0])
    return texts, np.array(labels)


def tfidf_baseline(output_dir: Path, config: LeanlineConfig) -> dict[str, Any]:
    """TF-IDF of words and word pairs, logistic regression (C by 5-fold CV on train)."""
    (column,) = config.model.features.text
    train_texts, train_labels = split_texts(output_dir, "train", column, config.model.label.column)
    eval_texts, eval_labels = split_texts(output_dir, "eval", column, config.model.label.column)
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    classifier = LogisticRegressionCV(Cs=[0.5, 1, 2, 4, 8, 16], cv=5, max_iter=2000)
    classifier.fit(vectorizer.fit_transform(train_texts), train_labels)
    predicted = classifier.predict(vectorizer.transform(eval_texts))
    return {
        "accuracy": float(np.mean(predicted == eval_labels)),
        "C": float(classifier.C_[0]),
        "train_rows": len(train_texts),
        "eval_rows": len(eval_texts),
        "seconds": time.perf_counter() - started,
    }


def run_reviews(config: LeanlineConfig, strategy: str) -> dict[str, Any]:
    """One timed run of the whole pipeline with `training.strategy` = `strategy`."""
    training = {**config.training.model_dump(), "strategy": {"kind": strategy}}
    config = config.with_overrides(training=training)
    started = time.perf_counter()
    summary: RunSummary = run_local(config)
    wall = time.perf_counter() - started
    output_dir = config.output_path
    history = json.loads((_latest(output_dir, "Trainer", "model_run") / "history.json").read_text())
    report = json.loads(
        (_latest(output_dir, "Compressor", "compression_report") / "report.json").read_text()
    )
    sizes, quality, latency = report["sizes"], report["quality"], report["latency_ms"]
    float_accuracy = quality["float_keras"]["accuracy"]
    return {
        "strategy": strategy,
        "devices": history["devices"],
        "pipeline_seconds": wall,
        "component_seconds": {c.id: c.seconds for c in summary.components},
        "epoch_seconds": [epoch["seconds"] for epoch in history["epochs"]],
        "pushed": summary.pushed,
        "not_pushed_reason": summary.not_pushed_reason,
        "weights": report["weights"]["float"],
        "eval_rows": report["eval_examples"],
        "accuracy": {
            "float_saved_model_tfma": summary.eval_metrics["baseline"]["binary_accuracy"],
            "compressed_saved_model_tfma": summary.eval_metrics["candidate"]["binary_accuracy"],
            "float_keras": float_accuracy,
            "float_tflite": quality["float_tflite"]["accuracy"],
            "compressed_tflite": quality["compressed_tflite"]["accuracy"],
        },
        "zipped_bytes": {
            "float_tflite": sizes["float_tflite"]["zipped_bytes"],
            "compressed_tflite": sizes["compressed_tflite"]["zipped_bytes"],
        },
        "zipped_ratio": report["headline"]["tflite_zipped_ratio"],
        "points_lost": 100 * (float_accuracy - quality["compressed_tflite"]["accuracy"]),
        "batch_1_p50_ms": {
            "float_tflite": latency["float_tflite"]["batch_1"]["p50_ms"],
            "compressed_tflite": latency["compressed_tflite"]["batch_1"]["p50_ms"],
        },
        "tokenizer_agreement": report["tokenized_tflite"]["agreement_with_saved_model"],
    }


def targets(run: dict[str, Any], baseline: dict[str, Any]) -> dict[str, bool]:
    accuracy = run["accuracy"]["float_saved_model_tfma"]
    latency = run["batch_1_p50_ms"]
    return {
        "accuracy >= 0.72": accuracy >= MIN_ACCURACY,
        "within 3 pt of TF-IDF": 100 * (baseline["accuracy"] - accuracy)
        <= MAX_POINTS_BELOW_BASELINE,
        ">= 10x smaller zipped": run["zipped_ratio"] >= MIN_ZIPPED_RATIO,
        "<= 1 pt lost": run["points_lost"] <= MAX_POINTS_LOST,
        "int8 batch 1 <= 0.6x float": latency["compressed_tflite"]
        <= MAX_INT8_LATENCY_RATIO * latency["float_tflite"],
        "pipeline <= 15 min": run["pipeline_seconds"] <= 60 * MAX_PIPELINE_MINUTES,
    }


def markdown(results: dict[str, Any]) -> str:
    baseline = results["tfidf_baseline"]
    lines = [
        f"TF-IDF + logistic regression (C {baseline['C']:g}) on the same split: "
        f"**{100 * baseline['accuracy']:.2f}%** on {baseline['eval_rows']} eval rows "
        f"({baseline['seconds']:.1f} s to fit).",
        "",
        "| strategy | devices | pipeline s | s/epoch | accuracy (TFMA, float / compressed SavedModel) "
        "| float -> int8 TFLite accuracy | zipped bytes | ratio | batch 1 p50 ms (float / int8 TFLite) "
        "| TFLite on tokenizer ids vs SavedModel |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["runs"]:
        accuracy, latency = run["accuracy"], run["batch_1_p50_ms"]
        zipped = run["zipped_bytes"]
        lines.append(
            f"| {run['strategy']} | {', '.join(d.rpartition('/')[2] for d in run['devices'])} "
            f"| {run['pipeline_seconds']:.0f} | {np.mean(run['epoch_seconds']):.1f} "
            f"| {100 * accuracy['float_saved_model_tfma']:.2f}% / "
            f"{100 * accuracy['compressed_saved_model_tfma']:.2f}% "
            f"| {100 * accuracy['float_keras']:.2f}% -> {100 * accuracy['compressed_tflite']:.2f}% "
            f"| {zipped['float_tflite']} -> {zipped['compressed_tflite']} "
            f"| {run['zipped_ratio']:.1f}x "
            f"| {latency['float_tflite']:.3f} / {latency['compressed_tflite']:.3f} "
            f"| {run['tokenizer_agreement'].get('class_agreement', 0):.4f} |"
        )
    lines += [
        "",
        "Targets (first run): "
        + ", ".join(
            f"{name}: {'met' if met else 'NOT met'}" for name, met in results["targets"].items()
        )
        + ".",
        "",
        measured_at([("reviews", results)]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--strategies", nargs="+", default=["default", "mirrored"])
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-text-"))
    config = load_config(REPO_ROOT / "configs" / "reviews.yaml")
    # The report measures the whole eval split (2,572 rows), not its first 2,000.
    compression = {**config.compression.model_dump(), "report_examples": 5000}
    config = config.with_overrides(output_dir=str(work_dir), compression=compression)
    runs = [run_reviews(config, strategy) for strategy in args.strategies]
    baseline = tfidf_baseline(config.output_path, config)
    results = {
        "config": "configs/reviews.yaml",
        "tfidf_baseline": baseline,
        "runs": runs,
        "targets": targets(runs[0], baseline),
    }
    save_results(stamped(results), RESULTS_FILE)
    refresh_readmes()
    print(json.dumps(results["targets"], indent=2))
    print(f"work dir: {work_dir}; results: {os.path.relpath(RESULTS_FILE, REPO_ROOT)}")


if __name__ == "__main__":
    main()
