"""The Performance section of README.md: the headline figure of each benchmark, from its results.

Invariant: every figure here is read from a results file and closes with the provenance of
the measurement it comes from (`benchmarks.provenance.measured_at`); a benchmark whose results
are absent contributes nothing rather than an old figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import inference, tfx_penguin
from benchmarks.provenance import measured_at

Results = dict[str, Any]


def _pipeline(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    lines, shown = [], []
    for rows, by_mode in sorted(results.get("runs", {}).items(), key=lambda item: int(item[0])):
        modes = []
        for mode in ("in_memory", "multi_processing"):
            run = by_mode.get(mode)
            if run:
                modes.append(
                    f"{run['wall_seconds']:.0f} s `{mode}` (peak RSS "
                    f"{run['peak_rss_mib'] / 1024:.1f} GiB{'' if run['pushed'] else ', NOT pushed'})"
                )
                shown.append((f"pipeline {int(rows):,} {mode}", run))
        if modes:
            lines.append(f"{int(rows):,} rows: {', '.join(modes)}")
    if not lines:
        return [], []
    return [
        "- The whole taxi pipeline, compression and both evaluations included: "
        + "; ".join(lines)
        + "."
    ], shown


def _penguin(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    if not results:
        return [], []
    theirs, mine = tfx_penguin.shared_seconds(results)
    return [
        f"- TFX's penguin example's work: leanline's components take {mine:.1f} s against the "
        f"example's {theirs:.1f} s ({mine / theirs:.2f}x), while leanline also compresses the "
        "model and evaluates it against the uncompressed one."
    ], [("TFX penguin", results)]


def _inference(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    run = results.get("taxi")
    if not run:
        return [], []
    return [
        f"- Shipped taxi model ({run['result']['compression_recipe']}): "
        f"{inference.shipped_words(run['result'])}.",
        f"- Served at batch 1 (p50), that `model.tflite` answers in "
        f"{run['variants'][inference.SHIPPED]['batch_1']['p50_ms']:.3f} ms: "
        f"{inference.speedups(run, 'batch_1')}.",
    ], [("taxi inference", run)]


def _search(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    lines, shown = [], []
    for dataset, result in results.items():
        search, single = result["search"], result["single recipe"]
        head = search["headline"]
        lines.append(
            f"- {dataset} compression search: {search['recipe']}, model part "
            f"{head['tflite_zipped_ratio']:.1f}x smaller zipped at "
            f"{100 * head['quality_change']:+.2f} pt on the eval split, in "
            f"{result['time_ratio']:.1f}x the time of the single recipe "
            f"({single['recipe']}: {single['headline']['tflite_zipped_ratio']:.1f}x, "
            f"{100 * single['headline']['quality_change']:+.2f} pt)."
        )
        shown.append((f"{dataset} search", result))
    return lines, shown


def _wide(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    runs = results.get("runs", {})
    cells, shown = [], []
    for key in sorted(runs, key=lambda key: tuple(int(n) for n in reversed(key.split("x")))):
        features, rows = (int(n) for n in key.split("x"))
        ours, stock = runs[key].get("leanline"), runs[key].get("stock")
        if rows != 1000 or not ours:
            continue
        stock_words = (
            f", stock per-column TFT {stock['components']['Transform']:.0f} s" if stock else ""
        )
        cells.append(
            f"{features} numeric columns {ours['wall_seconds']:.0f} s (Transform "
            f"{ours['components']['Transform']:.0f} s{stock_words})"
        )
        shown += [(f"wide {key} {name}", run) for name, run in runs[key].items()]
    if not cells:
        return [], []
    return ["- Wide tables, 1,000 rows, whole pipeline: " + "; ".join(cells) + "."], shown


def _text(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    if not results:
        return [], []
    run, baseline = results["runs"][0], results["tfidf_baseline"]
    latency = run["batch_1_p50_ms"]
    return [
        f"- Reviews (text, a Transformer of {run['weights']:,} weights): "
        f"{100 * run['accuracy']['float_saved_model_tfma']:.1f}% accuracy against "
        f"{100 * baseline['accuracy']:.1f}% for TF-IDF plus logistic regression, shipped int8 "
        f"TFLite {run['zipped_ratio']:.1f}x smaller zipped at {-run['points_lost']:+.2f} pt; "
        f"at batch 1 the int8 TFLite takes {latency['compressed_tflite']:.3f} ms against "
        f"{latency['float_tflite']:.3f} ms float "
        f"({latency['compressed_tflite'] / latency['float_tflite']:.1f}x); the pipeline "
        f"{run['pipeline_seconds']:.0f} s, {np.mean(run['epoch_seconds']):.1f} s per epoch."
    ], [("reviews", results)]


def _small(results: Results) -> tuple[list[str], list[tuple[str, Results]]]:
    if not results:
        return [], []
    runs = results["runs"]
    pushed = sum(run["pushed"] for run in runs)
    met = sum(run["target_met"] for run in runs)
    return [
        f"- Minimal configs on {len(runs)} small tables: {pushed} pushed, {met} within "
        "the target of the better scikit-learn baseline."
    ], [("small tables", results)]


def markdown(
    pipeline: Results,
    penguin: Results,
    inference_results: Results,
    search: Results,
    wide: Results,
    text: Results,
    small: Results,
) -> str:
    lines: list[str] = []
    shown: list[tuple[str, Results]] = []
    for part, results in (
        (_inference, inference_results),
        (_pipeline, pipeline),
        (_penguin, penguin),
        (_search, search),
        (_wide, wide),
        (_text, text),
        (_small, small),
    ):
        more_lines, more_shown = part(results)
        lines += more_lines
        shown += more_shown
    return "\n".join([*lines, "", measured_at(shown)])
