"""Pipeline benchmark: the whole taxi pipeline at growing sizes, Beam in_memory vs multi_processing.

For each size, resamples the bundled taxi CSV (with noise on the numeric columns, valid
under configs/schemas/taxi/schema.pbtxt) to that many rows, then runs the whole pipeline
(compression and push included) once per Beam mode, each in a fresh process on a fresh
output directory (no cache). Records the pipeline's wall time, every component's seconds
(from MLMD), rows/s of CsvExampleGen, StatisticsGen and Transform, and the peak RSS of
the process tree (Beam's worker processes included). Writes benchmarks/results/pipeline.json
and the pipeline tables of benchmarks/README.md.

    .venv/bin/python -m benchmarks.pipeline [--sizes 15000,150000,1500000]
        [--modes in_memory,multi_processing] [--steps-per-epoch 1000] [--force]

Measurements already in the JSON are kept and skipped (a run at 1.5M rows takes long);
--force measures them again. Training is capped at --steps-per-epoch steps per epoch
(the Compressor's fine-tuning too), so at large sizes the data components dominate.

Fixed costs: `--profile 500` runs the pipeline once per mode on 500 rows under cProfile
and records where the seconds go (imports, TFX's and Beam's per-component start-up, TF
tracing and saving, MLMD). `--beam-arg=...` (repeatable, with or without --profile)
measures a variant of each mode, kept apart in the results, to try a Beam setting before
changing leanline's defaults:

    .venv/bin/python -m benchmarks.pipeline --profile 500 --modes in_memory \\
        --beam-arg=--runner=FnApiRunner --beam-arg=--sdk_container_image=unused-locally
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: benchmarks/ would shadow the `pipeline` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import psutil

from benchmarks.provenance import GIB, load_results, measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "pipeline.json"
TAXI_CONFIG = REPO_ROOT / "configs" / "taxi.yaml"

DEFAULT_SIZES = (15_000, 150_000, 1_500_000)
BEAM_MODES: dict[str, list[str]] = {
    "in_memory": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}
# Components whose work grows with the rows they read: their throughput is reported.
THROUGHPUT_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform")
DEFAULT_STEPS_PER_EPOCH = 1000
RSS_SAMPLE_SECONDS = 0.2

MIB = 1024**2


@dataclass(frozen=True)
class Target:
    max_wall_seconds: float
    max_peak_rss_gib: float | None = None


TARGETS = {
    15_000: Target(max_wall_seconds=90),
    1_500_000: Target(max_wall_seconds=30 * 60, max_peak_rss_gib=8),
}


# --- data -------------------------------------------------------------------------------

# Relative noise on non-negative amounts (multiplicative, so they stay >= 0).
AMOUNT_COLUMNS = {"fare": 2, "tips": 2, "trip_miles": 2}  # column -> decimals kept
COORDINATE_COLUMNS = (
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
# Cyclic calendar columns: (lowest, highest) as in the curated schema.
CALENDAR_COLUMNS = {
    "trip_start_hour": (0, 23),
    "trip_start_day": (1, 7),
    "trip_start_month": (1, 12),
}
AMOUNT_NOISE = 0.1  # sigma of the log-normal factor
COORDINATE_NOISE = 0.002  # degrees, ~200 m
CALENDAR_JITTER = 0.1  # share of rows moved one hour/day/month forward or back
TIMESTAMP_JITTER_SECONDS = 1800


def _scaled(values: pd.Series, rng: np.random.Generator) -> pd.Series:
    return values * np.exp(rng.normal(0.0, AMOUNT_NOISE, len(values)))


def _cyclic_jitter(values: pd.Series, low: int, high: int, rng: np.random.Generator) -> pd.Series:
    shift = rng.choice(
        [-1, 0, 1],
        size=len(values),
        p=[CALENDAR_JITTER / 2, 1 - CALENDAR_JITTER, CALENDAR_JITTER / 2],
    )
    return (values - low + shift) % (high - low + 1) + low


def resample_taxi(source: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows drawn with replacement from `source`, numeric values perturbed.

    Missing cells stay missing and ids and strings stay as they are, so the result passes
    the curated taxi schema exactly like the original: amounts stay non-negative,
    calendar columns stay in range.
    """
    rng = np.random.default_rng(seed)
    data = source.sample(n=rows, replace=True, random_state=rng).reset_index(drop=True)
    for column, decimals in AMOUNT_COLUMNS.items():
        data[column] = _scaled(data[column], rng).round(decimals)
    data["trip_seconds"] = _scaled(data["trip_seconds"], rng).round().astype("Int64")
    for column in COORDINATE_COLUMNS:
        data[column] = (data[column] + rng.normal(0.0, COORDINATE_NOISE, rows)).round(6)
    for column, (low, high) in CALENDAR_COLUMNS.items():
        data[column] = _cyclic_jitter(data[column], low, high, rng)
    data["trip_start_timestamp"] += rng.integers(
        -TIMESTAMP_JITTER_SECONDS, TIMESTAMP_JITTER_SECONDS + 1, rows
    )
    return data


