"""`leanline` subcommands for serving: configs, Kubernetes manifests, queries, checks.

Commands that read a run name it as every such command does (pipeline.cli.run_dir).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.errors import UserError
from pipeline.cli.run_dir import add_run_arguments, run_config
from pipeline.config import LeanlineConfig
from serving.configs import write_serving_configs
from serving.manifests import write_serving_manifests
from serving.versions import existing_versions


def _add_prefer_tflite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefer-tflite",
        action="store_true",
        help="serve each version's end-to-end int8 model.tflite (TF Serving's "
        "--prefer_tflite_model; default: serving.prefer_tflite)",
    )


def _positive(number_type: type[int] | type[float]):
    """An argparse type: a number above zero, else argparse's usage error (exit 2)."""

    def parse(text: str) -> int | float:
        try:
            value = number_type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be above 0")
        return value

    return parse


def _config(args: argparse.Namespace) -> LeanlineConfig:
    config = run_config(args)
    if getattr(args, "prefer_tflite", False):
        config = config.with_overrides(serving={"prefer_tflite": True})
    return config


def register(subparsers: argparse._SubParsersAction) -> None:
    config_parser = subparsers.add_parser(
        "serving-config",
        help="write TF Serving's models.config and batching.config for the pushed models",
    )
    add_run_arguments(config_parser)
    config_parser.add_argument("--output-dir", required=True, type=Path, help="where to write")
    config_parser.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="MODEL=VERSION",
        help="serve this version of a model instead of its latest (repeatable)",
    )
    _add_prefer_tflite(config_parser)
    config_parser.set_defaults(handler=serving_config)

    manifests_parser = subparsers.add_parser(
        "serving-manifests", help="write Kubernetes manifests that run TF Serving for the model"
    )
    add_run_arguments(manifests_parser)
    manifests_parser.add_argument("--output-dir", required=True, type=Path, help="where to write")
    manifests_parser.add_argument(
        "--model-base-path",
        help="where the pods find <name>/<version>/ (default: serving.model_base_path); "
        "for a Kubeflow run, SERVING_ROOT/serving",
    )
    _add_prefer_tflite(manifests_parser)
    manifests_parser.set_defaults(handler=serving_manifests)

    predict_parser = subparsers.add_parser(
        "predict",
        help="send rows of a CSV or JSONL file to a model on TF Serving",
        description="Send rows to a model on TF Serving. --server names the transport and "
        "whether it is TLS: HOST:PORT is plaintext (gRPC, or REST with --rest), "
        "grpc://HOST:PORT plaintext gRPC, grpcs://HOST[:PORT] gRPC over TLS, "
        "http://HOST:PORT plaintext REST, https://HOST[:PORT] REST over TLS (TLS ports "
        "default to 443). TLS checks the server's certificate against the system's CAs or "
        "--ca-cert. A bearer token in LEANLINE_SERVING_TOKEN is sent as 'Authorization: "
        "Bearer ...' (over TLS only) and never printed.",
    )
    predict_parser.add_argument(
        "--server",
        required=True,
        help="HOST:PORT (gRPC 8500, REST 8501), or a grpc://, grpcs://, http://, https:// URL",
    )
    predict_parser.add_argument("--model", required=True, help="model name on the server")
    transport = predict_parser.add_mutually_exclusive_group()
    transport.add_argument("--grpc", dest="transport", action="store_const", const="grpc")
    transport.add_argument("--rest", dest="transport", action="store_const", const="rest")
    predict_parser.add_argument("--input", required=True, type=Path, help="FILE.csv or FILE.jsonl")
    predict_parser.add_argument("--signature", default="serving_default")
    predict_parser.add_argument(
        "--schema",
        type=Path,
        help="schema.pbtxt with the raw feature types (default: ask the server)",
    )
    predict_parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    predict_parser.add_argument(
        "--timeout",
        type=_positive(float),
        metavar="SECONDS",
        help="seconds each request may take (default: 30)",
    )
    predict_parser.add_argument(
        "--batch-size",
        type=_positive(int),
        metavar="ROWS",
        help="rows per request, at most the server's max_batch_size (default: the default "
        "of serving.max_batch_size, which leanline writes into TF Serving's batching.config)",
    )
    predict_parser.add_argument(
        "--ca-cert", type=Path, metavar="PEM", help="CA that signed the server's certificate"
    )
    predict_parser.add_argument(
        "--client-cert", type=Path, metavar="PEM", help="client certificate, for mutual TLS"
    )
    predict_parser.add_argument(
        "--client-key", type=Path, metavar="PEM", help="the client certificate's private key"
    )
    predict_parser.set_defaults(handler=predict)

    check_parser = subparsers.add_parser(
        "check-servable",
        help="load a model version like TF Serving does and replay its warm-up requests",
    )
    check_parser.add_argument(
        "version_dir",
        nargs="?",
        type=Path,
        help="a version directory, e.g. output/taxi/serving/taxi/<version>; "
        "or name the run (--run-dir, --config) and check its latest pushed version",
    )
    add_run_arguments(check_parser)
    check_parser.add_argument(
        "--version", type=int, help="with the run named: the pushed version to check"
    )
    check_parser.set_defaults(handler=check_servable)


