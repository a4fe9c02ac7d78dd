"""`leanline report` and `leanline runs`. Handlers import TensorFlow-heavy modules lazily."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import UserError


def _report(args: argparse.Namespace) -> int:
    from pipeline.config import load_config, load_run_config
    from pipeline.report.build import write_report

    if args.config:
        config = load_config(args.config, check_paths=False)
    elif args.run_dir:
        config = load_run_config(args.run_dir)
    else:
        raise UserError("name a run directory, or a config with --config")
    output_dir = Path(args.run_dir).resolve() if args.run_dir else config.output_path
    if not output_dir.is_dir():
        raise UserError(f"{output_dir} is not a directory; run `leanline run` first")
    print(f"wrote {write_report(output_dir, config)}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from pipeline.local_runner import METADATA_FILE
    from pipeline.report.runs import format_runs, run_rows

    print(format_runs(run_rows(Path(args.output_dir) / METADATA_FILE)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="write report.html on the latest run in an output directory"
    )
    report.add_argument(
        "run_dir", nargs="?", help="the run's output directory (default: the config's output_dir)"
    )
    report.add_argument(
        "--config", help="the YAML config the run used (default: the one saved in run_dir)"
    )
    report.set_defaults(handler=_report)

    runs = subparsers.add_parser("runs", help="list the runs recorded in an output directory")
    runs.add_argument("--output-dir", required=True, help="a run's output directory")
    runs.set_defaults(handler=_runs)
