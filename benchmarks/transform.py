"""Wide tables: what Transform, the Trainer, the Compressor and the whole pipeline cost
as the number of numeric features grows, beside a stock per-column TFT preprocessing_fn.

For each row count and numeric feature count, writes a synthetic CSV (features `f000`...,
normal with their own mean and scale, 2% of cells missing; a binary label `y` from a
noisy linear score of the first ten features) and a config for the generic `tabular`
family naming those columns, as a user would. Then, each in a fresh process on a fresh
output directory, uncached, with the same Beam args:

- leanline: the whole pipeline (`run_local`, as `leanline run` runs it);
- stock: ExampleGen, StatisticsGen, SchemaGen and a Transform whose preprocessing_fn is
  `stock_preprocessing_fn` below, the per-column `tft.scale_to_z_score` of every TFX
  example.

Seconds per component come from MLMD. Writes benchmarks/results/transform.json; the
wide-tables table of benchmarks/README.md is made from it (`benchmarks.readme`).

    .venv/bin/python -m benchmarks.transform [--rows 1000,100000] [--features 10,30,100,300]
        [--variants leanline,stock] [--force]

Measurements already in the JSON are skipped unless --force. Training and fine-tuning
are capped at --steps-per-epoch steps per epoch, so the data components dominate at 100k.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: benchmarks/ would shadow the `pipeline` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmarks.pipeline import (
    BEAM_MODES,
    BENCHMARKS_DIR,
    MIB,
    REPO_ROOT,
    RunSpec,
    component_seconds,
    leanline_run_command,
    run_measured,
)
from benchmarks.provenance import commit_of, load_results, measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes

RESULTS_FILE = BENCHMARKS_DIR / "results" / "transform.json"
DEFAULT_ROWS = (1_000, 100_000)
DEFAULT_FEATURES = (10, 30, 100, 300)
VARIANTS = ("leanline", "stock")
BEAM_ARGS = BEAM_MODES["in_memory"]
LABEL = "y"
MISSING_SHARE = 0.02
INFORMATIVE_FEATURES = 10
DEFAULT_STEPS_PER_EPOCH = 200
STOCK_PIPELINE = "stock"


def feature_columns(count: int) -> list[str]:
    return [f"f{index:03d}" for index in range(count)]


def wide_frame(features: int, rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows of `features` numeric columns and a learnable binary label."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-100, 100, features)
    scales = rng.uniform(0.1, 50, features)
    values = rng.normal(size=(rows, features))
    weights = rng.normal(size=min(features, INFORMATIVE_FEATURES))
    score = values[:, : len(weights)] @ weights + rng.normal(0, 0.5, rows)
    data = pd.DataFrame((values * scales + means).round(4), columns=feature_columns(features))
    data = data.mask(rng.uniform(size=data.shape) < MISSING_SHARE)
    data[LABEL] = (score > 0).astype(int)
    return data


def wide_csv(features: int, rows: int, data_dir: Path) -> Path:
    """The synthetic CSV of `features` numeric columns and `rows` rows, written once."""
    path = data_dir / f"wide-{features}x{rows}" / "data.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        wide_frame(features, rows).to_csv(tmp, index=False)
        os.replace(tmp, path)
    return path


def wide_config(features: int, csv_path: Path, steps_per_epoch: int | None) -> dict[str, Any]:
    """A tabular config over the synthetic columns, as a user would write it."""
    config: dict[str, Any] = {
        "name": f"wide-{features}",
        "data": {"path": str(csv_path)},
        "model": {
            "family": "tabular",
            "label": {"column": LABEL},
            "features": {"numeric": feature_columns(features)},
        },
        "compression": {"pruning": {"target_sparsity": 0.5}, "quantization": "int8_ptq"},
        "evaluation": {"thresholds": {"max_drop_vs_uncompressed": 0.02}},
    }
    if steps_per_epoch:
        config["training"] = {"steps_per_epoch": steps_per_epoch}
    return config


def stock_preprocessing_fn(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What every TFX example does with numeric columns: fill in missing values, then one
    `tft.scale_to_z_score` per column (TFX's taxi example's `_fill_in_missing` fills a
    missing float with 0)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from models.tabular.preprocessing import dense

    outputs = {}
    for name, tensor in inputs.items():
        column = dense(tensor, tf.constant(0, tensor.dtype))
        if name == LABEL:
            outputs[name] = tf.cast(column, tf.int64)
        else:
            outputs[f"{name}_xf"] = tft.scale_to_z_score(tf.cast(column, tf.float32))
    return outputs


@dataclass(frozen=True)
class StockSpec:
    config: str
    output_dir: str


def _run_stock(spec_path: Path) -> int:
    """The child side of a stock measurement: the data stages and the stock Transform."""
    from tfx.components import Transform

    from pipeline.config import load_config
    from pipeline.local_runner import run_components
    from pipeline.pipeline import training_stages

    spec = StockSpec(**json.loads(spec_path.read_text()))
    config = load_config(spec.config)
    stages = training_stages(config, config.resolve(config.data.path))
    transform = Transform(
        examples=stages.example_gen.outputs["examples"],
        schema=stages.schema_gen.outputs["schema"],
        # By module path: this process runs the module as __main__.
        preprocessing_fn="benchmarks.transform.stock_preprocessing_fn",
        disable_statistics=True,  # as leanline's Transform
    )
    components = [stages.example_gen, stages.statistics_gen, stages.schema_gen, transform]
    run_components(STOCK_PIPELINE, Path(spec.output_dir), components, BEAM_ARGS)
    return 0


def measure(
    variant: str,
    features: int,
    rows: int,
    work_dir: Path,
    steps_per_epoch: int | None,
    code_dir: Path = REPO_ROOT,
) -> dict[str, Any]:
    """One uncached run of `variant` in a fresh process, with the code in `code_dir`; its
    run dir is removed on success."""
    csv_path = wide_csv(features, rows, work_dir / "data")
    run_dir = Path(tempfile.mkdtemp(prefix=f"{variant}-{features}x{rows}-", dir=work_dir))
    output_dir = run_dir / "output"
    config_path = run_dir / "config.yaml"
    config = wide_config(features, csv_path, steps_per_epoch)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if variant == "leanline":
        spec = RunSpec(
            config=str(config_path),
            overrides={"output_dir": str(output_dir), "beam_pipeline_args": []},
            data=str(csv_path),
            beam_args=BEAM_ARGS,
        )
        command = leanline_run_command(spec, run_dir / "spec.json")
        pipeline_name = config["name"]
    else:
        spec_path = run_dir / "spec.json"
        spec_path.write_text(json.dumps(asdict(StockSpec(str(config_path), str(output_dir)))))
        command = [sys.executable, "-m", "benchmarks.transform", "--run-stock", str(spec_path)]
        pipeline_name = STOCK_PIPELINE
    print(f"measuring {variant}: {features} features x {rows} rows ({run_dir})", flush=True)
    load_before = os.getloadavg()[0]
    process = run_measured(command, run_dir / "run.log", code_dir)
    if process.returncode != 0:
        raise RuntimeError(f"{variant} at {features}x{rows} failed; see {run_dir / 'run.log'}")
    components = component_seconds(output_dir / "metadata.sqlite", pipeline_name)
    result: dict[str, Any] = {
        "features": features,
        "rows": rows,
        "process_seconds": process.seconds,
        "process_cpu_seconds": process.cpu_seconds,
        "peak_rss_mib": round(process.peak_rss_bytes / MIB),
        "components": components,
        "load_average": round(load_before, 1),
    }
    if variant == "leanline":
        summary = json.loads((output_dir / "run_summary.json").read_text())
        result["wall_seconds"] = summary["wall_seconds"]
        result["pushed"] = summary["pushed"]
        result["eval_metrics"] = summary["eval_metrics"]
    shutil.rmtree(run_dir)
    return result


def _commit(code_dir: Path) -> str:
    return commit_of(code_dir)[:7]


# --- README ------------------------------------------------------------------------------


def _seconds(run: dict[str, Any] | None, component: str | None = None) -> str:
    if run is None:
        return "-"
    value = run["wall_seconds"] if component is None else run["components"].get(component)
    return "-" if value is None else f"{value:.1f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    runs = results["runs"]
    lines = [
        "| rows | numeric features | leanline Transform s | stock TFT Transform s "
        "| Trainer s | Compressor s | whole pipeline s | Transform vs 10 features "
        "| whole vs 10 features | pushed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for rows in sorted({int(key.split("x")[1]) for key in runs}):
        base = runs.get(f"10x{rows}", {}).get("leanline")
        for features in sorted({int(key.split("x")[0]) for key in runs}):
            by_variant = runs.get(f"{features}x{rows}")
            if not by_variant:
                continue
            ours, stock = by_variant.get("leanline"), by_variant.get("stock")
            transform_ratio = _ratio(
                ours and ours["components"].get("Transform"),
                base and base["components"].get("Transform"),
            )
            whole_ratio = _ratio(ours and ours["wall_seconds"], base and base["wall_seconds"])
            pushed = "-" if ours is None else ("yes" if ours["pushed"] else "no")
            lines.append(
                f"| {rows:,} | {features} | {_seconds(ours, 'Transform')} "
                f"| {_seconds(stock, 'Transform')} | {_seconds(ours, 'Trainer')} "
                f"| {_seconds(ours, 'Compressor')} | {_seconds(ours)} | {transform_ratio} "
                f"| {whole_ratio} | {pushed} |"
            )
    others = [
        (rows, features, variant, run)
        for key, by_variant in runs.items()
        for rows, features in [(int(key.split("x")[1]), int(key.split("x")[0]))]
        for variant, run in by_variant.items()
        if variant.startswith("leanline@")
    ]
    if others:
        lines += [
            "",
            "The same runs of earlier commits (`--code`), beside this commit's:",
            "",
            "| rows | numeric features | code | Transform s | Trainer s | Compressor s "
            "| whole pipeline s | whole vs this commit |",
            "|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for rows, features, variant, run in sorted(others, key=lambda item: item[:3]):
            ours = runs[f"{features}x{rows}"].get("leanline")
            for code, shown in ((variant.split("@", 1)[1], run), ("this commit", ours)):
                lines.append(
                    f"| {rows:,} | {features} | {code} | {_seconds(shown, 'Transform')} "
                    f"| {_seconds(shown, 'Trainer')} | {_seconds(shown, 'Compressor')} "
                    f"| {_seconds(shown)} "
                    f"| {_ratio(shown and shown['wall_seconds'], ours and ours['wall_seconds'])} |"
                )
    measurements = [
        (f"{key} {variant}", run)
        for key, by_variant in runs.items()
        for variant, run in by_variant.items()
    ]
    return "\n".join([*lines, "", measured_at(measurements)])


# --- command line ------------------------------------------------------------------------


def _csv_ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_csv_ints, default=list(DEFAULT_ROWS))
    parser.add_argument("--features", type=_csv_ints, default=list(DEFAULT_FEATURES))
    parser.add_argument("--variants", type=lambda text: text.split(","), default=list(VARIANTS))
    parser.add_argument("--steps-per-epoch", type=int, default=DEFAULT_STEPS_PER_EPOCH)
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    parser.add_argument("--work-dir", type=Path, help="data and run dirs (default: a temp dir)")
    parser.add_argument("--force", action="store_true", help="measure again what the JSON has")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--code",
        type=Path,
        help="measure leanline from this checkout of another commit (git worktree add DIR "
        "COMMIT), kept apart as variant leanline@COMMIT",
    )
    parser.add_argument("--run-stock", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_stock:
        return _run_stock(args.run_stock)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    results = {"runs": {}, **load_results(args.output)}
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-transform-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    # Rows outermost, features alternating between variants: a drift in the machine's
    # speed shows in both variants of a size alike.
    for rows in args.rows:
        for features in args.features:
            done = results["runs"].setdefault(f"{features}x{rows}", {})
            for variant in args.variants:
                key = variant
                if args.code:
                    if variant != "leanline":
                        continue  # another commit's leanline, beside this one's figures
                    key = f"leanline@{_commit(args.code)}"
                if key in done and not args.force:
                    continue
                code_dir = args.code or REPO_ROOT
                done[key] = stamped(
                    measure(variant, features, rows, work_dir, args.steps_per_epoch, code_dir),
                    code_dir,
                )
                save_results(results, args.output)
    if not args.no_readme:
        refresh_readmes()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
