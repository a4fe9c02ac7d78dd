"""`leanline`: run the pipeline, curate its schema, compile for Kubeflow, serve.

Heavy imports (TensorFlow, TFX) happen inside the handlers, after logging is set
up, so `leanline --help` is instant and TF's start-up noise can be silenced.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from kubeflow import cli as kubeflow_cli
from models.errors import EXIT_ERROR, EXIT_REFUSED, UserError
from pipeline.cli import report as report_cli
from pipeline.cli import serving as serving_cli
from pipeline.config import load_config
from pipeline.gate_resolution import fitted_to_data
from pipeline.inputs.checks import check_inputs
from pipeline.inputs.datasets import data_path
from pipeline.layout import REPORT_FILE

# Without --verbose, the root logger's one handler: TensorFlow and absl add a stderr
# handler of their own only to a root logger that has none.
_NO_TERMINAL = logging.NullHandler()


def _quiet_logs(verbose: bool) -> None:
    """TF, TFX and Beam log hundreds of lines, warnings included, that a user cannot act
    on; leanline reports progress and errors itself. --verbose brings the logs back.
    Either way a run writes every log record to its log file (pipeline.run_log)."""
    if verbose:
        return
    _silence_native_stderr()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    logging.captureWarnings(True)  # so that they reach the run log, not the terminal
    logging.getLogger().addHandler(_NO_TERMINAL)


def _silence_native_stderr() -> None:
    """TensorFlow's C++ and absl logging write start-up lines to file descriptor 2 before
    any setting of theirs applies (TF_CPP_MIN_LOG_LEVEL does not reach absl's pre-init
    messages). Point descriptor 2 at /dev/null and keep Python's stderr, which carries
    leanline's own messages and tracebacks, on the original stream."""
    sys.stderr.flush()
    original = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(original, "w", buffering=1, errors="backslashreplace")


def _run(args: argparse.Namespace) -> int:

    config = load_config(args.config)
    if args.output_dir:
        config = config.with_overrides(output_dir=args.output_dir)
    # Config and data errors surface in a second, before TensorFlow's slow import.
    checked = check_inputs(config, data_path(config, config.output_path, args.data))
    fitted_to_data(config, checked)

    from pipeline.local_runner import run_local  # TensorFlow and TFX load only now
    from pipeline.summary import format_table  # with the run: TFMA and TFDV

    run_summary = run_local(
        config, data=args.data, beam_args=args.beam_arg, enable_cache=not args.no_cache
    )
    print(format_table(run_summary))
    print(f"report: {config.output_path / REPORT_FILE}")
    refusal = run_summary.refusal()
    if refusal is not None:
        print(f"leanline: not pushed: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _schema(args: argparse.Namespace) -> int:
    from pipeline.inputs.schema import write_inferred_schema

    config = load_config(args.config, check_paths=False)
    path = write_inferred_schema(config, args.output, data=args.data)
    print(f"wrote the inferred schema to {path}; curate it, then point `data.schema` at it")
    return 0


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="leanline", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow/TFX/Beam logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the whole pipeline locally")
    run.add_argument("--config", required=True, help="YAML config, e.g. configs/taxi.yaml")
    run.add_argument("--output-dir", help="overrides the config's output_dir")
    run.add_argument("--data", help="CSV/TFRecord file or directory; overrides data in the config")
    run.add_argument(
        "--beam-arg", action="append", default=[], help="extra Beam pipeline arg (repeatable)"
    )
    run.add_argument("--no-cache", action="store_true", help="rerun every component")
    run.set_defaults(handler=_run)

    schema = commands.add_parser(
        "schema", help="write the schema inferred from the data, to curate"
    )
    schema.add_argument("--config", required=True)
    schema.add_argument("--output", required=True, help="schema.pbtxt to write")
    schema.add_argument("--data", help="overrides data in the config")
    schema.set_defaults(handler=_schema)

    report_cli.register(commands)
    serving_cli.register(commands)
    kubeflow_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_logs(args.verbose)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"leanline: error: {error}", file=sys.stderr)
        return EXIT_ERROR
