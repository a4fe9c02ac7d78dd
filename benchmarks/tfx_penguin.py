"""Side by side: TFX's own penguin example pipeline and leanline's, on the same rows.

TFX's pipeline is `tfx.examples.penguin.penguin_pipeline_local.create_pipeline`, run from
the installed tfx wheel with its module file `penguin_utils_keras.py` (tuning, bulk
inference, example diff, Transform cache and user schema off, as its optional features
are). Both read one CSV in TFX's processed-penguin format, built from the palmerpenguins
data: culmen_* columns (palmerpenguins' bill_*), flipper_length_mm, body_mass_g, and an
integer `species` (0 Adelie, 1 Chinstrap, 2 Gentoo); rows with missing values dropped.

leanline runs configs/penguins.yaml made to do the same work: the same four features and
label, TFX's 2:1 train/eval split, TFX's network (two Dense(8) layers) and training budget
(100 steps of 20 examples), no slices. Each pipeline runs in a fresh process on a fresh
output directory with the same Beam args; per-component seconds come from each one's MLMD.
One change to TFX's side: without TensorBoard installed (TF 2.21 no longer brings it),
its Trainer's TensorBoard callback becomes a no-op, as leanline's Trainer skips it too.
Writes benchmarks/results/tfx_penguin.json; the side-by-side table of benchmarks/README.md
is made from it (`benchmarks.readme`).

    .venv/bin/python -m benchmarks.tfx_penguin [--repeats 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: benchmarks/ would shadow the `pipeline` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import csv
import importlib.util
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

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
from benchmarks.provenance import measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes

RESULTS_FILE = BENCHMARKS_DIR / "results" / "tfx_penguin.json"
PENGUINS_CONFIG = REPO_ROOT / "configs" / "penguins.yaml"
TFX_PIPELINE_NAME = "penguin_tfx"
WALL_FILE = "wall_seconds.json"

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
# TFX's processed-penguin columns, from palmerpenguins' columns.
COLUMNS = {
    "species": "species",
    "culmen_length_mm": "bill_length_mm",
    "culmen_depth_mm": "bill_depth_mm",
    "flipper_length_mm": "flipper_length_mm",
    "body_mass_g": "body_mass_g",
}
FEATURES = [name for name in COLUMNS if name != "species"]

# What penguin_pipeline_local.py uses: 2:1 hash split (CsvExampleGen's default),
# TrainArgs(num_steps=100) at TRAIN_BATCH_SIZE 20, Dense(8) x 2, accuracy >= 0.6.
TFX_TRAIN_STEPS = 100
TFX_BATCH_SIZE = 20
TFX_ACCURACY_THRESHOLD = 0.6
LEANLINE_EPOCHS = 10  # x LEANLINE_STEPS_PER_EPOCH = TFX_TRAIN_STEPS
LEANLINE_STEPS_PER_EPOCH = TFX_TRAIN_STEPS // LEANLINE_EPOCHS
LEANLINE_OVERRIDES: dict[str, Any] = {
    "data": {"split": {"train": 2, "eval": 1}},
    "model": {
        "features": {"numeric": FEATURES, "categorical": []},
        "label": {"column": "species", "num_classes": len(SPECIES)},
        "hidden_units": [8, 8],
    },
    "training": {
        "epochs": LEANLINE_EPOCHS,
        "batch_size": TFX_BATCH_SIZE,
        "steps_per_epoch": LEANLINE_STEPS_PER_EPOCH,
    },
    "evaluation": {"slices": []},
}

# (shown as, TFX's component id, leanline's component id) for the work both pipelines do.
# TFX's Evaluator has no baseline on a first run, like leanline's evaluator against the
# last blessed model (EvaluateTFLiteVsBlessed: penguins' gates judge its TFLite files);
# leanline's EvaluateCompression evaluates two models and is listed with its own extras.
SHARED_COMPONENTS = (
    ("ExampleGen", "CsvExampleGen", "CsvExampleGen"),
    ("StatisticsGen", "StatisticsGen", "StatisticsGen"),
    ("SchemaGen", "SchemaGen", "SchemaGen"),
    ("Transform", "Transform", "Transform"),
    ("Trainer", "Trainer", "Trainer"),
    ("Evaluator", "Evaluator", "EvaluateTFLiteVsBlessed"),  # pipeline.pipeline's id
    ("Pusher", "Pusher", "ServingPusher"),
)
# What leanline's component does beyond TFX's, where it does more.
EXTRA_WORK = {
    "Trainer": "also saves the plain Keras model for the Compressor",
    "Pusher": "also writes the TFLite model and warm-up requests",
}
# Slower than TFX by more than both of these counts as slower, not as noise.
SLOWER_RATIO = 1.10
SLOWER_SECONDS = 0.5


def penguin_csv(path: Path) -> Path:
    """palmerpenguins' rows without missing values, in TFX's processed-penguin format."""
    from pipeline.inputs.datasets import bundled_csv

    source = bundled_csv("penguins", path.parent.parent / "bundled")
    with source.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if "" not in row.values()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(
                [SPECIES.index(row["species"]), *(row[COLUMNS[name]] for name in FEATURES)]
            )
    return path


# --- TFX's pipeline, in its own process -------------------------------------------------------


@dataclass(frozen=True)
class TfxSpec:
    data_root: str  # holds labelled/<csv>, as the example expects
    output_dir: str
    beam_args: list[str]


def _without_tensorboard() -> None:
    """Makes `tf.keras.callbacks.TensorBoard` a callback that does nothing.

    TF 2.21 no longer installs TensorBoard, so the example's Trainer, which logs to it,
    fails here; leanline's Trainer skips TensorBoard when it is missing. Both then do
    the same work."""
    import tensorflow as tf

    class NoTensorBoard(tf.keras.callbacks.Callback):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__()

    tf.keras.callbacks.TensorBoard = NoTensorBoard


def _run_tfx(spec_path: Path) -> int:
    """The child side: TFX's penguin pipeline, as shipped, on `data_root/labelled`."""
    from absl import flags
    from tfx import v1 as tfx
    from tfx.examples.penguin import penguin_pipeline_local

    if importlib.util.find_spec("tensorboard") is None:
        _without_tensorboard()
    # The example defines an absl flag `--runner` (DirectRunner|FlinkRunner|SparkRunner) for
    # its own main, unused here; TFX's Beam executors parse Beam args against absl's flags,
    # so it would reject the `--runner=FnApiRunner` both pipelines are given.
    delattr(flags.FLAGS, "runner")
    spec = TfxSpec(**json.loads(spec_path.read_text()))
    output_dir = Path(spec.output_dir)
    pipeline = penguin_pipeline_local.create_pipeline(
        pipeline_name=TFX_PIPELINE_NAME,
        pipeline_root=str(output_dir / "pipeline"),
        data_root=spec.data_root,
        module_file=str(Path(penguin_pipeline_local.__file__).with_name("penguin_utils_keras.py")),
        accuracy_threshold=TFX_ACCURACY_THRESHOLD,
        serving_model_dir=str(output_dir / "serving"),
        metadata_path=str(output_dir / "metadata.sqlite"),
        user_provided_schema_path=None,
        enable_tuning=False,
        enable_bulk_inferrer=False,
        enable_example_diff=False,
        examplegen_input_config=None,
        examplegen_range_config_date=None,
        resolver_range_config=None,
        beam_pipeline_args=spec.beam_args,
        enable_transform_input_cache=False,
    )
    started = time.time()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    (output_dir / WALL_FILE).write_text(json.dumps({"wall_seconds": time.time() - started}))
    return 0


