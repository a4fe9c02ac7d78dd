"""Runs leanline's pipeline on this machine: LocalDagRunner, SQLite MLMD, Beam DirectRunner.

The output directory's layout is pipeline.layout's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tfx.dsl.components.base.base_component import BaseComponent
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.metadata import sqlite_metadata_connection_config
from tfx.orchestration.pipeline import Pipeline

from models.custom.loader import check_module
from models.errors import UserError
from pipeline import summary
from pipeline.config import LeanlineConfig, resolved_model, write_run_config
from pipeline.gate_resolution import fitted_to_data
from pipeline.inputs.checks import check_inputs
from pipeline.inputs.copies import example_gen_path
from pipeline.inputs.datasets import data_path
from pipeline.layout import DATA_DIR, LOCK_FILE, METADATA_FILE, PIPELINE_ROOT
from pipeline.pipeline import create_pipeline
from pipeline.progress import run_progress
from pipeline.report.build import write_report
from pipeline.run_log import run_log

# Pinned when the Beam args name no runner: see local_beam_args.
LOCAL_RUNNER_ARGS = ("--runner=FnApiRunner", "--sdk_container_image=unused-locally")


def local_beam_args(beam_pipeline_args: Sequence[str]) -> list[str]:
    """The Beam args a run on this machine uses: `beam_pipeline_args`, plus, unless
    they name a runner, the FnApiRunner and a container image no local runner reads.

    Beam's DirectRunner offers every pipeline to the Prism runner first (it translates
    the graph, tries to download Prism, then falls back to the FnApiRunner); and TFX
    builds an sdist of itself for each Beam component, left in the temp dir, unless an
    image is named. Both cost seconds per component and buy nothing locally. Args that
    name a runner (Dataflow, Flink, Spark) are passed on untouched.
    """
    args = list(beam_pipeline_args)
    if any(arg == "--runner" or arg.startswith("--runner=") for arg in args):
        return args
    return [*args, *LOCAL_RUNNER_ARGS]


def run_components(
    name: str,
    work_dir: Path,
    components: Sequence[BaseComponent],
    beam_pipeline_args: Sequence[str],
) -> Path:
    """Runs `components` as a pipeline of their own, uncached, under `work_dir`
    (for `leanline schema`, tests and benchmarks); returns its pipeline root."""
    pipeline_root = work_dir / PIPELINE_ROOT
    LocalDagRunner().run(
        Pipeline(
            pipeline_name=name,
            pipeline_root=str(pipeline_root),
            components=list(components),
            metadata_connection_config=sqlite_metadata_connection_config(
                str(work_dir / METADATA_FILE)
            ),
            beam_pipeline_args=local_beam_args(beam_pipeline_args),
            enable_cache=False,
        )
    )
    return pipeline_root


@contextlib.contextmanager
def exclusive_output_dir(output_dir: Path) -> Iterator[None]:
    """One run at a time per output directory: MLMD's SQLite store and the
    serving directory are shared state. A second run is refused, not queued."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another leanline run is using {output_dir}; wait for it to finish "
                "or pass a different --output-dir"
            ) from None
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def _root_cause(error: BaseException) -> BaseException:
    """TFX and Beam wrap executor errors; the innermost UserError is the one to show."""
    seen = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def run_local(
    config: LeanlineConfig,
    *,
    data: str | None = None,
    beam_args: Sequence[str] = (),
    enable_cache: bool = True,
) -> summary.RunSummary:
    """Runs the whole pipeline; returns (and writes) the run summary.

    Raises UserError with a readable message when the run fails; the run's log file
    in <output>/logs/ holds every log record and, at its end, the full trace.
    """
    output_dir = config.output_path
    if config.model.module:  # a broken module stops the run now, not inside Transform
        check_module(resolved_model(config)["module"], config.model.module_sha256)
    checked = check_inputs(config, data_path(config, output_dir, data))  # seconds, not Beam
    fitted = fitted_to_data(config, checked)
    config = fitted.config
    with exclusive_output_dir(output_dir), run_log(output_dir) as log_path:
        write_run_config(config, output_dir)
        source = example_gen_path(checked, output_dir / DATA_DIR)
        metadata_path = output_dir / METADATA_FILE
        pipeline = create_pipeline(
            config,
            data_path=source,
            pipeline_root=str(output_dir / PIPELINE_ROOT),
            metadata_connection_config=sqlite_metadata_connection_config(str(metadata_path)),
            beam_pipeline_args=local_beam_args([*config.beam_pipeline_args, *beam_args]),
            enable_cache=enable_cache,
        )
        started = time.time()
        failure: BaseException | None = None
        try:
            with run_progress(metadata_path):
                LocalDagRunner().run(pipeline)
        except Exception as error:  # noqa: BLE001 - translated for the user below
            failure = error
        run_summary = summary.summarize(config, metadata_path, wall_seconds=time.time() - started)
        run_summary.input_notes = [*checked.notes, *fitted.notes]
        if failure is not None:
            cause = _root_cause(failure)
            run_summary.error = f"{type(cause).__name__}: {cause}"
        summary.write(run_summary, output_dir)
        report = write_report(output_dir, config)
        if failure is not None:
            logging.getLogger(__name__).error("the run failed", exc_info=failure)
            raise UserError(f"{cause}\n(full trace: {log_path}; report: {report})") from failure
        return run_summary