def taxi_csv(rows: int, data_dir: Path) -> Path:
    """The resampled taxi CSV of `rows` rows, written once under `data_dir`."""
    from pipeline.inputs.datasets import bundled_csv

    path = data_dir / f"taxi-{rows}" / "data.csv"
    if path.exists():
        return path
    # Nullable dtypes keep integer columns with empty cells integers ("60", not "60.0").
    source = pd.read_csv(bundled_csv("taxi", data_dir), dtype_backend="numpy_nullable")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    resample_taxi(source, rows).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


# --- measuring a process ----------------------------------------------------------------


def tree_rss(process: psutil.Process) -> int:
    """RSS of a process and all its descendants (shared pages count once per process)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class PeakRss(threading.Thread):
    """Samples the RSS of a process tree until stopped; `.peak` is the largest sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._process = psutil.Process(pid)
        self._stopped = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.peak = max(self.peak, tree_rss(self._process))
            except psutil.NoSuchProcess:
                return
            self._stopped.wait(RSS_SAMPLE_SECONDS)

    def stop(self) -> int:
        self._stopped.set()
        self.join()
        return self.peak


@dataclass(frozen=True)
class ProcessMeasurement:
    returncode: int
    seconds: float
    # User + system CPU of the process and its descendants: unlike wall time, barely
    # inflated when other jobs share the cores.
    cpu_seconds: float
    peak_rss_bytes: int


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(
    command: Sequence[str], log_path: Path, code_dir: Path = REPO_ROOT
) -> ProcessMeasurement:
    """Runs `command` from `code_dir` (the repo root, or a checkout of another commit to
    measure beside this one), output to `log_path`; measures time, CPU and memory.

    Run one at a time: CPU is read as the growth of this process's waited-for children."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        cpu_before = _children_cpu_seconds()
        started = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(code_dir)}
        process = subprocess.Popen(
            command, cwd=code_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        sampler = PeakRss(process.pid)
        sampler.start()
        returncode = process.wait()
        seconds = time.monotonic() - started
    return ProcessMeasurement(
        returncode,
        round(seconds, 1),
        round(_children_cpu_seconds() - cpu_before, 1),
        sampler.stop(),
    )


# --- one leanline run in its own process ---------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """What a measured child process runs: `run_local` of a config with overrides."""

    config: str
    overrides: dict[str, Any]
    data: str
    beam_args: list[str]
    # Where to write `fixed_cost` figures (import time, cProfile hot spots); None: no profile.
    profile_path: str | None = None


def leanline_run_command(spec: RunSpec, spec_path: Path) -> list[str]:
    spec_path.write_text(json.dumps(asdict(spec), indent=2))
    return [sys.executable, "-m", "benchmarks.pipeline", "--run-spec", str(spec_path)]


# Where a run's seconds go: (label, file, functions) of cProfile entries. Cumulative
# seconds; nested entries overlap (a SavedModel save traces tf.functions), so they
# do not add up.
HOT_SPOTS = (
    (
        "TFX: builds an sdist of itself for each Beam component",
        "tfx/utils/dependency_utils.py",
        ("build_ephemeral_package",),
    ),
    (
        "Beam DirectRunner: checks which runner can run the graph",
        "apache_beam/runners/direct/direct_runner.py",
        ("accept",),
    ),
    (
        "Beam DirectRunner: tries the Prism runner first",
        "apache_beam/runners/runner.py",
        ("run_pipeline",),
    ),
    (
        "Beam FnApiRunner: translates and runs the graph",
        "apache_beam/runners/portability/fn_api_runner/fn_runner.py",
        ("run_pipeline",),
    ),
    (
        "TF: traces tf.functions",
        "tensorflow/python/eager/polymorphic_function/tracing_compilation.py",
        ("trace_function",),
    ),
    ("TF: saves SavedModels", "tensorflow/python/saved_model/save.py", ("save_and_return_nodes",)),
    ("Keras: fit", "tf_keras/src/engine/training.py", ("fit",)),
    ("MLMD: store calls", "ml_metadata/metadata_store/metadata_store.py", ("_call",)),
    (
        "TFX launcher: registers and publishes executions",
        "tfx/orchestration/portable/launcher.py",
        ("_prepare_execution", "_publish_successful_execution"),
    ),
)


def hot_spot_seconds(profile: cProfile.Profile) -> dict[str, float]:
    seconds = {label: 0.0 for label, _, _ in HOT_SPOTS}
    for (filename, _, function), (_, _, _, cumulative, _) in pstats.Stats(profile).stats.items():
        for label, suffix, functions in HOT_SPOTS:
            if filename.endswith(suffix) and function in functions:
                seconds[label] += cumulative
    return {label: round(value, 1) for label, value in seconds.items()}


def _run_spec(spec_path: Path) -> int:
    """The child side of `leanline_run_command`: one uncached pipeline run."""
    from models.errors import UserError
    from pipeline.config import load_config
    from pipeline.local_runner import run_local

    import_seconds = time.time() - psutil.Process().create_time()
    spec = RunSpec(**json.loads(spec_path.read_text()))
    config = load_config(spec.config).with_overrides(**spec.overrides)
    profile = cProfile.Profile() if spec.profile_path else None
    try:
        if profile:
            profile.enable()
        run_local(config, data=spec.data, beam_args=spec.beam_args, enable_cache=False)
    except UserError as error:
        print(f"run failed: {error}", file=sys.stderr)
        return 1
    finally:
        if profile:
            profile.disable()
    if profile:
        figures = {"import_seconds": round(import_seconds, 1), **hot_spot_seconds(profile)}
        Path(spec.profile_path).write_text(json.dumps(figures, indent=2))
    return 0


def component_seconds(metadata_path: Path, pipeline_name: str) -> dict[str, float]:
    """Seconds of each component of the latest run in an MLMD store, in execution order:
    from the execution's creation to its last update, as `leanline runs` shows them."""
    from pipeline.summary import latest_run_context, open_store

    store = open_store(metadata_path)
    run = latest_run_context(store, pipeline_name)
    if run is None:
        return {}
    seconds = {}
    executions = store.get_executions_by_context(run.id)
    for execution in sorted(executions, key=lambda e: e.create_time_since_epoch):
        nodes = [c for c in store.get_contexts_by_execution(execution.id) if c.type == "node"]
        name = nodes[0].name.split(".", 1)[1] if nodes else str(execution.id)
        elapsed = execution.last_update_time_since_epoch - execution.create_time_since_epoch
        seconds[name] = round(elapsed / 1000, 2)
    return seconds