# --- measuring both -------------------------------------------------------------------------


def _measured(command: list[str], run_dir: Path, metadata: Path, pipeline: str) -> dict[str, Any]:
    process = run_measured(command, run_dir / "run.log")
    if process.returncode != 0:
        raise RuntimeError(f"{pipeline} failed; see {run_dir}/run.log")
    return {
        "process_seconds": process.seconds,
        "process_cpu_seconds": process.cpu_seconds,
        "peak_rss_mib": round(process.peak_rss_bytes / MIB),
        "components": component_seconds(metadata, pipeline),
    }


def measure_tfx(csv_path: Path, beam_args: list[str], work_dir: Path) -> dict[str, Any]:
    from pipeline.local_runner import local_beam_args

    run_dir = Path(tempfile.mkdtemp(prefix="tfx-", dir=work_dir))
    output_dir = run_dir / "output"
    output_dir.mkdir()
    # The Beam args leanline's own runs get, so the two differ in their components only.
    spec = TfxSpec(str(csv_path.parent.parent), str(output_dir), local_beam_args(beam_args))
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(asdict(spec), indent=2))
    command = [sys.executable, "-m", "benchmarks.tfx_penguin", "--run-tfx", str(spec_path)]
    print(f"running TFX's penguin pipeline (log: {run_dir / 'run.log'})", flush=True)
    result = _measured(command, run_dir, output_dir / "metadata.sqlite", TFX_PIPELINE_NAME)
    wall = json.loads((output_dir / WALL_FILE).read_text())["wall_seconds"]
    shutil.rmtree(run_dir)
    return {"wall_seconds": round(wall, 1), **result}


def measure_leanline(csv_path: Path, beam_args: list[str], work_dir: Path) -> dict[str, Any]:
    from pipeline.config import load_config

    run_dir = Path(tempfile.mkdtemp(prefix="leanline-", dir=work_dir))
    output_dir = run_dir / "output"
    spec = RunSpec(
        config=str(PENGUINS_CONFIG),
        overrides={**LEANLINE_OVERRIDES, "output_dir": str(output_dir), "beam_pipeline_args": []},
        data=str(csv_path),
        beam_args=beam_args,
    )
    name = load_config(PENGUINS_CONFIG).name
    print(f"running leanline's penguins pipeline (log: {run_dir / 'run.log'})", flush=True)
    command = leanline_run_command(spec, run_dir / "spec.json")
    result = _measured(command, run_dir, output_dir / "metadata.sqlite", name)
    summary = json.loads((output_dir / "run_summary.json").read_text())
    shutil.rmtree(run_dir)
    return {"wall_seconds": summary["wall_seconds"], **result, "pushed": summary["pushed"]}


