"""`leanline report` and `leanline runs`. Handlers import TensorFlow-heavy modules lazily.

Both name the run as every command that reads one does (pipeline.cli.run_dir).
"""

from __future__ import annotations

import argparse

from models.errors import UserError
from pipeline.cli.run_dir import add_run_arguments, run_config, run_dir
from pipeline.layout import METADATA_FILE


def _report(args: argparse.Namespace) -> int:
    from pipeline.report.build import write_report  # TensorFlow, TFMA protos

    config = run_config(args)
    if not config.output_path.is_dir():
        raise UserError(f"{config.output_path} is not a directory; run `leanline run` first")
    print(f"wrote {write_report(config.output_path, config)}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from pipeline.report.runs import format_runs, run_rows  # TFMA protos, with TensorFlow

    print(format_runs(run_rows(run_dir(args) / METADATA_FILE)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="write report.html on the latest run in an output directory"
    )
    add_run_arguments(report, old_positional=True)  # `report DIR` until the next release
    report.set_defaults(handler=_report)

    runs = subparsers.add_parser("runs", help="list the runs recorded in an output directory")
    add_run_arguments(runs, old_option="--output-dir")  # until the next release
    runs.set_defaults(handler=_runs)