# --- the benchmark ---------------------------------------------------------------------------


def training_overrides(epochs: int | None, steps_per_epoch: int | None) -> dict[str, Any]:
    training: dict[str, Any] = {}
    if epochs is not None:
        training["epochs"] = epochs
    if steps_per_epoch is not None:
        training["steps_per_epoch"] = steps_per_epoch
    return training


def measure(
    rows: int,
    beam_args: list[str],
    csv_path: Path,
    training: dict[str, Any],
    work_dir: Path,
    profile: bool = False,
) -> dict[str, Any]:
    """One uncached run of the taxi pipeline on `csv_path`; the run dir is removed on success."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{rows}-", dir=work_dir))
    output_dir = run_dir / "output"
    spec = RunSpec(
        config=str(TAXI_CONFIG),
        # The measured Beam args replace the config's, not follow them.
        overrides={"output_dir": str(output_dir), "training": training, "beam_pipeline_args": []},
        data=str(csv_path),
        beam_args=beam_args,
        profile_path=str(run_dir / "profile.json") if profile else None,
    )
    what = f"{rows} rows, {' '.join(beam_args)}"
    print(f"measuring {what} (log: {run_dir / 'run.log'})", flush=True)
    load_before = os.getloadavg()[0]
    process = run_measured(leanline_run_command(spec, run_dir / "spec.json"), run_dir / "run.log")
    summary_path = output_dir / "run_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if process.returncode != 0 or not summary or summary.get("error"):
        error = summary.get("error", "no run summary")
        raise RuntimeError(f"the run of {what} failed ({error}); see {run_dir / 'run.log'}")
    components = {c["id"]: c["seconds"] for c in summary["components"]}
    result = {
        "rows": rows,
        "beam_args": beam_args,
        "training": training,
        "wall_seconds": summary["wall_seconds"],
        "process_seconds": process.seconds,
        "process_cpu_seconds": process.cpu_seconds,
        "orchestration_seconds": round(summary["wall_seconds"] - sum(components.values()), 1),
        "peak_rss_mib": round(process.peak_rss_bytes / MIB),
        "components": components,
        "rows_per_second": {name: round(rows / components[name]) for name in THROUGHPUT_COMPONENTS},
        "pushed": summary["pushed"],
        # Without a push, the run stopped at a gate: EvaluateVsBlessed and the pusher did not run.
        "not_pushed_reason": summary["not_pushed_reason"],
        "blessings": summary["blessings"],
        "eval_metrics": summary["eval_metrics"],
        # 1-minute load average as the run started: above the core count, others competed.
        "load_average": round(load_before, 1),
    }
    if profile:
        result["profile"] = json.loads(Path(spec.profile_path).read_text())
    shutil.rmtree(run_dir)
    return result


def load_pipeline_results(path: Path) -> dict[str, Any]:
    return {"runs": {}, "fixed_cost": {}, **load_results(path)}


# --- README ----------------------------------------------------------------------------------


def _target_met(rows: int, run: dict[str, Any]) -> str:
    target = TARGETS.get(rows)
    if target is None:
        return "-"
    met = run["wall_seconds"] <= target.max_wall_seconds
    if target.max_peak_rss_gib is not None:
        met = met and run["peak_rss_mib"] * MIB <= target.max_peak_rss_gib * GIB
    if met and not run["pushed"]:
        return "incomplete run"  # stopped at a gate, before EvaluateVsBlessed and the pusher
    return "yes" if met else "no"


def _sorted_runs(results: dict[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
    """(rows, variant, run) by rows, then mode as in BEAM_MODES, plain mode first."""
    modes = list(BEAM_MODES)

    def key(item: tuple[int, str, dict[str, Any]]) -> tuple[int, int, str]:
        rows, variant, _ = item
        mode = variant.split(" ", 1)[0]
        return rows, modes.index(mode) if mode in modes else len(modes), variant

    return sorted(
        (
            (int(rows), variant, run)
            for rows, by_variant in results["runs"].items()
            for variant, run in by_variant.items()
        ),
        key=key,
    )


def markdown(results: dict[str, Any]) -> str:
    runs = _sorted_runs(results)
    summary = [
        "| rows | Beam mode | pipeline wall s | process wall s | process CPU s | peak RSS MiB "
        + "".join(f"| {name} rows/s " for name in THROUGHPUT_COMPONENTS)
        + "| pushed | load avg | target met |",
        "|---:|---|---:|---:|---:|---:"
        + "|---:" * len(THROUGHPUT_COMPONENTS)
        + "|:---:|---:|:---:|",
    ]
    for rows, variant, run in runs:
        summary.append(
            f"| {rows:,} | {variant} | {run['wall_seconds']:.1f} | {run['process_seconds']:.1f} "
            f"| {run['process_cpu_seconds']:.1f} | {run['peak_rss_mib']:,} "
            + "".join(f"| {run['rows_per_second'][name]:,} " for name in THROUGHPUT_COMPONENTS)
            + f"| {'yes' if run['pushed'] else 'no'} | {run['load_average']:.1f} "
            + f"| {_target_met(rows, run)} |"
        )
    names: list[str] = []
    for _, _, run in runs:
        names += [name for name in run["components"] if name not in names]
    per_component = [
        "| rows | Beam mode | " + " | ".join(names) + " | orchestration |",
        "|---:|---|" + "---:|" * (len(names) + 1),
    ]
    for rows, variant, run in runs:
        cells = [f"{run['components'][n]:.1f}" if n in run["components"] else "-" for n in names]
        per_component.append(
            f"| {rows:,} | {variant} | "
            + " | ".join(cells)
            + f" | {run['orchestration_seconds']:.1f} |"
        )
    provenance = measured_at([(f"{rows:,} {variant}", run) for rows, variant, run in runs])
    return "\n".join(
        [
            *summary,
            "",
            "Seconds per component (MLMD execution times):",
            "",
            *per_component,
            "",
            provenance,
        ]
    )


def fixed_cost_markdown(results: dict[str, Any]) -> str:
    """One column per profiled variant: totals, hot spots, then components."""
    variants = results["fixed_cost"]
    components: list[str] = []
    for run in variants.values():
        components += [name for name in run["components"] if name not in components]

    def row(label: str, values: list[float | None]) -> str:
        return f"| {label} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in values) + " |"

    runs = list(variants.values())
    lines = [
        "| seconds | " + " | ".join(f"`{variant}`" for variant in variants) + " |",
        "|---" + "|---:" * len(variants) + "|",
        "| rows | " + " | ".join(str(run["rows"]) for run in runs) + " |",
        row("pipeline wall (under cProfile)", [run["wall_seconds"] for run in runs]),
        row("process wall", [run["process_seconds"] for run in runs]),
        row("process CPU", [run["process_cpu_seconds"] for run in runs]),
        row(
            "import of TF/TFX/Beam (process start -> run_local)",
            [run["profile"]["import_seconds"] for run in runs],
        ),
    ]
    lines += [row(label, [run["profile"][label] for run in runs]) for label, _, _ in HOT_SPOTS]
    lines += [
        row(f"component: {name}", [run["components"].get(name) for run in runs])
        for name in components
    ]
    lines.append(row("load average at start", [run["load_average"] for run in runs]))
    return "\n".join([*lines, "", measured_at(list(variants.items()))])


# --- command line ------------------------------------------------------------------------------


def _csv_ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item]


def _csv_modes(text: str) -> list[str]:
    modes = [item for item in text.split(",") if item]
    unknown = sorted(set(modes) - set(BEAM_MODES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown modes {unknown}; choose from {list(BEAM_MODES)}")
    return modes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=_csv_ints, default=list(DEFAULT_SIZES), help="rows, comma-separated"
    )
    parser.add_argument(
        "--modes", type=_csv_modes, default=list(BEAM_MODES), help="Beam modes, comma-separated"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="results JSON")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=DEFAULT_STEPS_PER_EPOCH,
        help="cap on training and fine-tuning steps per epoch (default %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="measure sizes already in the JSON")
    parser.add_argument(
        "--work-dir", type=Path, help="data and run directories (default: a temp dir)"
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="leave the READMEs' figures as they are"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="ROWS",
        help="instead of the sizes: profile one run per mode on ROWS rows (fixed costs)",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        help="an extra Beam arg (repeatable): measures a variant of each mode, kept apart",
    )
    parser.add_argument("--run-spec", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _variant(mode: str, extra_beam_args: list[str]) -> str:
    """The results key of a measurement: the Beam mode, then any extra Beam args."""
    return " ".join([mode, *extra_beam_args])


def _measure_scaling(args: argparse.Namespace, results: dict[str, Any], work_dir: Path) -> None:
    training = training_overrides(args.epochs, args.steps_per_epoch)
    for rows in args.sizes:
        done = results["runs"].setdefault(str(rows), {})
        todo = [
            mode for mode in args.modes if args.force or _variant(mode, args.beam_arg) not in done
        ]
        if not todo:
            print(f"{rows} rows: already measured (--force measures again)")
            continue
        csv_path = taxi_csv(rows, work_dir / "data")
        for mode in todo:
            beam_args = [*BEAM_MODES[mode], *args.beam_arg]
            done[_variant(mode, args.beam_arg)] = stamped(
                measure(rows, beam_args, csv_path, training, work_dir)
            )
            save_results(results, args.output)


def _measure_fixed_cost(args: argparse.Namespace, results: dict[str, Any], work_dir: Path) -> None:
    training = training_overrides(args.epochs, args.steps_per_epoch)
    csv_path = taxi_csv(args.profile, work_dir / "data")
    for mode in args.modes:
        variant = _variant(mode, args.beam_arg)
        if variant in results["fixed_cost"] and not args.force:
            print(f"{variant}: already profiled (--force profiles again)")
            continue
        beam_args = [*BEAM_MODES[mode], *args.beam_arg]
        results["fixed_cost"][variant] = stamped(
            measure(args.profile, beam_args, csv_path, training, work_dir, profile=True)
        )
        save_results(results, args.output)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_spec:
        return _run_spec(args.run_spec)
    results = load_pipeline_results(args.output)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-pipeline-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        _measure_fixed_cost(args, results, work_dir)
    else:
        _measure_scaling(args, results, work_dir)
    if not args.no_readme:
        refresh_readmes()
    print(fixed_cost_markdown(results) if args.profile else markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
