"""Compiles leanline's pipeline (pipeline/pipeline.py, the one the local runner runs)
for Kubeflow Pipelines v2.

`yaml` writes a PipelineSpec (schema 2.1) for open-source KFP; `vertex` writes the
PipelineJob JSON that Vertex AI Pipelines takes. Model code is named by module path
(`models.<family>.model.run_fn`) and lives in the image, so compiling uploads nothing
and writes nothing under the pipeline root. A model module of one's own (`model.module`)
is a dotted module installed in the image, a file baked into an image built FROM
leanline's, or a .py file in a bucket that the steps read (`--module`). Everything the pods read (data, schema)
and write (artifacts, pushed models) must be a URI they can reach, or a path in the image
or on a volume that every step mounts (`kubeflow.volumes`), not a path on this machine.

The pipeline root is an object store, as KFP v2's launcher requires. On gs:// the steps
read and write artifacts through TensorFlow's file system; on s3:// or minio://, which
TensorFlow 2.21 cannot open, every step runs kubeflow/local_artifacts.py, which points
TFX at the launcher's local copies of the artifacts; there the data, schema, module and
pushed models must be on a volume (or in the image), and Beam runs in the step's pod.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from kubeflow.local_artifacts import LAUNCHER_LOCAL_DIRS
from models.errors import UserError
from pipeline.config import KubeflowConfig, LeanlineConfig, VolumeConfig
from pipeline.layout import SERVING_DIR, TFLITE_DIR

PipelineFormat = Literal["yaml", "vertex"]
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {"yaml": (".yaml", ".yml"), "vertex": (".json",)}
# Among object stores, TensorFlow's file system (which every TFX executor writes
# through) reads only GCS: TF 2.21 has no S3 file system (TF's own went in 2.6, and
# tensorflow-io 0.37.1's plugin does not load into TF 2.21).
READABLE_SCHEMES = ("gs",)
# The pipeline roots KFP v2's launcher takes (ParseBucketConfig in kubeflow/pipelines
# backend/src/v2/objectstore/config.go): on s3:// and minio:// TFX works on its copies.
PIPELINE_ROOT_SCHEMES = (*READABLE_SCHEMES, *LAUNCHER_LOCAL_DIRS)
# Where the launcher puts its local copies (LocalPathForURI, launcher_v2.go): no volume there.
LAUNCHER_DIRS = ("/gcs", *(directory.rstrip("/") for directory in LAUNCHER_LOCAL_DIRS.values()))
TFX_EXECUTOR_COMMAND = [
    "python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
]  # fmt: skip
LOCAL_ARTIFACTS_COMMAND = ["python", "-m", "kubeflow.local_artifacts"]
# Beam runners that run in the step's pod, where the launcher's local copies are.
IN_POD_BEAM_RUNNERS = ("DirectRunner", "direct")
# Where kubeflow/Dockerfile copies configs/ (curated schemas included).
IMAGE_CONFIGS_DIR = "/opt/leanline/configs"
# Where kubeflow/README.md suggests an image built FROM leanline's puts model modules.
IMAGE_MODULES_DIR = "/opt/leanline/modules"


def is_remote_uri(path: str) -> bool:
    """gs://, s3://...: a location outside any one machine."""
    return "://" in path


def uri_scheme(path: str) -> str | None:
    return path.partition("://")[0] if is_remote_uri(path) else None


def check_cluster_uri(option: str, uri: str) -> str:
    """`uri`, refused when the pods' TensorFlow cannot open its scheme."""
    scheme = uri_scheme(uri)
    if scheme is not None and scheme not in READABLE_SCHEMES:
        raise UserError(
            f"{option} {uri!r}: the pipeline's steps read and write through TensorFlow, "
            f"which opens {', '.join(s + '://' for s in READABLE_SCHEMES)} URIs but not "
            f"{scheme}:// (TF 2.21 has no S3 file system: its own went in TF 2.6 and "
            "tensorflow-io 0.37.1's plugin does not load into 2.21); put it on a volume "
            "that every step mounts (kubeflow.volumes) and give its path there, or in the image"
        )
    return uri


def check_pipeline_root(root: str) -> str:
    """`root`, refused when KFP v2's launcher takes no such object store."""
    scheme = uri_scheme(root)
    if scheme is not None and scheme not in PIPELINE_ROOT_SCHEMES:
        raise UserError(
            f"pipeline root {root!r}: Kubeflow Pipelines v2 keeps artifacts in "
            f"{', '.join(s + '://' for s in PIPELINE_ROOT_SCHEMES)} buckets only, not {scheme}://"
        )
    return root


def on_launcher_copies(pipeline_root: str) -> bool:
    """Whether the steps work on the launcher's local copies (an s3:// or minio:// root)."""
    return uri_scheme(pipeline_root) in LAUNCHER_LOCAL_DIRS