# Handlers that load TensorFlow (predict, check-servable) import it inside, which takes
# seconds; the others run without it.


def serving_config(args: argparse.Namespace) -> int:

    files = write_serving_configs(_config(args), args.output_dir, _pins(args.pin))
    print(f"Models: {', '.join(f'{name} ({path})' for name, path in files.models.items())}")
    print(f"Wrote {files.models_config}, {files.docker_models_config}, {files.batching_config}")
    print(f"\nRun TF Serving on this machine:\n  {files.model_server_command}")
    print(f"\nOr in Docker:\n  {files.docker_command}")
    return 0


def serving_manifests(args: argparse.Namespace) -> int:

    config = _config(args)
    if args.model_base_path:
        serving = {**config.serving.model_dump(), "model_base_path": args.model_base_path}
        config = config.with_overrides(serving=serving)
    path = write_serving_manifests(config, args.output_dir)
    print(f"Wrote {path}; apply it with: kubectl apply -f {path}")
    return 0


def predict(args: argparse.Namespace) -> int:
    # TensorFlow (tf.Example protos, the serving APIs) loads only for a query.
    from serving import client

    rows = client.read_rows(args.input)
    predictions = client.predict(
        args.server,
        args.model,
        rows,
        transport=args.transport,
        signature=args.signature,
        schema_path=args.schema,
        timeout_s=args.timeout or client.DEFAULT_TIMEOUT_S,
        batch_size=args.batch_size or client.DEFAULT_BATCH_SIZE,
        tls_files=client.TlsFiles(args.ca_cert, args.client_cert, args.client_key),
    )
    if args.json:
        print(json.dumps(client.prediction_records(predictions), indent=2))
    else:
        print(client.format_table(predictions))
    return 0


def check_servable(args: argparse.Namespace) -> int:
    from serving.check import check_servable as check  # TensorFlow: loads the SavedModel

    print(check(_version_dir(args)).summary())
    return 0


def _version_dir(args: argparse.Namespace) -> Path:
    """The version directory given, or the run's pushed version (the latest by default)."""
    if args.version_dir is not None:
        if args.run_dir or args.config or args.version is not None:
            raise UserError("name a version directory or the run (--run-dir, --config), not both")
        return args.version_dir
    if args.run_dir is None and args.config is None:
        raise UserError("name a version directory, or the run: --run-dir DIR or --config FILE")

    base = run_config(args).serving_model_dir
    versions = existing_versions(base)
    if not versions:
        raise UserError(f"no pushed version under {base}")
    if args.version is None:
        return base / str(versions[-1])
    if args.version not in versions:
        raise UserError(f"--version {args.version}: {base} holds versions {versions}")
    return base / str(args.version)


def _pins(pins: list[str]) -> dict[str, int]:
    parsed = {}
    for pin in pins:
        name, _, version = pin.partition("=")
        if not name or not version.isdigit():
            raise UserError(f"--pin {pin!r}: expected MODEL=VERSION, e.g. taxi=1712345678901")
        parsed[name] = int(version)
    return parsed