# --- README ----------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], component: str) -> float | None:
    values = [run["components"][component] for run in runs if component in run["components"]]
    return statistics.median(values) if values else None


def _median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Per shared component: 'faster', 'same' or 'SLOWER' (leanline against TFX)."""
    tfx_runs, ours = results["runs"]["tfx"], results["runs"]["leanline"]
    found = {}
    for shown, tfx_id, our_id in SHARED_COMPONENTS:
        theirs, mine = _median(tfx_runs, tfx_id), _median(ours, our_id)
        if theirs is None or mine is None:
            continue
        if mine > theirs * SLOWER_RATIO and mine - theirs > SLOWER_SECONDS:
            found[shown] = "SLOWER"
        elif mine < theirs / SLOWER_RATIO and theirs - mine > SLOWER_SECONDS:
            found[shown] = "faster"
        else:
            found[shown] = "same"
    return found


def shared_seconds(results: dict[str, Any]) -> tuple[float, float]:
    """Median seconds of the components both pipelines run, summed: (TFX's, leanline's)."""
    tfx_runs, ours = results["runs"]["tfx"], results["runs"]["leanline"]
    theirs = sum(_median(tfx_runs, tfx_id) or 0.0 for _, tfx_id, _ in SHARED_COMPONENTS)
    mine = sum(_median(ours, our_id) or 0.0 for _, _, our_id in SHARED_COMPONENTS)
    return theirs, mine


def markdown(results: dict[str, Any]) -> str:
    tfx_runs, ours = results["runs"]["tfx"], results["runs"]["leanline"]
    verdict = verdicts(results)
    lines = [
        f"{results['rows']} penguins, {len(tfx_runs)} run(s) each (medians), Beam args "
        f"`{' '.join(results['beam_args'])}` plus the local runner args (`local_beam_args`).",
        "",
        "| component | TFX example s | leanline s | leanline vs TFX | leanline's extra work |",
        "|---|---:|---:|:---:|---|",
    ]
    for shown, tfx_id, our_id in SHARED_COMPONENTS:
        theirs, mine = _median(tfx_runs, tfx_id), _median(ours, our_id)
        label = shown if tfx_id == our_id else f"{shown} ({our_id})"
        lines.append(
            f"| {label} | {_seconds(theirs)} | {_seconds(mine)} | {verdict.get(shown, '-')} "
            f"| {EXTRA_WORK.get(shown, '')} |"
        )
    shared_tfx, shared_ours = shared_seconds(results)
    lines.append(f"| **shared components** | **{shared_tfx:.1f}** | **{shared_ours:.1f}** | | |")
    shared_ids = {our_id for _, _, our_id in SHARED_COMPONENTS}
    extras = [name for name in ours[0]["components"] if name not in shared_ids]
    for name in extras:
        lines.append(f"| {name} (leanline only) | - | {_seconds(_median(ours, name))} | | |")
    for key, shown, digits in (
        ("wall_seconds", "pipeline wall s", 1),
        ("process_seconds", "process wall s", 1),
        ("process_cpu_seconds", "process CPU s", 1),
        ("peak_rss_mib", "peak RSS MiB", 0),
    ):
        theirs, mine = _median_of(tfx_runs, key), _median_of(ours, key)
        lines.append(f"| {shown} | {theirs:.{digits}f} | {mine:.{digits}f} | | |")
    return "\n".join([*lines, "", measured_at([("both pipelines", results)])])


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each pipeline")
    parser.add_argument(
        "--mode", choices=list(BEAM_MODES), default="in_memory", help="Beam mode for both"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="results JSON")
    parser.add_argument("--work-dir", type=Path, help="data and runs (default: a temp dir)")
    parser.add_argument(
        "--no-readme", action="store_true", help="leave the READMEs' figures as they are"
    )
    parser.add_argument("--run-tfx", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_tfx:
        return _run_tfx(args.run_tfx)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-tfx-penguin-"))
    # TFX's example reads every file under <data_root>/labelled.
    csv_path = penguin_csv(work_dir / "data" / "labelled" / "penguins.csv")
    beam_args = BEAM_MODES[args.mode]
    runs: dict[str, list[dict[str, Any]]] = {"tfx": [], "leanline": []}
    for _ in range(args.repeats):  # alternated, so a busy spell hits both alike
        runs["tfx"].append(measure_tfx(csv_path, beam_args, work_dir))
        runs["leanline"].append(measure_leanline(csv_path, beam_args, work_dir))
    with csv_path.open() as handle:
        rows = sum(1 for _ in handle) - 1
    results = {
        "rows": rows,
        "beam_args": beam_args,
        "leanline_overrides": LEANLINE_OVERRIDES,
        "runs": runs,
    }
    results["verdicts"] = verdicts(results)
    results = stamped(results)
    save_results(results, args.output)
    if not args.no_readme:
        refresh_readmes()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