def cluster_data_path(config: LeanlineConfig, data: str | None = None) -> str:
    """Where the pods read the dataset: `data` when given, else the config's data.path URI."""
    if data:
        return check_cluster_uri("--data", data)
    if config.data.bundled:
        raise UserError(
            f"data.bundled: {config.data.bundled} is a local-only dataset; copy its CSV to a bucket "
            "and pass --data gs://BUCKET/DIR/ (a directory ends with '/') or --data gs://BUCKET/FILE.csv"
        )
    if config.kubeflow.volume_holding(config.data.path):
        return config.data.path
    if not is_remote_uri(config.data.path):
        raise UserError(
            f"data.path {config.data.path!r} is local; pods cannot read it: copy the data to a "
            "bucket and pass --data gs://BUCKET/DIR/ or --data gs://BUCKET/FILE.csv, or to a "
            "volume that every step mounts (kubeflow.volumes) and pass its path"
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
    elif (
        config.data.schema_path
        and not is_remote_uri(config.data.schema_path)
        and not config.kubeflow.volume_holding(config.data.schema_path)
    ):
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
        return pin_remote_module(config.with_overrides(model={"module": module}), "--module")
    if (
        config.model.module_is_file
        and not is_remote_uri(config.model.module)
        and not config.kubeflow.volume_holding(config.model.module)
    ):
        raise UserError(
            f"model.module {config.model.module!r} is a local file; pods cannot import it: "
            "pass --module with a copy in a bucket (gs://BUCKET/model_v1.py; a new name per "
            "version, as steps are cached by their settings) or the path where your image "
            f"holds it (an image built FROM leanline's, e.g. COPY it to {IMAGE_MODULES_DIR}/), "
            "or name a dotted module installed in the image"
        )
    return pin_remote_module(config, "model.module")


def pin_remote_module(config: LeanlineConfig, option: str) -> LeanlineConfig:
    """The config with `model.module_sha256` set to the content hash of a bucket module
    file, read here through TensorFlow's file system. Every pod reads the object again
    and runs it only with that content (models.custom.loader), so whoever can write the
    object cannot run code in the pods, and the hash, part of the model section, is in
    every step's cache key. A hash given in the config is kept unread (a machine without
    the bucket's credentials compiles too): the pods check it all the same."""
    module = config.model.module
    if not (config.model.module_is_file and is_remote_uri(module)) or config.model.module_sha256:
        return config
    import tensorflow as tf  # only a bucket module is read here

    try:
        with tf.io.gfile.GFile(module, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except tf.errors.OpError as error:
        raise UserError(
            f"{option} {module!r}: cannot read it to pin its content ({error.message}); the "
            "pods run a bucket module only with the content hash compiled in: compile where "
            "the bucket is readable, give the file's sha256 as model.module_sha256 (sha256sum "
            "of the file you uploaded), or put the module in the image (a path there, or a "
            "dotted module)"
        ) from None
    return config.with_overrides(model={"module_sha256": digest})


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
    under `serving_root` (default: the pipeline root, when TensorFlow can write there)."""
    output_path = Path(output_path)
    _check_suffix(output_path, fmt)
    _check_pipeline_name(config.name)
    image = image or config.kubeflow.image
    pipeline_root = check_pipeline_root(pipeline_root or config.kubeflow.pipeline_root)
    volumes = config.kubeflow.volumes
    _check_volumes(volumes, fmt)
    if on_launcher_copies(pipeline_root):
        _check_launcher_copies_fit(config.name, pipeline_root, serving_root, config.kubeflow, fmt)
    serving_root = check_cluster_uri("--serving-root", serving_root or pipeline_root)
    # The data path first: pinning a bucket module (cluster_config) loads TensorFlow.
    data_path = cluster_data_path(config, data_path)
    config = cluster_config(config, schema, module)
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
    spec = pipeline_job["pipelineSpec"]
    # A YAML package keeps only the spec, so the root travels as its default root.
    spec["defaultPipelineRoot"] = pipeline_root
    containers = _containers(spec)
    if on_launcher_copies(pipeline_root):
        for container in containers.values():
            container["command"] = LOCAL_ARTIFACTS_COMMAND
    platform_spec = kubernetes_platform_spec(volumes, containers) if volumes else None
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(_render(pipeline_job, fmt, image, platform_spec))
    return output_path


def _containers(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container of every executor that runs one (the resolvers run none), by label."""
    executors = spec["deploymentSpec"]["executors"]
    containers = {label: e["container"] for label, e in executors.items() if "container" in e}
    for label, container in containers.items():
        if container["command"] != TFX_EXECUTOR_COMMAND:
            raise RuntimeError(
                f"{label}: TFX compiled an unexpected command {container['command']}"
            )
    return containers


def kubernetes_platform_spec(
    volumes: list[VolumeConfig], containers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The PlatformSpec that mounts every volume into every container step, written as
    kfp-kubernetes' `mount_pvc` writes it (the claim both as `pvcNameParameter`, which the
    backend's driver reads, and as the older `constant` it falls back to)."""
    mounts = [
        {
            "constant": volume.claim_name,
            "pvcNameParameter": {"runtimeValue": {"constant": volume.claim_name}},
            "mountPath": volume.mount_path,
        }
        for volume in volumes
    ]
    executors = {label: {"pvcMount": mounts} for label in sorted(containers)}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def _check_volumes(volumes: list[VolumeConfig], fmt: PipelineFormat) -> None:
    if volumes and fmt == "vertex":
        raise UserError(
            "kubeflow.volumes: Vertex AI Pipelines mounts no Kubernetes volumes; compile "
            "--format yaml for Kubeflow Pipelines, or drop the volumes and use gs:// paths"
        )
    for volume in volumes:
        path = volume.mount_path
        if any(
            path == d or path.startswith(d + "/") or d.startswith(path + "/") for d in LAUNCHER_DIRS
        ):
            raise UserError(
                f"kubeflow.volumes: mount_path {path!r} overlaps {', '.join(LAUNCHER_DIRS)}, where "
                "the Kubeflow Pipelines launcher keeps its copies of the artifacts; mount it "
                "elsewhere, e.g. /mnt/leanline"
            )


def _check_launcher_copies_fit(
    name: str,
    pipeline_root: str,
    serving_root: str | None,
    kubeflow: KubeflowConfig,
    fmt: PipelineFormat,
) -> None:
    """On an s3:// or minio:// root the steps work on the launcher's copies in their pod:
    refuses what cannot reach them, or what TensorFlow would have to write to the bucket."""
    scheme = uri_scheme(pipeline_root)
    if fmt == "vertex":
        raise UserError(
            f"pipeline root {pipeline_root!r}: Vertex AI Pipelines keeps artifacts in gs:// "
            "only; compile --format yaml for Kubeflow Pipelines, or give a gs:// root"
        )
    if serving_root is None:
        raise UserError(
            f"pipeline root {pipeline_root!r}: the pusher writes models through TensorFlow, "
            f"which cannot open {scheme}://; pass --serving-root with a directory on a volume "
            "that every step mounts (kubeflow.volumes) and TF Serving mounts too (see "
            "kubeflow/README.md, self-hosted clusters)"
        )
    if not is_remote_uri(serving_root):
        for push_dir in (SERVING_DIR, TFLITE_DIR):
            path = posixpath.join(serving_root, push_dir, name)
            if not kubeflow.volume_holding(path):
                raise UserError(
                    f"--serving-root {serving_root!r}: the pusher would write {path} on no "
                    "volume in kubeflow.volumes, so the models would stay in its pod; mount "
                    "volumes where it writes (kubeflow/README.md, self-hosted clusters)"
                )
    runner = _beam_runner(kubeflow.beam_pipeline_args)
    if runner is not None and runner not in IN_POD_BEAM_RUNNERS:
        raise UserError(
            f"kubeflow.beam_pipeline_args --runner={runner}: with a {scheme}:// pipeline root "
            "the steps read and write the launcher's copies of their artifacts inside each "
            f"step's pod, which {runner}'s workers cannot see; drop --runner (Beam's "
            "DirectRunner in the pod) or use a gs:// root"
        )


def _beam_runner(beam_args: list[str]) -> str | None:
    """The --runner of Beam args, in either the `--runner=X` or the `--runner X` form."""
    for index, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            return arg.partition("=")[2]
        if arg == "--runner" and index + 1 < len(beam_args):
            return beam_args[index + 1]
    return None


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


def _render(
    pipeline_job: dict[str, Any],
    fmt: PipelineFormat,
    image: str,
    platform_spec: dict[str, Any] | None,
) -> str:
    """The package: JSON for Vertex AI; for KFP the spec, and the platform spec as a second
    YAML document, as the kfp compiler writes it and kfp.Client reads it."""
    if fmt == "vertex":
        return json.dumps(pipeline_job, indent=2, sort_keys=True) + "\n"
    spec = pipeline_job["pipelineSpec"]
    header = (
        f"# leanline pipeline {spec['pipelineInfo']['name']!r} for Kubeflow Pipelines v2,\n"
        f"# compiled by {spec['sdkVersion']}; image {image}\n"
    )
    text = header + yaml.safe_dump(spec, sort_keys=True)
    if platform_spec:
        text += "---\n" + yaml.safe_dump(platform_spec, sort_keys=True)
    return text
