"""How every command that reads a run names it: `--run-dir DIR` and `--config FILE`.

One rule for `report`, `runs`, `serving-config`, `serving-manifests` and `check-servable`,
so that what a person learns from one command holds for the others: `--run-dir` is the
run's output directory (default: the output_dir of `--config`), and `--config` the
config (default: the one the run saved in its directory, `leanline.yaml`). The spellings
of earlier releases (`report DIR`, `runs --output-dir DIR`) still work for one release
and say so on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.errors import UserError
from pipeline.config import LeanlineConfig, load_config, load_run_config

# Where an old spelling's value goes, apart from --run-dir, so that giving both is refused.
_OLD_DEST = "old_run_dir"
_NO_RUN = "name the run: --run-dir DIR, or --config FILE for the run in its output_dir"


class _OldSpelling(argparse.Action):
    """A run directory given the way an earlier release took it: kept, with a note."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:  # an optional positional that was not given
            return
        old = f"{parser.prog} {option_string} DIR" if option_string else f"{parser.prog} DIR"
        print(
            f"leanline: note: `{old}` is deprecated and goes in the next release; "
            f"use `{parser.prog} --run-dir DIR`",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_run_arguments(
    parser: argparse.ArgumentParser, *, old_positional: bool = False, old_option: str = ""
) -> None:
    """--run-dir and --config, and the command's old spelling of the run directory
    (a positional DIR, or an option such as --output-dir), hidden from --help."""
    parser.add_argument(
        "--run-dir",
        type=Path,
        metavar="DIR",
        help="the run's output directory (default: the config's output_dir)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the YAML config the run used (default: the one saved in the run directory)",
    )
    if old_positional:
        parser.add_argument(
            _OLD_DEST, nargs="?", type=Path, action=_OldSpelling, help=argparse.SUPPRESS
        )
    if old_option:
        parser.add_argument(
            old_option, dest=_OLD_DEST, type=Path, action=_OldSpelling, help=argparse.SUPPRESS
        )


def _named_dir(args: argparse.Namespace) -> Path | None:
    old = getattr(args, _OLD_DEST, None)
    if old is not None and args.run_dir is not None:
        raise UserError(
            f"the run directory is named twice ({old} and {args.run_dir}): keep --run-dir"
        )
    named = args.run_dir if old is None else old
    return None if named is None else named.expanduser().resolve()


def run_dir(args: argparse.Namespace) -> Path:
    """The run directory `args` name (for commands that need no config)."""
    named = _named_dir(args)
    if named is not None:
        return named
    if args.config is not None:
        return load_config(args.config, check_paths=False).output_path
    raise UserError(_NO_RUN)


def run_config(args: argparse.Namespace) -> LeanlineConfig:
    """The config of the run `args` name, its output_dir the run directory."""
    named = _named_dir(args)
    if args.config is not None:
        config = load_config(args.config, check_paths=False)
    elif named is not None:
        config = load_run_config(named)
    else:
        raise UserError(_NO_RUN)
    if named is None or named == config.output_path:
        return config
    return config.with_overrides(output_dir=str(named))
