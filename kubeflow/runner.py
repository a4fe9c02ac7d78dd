"""Compiles leanline's pipeline (pipeline/pipeline.py, the one the local runner runs)
for Kubeflow Pipelines v2.

`yaml` writes a PipelineSpec (schema 2.1) for open-source KFP; `vertex` writes the
PipelineJob JSON that Vertex AI Pipelines takes. Model code is named by module path
(`models.<family>.model.run_fn`) and lives in the image, so compiling uploads nothing
and writes nothing under the pipeline root. A model module of one's own (`model.module`)
is a dotted module installed in the image, a file baked into an image built FROM
leanline's, or a .py file in a bucket that the steps read (`--module`). Everything the pods read (data, schema)
and write (artifacts, pushed models) must be a URI they can reach, not a local path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from models.errors import UserError
from pipeline.config import LeanlineConfig

PipelineFormat = Literal["yaml", "vertex"]
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {"yaml": (".yaml", ".yml"), "vertex": (".json",)}
# Among object stores, TensorFlow's file system (which every TFX executor writes
# through) reads only GCS; S3 and MinIO would need tensorflow-io in the image.
READABLE_SCHEMES = ("gs",)
# Where kubeflow/Dockerfile copies configs/ (curated schemas included).
IMAGE_CONFIGS_DIR = "/opt/leanline/configs"
# Where kubeflow/README.md suggests an image built FROM leanline's puts model modules.
IMAGE_MODULES_DIR = "/opt/leanline/modules"


def is_remote_uri(path: str) -> bool:
    """gs://, s3://...: a location outside any one machine."""
    return "://" in path


def check_cluster_uri(option: str, uri: str) -> str:
    """`uri`, refused when the pods' TensorFlow cannot open its scheme."""
    scheme = uri.partition("://")[0] if is_remote_uri(uri) else None
    if scheme is not None and scheme not in READABLE_SCHEMES:
        raise UserError(
            f"{option} {uri!r}: the pipeline's steps read and write through TensorFlow, "
            f"which opens {', '.join(s + '://' for s in READABLE_SCHEMES)} URIs but not {scheme}://"
        )
    return uri


def cluster_data_path(config: LeanlineConfig, data: str | None = None) -> str:
    """Where the pods read the dataset: `data` when given, else the config's data.path URI."""
    if data:
        return check_cluster_uri("--data", data)
    if config.data.bundled:
        raise UserError(
            f"data.bundled: {config.data.bundled} is a local-only dataset; copy its CSV to a bucket "
            "and pass --data gs://BUCKET/DIR/ (a directory ends with '/') or --data gs://BUCKET/FILE.csv"
        )
    if not is_remote_uri(config.data.path):
        raise UserError(
            f"data.path {config.data.path!r} is local; pods cannot read it: copy the data to a "
            "bucket and pass --data gs://BUCKET/DIR/ or --data gs://BUCKET/FILE.csv"
        )
    return check_cluster_uri("data.path", config.data.path)


def cluster_config(
    config: LeanlineConfig, schema: str | None = None, module: str | None = None
) -> LeanlineConfig:
    """The config with its curated schema (if any) and its model module file (if any) where
    the pods can read them."""
    if schema:
        check_cluster_uri("--schema", schema)
        data = {**config.data.model_dump(by_alias=True), "schema": schema}
        config = config.with_overrides(data=data)
    elif config.data.schema_path and not is_remote_uri(config.data.schema_path):
        raise UserError(
            f"data.schema {config.data.schema_path!r} is local; pods cannot read it: pass "
            "--schema with a copy in a bucket (gs://BUCKET/schema.pbtxt) or the one baked into "
            f"the image under {IMAGE_CONFIGS_DIR}/"
        )
    if module:
        if is_remote_uri(module):
            check_cluster_uri("--module", module)
        elif module.endswith(".py") and not module.startswith("/"):
            raise UserError(
                f"--module {module!r}: a relative path names a file on this machine; pass a "
                "gs:// URI, the absolute path of the file in the image, or a dotted module"
            )
        if config.model.family:
            raise UserError(
                f"--module {module!r}: the config uses model.family {config.model.family!r}, "
                "not a module"
            )
        return config.with_overrides(model={"module": module})
    if config.model.module_is_file and not is_remote_uri(config.model.module):
        raise UserError(
            f"model.module {config.model.module!r} is a local file; pods cannot import it: "
            "pass --module with a copy in a bucket (gs://BUCKET/model_v1.py; a new name per "
            "version, as steps are cached by their settings) or the path where your image "
            f"holds it (an image built FROM leanline's, e.g. COPY it to {IMAGE_MODULES_DIR}/), "
            "or name a dotted module installed in the image"
        )
    return config


def compile_pipeline(
    config: LeanlineConfig,
    output_path: str | Path,
    *,
    image: str | None = None,
    pipeline_root: str | None = None,
    data_path: str | None = None,
    schema: str | None = None,
    module: str | None = None,
    serving_root: str | None = None,
    fmt: PipelineFormat = "yaml",
) -> Path:
    """Writes the pipeline package for `config` and returns its path.

    Unset arguments come from the config's `kubeflow` section; models are pushed
    under `serving_root` (default: the pipeline root)."""
    output_path = Path(output_path)
    _check_suffix(output_path, fmt)
    _check_pipeline_name(config.name)
    image = image or config.kubeflow.image
    pipeline_root = check_cluster_uri(
        "pipeline root", pipeline_root or config.kubeflow.pipeline_root
    )
    serving_root = check_cluster_uri("--serving-root", serving_root or pipeline_root)
    config = cluster_config(config, schema, module)
    data_path = cluster_data_path(config, data_path)
    # TFX loads only now: a wrong flag fails at once, not after TensorFlow's import.
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.pipeline import create_pipeline  # TFX and TensorFlow, as above

    tfx_pipeline = create_pipeline(
        config,
        data_path=data_path,
        pipeline_root=pipeline_root,
        metadata_connection_config=None,  # KFP's launcher brings the cluster's MLMD
        serving_root=serving_root,
        beam_pipeline_args=config.kubeflow.beam_pipeline_args,
        enable_cache=True,
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            display_name=config.name, default_image=image, use_pipeline_spec_2_1=True
        )
    )
    pipeline_job = runner.run(tfx_pipeline, write_out=False)
    # A YAML package keeps only the spec, so the root travels as its default root.
    pipeline_job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(_render(pipeline_job, fmt, image))
    return output_path


# Kubeflow Pipelines v2's pipeline names: stricter than leanline's, which allow '_'.
KFP_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


def _check_pipeline_name(name: str) -> None:
    if not KFP_PIPELINE_NAME.fullmatch(name):
        raise UserError(
            f"name {name!r}: Kubeflow Pipelines names hold only lowercase letters, digits "
            f"and '-'; rename it (e.g. {name.replace('_', '-')!r}) to compile it"
        )


def _check_suffix(output_path: Path, fmt: PipelineFormat) -> None:
    suffixes = FORMAT_SUFFIXES[fmt]
    if output_path.suffix not in suffixes:
        raise UserError(
            f"--output {output_path}: format {fmt} writes a {' or '.join(suffixes)} file"
        )


def _render(pipeline_job: dict[str, Any], fmt: PipelineFormat, image: str) -> str:
    if fmt == "vertex":
        return json.dumps(pipeline_job, indent=2, sort_keys=True) + "\n"
    spec = pipeline_job["pipelineSpec"]
    header = (
        f"# leanline pipeline {spec['pipelineInfo']['name']!r} for Kubeflow Pipelines v2,\n"
        f"# compiled by {spec['sdkVersion']}; image {image}\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=True)
