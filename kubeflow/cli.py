"""`leanline compile kubeflow` and `leanline submit`.

TFX and kfp load only when a command runs, so `leanline --help` stays fast.
"""

from __future__ import annotations

import argparse

from kubeflow.runner import compile_pipeline
from pipeline.config import load_config

FORMATS = ("yaml", "vertex")


def register(subparsers: argparse._SubParsersAction) -> None:
    compile_parser = subparsers.add_parser(
        "compile", help="compile the pipeline for an orchestrator"
    )
    targets = compile_parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    kubeflow = targets.add_parser(
        "kubeflow",
        help="Kubeflow Pipelines v2 package (.yaml), or a Vertex AI PipelineJob (.json)",
        description="Compile the same pipeline `leanline run` runs into a Kubeflow Pipelines v2 "
        "package. Unset options come from the config's `kubeflow` section.",
    )
    kubeflow.add_argument("--config", required=True, help="leanline YAML config")
    kubeflow.add_argument("--output", required=True, help="package to write (pipeline.yaml)")
    kubeflow.add_argument("--image", help="container image of every step (default: kubeflow.image)")
    kubeflow.add_argument(
        "--pipeline-root",
        help="artifact root URI, e.g. gs://BUCKET/leanline (default: kubeflow.pipeline_root)",
    )
    kubeflow.add_argument(
        "--data",
        help="dataset URI the pods read: a file, or a directory ending in '/' "
        "(required for bundled datasets; default: data.path)",
    )
    kubeflow.add_argument(
        "--schema", help="curated schema URI (needed when data.schema is a local file)"
    )
    kubeflow.add_argument(
        "--module",
        help="model module the pods import: a gs:// .py file or a path in the image "
        "(needed when model.module is a local file)",
    )
    kubeflow.add_argument(
        "--serving-root",
        help="pushed models go to SERVING_ROOT/{serving,tflite}/NAME (default: the pipeline root)",
    )
    kubeflow.add_argument(
        "--format",
        choices=FORMATS,
        default="yaml",
        help="yaml: open-source KFP; vertex: Vertex AI PipelineJob JSON",
    )
    kubeflow.set_defaults(handler=compile_kubeflow)

    submit = subparsers.add_parser(
        "submit",
        help="start a run of a compiled package on Kubeflow Pipelines",
        description="Start a run of a compiled package. Credentials come only from the "
        "environment: KFP_TOKEN (bearer token) or KFP_COOKIE (Cookie header, e.g. "
        "authservice_session=...); never from files or prompts.",
    )
    submit.add_argument(
        "--host",
        required=True,
        help="KFP API URL: https://..., or http://localhost:PORT through a port-forward",
    )
    submit.add_argument("--package", required=True, help="package from `leanline compile kubeflow`")
    submit.add_argument("--experiment", help="experiment to file the run under (default: Default)")
    submit.add_argument("--run-name", help="run name (default: pipeline name and time)")
    submit.add_argument("--namespace", help="profile namespace on multi-user installs")
    submit.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter (repeatable)",
    )
    submit.set_defaults(handler=submit_run)


def compile_kubeflow(args: argparse.Namespace) -> int:

    # Local paths are not checked: the pods read only URIs, which cluster_data_path checks.
    path = compile_pipeline(
        load_config(args.config, check_paths=False),
        args.output,
        image=args.image,
        pipeline_root=args.pipeline_root,
        data_path=args.data,
        schema=args.schema,
        module=args.module,
        serving_root=args.serving_root,
        fmt=args.format,
    )
    print(f"wrote {path}")
    return 0


def submit_run(args: argparse.Namespace) -> int:
    from kubeflow.submit import submit  # kfp: half a second that `leanline --help` skips

    run = submit(
        args.package,
        args.host,
        experiment=args.experiment,
        run_name=args.run_name,
        namespace=args.namespace,
        parameters=args.param,
    )
    print(f"submitted run {run.run_name!r} ({run.run_id}), pipeline root {run.pipeline_root}")
    print(f"  {run.url}")
    return 0
